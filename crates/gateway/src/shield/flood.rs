//! Is there a flood? Suspicious requests from all clients together, counted against
//! `signatures.flood_rate` with a GCRA cell: when they exceed it for about a second, a flood
//! is on (the shield tightens: matching prefixes are blocked, suspicious requests
//! challenged); it is over after `calm_after` below half that rate. Also watches the rate of
//! never-seen prefixes, whose bursts are one of the flood signatures.

use super::gcra::{self, Gcra, Tick};
use crate::config::shield::Limit;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Flood {
    cell: Mutex<Option<Tick>>,
    /// Unix ms when the flood began; 0: no flood.
    since_ms: AtomicU64,
    announced: AtomicBool,
    /// Last tick at which suspicious requests were above half the flood rate.
    last_hot: AtomicU32,
    suspicious: AtomicU32,
    /// Suspicious requests per second (moving average), as f64 bits.
    rate_bits: AtomicU64,
    new_prefixes: AtomicU32,
    new_prefix_baseline_milli: AtomicU32,
    burst: AtomicBool,
}

/// What a tick found.
#[derive(Debug, PartialEq)]
pub(crate) enum FloodChange {
    Started { rate: f64 },
    Ended,
}

impl Flood {
    /// Counts a suspicious request at `t`; true while a flood is on.
    pub(crate) fn suspicious(&self, flood_rate: u32, t: Tick) -> bool {
        self.suspicious.fetch_add(1, Relaxed);
        let Some(g) = Gcra::new(Limit { rate: f64::from(flood_rate.max(1)), burst: flood_rate.max(1) }) else {
            return self.active();
        };
        let over = match self.cell.lock() {
            Ok(mut cell) => {
                let tat = cell.get_or_insert(t);
                g.check(tat, t).is_err()
            }
            Err(_) => false,
        };
        if over {
            self.last_hot.store(t, Relaxed);
            if self.since_ms.load(Relaxed) == 0 {
                self.since_ms.store(crate::clock::unix_ms().max(1), Relaxed);
            }
        }
        self.active()
    }

    pub(crate) fn active(&self) -> bool {
        self.since_ms.load(Relaxed) != 0
    }

    pub(crate) fn since_unix_ms(&self) -> Option<u64> {
        Some(self.since_ms.load(Relaxed)).filter(|&s| s != 0)
    }

    /// Suspicious requests per second, recently.
    pub(crate) fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Relaxed))
    }

    /// A prefix was seen for the first time; true while never-seen prefixes arrive in a burst.
    pub(crate) fn count_new_prefix(&self) -> bool {
        self.new_prefixes.fetch_add(1, Relaxed);
        self.burst.load(Relaxed)
    }

    pub(crate) fn new_prefix_burst(&self) -> bool {
        self.burst.load(Relaxed)
    }

    /// Every `every` (250 ms): updates the rates, and starts or ends the flood.
    pub(crate) fn tick(&self, every: Duration, flood_rate: u32, calm_after: Duration, t: Tick) -> Option<FloodChange> {
        let n = self.suspicious.swap(0, Relaxed);
        let per_sec = f64::from(n) / every.as_secs_f64();
        let rate = 0.7 * self.rate() + 0.3 * per_sec;
        self.rate_bits.store(rate.to_bits(), Relaxed);
        if per_sec > f64::from(flood_rate) / 2.0 {
            self.last_hot.store(t, Relaxed);
        }
        if !self.active() {
            return None;
        }
        if !self.announced.swap(true, Relaxed) {
            return Some(FloodChange::Started { rate: rate.max(per_sec) });
        }
        let quiet = gcra::diff(t, self.last_hot.load(Relaxed));
        if quiet > gcra::ticks(calm_after) as i64 {
            self.since_ms.store(0, Relaxed);
            self.announced.store(false, Relaxed);
            return Some(FloodChange::Ended);
        }
        None
    }

    /// Every second: is this second's count of never-seen prefixes a burst against the
    /// usual (at least 20, and five times the moving average)?
    pub(crate) fn tick_prefixes(&self) {
        let n = self.new_prefixes.swap(0, Relaxed);
        let base = f64::from(self.new_prefix_baseline_milli.load(Relaxed)) / 1000.0;
        let burst = f64::from(n) > (5.0 * base).max(20.0);
        self.burst.store(burst, Relaxed);
        // The baseline learns slowly, and not from bursts.
        let learn = if burst { base } else { 0.95 * base + 0.05 * f64::from(n) };
        self.new_prefix_baseline_milli.store((learn * 1000.0) as u32, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_above_the_rate_and_ends_after_calm() {
        let f = Flood::default();
        let every = Duration::from_millis(250);
        let calm = Duration::from_secs(30);
        let mut t: Tick = 1000;
        // 50 suspicious requests per second against a flood rate of 100: no flood.
        for _ in 0..40 {
            for _ in 0..12 {
                assert!(!f.suspicious(100, t));
            }
            t += gcra::ticks(every) as Tick;
            assert_eq!(f.tick(every, 100, calm, t), None);
        }
        // 400 per second: within about a second it is a flood.
        let mut started = None;
        for i in 0..8 {
            for _ in 0..100 {
                f.suspicious(100, t);
            }
            t += gcra::ticks(every) as Tick;
            if let Some(c) = f.tick(every, 100, calm, t) {
                started = Some((i, c));
                break;
            }
        }
        let (after, change) = started.expect("flood detected");
        assert!(after <= 4, "detected after {after} ticks");
        assert!(matches!(change, FloodChange::Started { rate } if rate > 100.0));
        // Quiet: over after calm_after.
        let mut ended_at = None;
        for i in 0..200 {
            t += gcra::ticks(every) as Tick;
            if f.tick(every, 100, calm, t) == Some(FloodChange::Ended) {
                ended_at = Some(i);
                break;
            }
        }
        let ended_at = ended_at.expect("flood ended");
        assert!((115..=125).contains(&ended_at), "{ended_at}");
        assert!(!f.active());
    }

    #[test]
    fn never_seen_prefix_bursts() {
        let f = Flood::default();
        for _ in 0..60 {
            for _ in 0..5 {
                f.count_new_prefix();
            }
            f.tick_prefixes();
            assert!(!f.new_prefix_burst());
        }
        for _ in 0..200 {
            f.count_new_prefix();
        }
        f.tick_prefixes();
        assert!(f.new_prefix_burst());
        f.tick_prefixes();
        assert!(!f.new_prefix_burst());
    }
}
