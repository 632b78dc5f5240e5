//! Adaptive admission: each site watches its origins (latency to response headers, failures)
//! and holdfast's own event-loop lag; while they are saturated it sheds requests by priority
//! instead of letting them queue: critical ones (checkout, payment, clients holding a visitor
//! cookie or clearance from before the surge) are always admitted, then prefixes seen before
//! the surge, then the rest.
//!
//! Two controls work together, both moved every tick by whether the site is saturated:
//! - a shed level from 0 to 2: 0 admits everything; 0..1 sheds that share of the lowest
//!   priority; 1..2 sheds all of it and that share of the middle one. It rises quickly while
//!   saturated and falls slowly after.
//! - a limit on requests at the origins at once (AIMD, as Envoy's adaptive concurrency and
//!   Netflix's concurrency-limits): cut to 80% of what was in flight when saturated, grown by
//!   an eighth when not. Over the limit a request waits for a slot, critical ones first (as
//!   HAProxy's queue with priority classes), up to its priority's patience; the lowest
//!   priority does not wait. Checkouts queue briefly instead of meeting an origin's 503.

use crate::config::shield::Admission as Cfg;
mod queue;

pub(crate) use queue::Slot;
use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    Critical,
    Known,
    Other,
}

impl Priority {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Known => "known",
            Priority::Other => "other",
        }
    }
}

const RISE: u32 = 150; // per tick while saturated (thousandths)
const FALL: u32 = 40; // per tick while not
const MAX_LEVEL: u32 = 2000;
/// The concurrency limit's range.
const MIN_LIMIT: u32 = 4;
const MAX_LIMIT: u32 = 100_000;

/// One site's load, shed level and concurrency limit.
#[derive(Debug)]
pub(crate) struct SiteLoad {
    /// Requests at origins now (each try, waiting for response headers; [`AtOrigins`]).
    in_flight: AtomicU32,
    /// Admitted requests between admission and their origin's response headers.
    slots: AtomicU32,
    /// The most slots held at once in this tick.
    peak: AtomicU32,
    /// The adaptive limit on slots.
    limit: AtomicU32,
    /// The operator's cap on slots (`max_in_flight`; `u32::MAX`: none).
    cap: AtomicU32,
    /// Requests waiting for a slot, by priority, oldest first.
    queues: queue::Queues,
    /// Moving average of the origins' time to response headers, microseconds.
    latency_us: AtomicU64,
    ok: AtomicU32,
    failed: AtomicU32,
    /// Shed level in thousandths (0..=2000).
    level: AtomicU32,
    /// Unix milliseconds when shedding began (0: not shedding).
    since_ms: AtomicU64,
    /// Requests shed since start, for status.
    shed: AtomicU64,
    /// Why the site counted as saturated at the last tick (empty: it did not).
    saturation: std::sync::Mutex<String>,
}

impl Default for SiteLoad {
    fn default() -> Self {
        SiteLoad {
            in_flight: AtomicU32::new(0),
            slots: AtomicU32::new(0),
            peak: AtomicU32::new(0),
            limit: AtomicU32::new(MAX_LIMIT),
            cap: AtomicU32::new(u32::MAX),
            queues: Default::default(),
            latency_us: AtomicU64::new(0),
            ok: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            level: AtomicU32::new(0),
            since_ms: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            saturation: std::sync::Mutex::new(String::new()),
        }
    }
}

/// A try at the site's origins (from sending until the response head or failure); counted
/// in the site's load until dropped.
pub(crate) struct AtOrigins<'a>(&'a SiteLoad);

impl Drop for AtOrigins<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A change worth an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Started(String),
    Ended,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadView {
    pub(crate) shed_level: f64,
    pub(crate) origin_latency_ms: f64,
    pub(crate) in_flight: u32,
    pub(crate) shedding_since_unix_ms: Option<u64>,
    pub(crate) shed_total: u64,
    /// Requests admitted to the origins at once at most (adaptive).
    pub(crate) concurrency_limit: u32,
    pub(crate) waiting: u32,
}

