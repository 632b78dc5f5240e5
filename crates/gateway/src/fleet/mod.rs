//! The fleet: points of presence that act as one, sharing their state through Redis
//! (docs/fleet.md). One background task per instance syncs every `sync_interval` in one
//! pipelined round trip; the request path never waits on Redis: it reads and writes the
//! shield's [`Shared`](crate::shield::shared::Shared) only.
//!
//! Each round: a heartbeat (and the live instances); the requests counted under each shared
//! limit, and the other instances' counts for the same keys ([`limits`]: the shares to
//! enforce); blocks made here (a stream the others read, and a sorted set of live blocks for
//! those that join late); the flood state; prefixes first seen here; every tenth round, the
//! keyring ([`keyring`]) and the fleet's incidents ([`incidents`]).
//!
//! When Redis does not answer in time, shared limits follow `on_redis_down`, the state is
//! reported (`holdfast_fleet_redis_up`, an event), and the task goes on trying, with backoff;
//! when it answers again, blocks and keys are read again whole.

pub(crate) mod incidents;
mod keyring;
mod limits;
pub(crate) mod link;

use crate::config::fleet::{Fleet as Cfg, OnRedisDown};
use crate::incident::Incidents;
use crate::shield::shared::{LimitKey, Mode};
use crate::shield::Shield;
use crate::telemetry::{Event, Telemetry};
use redis::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Every key of the fleet shares one hash slot (`{holdfast}`): a Redis Cluster keeps them on
/// one shard, and no command ever spans two slots. The fleet's state is small.
const NS: &str = "hf:{holdfast}:";
/// An instance not heard of for this long is not live.
const LIVE_MS: u64 = 3_000;
/// Blocks read from the stream per round at most; live blocks kept at most.
const STREAM_BATCH: usize = 1000;
const STREAM_MAX: usize = 10_000;
/// Prefixes the fleet remembers at most.
const KNOWN_MAX: usize = 100_000;

pub(crate) fn key(rest: &str) -> String {
    format!("{NS}{rest}")
}

/// What the task needs.
pub(crate) struct Fleet {
    pub(crate) cfg: Cfg,
    pub(crate) shield: Arc<Shield>,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) incidents: Arc<Incidents>,
    /// The challenge secret is configured: the same on every instance, no keyring.
    pub(crate) static_secret: bool,
}

/// What a round remembers for the next.
struct State {
    windows: limits::Windows,
    /// The blocks stream was read up to here (None: read the live blocks whole first).
    stream_id: Option<String>,
    /// Prefixes known by the fleet were read up to this first-seen time.
    known_since: u64,
    up: Option<bool>,
    live: u32,
    round: u64,
    /// Redis failed this many rounds in a row (for the backoff).
    failures: u32,
    /// What this instance's incidents were when last written (None: write them).
    incidents_written: Option<u64>,
}

