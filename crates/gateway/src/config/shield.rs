//! The `[shield]` section: flood defence. On by default with safe defaults; each part can be
//! tuned or turned off. Documented key by key in docs/config.md.

use super::{ByteSize, Dur};
use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// `[shield]`: flood defence on the request path.
pub struct Shield {
    /// The whole shield; false turns every part off.
    pub enabled: bool,
    /// `enforce` acts; `dry-run` decides and counts everything but blocks, limits,
    /// challenges and sheds nothing.
    pub mode: ShieldMode,
    /// Client addresses are grouped into prefixes of these lengths (an ISP's customer
    /// block, a household's IPv6 /64).
    #[serde(deserialize_with = "ipv4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(deserialize_with = "ipv6_prefix")]
    /// The IPv6 prefix length clients are grouped by.
    pub ipv6_prefix: u8,
    /// Addresses and prefixes never blocked, limited or challenged, and admitted first when
    /// origins are saturated (monitoring, search engine crawlers, partners).
    pub allow: Vec<IpNet>,
    /// Addresses and prefixes whose connections are closed on accept.
    pub block: Vec<IpNet>,
    /// Per-address state (rate limits, connection counts) is kept for at most this many
    /// addresses; beyond it new addresses are only limited by their prefix.
    pub max_addresses: usize,
    /// Per-prefix state (limits, flood signatures) is kept for at most this many prefixes.
    pub max_prefixes: usize,
    /// State of an address or prefix that sent nothing for this long is dropped.
    pub idle: Dur,
    /// `[shield.connections]`: connection caps and slow-client defence.
    pub connections: Connections,
    /// `[shield.rate]`: GCRA rate limits.
    pub rate: Rate,
    /// `[shield.signatures]`: flood signatures and flood detection.
    pub signatures: Signatures,
    /// `[shield.admission]`: adaptive admission by priority.
    pub admission: Admission,
    /// `[shield.challenge]`: the proof-of-work challenge and signed cookies.
    pub challenge: Challenge,
    /// `[shield.visitors]`: limits per visitor (the signed visitor cookie), so that
    /// shoppers behind one shared address (carrier NAT) are not limited as one client.
    pub visitors: Visitors,
}

impl Default for Shield {
    fn default() -> Self {
        Shield {
            enabled: true,
            mode: ShieldMode::Enforce,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            allow: Vec::new(),
            block: Vec::new(),
            max_addresses: 2_000_000,
            max_prefixes: 65_536,
            idle: Dur::secs(60),
            connections: Connections::default(),
            rate: Rate::default(),
            signatures: Signatures::default(),
            admission: Admission::default(),
            challenge: Challenge::default(),
            visitors: Visitors::default(),
        }
    }
}

/// `[shield.visitors]`: a request with a valid visitor cookie bound to its prefix is
/// counted against the visitor's own limit, and its address's limit for visitors grows
/// with the visitors proven behind it (docs/shield.md, "Shared addresses").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Visitors {
    /// Off: every request counts against its address, cookie or not.
    pub enabled: bool,
    /// One visitor's own limit (a person: a page and its assets, then reading).
    pub per_visitor: Limit,
    /// Visitors counted behind one address at most: its limit for visitors' requests is
    /// `per_visitor` times the visitors seen there (never below `rate.per_address`).
    pub max_per_address: u32,
    /// New visitor cookies one address is given, per second with a burst.
    pub new_per_address: Limit,
    /// A cookie presented from this many prefixes other than its own within a signature
    /// window (1 to 4) is a bot's (shared or farmed): its holder is limited as an address
    /// and never admitted first.
    #[serde(deserialize_with = "foreign_prefixes")]
    pub max_prefixes: u8,
}

