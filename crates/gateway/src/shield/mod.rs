//! The shield: flood defence on the request path. It owns client identity, the connection
//! defence before parsing ([`Shield::on_accept`]), rate limits, flood signatures, the
//! challenge, and the priorities adaptive admission sheds by ([`Shield::check`]).
//!
//! State that must outlive a config reload (per-client cells, blocks, the flood state, the
//! HMAC key when it is random) lives in [`Shield`], owned by the gateway; what comes from the
//! config is compiled into a [`ShieldRt`] in each snapshot.

pub(crate) mod admission;
pub(crate) mod challenge;
pub(crate) mod cidr;
mod distinct;
mod flood;
pub(crate) mod gcra;
pub(crate) mod identity;
#[cfg(test)]
mod memory;
mod request;
pub(crate) mod shared;
pub(crate) mod signature;
pub(crate) mod slow;
pub(crate) mod table;
pub(crate) mod topk;
mod view;
pub(crate) mod visitors;
pub(crate) mod witness;

pub(crate) use admission::{Priority, SiteLoad};
pub(crate) use flood::{Flood, FloodChange};
pub(crate) use view::ShieldView;

use crate::config::shield::{ChallengeMode, RateAction, Shield as Cfg, ShieldMode};
use crate::telemetry::{Event, Telemetry};
use cidr::CidrSet;
use gcra::{Gcra, Tick};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The shield's part of a config snapshot.
pub(crate) struct ShieldRt {
    pub(crate) cfg: Cfg,
    allow: CidrSet,
    /// The allow list is the default (loopback), which an explicit block overrides.
    default_allow: bool,
    block: CidrSet,
    per_address: Option<Gcra>,
    per_prefix: Option<Gcra>,
    new_conns: Option<Gcra>,
    /// One visitor's limit, and new visitor cookies per address (`[shield.visitors]`).
    per_visitor: Option<Gcra>,
    new_visitors: Option<Gcra>,
    classes: Vec<ClassRt>,
    trusted: Vec<IpNet>,
}

struct ClassRt {
    index: u8,
    name: String,
    paths: Vec<String>,
    sites: Vec<String>,
    gcra: Option<Gcra>,
    action: RateAction,
}

impl ShieldRt {
    pub(crate) fn new(cfg: &Cfg, trusted: &[IpNet]) -> ShieldRt {
        let mut allow: CidrSet = cfg.allow.iter().copied().collect();
        if cfg.allow.is_empty() {
            // The gateway's own host: local checks, a local TLS terminator, a load test.
            for n in ["127.0.0.1/32", "::1/128"] {
                if let Ok(n) = n.parse() {
                    allow.insert(n, ());
                }
            }
        }
        ShieldRt {
            allow,
            default_allow: cfg.allow.is_empty(),
            block: cfg.block.iter().copied().collect(),
            per_address: Gcra::new(cfg.rate.per_address),
            per_prefix: Gcra::new(cfg.rate.per_prefix),
            new_conns: Gcra::new(cfg.connections.new_per_second),
            per_visitor: Gcra::new(cfg.visitors.per_visitor),
            new_visitors: Gcra::new(cfg.visitors.new_per_address),
            classes: cfg
                .rate
                .classes
                .iter()
                .enumerate()
                .map(|(i, c)| ClassRt {
                    index: i as u8,
                    name: c.name.clone(),
                    paths: c.paths.clone(),
                    sites: c.sites.clone(),
                    gcra: Gcra::new(c.per_address),
                    action: c.action.unwrap_or(cfg.rate.action),
                })
                .collect(),
            trusted: trusted.to_vec(),
            cfg: cfg.clone(),
        }
    }

    /// Never blocked, limited, challenged or shed.
    fn exempt(&self, ip: IpAddr) -> bool {
        self.allow.contains(ip) && !(self.default_allow && self.block.contains(ip))
    }

    fn prefix(&self, ip: IpAddr) -> IpNet {
        identity::prefix(ip, self.cfg.ipv4_prefix, self.cfg.ipv6_prefix)
    }

