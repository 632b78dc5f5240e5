//! Configuration: the TOML schema (this file), loading with precise errors ([`load`]),
//! validation, and the typed values (durations, sizes) that the schema is made of.
//!
//! Every key is documented in `docs/config.md`; keep the two in step.

pub mod acme;
pub mod fleet;
pub mod incidents;
mod load;
pub mod shield;
mod traffic;
mod values;

pub use load::{load_file, parse_origin, parse_str, ConfigError};
pub use traffic::{Coding, Compression, Https, Route, COMPRESSIBLE_TYPES};
pub use values::{ByteSize, Dur};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::Spanned;

/// Most pools (data centers) one site may have.
pub const MAX_POOLS: usize = 16;

/// The whole configuration file, as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    /// `[listen]`: where holdfast accepts connections.
    pub listen: Listen,
    #[serde(default)]
    /// `[timeouts]`: how long each wait may take.
    pub timeouts: Timeouts,
    #[serde(default)]
    /// `[limits]`: sizes and counts a client may not exceed.
    pub limits: Limits,
    #[serde(default)]
    /// `[proxy]`: forwarding fields, trusted proxies, Via.
    pub proxy: Proxy,
    #[serde(default)]
    /// `[log]`: the access log.
    pub log: Log,
    #[serde(default)]
    /// `[shield]`: flood defence.
    pub shield: shield::Shield,
    #[serde(default)]
    /// `[incidents]`: the incident engine, its history and notifications.
    pub incidents: incidents::Incidents,
    #[serde(default)]
    /// `[status]`: the public status page.
    pub status: incidents::StatusPage,
    /// `[fleet]`: points of presence sharing their state through Redis; None: alone.
    #[serde(default)]
    pub fleet: Option<fleet::Fleet>,
    /// `[dns]`: how origins given by DNS name are resolved.
    #[serde(default)]
    pub dns: Dns,
    /// `[acme]`: certificates by ACME for sites with `tls = { acme = true }`.
    #[serde(default)]
    pub acme: Option<acme::Acme>,
    #[serde(default, rename = "datacenter")]
    /// `[[datacenter]]`: the data centers that pools live in.
    pub datacenters: Vec<Datacenter>,
    #[serde(default, rename = "site")]
    /// `[[site]]`: the regional sites, routed by host.
    pub sites: Vec<Site>,
    /// Directory relative paths (certificates) are resolved against: the config file's.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file's name and text, for errors found after loading (a certificate that does
    /// not load) to name their position.
    #[serde(skip)]
    source: Option<std::sync::Arc<(String, String)>>,
}

impl File {
    /// Resolves a path from the config against the config file's directory.
    pub fn path(&self, p: &std::path::Path) -> PathBuf {
        self.base_dir.join(p)
    }