impl Default for Visitors {
    fn default() -> Self {
        Visitors {
            enabled: true,
            per_visitor: Limit { rate: 10.0, burst: 100 },
            max_per_address: 256,
            new_per_address: Limit { rate: 5.0, burst: 200 },
            max_prefixes: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// `[shield] mode`: whether the shield acts or only counts.
pub enum ShieldMode {
    #[default]
    /// Block, limit, challenge and shed.
    Enforce,
    /// Decide and count everything, act on nothing.
    DryRun,
}

/// Defence before any byte is parsed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Concurrent connections from one address (0: no cap).
    pub per_address: u32,
    /// Concurrent connections from one prefix (0: no cap).
    pub per_prefix: u32,
    /// New connections per second from one address, with a burst (rate 0: no limit).
    pub new_per_second: Limit,
    /// A request body must arrive at least this fast on average (bytes per second), after
    /// `upload_grace`; slower uploads (slow POST) are cut off with 408. 0 disables.
    pub min_upload_rate: ByteSize,
    /// Time an upload has before `min_upload_rate` applies.
    pub upload_grace: Dur,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            per_address: 256,
            per_prefix: 4096,
            new_per_second: Limit { rate: 100.0, burst: 200 },
            min_upload_rate: ByteSize(1024),
            upload_grace: Dur::secs(5),
        }
    }
}

/// A GCRA limit: `rate` per second sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawLimit")]
pub struct Limit {
    /// Requests per second allowed on average.
    pub rate: f64,
    /// Requests allowed at once above the average.
    pub burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    rate: f64,
    burst: u32,
}

impl TryFrom<RawLimit> for Limit {
    type Error = String;
    fn try_from(r: RawLimit) -> Result<Limit, String> {
        if !r.rate.is_finite() || r.rate < 0.0 || r.rate > 1e6 {
            return Err(format!("rate {} out of range: expected requests per second from 0 (off) to 1000000", r.rate));
        }
        if r.rate > 0.0 && r.burst == 0 {
            return Err("burst 0: expected at least 1 (requests allowed at once)".into());
        }
        Ok(Limit { rate: r.rate, burst: r.burst })
    }
}

fn bounded<'de, D: serde::Deserializer<'de>>(d: D, max: u8, what: &str) -> Result<u8, D::Error> {
    let v = u8::deserialize(d)?;
    if v > max {
        return Err(serde::de::Error::custom(format!("{v} out of range: expected {what} from 0 to {max}")));
    }
    Ok(v)
}

fn ipv4_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    bounded(d, 32, "an IPv4 prefix length")
}

fn ipv6_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    bounded(d, 128, "an IPv6 prefix length")
}

fn foreign_prefixes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    match u8::deserialize(d)? {
        v @ 1..=4 => Ok(v),
        v => Err(serde::de::Error::custom(format!("{v} out of range: expected a number of prefixes from 1 to 4"))),
    }
}

fn difficulty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    bounded(d, 32, "leading zero bits")
}

fn share<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(serde::de::Error::custom(format!("{v} out of range: expected a share from 0.0 to 1.0")));
    }
    Ok(v)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// What happens to a request over a rate limit.
pub enum RateAction {
    /// 429 Too Many Requests with Retry-After.
    #[default]
    Reject,
    /// The proof-of-work interstitial (GET and HEAD; others are rejected).
    Challenge,
    /// Close the connection without an answer.
    Close,
}

