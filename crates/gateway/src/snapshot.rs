//! The immutable runtime view of one config: sites with their pools and metric handles, the
//! routing table, TLS, and the settings the request path reads. Swapped atomically on reload
//! (`ArcSwap`); requests in flight keep the snapshot they started with.

use crate::config::{self, File};
use crate::route::Routes;
use crate::telemetry::metrics::{Metrics, SiteMetrics};
use crate::telemetry::{Event, Telemetry};
use crate::upstream::{Origin, Pool, PoolChange};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

/// One site at runtime.
#[derive(Debug)]
pub(crate) struct SiteRt {
    pub(crate) name: Arc<str>,
    pub(crate) language: Arc<str>,
    pub(crate) hosts: Vec<String>,
    /// A route's runtime: the route's name (`checkout`); None: the site itself.
    pub(crate) route: Option<Arc<str>>,
    /// Pools in failover order.
    pub(crate) pools: Vec<Pool>,
    /// The slot of each pool in the site's tally (a route's pool counts under the site's
    /// pool in the same data center).
    pub(crate) tally_pool: Vec<usize>,
    /// The site's routes by path prefix, longest first (none in a route's runtime).
    pub(crate) routes: Vec<(String, Arc<SiteRt>)>,
    /// `Strict-Transport-Security` for its TLS responses (`[site.https] hsts`).
    pub(crate) hsts: Option<http::HeaderValue>,
    pub(crate) metrics: SiteMetrics,
    /// The site's config (health, outlier, failover, retry, balance).
    pub(crate) cfg: config::Site,
    pub(crate) retry_budget: crate::upstream::retry::Budget,
    /// The site's cache (None when off); kept across reloads.
    pub(crate) cache: Option<Arc<crate::cache::SiteCache>>,
    /// Random state for balancing and failover choices.
    pub(crate) rng: std::sync::atomic::AtomicU64,
    /// Origin load and shed level for adaptive admission; kept across reloads.
    pub(crate) load: Arc<crate::shield::SiteLoad>,
    /// The site's requests by how they ended, for the incident engine; kept across reloads.
    pub(crate) tally: Arc<crate::incident::SiteTally>,
}

impl SiteRt {
    /// The runtime serving `path`: the route with the longest prefix of it, or the site.
    pub(crate) fn for_path<'a>(self: &'a Arc<SiteRt>, path: &str) -> &'a Arc<SiteRt> {
        self.routes.iter().find(|(prefix, _)| path.starts_with(prefix.as_str())).map_or(self, |(_, rt)| rt)
    }

    /// The site and each of its routes (their pools are health-checked and observed).
    pub(crate) fn with_routes(self: &Arc<SiteRt>) -> impl Iterator<Item = &Arc<SiteRt>> {
        std::iter::once(self).chain(self.routes.iter().map(|(_, rt)| rt))
    }

    /// The site, or "checkout of shop-de" for a route: in events and incidents.
    pub(crate) fn label(&self) -> String {
        match &self.route {
            Some(r) => format!("{r} of {}", self.name),
            None => self.name.to_string(),
        }
    }

    /// Reports an origin's state change, then any change of this site's data centers'
    /// eligibility that it caused (failover, failback).
    pub(crate) fn origin_changed(&self, telemetry: &Telemetry, origin: &Origin, kind: &'static str, reason: String) {
        telemetry.event(Event::origin(kind, &self.label(), &origin.datacenter, origin.authority.to_string(), reason));
        for c in crate::upstream::eligibility_changes(&self.pools, &self.cfg.failover, crate::clock::now_ms()) {
            self.pool_changed(telemetry, &c);
        }
    }

    /// Reports a data center that stopped (failover) or started again (failback) taking
    /// this site's traffic.
    pub(crate) fn pool_changed(&self, telemetry: &Telemetry, c: &PoolChange) {
        let f = &self.cfg.failover;
        let dc = self.pools.get(c.pool).map_or("", |p| &*p.datacenter);
        telemetry.event(Event::pool(&self.label(), dc, c.up, c.share, f.min_healthy_share, f.slow_start.get()));
    }
}

