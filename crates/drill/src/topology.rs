//! The sites and data centers of a gateway config, and the simulated shops the drill runs in
//! their place: one per origin address, on a fresh loopback port, each with its own fault
//! switch. The drill reads the config as plain TOML; it does not link the gateway.

use anyhow::{bail, Context};
use holdfast_shop::{Fault, Shop, ShopConfig};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) struct SiteTopo {
    pub(crate) name: String,
    /// The first exact host name (the one shoppers use).
    pub(crate) host: String,
    pub(crate) language: String,
    /// Data centers in failover order, each with its origin addresses.
    pub(crate) pools: Vec<(String, Vec<String>)>,
}

/// Reads the sites from a gateway config.
pub(crate) fn sites(config: &toml::Table) -> anyhow::Result<Vec<SiteTopo>> {
    let mut out = Vec::new();
    let sites = config.get("site").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    for s in sites {
        let name = s.get("name").and_then(|v| v.as_str()).context("a [[site]] without name")?.to_string();
        let host = s
            .get("hosts")
            .and_then(|v| v.as_array())
            .and_then(|hs| hs.iter().filter_map(|h| h.as_str()).find(|h| !h.starts_with('*')))
            .with_context(|| format!("site {name}: no exact host name"))?
            .to_string();
        let language = s.get("language").and_then(|v| v.as_str()).unwrap_or("en").to_string();
        let mut pools = Vec::new();
        for p in s.get("pool").and_then(|v| v.as_array()).cloned().unwrap_or_default() {
            let dc = p.get("datacenter").and_then(|v| v.as_str()).context("pool without datacenter")?.to_string();
            let origins: Vec<String> = p
                .get("origins")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|o| o.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            pools.push((dc, origins));
        }
        if pools.is_empty() {
            bail!("site {name} has no pools");
        }
        out.push(SiteTopo { name, host, language, pools });
    }
    if out.is_empty() {
        bail!("the config has no [[site]]");
    }
    Ok(out)
}

/// One running simulated origin.
pub(crate) struct Origin {
    pub(crate) site: String,
    pub(crate) datacenter: String,
    pub(crate) addr: SocketAddr,
    pub(crate) shop: Arc<Shop>,
}

/// The drill's origins: a shop for every (site, data center, origin) of the config.
pub(crate) struct Origins {
    pub(crate) list: Vec<Origin>,
    /// Their TLS, when the scenario has them speak it.
    tls: Option<OriginPki>,
}

/// The name every drill origin's certificate is for (and holdfast verifies).
const ORIGIN_NAME: &str = "origin.drill.test";

/// A private CA (its PEM in the report directory, for holdfast's `ca`), the origins'
/// certificate, and an expired one for the same name.
pub(crate) struct OriginPki {
    ca_file: std::path::PathBuf,
    tls: holdfast_shop::ShopTls,
}

impl OriginPki {
    pub(crate) fn new(dir: &std::path::Path) -> anyhow::Result<OriginPki> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name.push(DnType::CommonName, "holdfast drill CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        std::fs::create_dir_all(dir)?;
        let ca_file = dir.join("origin-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem())?;
        let leaf = |expired: bool| -> anyhow::Result<std::sync::Arc<rustls::ServerConfig>> {
            let mut p = CertificateParams::new(vec![ORIGIN_NAME.to_string()])?;
            if expired {
                // It ran out an hour ago.
                let now = std::time::SystemTime::now();
                p.not_before = (now - std::time::Duration::from_secs(86_400)).into();
                p.not_after = (now - std::time::Duration::from_secs(3_600)).into();
            }
            let key = KeyPair::generate()?;
            let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?;
            let cfg = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], der)?;
            Ok(std::sync::Arc::new(cfg))
        };
        Ok(OriginPki { tls: holdfast_shop::ShopTls { valid: leaf(false)?, expired: leaf(true)? }, ca_file })
    }
}

/// The address range attackers send from (counted at the origins as flood traffic).
pub(crate) const ATTACK_NET: (std::net::Ipv4Addr, u8) = (std::net::Ipv4Addr::new(127, 2, 0, 0), 16);