    /// The client of a request from `peer` (trusted proxies' headers believed).
    pub(crate) fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> Client {
        let ip = identity::canonical(identity::client_ip(peer, headers, &self.trusted));
        Client { ip, prefix: self.prefix(ip) }
    }
}

/// `path` is `prefix` or below it (`/checkout` covers `/checkout`, `/checkout/2`,
/// `/checkout?x`, not `/checkoutX`).
pub(crate) fn path_in(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?']),
        None => false,
    }
}

/// Per-address cell: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct AddrCell {
    req_tat: Tick,
    conn_tat: Tick,
    conns: u32,
    last: Tick,
}

/// Per-prefix cell.
#[derive(Debug, Clone, Copy)]
struct PrefixCell {
    conns: u32,
    req_tat: Tick,
    last: Tick,
    /// Seconds since the shield's epoch when first seen.
    first_seen: u32,
    /// Created during a burst of never-seen prefixes.
    new_in_burst: bool,
    window: signature::Window,
    /// The window id a dry-run match was last reported for.
    reported: u32,
}

#[derive(Debug, Clone, Copy)]
struct ClassCell {
    tat: Tick,
    last: Tick,
}

/// A dynamic block.
#[derive(Debug, Clone)]
pub(crate) struct Blocked {
    pub(crate) until: Instant,
    pub(crate) reason: String,
    pub(crate) since: SystemTime,
}

pub(crate) struct Shield {
    epoch: Instant,
    epoch_unix: u64,
    addrs: table::Table<AddrCell>,
    prefixes: table::Table<PrefixCell>,
    classes: table::Table<ClassCell>,
    stems: table::Table<signature::StemCell>,
    /// Visitors (the visitor cookie) and the shared addresses they come from.
    pub(crate) visitors: visitors::Visitors,
    dynamic: RwLock<CidrSet<Blocked>>,
    any_dynamic: AtomicBool,
    pub(crate) top: topk::TopK,
    keys: arc_swap::ArcSwap<(String, challenge::Keys)>,
    pub(crate) flood: Flood,
    /// The sources and traits of requests that look like a flood's, while it lasts.
    pub(crate) witness: witness::Witness,
    /// What this instance shares with its fleet, if it has one.
    pub(crate) shared: shared::Shared,
    /// Slow clients (slowloris, slow POST), counted for the incident engine.
    pub(crate) slow: slow::SlowClients,
    rng: AtomicU64,
}

/// A connection counted against its address and prefix; give it back with [`Shield::release`].
#[derive(Debug, Default)]
pub(crate) struct ConnTicket {
    addr: Option<u64>,
    prefix: Option<u64>,
    /// In dry-run mode: why the connection would have been refused.
    pub(crate) would_refuse: Option<&'static str>,
}

/// Who sent a request, as the shield sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    pub(crate) ip: IpAddr,
    pub(crate) prefix: IpNet,
}

