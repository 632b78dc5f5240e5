//! Origins by DNS name, resolved in the background ([`Dns`]): every name among the
//! configured origins is looked up (A and AAAA, with hickory-resolver: `getaddrinfo` gives
//! no TTL) before a config is first served, then again when its records' TTL runs out,
//! kept within `[dns] min_ttl` and `max_ttl`. Each address becomes an origin of its pool
//! (`Snapshot::build`); a changed answer rebuilds the snapshot as a reload does, so origins
//! whose address stayed keep their health, counters and connections. A failed lookup keeps
//! the last good addresses, is an event, and is tried again after `min_ttl`, doubling up to
//! `max_ttl`. The request path never waits for DNS: it connects to addresses.

use crate::config::{self, File};
use crate::telemetry::{Event, Telemetry};
use hickory_resolver::config::{LookupIpStrategy, NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The last good addresses of each name (sorted, without duplicates).
pub(crate) type Addresses = BTreeMap<String, Vec<IpAddr>>;

/// The names, their addresses and when each is looked up again.
pub(crate) struct Dns {
    resolver: Mutex<(config::Dns, TokioResolver)>,
    table: Mutex<BTreeMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// The last good answer (empty: none yet).
    addrs: Vec<IpAddr>,
    due: Instant,
    /// Lookups failed in a row.
    failures: u32,
}

/// The DNS names (not IP addresses) among a config's origins.
pub(crate) fn names(file: &File) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for site in &file.sites {
        for pool in site.pools.iter().chain(site.routes.iter().flat_map(|r| &r.pools)) {
            for o in &pool.origins {
                if let Ok(auth) = config::parse_origin(&o.get_ref().address) {
                    if host_ip(auth.host()).is_none() {
                        out.insert(auth.host().to_ascii_lowercase());
                    }
                }
            }
        }
    }
    out
}

/// The host as an IP address, if it is one (`[::1]` too).
pub(crate) fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn resolver(cfg: &config::Dns) -> TokioResolver {
    let provider = TokioConnectionProvider::default();
    let builder = if cfg.servers.is_empty() {
        match TokioResolver::builder_tokio() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the system's DNS configuration; using 127.0.0.1:53");
                let ips = [IpAddr::from([127, 0, 0, 1])];
                let servers = NameServerConfigGroup::from_ips_clear(&ips, 53, true);
                TokioResolver::builder_with_config(ResolverConfig::from_parts(None, vec![], servers), provider)
            }
        }
    } else {
        let mut servers = NameServerConfigGroup::new();
        for s in &cfg.servers {
            let one = NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true);
            servers.merge(one);
        }
        TokioResolver::builder_with_config(ResolverConfig::from_parts(None, vec![], servers), provider)
    };
    let mut opts = ResolverOpts::default();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = cfg.timeout.get();
    opts.attempts = 1;
    opts.positive_max_ttl = Some(cfg.max_ttl.get());
    opts.negative_max_ttl = Some(cfg.min_ttl.get());
    builder.with_options(opts).build()
}

impl Dns {
    pub(crate) fn new(cfg: &config::Dns) -> Dns {
        Dns { resolver: Mutex::new((cfg.clone(), resolver(cfg))), table: Mutex::new(BTreeMap::new()) }
    }

    /// Takes a reloaded `[dns]`: a new resolver when it changed.
    pub(crate) fn configure(&self, cfg: &config::Dns) {
        if let Ok(mut r) = self.resolver.lock() {
            if r.0 != *cfg {
                *r = (cfg.clone(), resolver(cfg));
            }
        }
    }

    fn current(&self) -> Option<(config::Dns, TokioResolver)> {
        self.resolver.lock().ok().map(|r| (r.0.clone(), r.1.clone()))
    }

    /// The last good addresses of every name.
    pub(crate) fn addresses(&self) -> Addresses {
        let table = self.table.lock();
        table.map(|t| t.iter().map(|(n, e)| (n.clone(), e.addrs.clone())).collect()).unwrap_or_default()
    }