impl Origins {
    pub(crate) async fn start(
        sites: &[SiteTopo],
        capacity: Option<u32>,
        tls: Option<OriginPki>,
    ) -> anyhow::Result<Origins> {
        let mut list = Vec::new();
        for s in sites {
            for (dc, origins) in &s.pools {
                for _ in origins {
                    let mut cfg = ShopConfig::new(&s.name, &s.language, dc);
                    cfg.capacity = capacity;
                    cfg.tls = tls.as_ref().map(|t| t.tls.clone());
                    let (addr, shop) = holdfast_shop::spawn(cfg, "127.0.0.1:0".parse()?).await?;
                    let _ = shop.stats.flood_sources.set(ATTACK_NET);
                    list.push(Origin { site: s.name.clone(), datacenter: dc.clone(), addr, shop });
                }
            }
        }
        Ok(Origins { list, tls })
    }

    /// Sets a fault on every origin of a data center (`"*"`: all).
    pub(crate) fn set_fault(&self, datacenter: &str, fault: Fault) {
        self.set_fault_of(datacenter, None, None, fault);
    }

    /// Sets a fault on the origins of a data center (`"*"`: all), of one site or all, and
    /// of each site's pool there the first `count` only, or all.
    pub(crate) fn set_fault_of(&self, datacenter: &str, site: Option<&str>, count: Option<u32>, fault: Fault) {
        let mut done: std::collections::HashMap<(&str, &str), u32> = std::collections::HashMap::new();
        for o in self.list.iter().filter(|o| datacenter == "*" || o.datacenter == datacenter) {
            if site.is_some_and(|s| s != o.site) {
                continue;
            }
            let n = done.entry((&o.site, &o.datacenter)).or_default();
            if count.is_some_and(|c| *n >= c) {
                continue;
            }
            *n += 1;
            o.shop.faults.set(fault);
        }
    }

    /// The drill's origin addresses of a site's pool.
    pub(crate) fn addrs(&self, site: &str, datacenter: &str) -> Vec<SocketAddr> {
        self.list.iter().filter(|o| o.site == site && o.datacenter == datacenter).map(|o| o.addr).collect()
    }

    /// Flood requests that reached any origin.
    pub(crate) fn flood_requests(&self) -> u64 {
        self.list.iter().map(|o| o.shop.stats.flood_requests.load(std::sync::atomic::Ordering::Relaxed)).sum()
    }

    /// Orders placed, and idempotency keys that placed more than one order across all
    /// origins (a duplicated order).
    pub(crate) fn orders(&self) -> (u64, u64) {
        let mut by_key: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut placed = 0;
        for o in &self.list {
            let sum = o.shop.orders.summary();
            placed += sum.placed;
            for order in sum.orders {
                if let Some(k) = order.idempotency_key {
                    *by_key.entry(k).or_default() += 1;
                }
            }
        }
        (placed, by_key.values().filter(|n| **n > 1).count() as u64)
    }

    /// The gateway config with the drill's listeners and origins in place of the configured ones.
    pub(crate) fn rewrite_config(&self, config: &toml::Table) -> toml::Table {
        let mut c = config.clone();
        let mut listen = toml::Table::new();
        // Ephemeral ports: the gateway says in its log which it bound.
        listen.insert("http".into(), toml::Value::Array(vec![toml::Value::String("127.0.0.1:0".into())]));
        listen.insert("admin".into(), toml::Value::String("127.0.0.1:0".into()));
        c.insert("listen".into(), toml::Value::Table(listen));
        let mut log = toml::Table::new();
        log.insert("access".into(), toml::Value::Boolean(false));
        c.insert("log".into(), toml::Value::Table(log));
        if let Some(sites) = c.get_mut("site").and_then(|v| v.as_array_mut()) {
            for s in sites {
                let name = s.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                // TLS is not used by the drill's shoppers.
                if let Some(t) = s.as_table_mut() {
                    t.remove("tls");
                }
                if let Some(pools) = s.get_mut("pool").and_then(|v| v.as_array_mut()) {
                    for p in pools {
                        let dc = p.get("datacenter").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                        let addrs = self.addrs(&name, &dc);
                        if let Some(t) = p.as_table_mut() {
                            t.insert(
                                "origins".into(),
                                toml::Value::Array(addrs.iter().map(|a| toml::Value::String(a.to_string())).collect()),
                            );
                            if let Some(pki) = &self.tls {
                                let mut tls = toml::Table::new();
                                tls.insert("server_name".into(), ORIGIN_NAME.into());
                                tls.insert("ca".into(), pki.ca_file.display().to_string().into());
                                t.insert("tls".into(), tls.into());
                            }
                        }
                    }
                }
            }
        }
        c
    }
}