/// What the request path must do instead of serving the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// 429 with Retry-After.
    Reject { reason: &'static str, retry_after: Duration },
    /// The proof-of-work page.
    Challenge { reason: &'static str, difficulty: u8 },
    /// Close the connection without an answer.
    Close { reason: &'static str },
    /// 403 and close: a blocked client behind a trusted proxy.
    Block { reason: &'static str },
}

pub(crate) struct Verdict {
    /// None: serve the request.
    pub(crate) action: Option<Action>,
    pub(crate) client: Client,
    pub(crate) priority: Priority,
    /// A visitor cookie to give with the answer (the client had no valid one here).
    pub(crate) visitor_cookie: Option<String>,
    /// The request looks like a flood's (signature), or comes from a blocked source.
    pub(crate) suspicious: bool,
}

/// The request facts the shield judges.
pub(crate) struct Facts<'a> {
    pub(crate) peer: IpAddr,
    pub(crate) version: http::Version,
    pub(crate) method: &'a http::Method,
    pub(crate) path_and_query: &'a str,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) new_connection: bool,
    pub(crate) site: &'a str,
    pub(crate) site_load: &'a SiteLoad,
    /// Query parameters that name no page of their own (the site's tracking tags).
    pub(crate) ignored_params: &'a [String],
}

impl Shield {
    pub(crate) fn new(cfg: &Cfg) -> Shield {
        let secret = cfg.challenge.secret.clone();
        let keys = challenge::Keys::new(&secret);
        Shield {
            epoch: Instant::now(),
            epoch_unix: crate::clock::unix_secs(),
            addrs: table::Table::new(cfg.max_addresses),
            prefixes: table::Table::new(cfg.max_prefixes),
            classes: table::Table::new(cfg.max_addresses / 4 + 1024),
            stems: table::Table::new(16_384),
            visitors: visitors::Visitors::new((cfg.max_addresses / 4).max(1024)),
            dynamic: RwLock::new(CidrSet::default()),
            any_dynamic: AtomicBool::new(false),
            top: topk::TopK::new(32),
            keys: arc_swap::ArcSwap::from_pointee((secret, keys)),
            flood: Flood::default(),
            witness: Default::default(),
            shared: Default::default(),
            slow: Default::default(),
            rng: AtomicU64::new(crate::clock::unix_secs() ^ 0x9e37_79b9_7f4a_7c15),
        }
    }

    /// A new config: a changed secret changes the key (clearances and visitor cookies signed
    /// with the old one stop counting).
    pub(crate) fn reconfigure(&self, cfg: &Cfg) {
        if self.keys.load().0 != cfg.challenge.secret {
            let secret = cfg.challenge.secret.clone();
            let keys = challenge::Keys::new(&secret);
            self.keys.store(Arc::new((secret, keys)));
        }
    }

    pub(crate) fn keys(&self) -> arc_swap::Guard<Arc<(String, challenge::Keys)>> {
        self.keys.load()
    }

    fn tick(&self, now: Instant) -> Tick {
        gcra::ticks(now.saturating_duration_since(self.epoch)) as Tick
    }

    fn secs(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_secs() as u32
    }

    pub(crate) fn random(&self) -> u64 {
        crate::util::next_random(&self.rng)
    }

    /// Whether a client must prove its address before it gets any state (QUIC's Retry): while
    /// a flood is on, here or elsewhere in the fleet, and in under-attack mode.
    pub(crate) fn wants_address_proof(&self, rt: &ShieldRt) -> bool {
        rt.cfg.enabled
            && (self.flood.active()
                || self.shared.fleet_flood.load(std::sync::atomic::Ordering::Relaxed)
                || rt.cfg.challenge.mode == ChallengeMode::On)
    }

    /// Connection defence, before anything is read: the block lists, concurrent connections
    /// per address and per prefix, new connections per second per address.
    pub(crate) fn on_accept(&self, rt: &ShieldRt, ip: IpAddr, now: Instant) -> Result<ConnTicket, &'static str> {
        let ip = identity::canonical(ip);
        if !rt.cfg.enabled || rt.exempt(ip) {
            return Ok(ConnTicket::default());
        }
        let dry = rt.cfg.mode == ShieldMode::DryRun;
        let mut would_refuse = None;
        if let Some(reason) = self.blocked(rt, ip, now) {
            if !dry {
                if reason == "blocked" && self.flood.active() {
                    self.witness.refused(ip, rt.prefix(ip));
                }
                return Err(reason);
            }
            would_refuse = Some(reason);
        }
        let t = self.tick(now);
        let c = &rt.cfg.connections;
        let akey = self.addrs.key(&ip);
        let fresh = AddrCell { req_tat: t, conn_tat: t, conns: 0, last: t };
        let addr = self.addrs.with(
            akey,
            || fresh,
            |cell| {
                cell.last = t;
                if c.per_address > 0 && cell.conns >= c.per_address {
                    return Err("connections_per_address");
                }
                if let Some(g) = &rt.new_conns {
                    g.check(&mut cell.conn_tat, t).map_err(|_| "new_connections")?;
                }
                cell.conns += 1;
                Ok(())
            },
        );
        let addr = match addr {
            Some(Err(reason)) if !dry => return Err(reason),
            Some(Err(reason)) => {
                would_refuse = would_refuse.or(Some(reason));
                None
            }
            None => None,
            Some(Ok(())) => Some(akey),
        };
        let net = rt.prefix(ip);
        let pkey = self.prefixes.key(&net);
        let secs = self.secs(now);
        let prefix = self.prefixes.with(
            pkey,
            || self.new_prefix_cell(net, t, secs),
            |cell| {
                cell.last = t;
                if c.per_prefix > 0 && cell.conns >= c.per_prefix {
                    return Err("connections_per_prefix");
                }
                cell.conns += 1;
                Ok(())
            },
        );
        let prefix = match prefix {
            Some(Err(reason)) => {
                if !dry {
                    self.release(ConnTicket { addr, prefix: None, would_refuse: None });
                    return Err(reason);
                }
                would_refuse = would_refuse.or(Some(reason));
                None
            }
            None => None,
            Some(Ok(())) => Some(pkey),
        };
        Ok(ConnTicket { addr, prefix, would_refuse })
    }

    /// A connection counted by [`Shield::on_accept`] closed.
    pub(crate) fn release(&self, ticket: ConnTicket) {
        if let Some(k) = ticket.addr {
            self.addrs.get(k, |c| c.conns = c.conns.saturating_sub(1));
        }
        if let Some(k) = ticket.prefix {
            self.prefixes.get(k, |c| c.conns = c.conns.saturating_sub(1));
        }
    }

    fn new_prefix_cell(&self, net: IpNet, t: Tick, secs: u32) -> PrefixCell {
        let new_in_burst = self.flood.count_new_prefix();
        self.shared.publish_prefix(net);
        PrefixCell {
            conns: 0,
            req_tat: t,
            last: t,
            first_seen: secs,
            new_in_burst,
            window: signature::Window::default(),
            reported: u32::MAX,
        }
    }

    /// The reason `ip` is blocked, if it is (static list, then dynamic blocks).
    fn blocked(&self, rt: &ShieldRt, ip: IpAddr, now: Instant) -> Option<&'static str> {
        if !rt.block.is_empty() && rt.block.contains(ip) {
            return Some("blocklist");
        }
        if self.any_dynamic.load(Relaxed) {
            if let Ok(d) = self.dynamic.read() {
                if d.lookup(ip).is_some_and(|(_, b)| b.until > now) {
                    return Some("blocked");
                }
            }
        }
        None
    }

    /// Blocks `net` for `duration` from `now` (dynamic; expires by itself) and reports it
    /// as a `prefix_blocked` event. `why` is the reason, e.g. "by an operator".
    pub(crate) fn block(&self, net: IpNet, now: Instant, duration: Duration, why: &str, rep: &Telemetry) {
        self.shared.publish_block(shared::BlockNote { net, duration, reason: why.to_string() });
        self.block_here(net, now, duration, why, rep);
    }

    /// A block on this instance only (one the fleet told of: not told back).
    pub(crate) fn block_here(&self, net: IpNet, now: Instant, duration: Duration, why: &str, rep: &Telemetry) {
        let until = crate::clock::later(now, duration);
        if let Ok(mut d) = self.dynamic.write() {
            d.insert(net, Blocked { until, reason: why.to_string(), since: SystemTime::now() });
            self.any_dynamic.store(true, Relaxed);
        }
        let reason = format!("{why}, for {}", humantime::format_duration(duration));
        rep.event(Event::shield("prefix_blocked", "-", Some(net.to_string()), reason));
    }

    pub(crate) fn unblock(&self, net: &IpNet) -> bool {
        self.shared.publish_block(shared::BlockNote { net: *net, duration: Duration::ZERO, reason: String::new() });
        self.unblock_here(net)
    }

    /// An unblock on this instance only (one the fleet told of).
    pub(crate) fn unblock_here(&self, net: &IpNet) -> bool {
        self.dynamic.write().ok().and_then(|mut d| d.remove(net)).is_some()
    }

    /// A prefix the fleet first saw at `first_seen_unix_ms`: known here from then too
    /// (admission counts its clients as known, not new, when that was before a surge).
    pub(crate) fn know_prefix(&self, net: IpNet, first_seen_unix_ms: u64, now: Instant) {
        let t = self.tick(now);
        let since = (first_seen_unix_ms / 1000).saturating_sub(self.epoch_unix).min(u64::from(u32::MAX)) as u32;
        let key = self.prefixes.key(&net);
        let cell = PrefixCell {
            conns: 0,
            req_tat: t,
            last: t,
            first_seen: since,
            new_in_burst: false,
            window: signature::Window::default(),
            reported: u32::MAX,
        };
        self.prefixes.with(key, || cell, |c| c.first_seen = c.first_seen.min(since));
    }

    /// The fleet's shared keys (when no secret is configured): they sign and verify from now
    /// on; the keys of before still verify (`Keys::from_ring` keeps them).
    pub(crate) fn set_shared_keys(&self, keys: challenge::Keys) {
        let secret = self.keys.load().0.clone();
        if secret.is_empty() {
            self.keys.store(Arc::new((secret, keys)));
        }
    }
}