pub(crate) struct Snapshot {
    pub(crate) file: File,
    pub(crate) sites: Vec<Arc<SiteRt>>,
    pub(crate) routes: Routes,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS for QUIC (HTTP/3): the same certificates, TLS 1.3, ALPN h3.
    pub(crate) quic_tls: Option<Arc<quinn::crypto::rustls::QuicServerConfig>>,
    /// The expiry (Unix seconds) of each site's certificate from files.
    pub(crate) cert_expiry: Vec<(String, u64)>,
    /// ACME's certificates and challenge answers (the same across reloads).
    pub(crate) acme: Arc<crate::acme::Certs>,
    pub(crate) loaded_at: SystemTime,
    /// `Via` values, precomputed: "1.1 holdfast", "2 holdfast", "3 holdfast".
    pub(crate) via: Option<[http::HeaderValue; 3]>,
    pub(crate) shield: crate::shield::ShieldRt,
}

/// What makes an origin the same one across snapshots (with its site and data center):
/// its address and the name it came from (its weight may change: it is set again).
fn origin_key(o: &Origin) -> String {
    format!("{}|{}", o.addr, o.name.as_deref().unwrap_or(""))
}

/// The previous snapshot's site of the same name.
fn previous_site<'a>(s: &config::Site, previous: Option<&'a Snapshot>) -> Option<&'a Arc<SiteRt>> {
    previous.and_then(|p| p.sites.iter().find(|x| *x.name == **s.name.get_ref()))
}

/// Origins of one snapshot being built: reused from the previous one where they are the
/// same, and what changes in them, applied once the whole build has succeeded.
struct Origins<'a> {
    file: &'a File,
    known: &'a HashMap<(String, String, String), Arc<Origin>>,
    dns: &'a crate::upstream::dns::Addresses,
    settings: &'a mut Vec<(Arc<Origin>, f64, Option<crate::upstream::tls::OriginTls>)>,
}

impl Origins<'_> {
    /// The runtime pools of a site's (or a route's: `scope`) config pools.
    fn pools(&mut self, site: &str, scope: &str, config: &[config::Pool]) -> Result<Vec<Pool>, String> {
        let file = self.file;
        let mut pools = Vec::with_capacity(config.len());
        for p in config {
            let dc: Arc<str> = Arc::from(p.datacenter.get_ref().as_str());
            let tls = match &p.tls {
                Some(t) => Some(crate::upstream::tls::build(file, site, t).map_err(|e| e.to_string())?),
                None => None,
            };
            let mut origins = Vec::with_capacity(p.origins.len());
            for spec in &p.origins {
                let o = spec.get_ref();
                let auth = config::parse_origin(&o.address)?;
                let (host, port) = (auth.host(), auth.port_u16().unwrap_or(80));
                let (ips, dns_name) = match crate::upstream::dns::host_ip(host) {
                    Some(ip) => (vec![ip], None),
                    None => {
                        let ips = self.dns.get(&host.to_ascii_lowercase()).cloned().unwrap_or_default();
                        (ips, Some(Arc::<str>::from(auth.as_str())))
                    }
                };
                let weight = f64::from(o.weight) / ips.len().max(1) as f64;
                for ip in ips {
                    let addr = std::net::SocketAddr::new(ip, port);
                    let fresh = Origin::new(addr, dns_name.clone(), dc.clone(), weight);
                    let key = (scope.to_string(), dc.to_string(), origin_key(&fresh));
                    let origin = self.known.get(&key).cloned().unwrap_or_else(|| Arc::new(fresh));
                    let origin_tls = match &tls {
                        Some(t) => Some(t.for_origin(host).map_err(|why| {
                            file.error_at(spec, format!("site {site:?}: origin {}: TLS server name {why}", o.address))
                                .to_string()
                        })?),
                        None => None,
                    };
                    self.settings.push((origin.clone(), weight, origin_tls));
                    origins.push(origin);
                }
            }
            pools.push(Pool::new(dc, origins));
        }
        Ok(pools)
    }
}