/// Request rate limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rate {
    /// Requests per second from one address (rate 0: no limit).
    pub per_address: Limit,
    /// Requests per second from one prefix (rate 0: no limit).
    pub per_prefix: Limit,
    /// What happens to a request over a limit.
    pub action: RateAction,
    /// Tighter limits for classes of paths (search, login), per address.
    #[serde(rename = "class")]
    pub classes: Vec<RateClass>,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            per_address: Limit { rate: 50.0, burst: 200 },
            per_prefix: Limit { rate: 2000.0, burst: 4000 },
            action: RateAction::Reject,
            classes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[[shield.rate.class]]`: a rate limit for some paths (and sites).
pub struct RateClass {
    /// Its name, in metrics and logs.
    pub name: String,
    /// Path prefixes, matched at segment boundaries (`/search` matches `/search?q=x` and
    /// `/search/x`, not `/searching`).
    pub paths: Vec<String>,
    /// Sites it applies to (by name); empty: all.
    #[serde(default)]
    pub sites: Vec<String>,
    /// The limit per client address on these paths.
    pub per_address: Limit,
    #[serde(default)]
    /// What happens over it (default: `[shield.rate] action`).
    pub action: Option<RateAction>,
}

/// Flood signatures: what requests look like and how they arrive, per prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signatures {
    /// Judge flood signatures at all.
    pub enabled: bool,
    /// Only report (metrics, status, log) prefixes that match; block none.
    pub dry_run: bool,
    /// A prefix is judged over windows of this length ...
    pub window: Dur,
    /// ... once it sent at least this many requests in one.
    pub min_requests: u32,
    /// Score (0 to 1) at or above which a prefix is a flood source.
    #[serde(deserialize_with = "share")]
    pub threshold: f64,
    /// How long a flood source stays blocked.
    pub block_for: Dur,
    /// Suspicious requests per second (all clients together) that mean a flood: the shield
    /// then blocks matching prefixes and challenges suspicious requests.
    pub flood_rate: u32,
    /// A flood is over after this long below half of `flood_rate`.
    pub calm_after: Dur,
}

impl Default for Signatures {
    fn default() -> Self {
        Signatures {
            enabled: true,
            dry_run: false,
            window: Dur::secs(10),
            min_requests: 8,
            threshold: 0.6,
            block_for: Dur::secs(600),
            flood_rate: 100,
            calm_after: Dur::secs(30),
        }
    }
}

/// Adaptive admission: when origins (or holdfast itself) are saturated, admit by priority.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admission {
    /// Shed and queue by priority at all.
    pub enabled: bool,
    /// Requests to these paths are admitted first (segment-boundary prefixes).
    pub priority_paths: Vec<String>,
    /// Origins answering slower than this (moving average, to response headers) are saturated.
    pub origin_latency: Dur,
    /// Origins answering more than this share of requests with 503 or 429 are saturated.
    #[serde(deserialize_with = "share")]
    pub origin_error_ratio: f64,
    /// holdfast itself is saturated when its event loop lags more than this.
    pub max_loop_lag: Dur,
    /// Over the adaptive limit on requests at the origins, critical requests wait this long
    /// for a slot, known clients a third of it, the rest not at all.
    pub queue_timeout: Dur,
    /// Most requests at a site's origins at once, whatever the adaptive limit says (0: no
    /// cap); more wait in the queue, as behind HAProxy's `maxconn`.
    pub max_in_flight: u32,
    /// Retry-After sent with shed requests.
    pub retry_after: Dur,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            enabled: true,
            priority_paths: vec!["/checkout".into(), "/payment".into()],
            origin_latency: Dur::millis(500),
            origin_error_ratio: 0.2,
            max_loop_lag: Dur::millis(200),
            queue_timeout: Dur::secs(10),
            max_in_flight: 0,
            retry_after: Dur::secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
/// `[shield.challenge] mode`: when the proof-of-work challenge is shown.
pub enum ChallengeMode {
    /// Never challenge.
    Off,
    /// Challenge suspicious requests during a flood, and where a rate action says so.
    #[default]
    Auto,
    /// Challenge every client without a clearance ("under attack" mode).
    On,
}

/// The JavaScript proof-of-work interstitial and the signed cookies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Challenge {
    /// Off, auto (during floods and where a rate action says so), or on (everyone).
    pub mode: ChallengeMode,
    /// Leading zero bits of SHA-256 the client must find (about 2^bits hashes) ...
    #[serde(deserialize_with = "difficulty")]
    pub difficulty: u8,
    /// ... up to this many while a flood grows.
    #[serde(deserialize_with = "difficulty")]
    pub max_difficulty: u8,
    /// How long a clearance cookie is valid (bound to the client's prefix).
    pub clearance_ttl: Dur,
    /// Paths never challenged (segment-boundary prefixes), e.g. APIs.
    pub exempt_paths: Vec<String>,
    /// HMAC key for challenge tokens and cookies; empty: a random key per process. Set the
    /// same key on every instance of a fleet.
    pub secret: String,
    /// Give every client a signed visitor cookie; holders from before a surge are admitted
    /// first when origins are saturated.
    pub visitor_cookie: bool,
}

impl Default for Challenge {
    fn default() -> Self {
        Challenge {
            mode: ChallengeMode::Auto,
            difficulty: 14,
            max_difficulty: 20,
            clearance_ttl: Dur::secs(3600),
            exempt_paths: vec!["/.well-known/".into()],
            secret: String::new(),
            visitor_cookie: true,
        }
    }
}