/// What of the shield crosses to a new binary (gateway::upgrade): the dynamic blocks, and
/// the keyring, so that clearances and visitor cookies stay valid. Counters, rates and the
/// tables of addresses and prefixes start again: they are rebuilt within seconds, and
/// carrying them would mean copying up to `max_addresses` cells while the old process
/// serves.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Carried {
    pub(crate) blocks: Vec<CarriedBlock>,
    /// The configured secret the keys came from (a new config with another secret starts
    /// from its own key, as a reload does).
    pub(crate) secret: String,
    pub(crate) keys: Option<challenge::KeysState>,
}

/// A dynamic block as it crosses to a new binary.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CarriedBlock {
    pub(crate) net: IpNet,
    pub(crate) remaining_ms: u64,
    pub(crate) reason: String,
    pub(crate) since_unix_ms: u64,
}

impl Shield {
    /// What crosses to a new binary.
    pub(crate) fn carry(&self, now: Instant) -> Carried {
        let blocks = self.dynamic.read().map_or_else(
            |_| Vec::new(),
            |d| {
                d.iter()
                    .filter(|(_, b)| b.until > now)
                    .map(|(net, b)| CarriedBlock {
                        net: *net,
                        remaining_ms: b.until.saturating_duration_since(now).as_millis() as u64,
                        reason: b.reason.clone(),
                        since_unix_ms: crate::clock::to_unix_ms(b.since),
                    })
                    .collect()
            },
        );
        let keys = self.keys.load();
        Carried { blocks, secret: keys.0.clone(), keys: Some(keys.1.export()) }
    }