    /// An error about the value `at`, with its position in the file it was loaded from.
    pub fn error_at<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        match &self.source {
            Some(src) => load::Source { name: &src.0, text: &src.1 }.at(at, message),
            None => ConfigError { file: String::new(), line: 0, column: 0, message: message.into() },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[listen]`: the listeners (a reload starts new ones and stops removed ones).
pub struct Listen {
    /// Plain HTTP listeners (HTTP/1.1, and HTTP/2 with prior knowledge).
    #[serde(default)]
    pub http: Vec<Spanned<SocketAddr>>,
    /// TLS listeners (HTTP/2 and HTTP/1.1 by ALPN); certificates come from the sites.
    #[serde(default)]
    pub https: Vec<Spanned<SocketAddr>>,
    /// QUIC listeners (UDP): HTTP/3 with the https listeners' certificates.
    #[serde(default)]
    pub quic: Vec<Spanned<SocketAddr>>,
    /// Admin listener: /metrics, /healthz, /status.json, POST /admin/reload.
    #[serde(default = "default_admin")]
    pub admin: Option<SocketAddr>,
    /// When set, POST endpoints of the admin listener require `Authorization: Bearer TOKEN`.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// The public status page: HTML, the Statuspage-compatible API, the Atom feed.
    #[serde(default)]
    pub status: Option<SocketAddr>,
}

fn default_admin() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            http: Vec::new(),
            https: Vec::new(),
            quic: Vec::new(),
            admin: default_admin(),
            admin_token: None,
            status: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[timeouts]`: every wait holdfast allows, client side and origin side.
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
    /// On shutdown, in-flight requests get this long to finish (tunnels too: then they
    /// are closed).
    pub drain: Dur,
    /// A tunnel (WebSocket, or another protocol an origin agreed to with `101`) that
    /// carries no byte either way for this long is closed. Request timeouts never apply
    /// to a tunnel.
    pub tunnel_idle: Dur,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Dur::secs(2),
            client_header: Dur::secs(10),
            origin_response: Dur::secs(30),
            idle_keepalive: Dur::secs(60),
            origin_idle: Dur::secs(60),
            tls_handshake: Dur::secs(10),
            drain: Dur::secs(30),
            tunnel_idle: Dur::secs(3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[dns]`: origins by DNS name are resolved in the background (A and AAAA), again when
/// their records' TTL runs out, kept within `min_ttl` and `max_ttl`.
pub struct Dns {
    /// Name servers (`ip:port`, UDP then TCP); empty: the system's (`/etc/resolv.conf`,
    /// and `/etc/hosts` first).
    pub servers: Vec<SocketAddr>,
    /// Shortest time between two lookups of a name (a TTL of 0 or 1 is not followed).
    pub min_ttl: Dur,
    /// Longest time a name's addresses are kept without a new lookup.
    pub max_ttl: Dur,
    /// A lookup's time to answer; a failed lookup keeps the last good addresses and is
    /// tried again after `min_ttl`, doubling up to `max_ttl`.
    pub timeout: Dur,
}

impl Default for Dns {
    fn default() -> Self {
        Dns { servers: Vec::new(), min_ttl: Dur::secs(5), max_ttl: Dur::secs(300), timeout: Dur::secs(2) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[limits]`: what one client or connection may send or open.
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
/// `[proxy]`: how requests are forwarded to origins.
pub struct Proxy {
    /// Peers whose Forwarded / X-Forwarded-* headers are kept and appended to; from anyone
    /// else those headers are replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections from trusted proxies begin with a PROXY protocol v2 header that names
    /// the client (connections from other peers are served as they are).
    pub proxy_protocol: bool,
    /// The pseudonym in the Via header; empty disables Via.
    pub via: String,
    /// A request without a W3C `traceparent`: `start` begins a trace (its id is the
    /// request's X-Request-Id), `pass` sends none. One with a valid `traceparent` always
    /// keeps its trace, with holdfast's span as the parent.
    pub traces: Traces,
}

/// `[proxy] traces`: what holdfast does for a request that is not part of a trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Traces {
    /// Begin one (sampled: the shop's tracer records it).
    #[default]
    Start,
    /// Pass what the client sent, and nothing when it sent nothing.
    Pass,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy { trusted_proxies: Vec::new(), proxy_protocol: false, via: "holdfast".into(), traces: Traces::Start }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[log]`: logging of requests.
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
/// `[[datacenter]]`: a data center (a place where origin pools run).
pub struct Datacenter {
    /// Its name, referenced by `[[site.pool]] datacenter`.
    pub name: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[[site]]`: a regional site with its hosts, language, pools and policies.
pub struct Site {
    /// Its name: in metrics, logs, events and the status pages.
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
    /// Passive outlier detection from real traffic.
    #[serde(default)]
    pub outlier: Outlier,
    /// How traffic moves between data centers.
    #[serde(default)]
    pub failover: Failover,
    /// Retries on another origin.
    #[serde(default)]
    pub retry: Retry,
    /// Balancing inside a pool: power of two choices over peak-EWMA latency, or over
    /// outstanding requests.
    #[serde(default)]
    pub balance: Balance,
    /// The shared HTTP cache of the site.
    #[serde(default)]
    pub cache: Cache,
    /// `[site.errors]`: what becomes of the origins' own error responses.
    #[serde(default)]
    pub errors: Errors,
    /// Origin pools in failover order.
    #[serde(default, rename = "pool")]
    pub pools: Vec<Pool>,
    /// `[[site.route]]`: path prefixes served by pools of their own.
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// `[site.compression]`: content coding of responses.
    #[serde(default)]
    pub compression: Compression,
    /// `[site.https]`: redirects to https and HSTS.
    #[serde(default)]
    pub https: Https,
}

/// `[site.errors]`: the origins' own error responses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Errors {
    /// An origin's 502, 503 or 504 (with no stale copy to answer instead) becomes the
    /// site's own page in its language; false: it passes through as the origin wrote it,
    /// and is cached or not as its headers say (nginx without `proxy_intercept_errors`).
    pub replace_origin_errors: bool,
}

impl Default for Errors {
    fn default() -> Self {
        Errors { replace_origin_errors: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[site.cache]`: the site's shared HTTP cache (RFC 9111).
pub struct Cache {
    /// Store what the origin's headers allow (RFC 9111, shared cache).
    pub enabled: bool,
    /// Bytes stored for the site at most (least recently used go first).
    pub max_bytes: ByteSize,
    /// Larger responses pass through without being stored.
    pub max_object_bytes: ByteSize,
    /// When every origin fails, serve a stored response this stale even if the origin
    /// sent no stale-if-error (never for must-revalidate, proxy-revalidate, no-cache,
    /// s-maxage).
    pub serve_stale_on_error: Dur,
    /// Answer a stored response up to this stale at once while one request revalidates it
    /// in the background, even if the origin sent no stale-while-revalidate (as nginx's
    /// `proxy_cache_use_stale updating` with `proxy_cache_background_update`); 0: only as
    /// the origin allows.
    pub stale_while_revalidate: Dur,
    /// Query parameters left out of the cache key (and of what the shield counts as a
    /// page of its own): marketing and click tags that name no different page. An entry
    /// ending in `*` names every parameter it begins. The origin still gets them on a miss.
    pub ignore_params: Vec<String>,
}

/// Tracking parameters of newsletters, ads and social links: they never name a page.
pub const TRACKING_PARAMS: [&str; 12] =
    ["utm_*", "gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl"];

impl Default for Cache {
    fn default() -> Self {
        Cache {
            enabled: true,
            max_bytes: ByteSize(64 * 1024 * 1024),
            max_object_bytes: ByteSize(1024 * 1024),
            serve_stale_on_error: Dur::secs(6 * 3600),
            stale_while_revalidate: Dur::secs(0),
            ignore_params: TRACKING_PARAMS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// `[site] balance`: how a pool chooses an origin (power of two choices).
pub enum Balance {
    #[default]
    /// By peak-EWMA latency times outstanding requests, over weight.
    PeakEwma,
    /// By outstanding requests over weight.
    LeastRequest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[site.outlier]`: passive outlier detection (ejection) from real traffic.
pub struct Outlier {
    /// Consecutive connect errors, timeouts or resets that eject an origin (0: never).
    pub consecutive_errors: u32,
    /// Consecutive 5xx responses that eject an origin (0: 5xx never ejects).
    pub consecutive_5xx: u32,
    /// First ejection time; each further ejection in a row doubles it.
    pub base_ejection: Dur,
    /// Longest ejection, however many in a row.
    pub max_ejection: Dur,
    /// At most this share of a pool's origins (percent) is ejected at once.
    pub max_ejected_percent: u32,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_errors: 3,
            consecutive_5xx: 5,
            base_ejection: Dur::secs(5),
            max_ejection: Dur::secs(300),
            max_ejected_percent: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// `[site.failover] mode`: how a failing data center hands its traffic on.
pub enum FailoverMode {
    /// A data center below `min_healthy_share` hands all its traffic to the next one.
    #[default]
    AllAtOnce,
    /// A data center keeps traffic in proportion to its healthy share; the rest spills over.
    Proportional,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[site.failover]`: failover between data centers and failback with slow start.
pub struct Failover {
    /// All at once, or in proportion to the healthy share.
    pub mode: FailoverMode,
    /// A pool whose share of available origins is below this hands its traffic on.
    pub min_healthy_share: f64,
    /// When a preferred data center comes back, its share of traffic ramps up over this time.
    pub slow_start: Dur,
}

impl Default for Failover {
    fn default() -> Self {
        Failover { mode: FailoverMode::AllAtOnce, min_healthy_share: 0.5, slow_start: Dur::secs(10) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[site.retry]`: sending a request again to another origin.
pub struct Retry {
    /// Tries in all (1: no retries).
    pub attempts: u32,
    /// Retry idempotent requests answered 502, 503 or 504.
    pub on_5xx: bool,
    /// A retryable request's try is abandoned (and retried elsewhere) after this.
    pub per_try_timeout: Dur,
    /// Retries allowed as a share of requests (over 10 s) ...
    pub budget_ratio: f64,
    /// ... but at least this many per second.
    pub budget_min_per_second: u32,
    /// Request bodies up to this size are buffered so that they can be sent again.
    pub buffer_body_bytes: ByteSize,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            on_5xx: true,
            per_try_timeout: Dur::secs(3),
            budget_ratio: 0.2,
            budget_min_per_second: 10,
            buffer_body_bytes: ByteSize(64 * 1024),
        }
    }
}

fn default_language() -> String {
    "en".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[site.tls]`: the site's certificate on the https listeners: files, or by ACME, or both
/// (the files serve until the ACME certificate is issued).
pub struct SiteTls {
    /// PEM certificate chain.
    pub cert: Option<Spanned<PathBuf>>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<Spanned<PathBuf>>,
    /// A certificate for the site's exact hosts by ACME (`[acme]`), renewed before expiry.
    #[serde(default)]
    pub acme: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[site.health]`: active health checks of the site's origins.
pub struct Health {
    /// Checks run when true.
    pub enabled: bool,
    /// The path requested (a GET on a fresh connection).
    pub path: String,
    /// Time between checks of one origin (with ±10% jitter).
    pub interval: Dur,
    /// A check that takes longer has failed.
    pub timeout: Dur,
    /// Lowest and highest status that counts as healthy.
    pub expect_status: [u16; 2],
    /// Failed checks in a row that mark an origin down.
    pub unhealthy_after: u32,
    /// Passed checks in a row that mark it up again.
    pub healthy_after: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            enabled: true,
            path: "/healthz".into(),
            interval: Dur::secs(1),
            timeout: Dur::millis(500),
            expect_status: [200, 399],
            unhealthy_after: 2,
            healthy_after: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[[site.pool]]`: the site's origins in one data center, in failover order.
pub struct Pool {
    /// Name of a `[[datacenter]]`.
    pub datacenter: Spanned<String>,
    /// Origins as `"host:port"` (an IP address or a DNS name, and a port), or
    /// `{ address = "host:port", weight = 2 }`.
    pub origins: Vec<Spanned<OriginSpec>>,
    /// `[site.pool.tls]`: the origins speak TLS (None: plain HTTP/1.1).
    #[serde(default)]
    pub tls: Option<PoolTls>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[site.pool.tls]`: TLS to the pool's origins, verified by default.
pub struct PoolTls {
    /// The name sent as SNI and verified in the origin's certificate; default: the origin's
    /// host (its DNS name, or its IP address, verified against the certificate's IP SANs).
    #[serde(default)]
    pub server_name: Option<Spanned<String>>,
    /// PEM file of the roots the origins' certificates must chain to; default: the system's.
    #[serde(default)]
    pub ca: Option<Spanned<PathBuf>>,
    /// PEM certificate chain shown to origins that ask for one (mTLS), with `client_key`.
    #[serde(default)]
    pub client_cert: Option<Spanned<PathBuf>>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<Spanned<PathBuf>>,
    /// false accepts any certificate (test beds only: loudly warned at load and in
    /// /status.json).
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
}

/// An origin address with its balancing weight (1 to 1000, default 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginSpec {
    /// `host:port` of the origin.
    pub address: String,
    /// Its share of the pool's traffic relative to the others (1 to 1000).
    pub weight: u32,
}

impl<'de> Deserialize<'de> for OriginSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OriginSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an origin: \"host:port\" or { address = \"host:port\", weight = N }")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<OriginSpec, E> {
                Ok(OriginSpec { address: s.to_string(), weight: 1 })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OriginSpec, A::Error> {
                let (mut address, mut weight) = (None, 1u32);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "address" => address = Some(map.next_value::<String>()?),
                        "weight" => weight = map.next_value::<u32>()?,
                        other => return Err(serde::de::Error::unknown_field(other, &["address", "weight"])),
                    }
                }
                let address = address.ok_or_else(|| serde::de::Error::missing_field("address"))?;
                Ok(OriginSpec { address, weight })
            }
        }
        d.deserialize_any(V)
    }
}