impl SiteLoad {
    /// An origin answered after `latency`; `ok` false when the answer said it is overloaded
    /// (503, 429). Connection failures and timeouts are not observed here: a dead or hanging
    /// origin is for health checks and failover, and shedding would not bring it back.
    pub(crate) fn observe(&self, latency: Duration, ok: bool) {
        let sample = latency.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.latency_us.load(Relaxed);
        // EWMA with weight 1/8; a racing update may be lost, which a moving average forgives.
        let new = if old == 0 { sample } else { old - old / 8 + sample / 8 };
        self.latency_us.store(new, Relaxed);
        if ok {
            self.ok.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }

    /// Called every tick (250 ms): decides whether the site is saturated and moves the level.
    pub(crate) fn tick(self: &Arc<Self>, cfg: &Cfg, loop_lag: Duration, now_unix_ms: u64) -> Option<Change> {
        let ok = self.ok.swap(0, Relaxed);
        let failed = self.failed.swap(0, Relaxed);
        let latency = Duration::from_micros(self.latency_us.load(Relaxed));
        let mut why = Vec::new();
        if ok + failed >= 5 && f64::from(failed) > cfg.origin_error_ratio * f64::from(ok + failed) {
            why.push(format!("origins answered {failed} of {} requests with 503 or 429", ok + failed));
        }
        if latency > cfg.origin_latency.get() && ok + failed > 0 {
            why.push(format!("origin response time {} ms", latency.as_millis()));
        }
        if loop_lag > cfg.max_loop_lag.get() {
            why.push(format!("holdfast's event loop lags {} ms", loop_lag.as_millis()));
        }
        if ok + failed == 0 && self.in_flight.load(Relaxed) == 0 {
            // Nothing went to the origins: the latency average is old news.
            self.latency_us.store(0, Relaxed);
        }
        // The origins' signals move the limit; requests queueing for a slot at holdfast also
        // keep the shed level up (the origins look fine because the queue protects them).
        let origins_saturated = !why.is_empty();
        let queued = self.queues.len();
        if queued > 0 {
            why.push(format!("{queued} requests waiting for a slot at the origins"));
        }
        if let Ok(mut s) = self.saturation.lock() {
            s.clear();
            if origins_saturated {
                s.push_str(&why.join("; "));
            }
        }
        let level = self.level.load(Relaxed);
        let next = if why.is_empty() { level.saturating_sub(FALL) } else { (level + RISE).min(MAX_LEVEL) };
        let peak = self.peak.swap(self.slots.load(Relaxed), Relaxed);
        let limit = self.limit.load(Relaxed);
        let new_limit = if !origins_saturated {
            limit.saturating_add((limit / 8).max(1)).min(MAX_LIMIT)
        } else {
            (f64::from(limit.min(peak.max(MIN_LIMIT))) * 0.8) as u32
        };
        self.limit.store(new_limit.max(MIN_LIMIT), Relaxed);
        if new_limit > limit {
            self.admit_waiting();
        }
        self.level.store(next, Relaxed);
        match (level, next) {
            (0, n) if n > 0 => {
                self.since_ms.store(now_unix_ms, Relaxed);
                Some(Change::Started(why.join("; ")))
            }
            (l, 0) if l > 0 => {
                self.since_ms.store(0, Relaxed);
                Some(Change::Ended)
            }
            _ => None,
        }
    }

    /// The operator's cap on requests at the site's origins (0: none).
    pub(crate) fn set_cap(self: &Arc<Self>, max_in_flight: u32) {
        let cap = if max_in_flight == 0 { u32::MAX } else { max_in_flight };
        if self.cap.swap(cap, Relaxed) < cap {
            self.admit_waiting(); // a raised cap makes room at once
        }
    }

    /// The limit in force: the adaptive one, under the operator's cap.
    pub(super) fn effective_limit(&self) -> u32 {
        self.limit.load(Relaxed).min(self.cap.load(Relaxed))
    }

    /// A try at the origins begins.
    pub(crate) fn at_origins(&self) -> AtOrigins<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        AtOrigins(self)
    }

    /// Whether a request of `priority` is admitted; `r` is uniform in [0, 1).
    pub(crate) fn admit(&self, priority: Priority, r: f64) -> bool {
        let level = f64::from(self.level.load(Relaxed)) / 1000.0;
        let shed_share = match priority {
            Priority::Critical => 0.0,
            Priority::Known => (level - 1.0).clamp(0.0, 1.0),
            Priority::Other => level.clamp(0.0, 1.0),
        };
        let admitted = r >= shed_share;
        if !admitted {
            self.shed.fetch_add(1, Relaxed);
        }
        admitted
    }

    /// For the incident engine: the shed level, why the origins (or holdfast) count as
    /// saturated now if they do, and the requests waiting for a slot.
    pub(crate) fn observe_now(&self) -> (f64, Option<String>, u32) {
        let why = self.saturation.lock().ok().map(|s| s.clone()).filter(|s| !s.is_empty());
        (f64::from(self.level.load(Relaxed)) / 1000.0, why, self.queues.len())
    }

    /// When shedding began, if it is going on (unix ms).
    pub(crate) fn shedding_since(&self) -> Option<u64> {
        Some(self.since_ms.load(Relaxed)).filter(|&s| s > 0)
    }

