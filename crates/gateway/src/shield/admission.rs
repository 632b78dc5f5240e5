//! Adaptive admission: each site watches its origins (latency to response headers, failures)
//! and holdfast's own event-loop lag; while they are saturated it sheds requests by priority
//! instead of letting them queue: critical ones (checkout, payment, clients holding a visitor
//! cookie or clearance from before the surge) are always admitted, then prefixes seen before
//! the surge, then the rest.
//!
//! The controller is additive-increase / multiplicative-style on a shed level from 0 to 2:
//! 0 admits everything; 0..1 sheds that share of the lowest priority; 1..2 sheds all of it
//! and that share of the middle one. It rises quickly while saturated and falls slowly after.

use crate::config::shield::Admission as Cfg;
use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Critical,
    Known,
    Other,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
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

/// One site's load and shed level.
#[derive(Debug, Default)]
pub struct SiteLoad {
    /// Requests at origins now.
    pub in_flight: AtomicU32,
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
}

/// A change worth an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Started(String),
    Ended,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadView {
    pub shed_level: f64,
    pub origin_latency_ms: f64,
    pub in_flight: u32,
    pub shedding_since_unix_ms: Option<u64>,
    pub shed_total: u64,
}

impl SiteLoad {
    /// An origin answered (or failed) after `latency`.
    pub fn observe(&self, latency: Duration, ok: bool) {
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
    pub fn tick(&self, cfg: &Cfg, loop_lag: Duration, now_unix_ms: u64) -> Option<Change> {
        let ok = self.ok.swap(0, Relaxed);
        let failed = self.failed.swap(0, Relaxed);
        let latency = Duration::from_micros(self.latency_us.load(Relaxed));
        let mut why = Vec::new();
        if ok + failed >= 5 && f64::from(failed) > cfg.origin_error_ratio * f64::from(ok + failed) {
            why.push(format!("origins failed {failed} of {} requests", ok + failed));
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
        let level = self.level.load(Relaxed);
        let next = if why.is_empty() { level.saturating_sub(FALL) } else { (level + RISE).min(MAX_LEVEL) };
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

    /// Whether a request of `priority` is admitted; `r` is uniform in [0, 1).
    pub fn admit(&self, priority: Priority, r: f64) -> bool {
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

    /// When shedding began, if it is going on (unix ms).
    pub fn shedding_since(&self) -> Option<u64> {
        Some(self.since_ms.load(Relaxed)).filter(|&s| s > 0)
    }

    pub fn view(&self) -> LoadView {
        LoadView {
            shed_level: f64::from(self.level.load(Relaxed)) / 1000.0,
            origin_latency_ms: self.latency_us.load(Relaxed) as f64 / 1000.0,
            in_flight: self.in_flight.load(Relaxed),
            shedding_since_unix_ms: self.shedding_since(),
            shed_total: self.shed.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Cfg {
        Cfg::default()
    }

    #[test]
    fn sheds_by_priority_while_saturated_and_recovers() {
        let s = SiteLoad::default();
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

    #[test]
    fn failures_and_loop_lag_also_saturate() {
        let s = SiteLoad::default();
        for i in 0..10 {
            s.observe(Duration::from_millis(1), i % 2 == 0);
        }
        assert!(
            matches!(s.tick(&cfg(), Duration::ZERO, 1), Some(Change::Started(why)) if why.contains("failed 5 of 10"))
        );
        let s = SiteLoad::default();
        assert!(
            matches!(s.tick(&cfg(), Duration::from_secs(1), 1), Some(Change::Started(why)) if why.contains("lags"))
        );
    }
}