impl Fleet {
    /// Runs until shutdown.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Ok(target) = self.cfg.redis.get_ref().target() else { return };
        let interval = self.cfg.sync_interval.get();
        let timeout = (interval * 4).clamp(Duration::from_millis(250), Duration::from_secs(2));
        let mut link = link::Link::new(target, timeout);
        let mut st = State {
            windows: limits::Windows::default(),
            stream_id: None,
            known_since: 0,
            up: None,
            live: 1,
            round: 0,
            failures: 0,
            incidents_written: None,
        };
        self.shield.shared.enable(self.cfg.shared_per_address);
        self.down_mode(&st);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            // After failures, try again less often (up to every 2 s); counts keep adding up.
            if st.failures > 0 && st.round % u64::from(st.failures.min(20)) != 0 {
                st.round += 1;
                continue;
            }
            let ok = match tokio::time::timeout(timeout, self.round(&mut link, &mut st)).await {
                Ok(Ok(())) => "ok",
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "fleet sync");
                    "error"
                }
                Err(_) => "timeout",
            };
            self.telemetry
                .metrics
                .fleet_syncs
                .get_or_create(&crate::telemetry::metrics::ReasonLabel { reason: ok.into() })
                .inc();
            st.round += 1;
            let up = ok == "ok";
            st.failures = if up { 0 } else { st.failures.saturating_add(1) };
            if !up {
                self.down_mode(&st);
            }
            if st.up != Some(up) {
                self.telemetry.metrics.fleet_redis_up.set(i64::from(up));
                let (kind, why) = if up {
                    ("fleet_redis_up", format!("{} syncs with the fleet", self.cfg.instance))
                } else {
                    let mode = match self.cfg.on_redis_down {
                        OnRedisDown::Local => "each instance enforces its last share of the limits",
                        OnRedisDown::Open => "limits are enforced per instance",
                        OnRedisDown::Closed => "requests under shared limits are refused",
                    };
                    let key = if st.up.is_none() && !self.static_secret {
                        "; challenges and cookies are signed with this instance's own key until it answers"
                    } else {
                        ""
                    };
                    ("fleet_redis_down", format!("the fleet's Redis does not answer ({ok}); {mode}{key}"))
                };
                if st.up.is_some() || !up {
                    self.telemetry.event(Event::fleet(kind, why));
                }
                st.up = Some(up);
                if !up {
                    // Read everything again once it is back.
                    st.stream_id = None;
                }
            }
        }
    }

    fn down_mode(&self, st: &State) {
        let mode = match self.cfg.on_redis_down {
            OnRedisDown::Local => Mode::Local,
            OnRedisDown::Open => Mode::Open,
            OnRedisDown::Closed => Mode::Closed,
        };
        self.shield.shared.set_mode(mode, st.live);
    }

    /// One round trip (two when it must first learn the other instances' names).
    async fn round(&self, link: &mut link::Link, st: &mut State) -> redis::RedisResult<()> {
        let me = &self.cfg.instance;
        let now = crate::clock::unix_ms();
        let shared = &self.shield.shared;
        let (w, changed) = st.windows.add(shared.take_counts(), now);
        let out = shared.outgoing();
        let (blocks, prefixes) = (&out.blocks, &out.prefixes);
        let flooding = self.shield.flood.active();
        let slow_round = st.round % 10 == 0 || st.stream_id.is_none();

        let mut p = redis::pipe();
        // 0: heartbeat; 1: the instances.
        p.cmd("HSET").arg(key("inst")).arg(me).arg(now).ignore();
        p.cmd("HGETALL").arg(key("inst"));
        // The counts of this window.
        if !changed.is_empty() {
            let k = key(&format!("lim:{w}:{me}"));
            let mut c = redis::cmd("HSET");
            c.arg(&k);
            for (lk, n) in &changed {
                c.arg(lk.field()).arg(*n);
            }
            p.add_command(c).ignore();
            p.cmd("PEXPIRE").arg(&k).arg(3 * limits::WINDOW_MS).ignore();
        }
        // Blocks made here: the stream, and the live set.
        for b in blocks {
            let until = now + b.duration.as_millis() as u64;
            p.cmd("XADD")
                .arg(key("blocks"))
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX)
                .arg("*")
                .arg("net")
                .arg(b.net.to_string())
                .arg("until")
                .arg(until)
                .arg("reason")
                .arg(&b.reason)
                .arg("by")
                .arg(me)
                .ignore();
            // The live blocks: a sorted set by expiry (pruned as they expire).
            if b.duration.is_zero() {
                p.cmd("ZREM").arg(key("blocked")).arg(b.net.to_string()).ignore();
            } else {
                p.cmd("ZADD").arg(key("blocked")).arg(until).arg(b.net.to_string()).ignore();
            }
        }
        // What others blocked: from where the stream was read, or the live set whole.
        match &st.stream_id {
            Some(id) => {
                p.cmd("XREAD").arg("COUNT").arg(STREAM_BATCH).arg("STREAMS").arg(key("blocks")).arg(id);
            }
            None => {
                p.cmd("XREVRANGE").arg(key("blocks")).arg("+").arg("-").arg("COUNT").arg(1);
                p.cmd("ZRANGEBYSCORE").arg(key("blocked")).arg(now).arg("+inf").arg("WITHSCORES");
            }
        }
        // The flood state.
        if flooding {
            p.cmd("HSET").arg(key("flood")).arg(me).arg(now + LIVE_MS).ignore();
        }
        p.cmd("HGETALL").arg(key("flood"));
        // Prefixes first seen here; those the fleet knows.
        if !prefixes.is_empty() {
            let mut c = redis::cmd("ZADD");
            c.arg(key("known")).arg("NX");
            for n in prefixes {
                c.arg(now).arg(n.to_string());
            }
            p.add_command(c).ignore();
        }
        p.cmd("ZRANGEBYSCORE")
            .arg(key("known"))
            .arg(st.known_since.saturating_sub(5_000))
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(5_000);
        // Every tenth round: the keyring, pruning, the fleet's incidents.
        if slow_round {
            p.cmd("HGETALL").arg(key("keys"));
            p.cmd("ZREMRANGEBYRANK").arg(key("known")).arg(0).arg(-(KNOWN_MAX as i64) - 1).ignore();
            p.cmd("ZREMRANGEBYSCORE").arg(key("blocked")).arg("-inf").arg(now).ignore();
            if st.stream_id.is_none() {
                // A resync (a start, or Redis back, maybe empty): write everything again.
                st.incidents_written = None;
            }
            incidents::publish(&mut p, &self.incidents, me, now, &mut st.incidents_written);
        }
        let answers = link.send(&p).await?;
        out.sent();
        st.windows.written();
        let mut a = answers.into_iter();
        // (Ignored commands have no answer in the list.)
        let instances: HashMap<String, u64> = take_map(a.next());
        let live: Vec<&String> =
            instances.iter().filter(|(_, t)| now.saturating_sub(**t) < LIVE_MS).map(|(n, _)| n).collect();
        st.live = (live.len() as u32).max(1);
        self.telemetry.metrics.fleet_instances.set(i64::from(st.live));
        if st.stream_id.is_some() {
            let read = a.next();
            self.apply_stream(read, st, me);
        } else {
            let last = a.next();
            let live_set = take_pairs(a.next());
            st.stream_id = Some(last_stream_id(last).unwrap_or_else(|| "0-0".into()));
            self.apply_live_blocks(&live_set, now);
        }
        let floods: HashMap<String, u64> = take_map(a.next());
        let fleet_flood = floods.iter().any(|(inst, until)| inst != me && *until > now);
        self.shield.shared.fleet_flood.store(fleet_flood, std::sync::atomic::Ordering::Relaxed);
        let known = take_pairs(a.next());
        let t = Instant::now();
        for (net, first_seen) in &known {
            if let Ok(n) = net.parse() {
                self.shield.know_prefix(n, *first_seen, t);
            }
            st.known_since = st.known_since.max(*first_seen);
        }
        if slow_round {
            let fields: HashMap<String, String> = take_map(a.next());
            self.apply_keys(link, &fields, now).await;
            incidents::read_back(a.next(), &self.incidents, me, &live, now);
        }
        // The other live instances' counts for the keys this one enforces.
        let keys = st.windows.keys();
        let others: Vec<&String> = live.iter().copied().filter(|n| *n != me).collect();
        let shares = if keys.is_empty() || others.is_empty() {
            HashMap::new()
        } else {
            let mut q = redis::pipe();
            let fields: Vec<String> = keys.iter().map(LimitKey::field).collect();
            for inst in &others {
                for win in [w, w.saturating_sub(1)] {
                    q.cmd("HMGET").arg(key(&format!("lim:{win}:{inst}"))).arg(&fields);
                }
            }
            let answers = link.send(&q).await?;
            let mut now_c: HashMap<LimitKey, u64> = HashMap::new();
            let mut before_c: HashMap<LimitKey, u64> = HashMap::new();
            for (i, v) in answers.into_iter().enumerate() {
                let into = if i % 2 == 0 { &mut now_c } else { &mut before_c };
                if let Value::Array(vals) = v {
                    for (k, v) in keys.iter().zip(vals) {
                        *into.entry(*k).or_default() +=
                            redis::from_redis_value::<Option<u64>>(v).ok().flatten().unwrap_or(0);
                    }
                }
            }
            st.windows.shares(&keys, &now_c, &before_c, now)
        };
        self.shield.shared.set_shares(shares);
        self.shield.shared.set_mode(Mode::Shared, st.live);
        Ok(())
    }

    fn apply_stream(&self, read: Option<Value>, st: &mut State, me: &str) {
        // XREAD: [[stream, [[id, [field, value, ...]], ...]]] (or nil).
        let Some(Value::Array(streams)) = read else { return };
        let now = Instant::now();
        for s in streams {
            let Value::Array(pair) = s else { continue };
            let Some(Value::Array(entries)) = pair.into_iter().nth(1) else { continue };
            for e in entries {
                let Value::Array(mut idf) = e else { continue };
                if idf.len() != 2 {
                    continue;
                }
                let fields = idf.pop();
                let id = idf.pop().and_then(|v| redis::from_redis_value::<String>(v).ok());
                let f: HashMap<String, String> = take_map(fields);
                if let Some(id) = id {
                    st.stream_id = Some(id);
                }
                if f.get("by").is_some_and(|b| b == me) {
                    continue;
                }
                let (Some(net), Some(until)) =
                    (f.get("net").and_then(|n| n.parse().ok()), f.get("until").and_then(|u| u.parse::<u64>().ok()))
                else {
                    continue;
                };
                let reason = f.get("reason").cloned().unwrap_or_default();
                self.block_locally(net, until, &reason, f.get("by").map_or("", String::as_str), now);
            }
        }
    }

    /// The live blocks (network, expiry), read whole after a start or a resync.
    fn apply_live_blocks(&self, live: &[(String, u64)], now_ms: u64) {
        let now = Instant::now();
        for (net, until) in live {
            let Ok(net) = net.parse() else { continue };
            if *until > now_ms {
                self.block_locally(net, *until, "", "the fleet", now);
            }
        }
    }

    fn block_locally(&self, net: ipnet::IpNet, until_ms: u64, reason: &str, by: &str, now: Instant) {
        let left = until_ms.saturating_sub(crate::clock::unix_ms());
        if left == 0 {
            self.shield.unblock_here(&net);
            return;
        }
        let why = if reason.is_empty() { format!("by {by}") } else { format!("{reason} (by {by})") };
        self.shield.block_here(net, now, Duration::from_millis(left), &why, &self.telemetry);
    }

    /// The keyring: adopt it (unless a secret is configured), and create the current
    /// epoch's key when it has none.
    async fn apply_keys(&self, link: &mut link::Link, fields: &HashMap<String, String>, now: u64) {
        if self.static_secret {
            return;
        }
        let ring = keyring::read(fields, now, self.cfg.key_rotation.get().as_millis() as u64);
        if !ring.create.is_empty() || !ring.expired.is_empty() {
            let mut p = redis::pipe();
            for (f, v) in &ring.create {
                p.cmd("HSETNX").arg(key("keys")).arg(f).arg(v).ignore();
            }
            if !ring.expired.is_empty() {
                p.cmd("HDEL").arg(key("keys")).arg(&ring.expired).ignore();
            }
            let _ = link.send(&p).await;
        }
        let Some(current) = &ring.current else { return };
        let keys = self.shield.keys();
        if keys.1.id() == current {
            return;
        }
        let old = &keys.1;
        if let Some(k) = crate::shield::challenge::Keys::from_ring(&ring.keys, current, Some(old)) {
            let first = !ring.keys.iter().any(|(id, _)| id == old.id());
            self.shield.set_shared_keys(k);
            if first {
                self.telemetry.event(Event::fleet(
                    "fleet_keys",
                    format!("the fleet's key {current} signs challenges and cookies"),
                ));
            }
        }
    }
}

/// A Redis map (HGETALL) or flat field/value array, as strings.
fn take_map<T: redis::FromRedisValue>(v: Option<Value>) -> HashMap<String, T> {
    v.and_then(|v| redis::from_redis_value::<HashMap<String, T>>(v).ok()).unwrap_or_default()
}

/// Member/score pairs (ZRANGEBYSCORE … WITHSCORES).
fn take_pairs(v: Option<Value>) -> Vec<(String, u64)> {
    v.and_then(|v| redis::from_redis_value::<Vec<(String, f64)>>(v).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(m, s)| (m, s.max(0.0) as u64))
        .collect()
}

/// The id of the newest stream entry (XREVRANGE … COUNT 1).
fn last_stream_id(v: Option<Value>) -> Option<String> {
    let Some(Value::Array(entries)) = v else { return None };
    let Value::Array(first) = entries.into_iter().next()? else { return None };
    redis::from_redis_value::<String>(first.into_iter().next()?).ok()
}