    pub(crate) fn view(&self) -> LoadView {
        LoadView {
            shed_level: f64::from(self.level.load(Relaxed)) / 1000.0,
            origin_latency_ms: self.latency_us.load(Relaxed) as f64 / 1000.0,
            in_flight: self.in_flight.load(Relaxed),
            shedding_since_unix_ms: self.shedding_since(),
            shed_total: self.shed.load(Relaxed),
            concurrency_limit: self.effective_limit(),
            waiting: self.queues.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Cfg {
        Cfg::default()
    }

    /// As the request path asks: a free slot now, else the queue.
    async fn enter(s: &Arc<SiteLoad>, priority: Priority, queue_timeout: Duration) -> Option<Slot> {
        match s.try_enter(priority) {
            Some(slot) => Some(slot),
            None => s.queue(priority, queue_timeout).await,
        }
    }

    #[test]
    fn sheds_by_priority_while_saturated_and_recovers() {
        let s = Arc::new(SiteLoad::default());
        for _ in 0..20 {
            s.observe(Duration::from_millis(5), true);
        }
        assert_eq!(s.tick(&cfg(), Duration::ZERO, 1000), None);
        assert!(s.admit(Priority::Other, 0.0));
        // Origins slow down: shedding starts with the lowest priority.
        for _ in 0..200 {
            s.observe(Duration::from_secs(3), true);
        }
        assert!(
            matches!(s.tick(&cfg(), Duration::ZERO, 2000), Some(Change::Started(why)) if why.contains("response time"))
        );
        assert_eq!(s.shedding_since(), Some(2000));
        assert!(!s.admit(Priority::Other, 0.1));
        assert!(s.admit(Priority::Known, 0.0));
        for t in 0..20 {
            s.observe(Duration::from_secs(3), true);
            s.tick(&cfg(), Duration::ZERO, 2000 + t);
        }
        // At the top: only critical requests pass.
        assert!(!s.admit(Priority::Other, 0.99));
        assert!(!s.admit(Priority::Known, 0.99));
        assert!(s.admit(Priority::Critical, 0.0));
        // Origins recover: the level falls back to zero.
        let mut ended = false;
        for t in 0..200 {
            for _ in 0..50 {
                s.observe(Duration::from_millis(5), true);
            }
            if s.tick(&cfg(), Duration::ZERO, 3000 + t) == Some(Change::Ended) {
                ended = true;
                break;
            }
        }
        assert!(ended);
        assert!(s.admit(Priority::Other, 0.0));
        assert!(s.view().shed_total >= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_limit_critical_requests_wait_first_and_the_rest_is_shed() {
        let s = Arc::new(SiteLoad::default());
        // Saturated with 10 in flight: the limit drops to 80% of that.
        let held: Vec<Slot> = (0..10).map(|_| s.take_slot().unwrap()).collect();
        for _ in 0..10 {
            s.observe(Duration::from_secs(2), true);
        }
        s.tick(&cfg(), Duration::ZERO, 1);
        assert_eq!(s.view().concurrency_limit, 8);
        assert!(
            enter(&s, Priority::Other, Duration::from_secs(5)).await.is_none(),
            "the lowest priority does not wait"
        );
        // A known and a critical request wait; when a slot frees up, critical goes first.
        let (k, c) = (s.clone(), s.clone());
        let known = tokio::spawn(async move { enter(&k, Priority::Known, Duration::from_secs(5)).await });
        let critical = tokio::spawn(async move { enter(&c, Priority::Critical, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(s.view().waiting, 2);
        let mut held = held;
        held.truncate(7); // three given back: 7 in use, one free under the limit of 8
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(critical.is_finished(), "critical got the slot");
        assert!(!known.is_finished());
        let c_slot = critical.await.unwrap().expect("critical admitted");
        held.truncate(6);
        let k_slot = known.await.unwrap().expect("known admitted next");
        // Full again (6 + 2 of 8): patience runs out, the request is shed.
        assert!(s.take_slot().is_none());
        assert!(enter(&s, Priority::Critical, Duration::from_millis(100)).await.is_none());
        drop((c_slot, k_slot));
        // Not saturated: the limit grows back.
        drop(held);
        s.tick(&cfg(), Duration::ZERO, 2);
        assert_eq!(s.view().concurrency_limit, 9);
    }

    #[test]
    fn failures_and_loop_lag_also_saturate() {
        let s = Arc::new(SiteLoad::default());
        for i in 0..10 {
            s.observe(Duration::from_millis(1), i % 2 == 0);
        }
        assert!(
            matches!(s.tick(&cfg(), Duration::ZERO, 1), Some(Change::Started(why)) if why.contains("5 of 10 requests with 503"))
        );
        let s = Arc::new(SiteLoad::default());
        assert!(
            matches!(s.tick(&cfg(), Duration::from_secs(1), 1), Some(Change::Started(why)) if why.contains("lags"))
        );
    }
}
