//! Configuration: the TOML schema (this file), loading with precise errors ([`load`]),
//! validation, and the typed values (durations, sizes) that the schema is made of.
//!
//! Every key is documented in `docs/config.md`; keep the two in step.

mod load;
mod values;

pub use load::{load_file, parse_origin, parse_str, ConfigError};
pub use values::{ByteSize, Dur};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::Spanned;

/// The whole configuration file, as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub proxy: Proxy,
    #[serde(default)]
    pub log: Log,
    #[serde(default, rename = "datacenter")]
    pub datacenters: Vec<Datacenter>,
    #[serde(default, rename = "site")]
    pub sites: Vec<Site>,
    /// Directory relative paths (certificates) are resolved against: the config file's.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl File {
    /// Resolves a path from the config against the config file's directory.
    pub fn path(&self, p: &std::path::Path) -> PathBuf {
        self.base_dir.join(p)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Plain HTTP listeners (HTTP/1.1, and HTTP/2 with prior knowledge).
    #[serde(default)]
    pub http: Vec<Spanned<SocketAddr>>,
    /// TLS listeners (HTTP/2 and HTTP/1.1 by ALPN); certificates come from the sites.
    #[serde(default)]
    pub https: Vec<Spanned<SocketAddr>>,
    /// Admin listener: /metrics, /healthz, /status.json, POST /admin/reload.
    #[serde(default = "default_admin")]
    pub admin: Option<SocketAddr>,
    /// When set, POST endpoints of the admin listener require `Authorization: Bearer TOKEN`.
    #[serde(default)]
    pub admin_token: Option<String>,
}

fn default_admin() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
}

impl Default for Listen {
    fn default() -> Self {
        Listen { http: Vec::new(), https: Vec::new(), admin: default_admin(), admin_token: None }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP connect to an origin.
    pub connect: Dur,
    /// A client must send a whole request head within this time (also bounds the wait for
    /// the first request on a new connection).
    pub client_header: Dur,
    /// From sending a request to an origin until its response headers arrive.
    pub origin_response: Dur,
    /// A client connection with no request in flight is closed after this long.
    pub idle_keepalive: Dur,
    /// Idle pooled connections to origins are closed after this long.
    pub origin_idle: Dur,
    /// TLS handshake with a client.
    pub tls_handshake: Dur,
    /// On shutdown, in-flight requests get this long to finish.
    pub drain: Dur,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Dur::secs(2),
            client_header: Dur::secs(10),
            origin_response: Dur::secs(30),
            idle_keepalive: Dur::secs(60),
            origin_idle: Dur::secs(90),
            tls_handshake: Dur::secs(10),
            drain: Dur::secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request head (request line and headers) accepted; larger gets 431.
    pub max_header_bytes: ByteSize,
    /// Most header fields in one request; more gets 431.
    pub max_headers: usize,
    /// Largest request body; larger gets 413. 0 means no limit.
    pub max_body_bytes: ByteSize,
    /// Most client connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per client connection.
    pub max_h2_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: ByteSize(32 * 1024),
            max_headers: 100,
            max_body_bytes: ByteSize(64 * 1024 * 1024),
            max_connections: 100_000,
            max_h2_streams: 128,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy {
    /// Peers whose Forwarded / X-Forwarded-* headers are kept and appended to; from anyone
    /// else those headers are replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The pseudonym in the Via header; empty disables Via.
    pub via: String,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy { trusted_proxies: Vec::new(), via: "holdfast".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// One access-log line per request (target `access`).
    pub access: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log { access: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datacenter {
    pub name: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: Spanned<String>,
    /// Host names: exact (`shop.de`) or wildcard (`*.shop.de`, any depth of subdomain).
    pub hosts: Vec<Spanned<String>>,
    /// Language of the site's own pages (maintenance, errors): de, en, fr, it; others use en.
    #[serde(default = "default_language")]
    pub language: String,
    /// Certificate for this site's host names on the https listeners.
    #[serde(default)]
    pub tls: Option<SiteTls>,
    /// Active health checks of the site's origins.
    #[serde(default)]
    pub health: Health,
    /// Origin pools in failover order.
    #[serde(default, rename = "pool")]
    pub pools: Vec<Pool>,
}

fn default_language() -> String {
    "en".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTls {
    /// PEM certificate chain.
    pub cert: Spanned<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    pub path: String,
    pub interval: Dur,
    pub timeout: Dur,
}

impl Default for Health {
    fn default() -> Self {
        Health { path: "/healthz".into(), interval: Dur::secs(1), timeout: Dur::millis(500) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Name of a `[[datacenter]]`.
    pub datacenter: Spanned<String>,
    /// Origins as `host:port` (an IP address or a DNS name, and a port).
    pub origins: Vec<Spanned<String>>,
}