    /// When the next name is due for a lookup.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.table.lock().ok()?.values().map(|e| e.due).min()
    }

    /// Looks up the names in `wanted` that have no entry yet, forgets names no longer
    /// wanted (before a config is served: start, reload).
    pub(crate) async fn resolve_new(&self, wanted: &BTreeSet<String>, telemetry: &Telemetry) {
        let new: Vec<String> = match self.table.lock() {
            Ok(mut t) => {
                t.retain(|n, _| wanted.contains(n));
                wanted.iter().filter(|n| !t.contains_key(*n)).cloned().collect()
            }
            Err(_) => return,
        };
        self.look_up(new, telemetry).await;
    }

    /// Looks up the names whose time has come; whether any name's addresses changed.
    pub(crate) async fn refresh_due(&self, telemetry: &Telemetry) -> bool {
        let now = Instant::now();
        let due: Vec<String> = match self.table.lock() {
            Ok(t) => t.iter().filter(|(_, e)| e.due <= now).map(|(n, _)| n.clone()).collect(),
            Err(_) => return false,
        };
        self.look_up(due, telemetry).await
    }

    /// Looks the names up at once; whether any name's addresses changed.
    async fn look_up(&self, names: Vec<String>, telemetry: &Telemetry) -> bool {
        if names.is_empty() {
            return false;
        }
        let Some((cfg, resolver)) = self.current() else { return false };
        let lookups = names.iter().map(|n| {
            let (resolver, name) = (resolver.clone(), n.clone());
            tokio::spawn(async move { (name.clone(), resolver.lookup_ip(format!("{name}.")).await) })
        });
        let mut results = Vec::with_capacity(names.len());
        for l in lookups.collect::<Vec<_>>() {
            if let Ok(r) = l.await {
                results.push(r);
            }
        }
        let (min, max) = (cfg.min_ttl.get(), cfg.max_ttl.get().max(cfg.min_ttl.get()));
        let now = Instant::now();
        let mut changed = false;
        let Ok(mut table) = self.table.lock() else { return false };
        for (name, result) in results {
            let entry = table.entry(name.clone()).or_insert_with(|| Entry { addrs: Vec::new(), due: now, failures: 0 });
            let found = result.map(|l| {
                let mut addrs: Vec<IpAddr> = l.iter().collect();
                addrs.sort();
                addrs.dedup();
                let ttl = l.valid_until().saturating_duration_since(std::time::Instant::now());
                (addrs, ttl)
            });
            match found {
                Ok((addrs, ttl)) if !addrs.is_empty() => {
                    entry.failures = 0;
                    entry.due = now + ttl.clamp(min, max);
                    if addrs != entry.addrs {
                        let was = std::mem::replace(&mut entry.addrs, addrs);
                        changed = true;
                        let list = |a: &[IpAddr]| a.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ");
                        let reason = format!("{name}: {} (was: {})", list(&entry.addrs), list(&was));
                        tracing::info!(%name, addresses = %list(&entry.addrs), "DNS: origin addresses");
                        telemetry.event(Event::dns("dns_changed", reason));
                    }
                }
                found => {
                    let why = match found {
                        Err(e) => e.to_string(),
                        Ok(_) => "no A or AAAA record".into(),
                    };
                    entry.failures += 1;
                    let backoff = min.saturating_mul(1 << entry.failures.min(16).saturating_sub(1)).min(max);
                    entry.due = now + backoff.max(Duration::from_millis(10));
                    let kept = if entry.addrs.is_empty() {
                        "no addresses yet".to_string()
                    } else {
                        format!("keeping its last {} address(es)", entry.addrs.len())
                    };
                    tracing::warn!(%name, error = %why, "DNS lookup failed; {kept}");
                    telemetry.event(Event::dns("dns_failed", format!("{name}: {why}; {kept}")));
                }
            }
        }
        changed
    }
}