/// What a site and its routes share at runtime.
struct Shared<'a> {
    name: Arc<str>,
    cfg: &'a config::Site,
    cache: Option<Arc<crate::cache::SiteCache>>,
    load: Arc<crate::shield::SiteLoad>,
    tally: Arc<crate::incident::SiteTally>,
    seed: u64,
}

impl Shared<'_> {
    fn runtime(
        &self,
        metrics: &Metrics,
        pools: Vec<Pool>,
        route: Option<Arc<str>>,
        tally_pool: Vec<usize>,
        routes: Vec<(String, Arc<SiteRt>)>,
    ) -> SiteRt {
        let s = self.cfg;
        let dcs: Vec<&str> = pools.iter().map(|p| &*p.datacenter).collect();
        let site_metrics = metrics.site(&self.name, route.as_deref(), &dcs);
        let seed = self.seed ^ route.as_deref().map_or(0, |r| (r.len() as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        SiteRt {
            name: self.name.clone(),
            route,
            language: Arc::from(s.language.as_str()),
            hosts: s.hosts.iter().map(|h| h.get_ref().to_ascii_lowercase()).collect(),
            pools,
            tally_pool,
            routes,
            hsts: s.https.hsts.as_ref().and_then(|v| http::HeaderValue::from_str(v.get_ref().trim()).ok()),
            metrics: site_metrics,
            cfg: s.clone(),
            retry_budget: Default::default(),
            cache: self.cache.clone(),
            rng: std::sync::atomic::AtomicU64::new(seed),
            load: self.load.clone(),
            tally: self.tally.clone(),
        }
    }
}

/// The site's cache: the previous snapshot's when the site and its sizes are unchanged.
fn site_cache(s: &config::Site, previous: Option<&Snapshot>) -> Option<Arc<crate::cache::SiteCache>> {
    let c = &s.cache;
    if !c.enabled {
        return None;
    }
    let reuse = previous_site(s, previous)
        .filter(|x| x.cfg.cache.max_bytes == c.max_bytes && x.cfg.cache.max_object_bytes == c.max_object_bytes)
        .and_then(|x| x.cache.clone());
    let cache =
        reuse.unwrap_or_else(|| Arc::new(crate::cache::SiteCache::new(c.max_bytes.get(), c.max_object_bytes.get())));
    cache.set_stale_rules(c.serve_stale_on_error.get(), c.stale_while_revalidate.get());
    Some(cache)
}

impl Snapshot {
    /// Builds a snapshot; origins (their counters and pooled connections) are carried over
    /// from `previous` where site, data center and address are unchanged. Origins
    /// given by DNS name take their addresses from `dns` (a name without any yet has no
    /// origin until it resolves); TLS settings are read here, so a bad file is refused.
    pub(crate) fn build(
        file: File,
        metrics: &Metrics,
        previous: Option<&Snapshot>,
        dns: &crate::upstream::dns::Addresses,
    ) -> Result<Snapshot, String> {
        let tls_sites = crate::tls::site_keys(&file).map_err(|e| e.to_string())?;
        let mut known: HashMap<(String, String, String), Arc<Origin>> = HashMap::new();
        if let Some(prev) = previous {
            for site in &prev.sites {
                for rt in site.with_routes() {
                    let scope = match &rt.route {
                        Some(r) => format!("{}\u{0}{r}", rt.name),
                        None => rt.name.to_string(),
                    };
                    for pool in &rt.pools {
                        for o in &pool.origins {
                            known.insert((scope.clone(), pool.datacenter.to_string(), origin_key(o)), o.clone());
                        }
                    }
                }
            }
        }
        // What changes in origins kept from `previous` (weight, TLS): applied only once the
        // whole snapshot has been built, so that a refused reload changes nothing.
        let mut settings = Vec::new();
        let mut sites = Vec::with_capacity(file.sites.len());
        for s in &file.sites {
            let name: Arc<str> = Arc::from(s.name.get_ref().as_str());
            let mut make = Origins { file: &file, known: &known, dns, settings: &mut settings };
            let pools = make.pools(&name, &name, &s.pools)?;
            let mut routes = Vec::with_capacity(s.routes.len());
            let mut by_length: Vec<&config::Route> = s.routes.iter().collect();
            by_length.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.get_ref().len()));
            for r in by_length {
                let route: Arc<str> = Arc::from(r.name().as_str());
                // Its origins are its own, apart from the site's (their health, counters
                // and connections), even at the same address.
                let pools = make.pools(&name, &format!("{name}\u{0}{route}"), &r.pools)?;
                routes.push((r.path_prefix.get_ref().clone(), route, pools));
            }
            let prev = previous_site(s, previous);
            let load: Arc<crate::shield::SiteLoad> = prev.map_or_else(Default::default, |x| x.load.clone());
            load.set_cap(file.shield.admission.max_in_flight);
            let shared = Shared {
                name,
                cfg: s,
                cache: site_cache(s, previous),
                load,
                tally: prev.map_or_else(Default::default, |x| x.tally.clone()),
                seed: 0x9E37_79B9_7F4A_7C15u64 ^ (sites.len() as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
            };
            let site_dcs: Vec<Arc<str>> = pools.iter().map(|p| p.datacenter.clone()).collect();
            let mut rts: Vec<(String, Arc<SiteRt>)> = Vec::with_capacity(routes.len());
            let mut offset = pools.len();
            for (prefix, route, pools) in routes {
                // A route's request counts, for the incident engine, under the site's pool
                // in the same data center, else under a slot of its own.
                let tally_pool = pools
                    .iter()
                    .enumerate()
                    .map(|(i, p)| site_dcs.iter().position(|d| *d == p.datacenter).unwrap_or(offset + i))
                    .collect();
                offset += pools.len();
                let rt = shared.runtime(metrics, pools, Some(route), tally_pool, Vec::new());
                rts.push((prefix, Arc::new(rt)));
            }
            let tally_pool = (0..pools.len()).collect();
            sites.push(Arc::new(shared.runtime(metrics, pools, None, tally_pool, rts)));
        }
        let routes =
            Routes::new(sites.iter().enumerate().flat_map(|(i, s)| s.hosts.iter().map(move |h| (h.as_str(), i))));
        let via = if file.proxy.via.is_empty() {
            None
        } else {
            let value = |v: &str| http::HeaderValue::try_from(format!("{v} {}", file.proxy.via));
            match (value("1.1"), value("2"), value("3")) {
                (Ok(a), Ok(b), Ok(c)) => Some([a, b, c]),
                _ => return Err(format!("proxy.via {:?} is not a valid header value", file.proxy.via)),
            }
        };
        for (origin, weight, tls) in settings {
            origin.set_weight(weight);
            origin.set_tls(tls);
        }
        let acme = previous.map_or_else(Default::default, |p| p.acme.clone());
        let cert_expiry: Vec<(String, u64)> =
            tls_sites.iter().filter_map(|s| Some((s.name.clone(), s.file_expiry?))).collect();
        for (site, not_after) in &cert_expiry {
            let label = crate::telemetry::metrics::SiteLabel { site: site.clone() };
            metrics.certificate_expiry.get_or_create(&label).set(*not_after as i64);
        }
        let (tls, quic_tls) = match crate::tls::server_configs(tls_sites, &acme) {
            Some(c) => (Some(c.tcp), c.quic),
            None => (None, None),
        };
        Ok(Snapshot {
            shield: crate::shield::ShieldRt::new(&file.shield, &file.proxy.trusted_proxies),
            tls,
            quic_tls,
            acme,
            cert_expiry,
            file,
            sites,
            routes,
            loaded_at: SystemTime::now(),
            via,
        })
    }

    pub(crate) fn site_for_host(&self, host: &str) -> Option<&Arc<SiteRt>> {
        self.routes.lookup(host).and_then(|i| self.sites.get(i))
    }
}