    /// Takes over what a previous binary carried; returns the number of blocks taken.
    pub(crate) fn restore(&self, carried: Carried, now: Instant) -> usize {
        let mut taken = 0;
        if let Ok(mut d) = self.dynamic.write() {
            for b in carried.blocks {
                let until = crate::clock::later(now, Duration::from_millis(b.remaining_ms));
                let since = std::time::UNIX_EPOCH + Duration::from_millis(b.since_unix_ms);
                d.insert(b.net, Blocked { until, reason: b.reason, since });
                taken += 1;
            }
            if taken > 0 {
                self.any_dynamic.store(true, Relaxed);
            }
        }
        let same_secret = self.keys.load().0 == carried.secret;
        if let Some(keys) = carried.keys.as_ref().filter(|_| same_secret).and_then(challenge::Keys::import) {
            self.keys.store(Arc::new((carried.secret, keys)));
        }
        taken
    }
}

/// What one periodic pass of the shield found, for the caller to report.
pub(crate) struct Upkeep {
    /// A flood started or ended.
    pub(crate) flood: Option<FloodChange>,
    pub(crate) flood_active: bool,
    /// The tables' state, on the passes that sweep them.
    pub(crate) tables: Option<Tables>,
}

/// The shield's tables after a sweep.
pub(crate) struct Tables {
    /// The most offending prefixes (recent, decaying estimate).
    pub(crate) top: Vec<topk::Offender>,
    /// Addresses, prefixes, path stems, visitors and shared addresses tracked.
    pub(crate) tracked: [(&'static str, usize); 5],
    pub(crate) bytes: usize,
    /// Dynamic blocks in force.
    pub(crate) blocked: usize,
}

impl Shield {
    /// The shield's periodic work, called every `every` (`n` counts the passes): the flood
    /// state on every pass, the never-seen-prefix rate every fourth, and every twentieth a
    /// sweep of idle client state and expired blocks (the offender sketch decays every
    /// fortieth) with the tables' state.
    pub(crate) fn upkeep(&self, cfg: &Cfg, every: Duration, n: u64, now: Instant) -> Upkeep {
        let sig = &cfg.signatures;
        let flood = self.flood.tick(every, sig.flood_rate, sig.calm_after.get(), self.tick(now));
        if flood == Some(FloodChange::Ended) {
            self.witness.clear();
        }
        if n % 4 == 0 {
            self.flood.tick_prefixes();
        }
        let tables = (n % 20 == 0).then(|| {
            self.sweep(cfg, now);
            if n % 40 == 0 {
                self.top.decay();
            }
            Tables {
                top: self.top.top(10),
                tracked: [
                    ("addresses", self.addrs.len()),
                    ("prefixes", self.prefixes.len()),
                    ("stems", self.stems.len()),
                    ("visitors", self.visitors.len().0),
                    ("visitor_addresses", self.visitors.len().1),
                ],
                bytes: self.table_bytes(),
                blocked: self.dynamic.read().map_or(0, |d| d.iter().count()),
            }
        });
        Upkeep { flood, flood_active: self.flood.active(), tables }
    }
}

impl Shield {
    /// Drops the state of clients idle longer than `idle` and expired blocks.
    pub(crate) fn sweep(&self, cfg: &crate::config::shield::Shield, now: Instant) {
        let t = self.tick(now);
        let idle = gcra::ticks(cfg.idle.get());
        self.addrs.retain(|c| c.conns > 0 || !Gcra::idle(c.last, t, idle));
        self.prefixes.retain(|c| c.conns > 0 || !Gcra::idle(c.last, t, idle));
        self.classes.retain(|c| !Gcra::idle(c.last, t, idle));
        let window = (self.secs(now) / (cfg.signatures.window.get().as_secs().max(1) as u32)).saturating_sub(1);
        self.stems.retain(|c| c.window >= window);
        self.visitors.sweep(t, idle);
        if self.any_dynamic.load(Relaxed) {
            if let Ok(mut d) = self.dynamic.write() {
                d.retain(|_, b| b.until > now);
                self.any_dynamic.store(!d.is_empty(), Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_addresses_fit_in_64_mib() {
        // 250,000 here (a debug build is slow); the tables grow linearly, so the bound per
        // address is what matters: 64 MiB / 1,000,000 = 67 bytes. bench/shield.sh measures
        // the full million and the process's memory.
        let cfg = Cfg::default();
        let rt = ShieldRt::new(&cfg, &[]);
        let shield = Shield::new(&cfg);
        let now = Instant::now();
        let n = 250_000u32;
        for i in 0..n {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761) | 0x0100_0000));
            let ticket = shield.on_accept(&rt, ip, now).unwrap();
            shield.release(ticket);
        }
        let v = shield.view(&cfg, Default::default());
        assert_eq!(v.tracked_addresses, n as usize);
        assert_eq!(v.tracked_prefixes, cfg.max_prefixes, "prefixes are capped");
        let per_address = shield.addrs.bytes() as f64 / f64::from(n);
        assert!(per_address <= 67.0, "{per_address:.1} bytes per address");
        assert!(v.table_bytes < 64 << 20, "{}", v.table_bytes);
        // Idle state goes away.
        shield.sweep(&cfg, now + Duration::from_secs(120));
        assert_eq!(shield.addrs.len(), 0);
    }

    #[test]
    fn paths_match_at_segment_boundaries() {
        assert!(path_in("/checkout", "/checkout"));
        assert!(path_in("/checkout/pay", "/checkout"));
        assert!(path_in("/checkout?step=2", "/checkout"));
        assert!(!path_in("/checkoutQWERTY", "/checkout"));
        assert!(path_in("/api/v1", "/api/"));
        assert!(!path_in("/apix", "/api/"));
    }
}
