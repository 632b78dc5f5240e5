//! The health of one origin: the verdict of active checks and the passive outlier state
//! (ejection with a growing backoff, then a single probe request), and its peak-EWMA
//! latency. All state is atomics; the transitions are small functions of (state, now).

use crate::config::{Health as HealthCfg, Outlier};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Whether an origin may get traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Available,
    /// Ejection over: it may get one probe request.
    Probe,
    /// Failed its health checks, or ejected, or its probe is in flight.
    Down,
}

#[derive(Debug)]
pub(crate) struct OriginHealth {
    checked_up: AtomicBool,
    check_fails: AtomicU32,
    check_oks: AtomicU32,
    consecutive_errors: AtomicU32,
    consecutive_5xx: AtomicU32,
    /// 0: not ejected; else when the ejection ends (clock ms).
    ejected_until: AtomicU64,
    /// Ejections in a row (the backoff exponent).
    ejections: AtomicU32,
    returned_at: AtomicU64,
    probe_in_flight: AtomicBool,
    /// Peak-EWMA latency in microseconds (f64 bits) and when it was last updated.
    ewma_us: AtomicU64,
    ewma_at: AtomicU64,
}

impl Default for OriginHealth {
    fn default() -> Self {
        OriginHealth {
            checked_up: AtomicBool::new(true),
            check_fails: AtomicU32::new(0),
            check_oks: AtomicU32::new(0),
            consecutive_errors: AtomicU32::new(0),
            consecutive_5xx: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
            probe_in_flight: AtomicBool::new(false),
            ewma_us: AtomicU64::new(0f64.to_bits()),
            ewma_at: AtomicU64::new(0),
        }
    }
}

/// A change worth an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transition {
    CheckDown { fails: u32 },
    CheckUp { oks: u32 },
    Ejected { for_ms: u64, reason: &'static str, in_a_row: u32 },
    Returned,
}

/// What a request to the origin ended with, for passive detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Result {
    Ok,
    /// Connect error, timeout or reset.
    Error,
    /// 5xx status.
    ServerError,
}

impl OriginHealth {
    pub(crate) fn state(&self, now: u64) -> State {
        if !self.checked_up.load(Relaxed) {
            return State::Down;
        }
        match self.ejected_until.load(Relaxed) {
            0 => State::Available,
            until if until > now => State::Down,
            _ if self.probe_in_flight.load(Relaxed) => State::Down,
            _ => State::Probe,
        }
    }

    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected_until.load(Relaxed) != 0
    }

    pub(crate) fn checked_up(&self) -> bool {
        self.checked_up.load(Relaxed)
    }

    /// Claims the single probe slot of an origin whose ejection is over.
    pub(crate) fn try_probe(&self) -> bool {
        self.probe_in_flight.compare_exchange(false, true, Relaxed, Relaxed).is_ok()
    }

    /// Frees the probe slot of a probe that was cancelled before its result.
    pub(crate) fn release_probe(&self) {
        self.probe_in_flight.store(false, Relaxed);
    }

    /// An active check's result.
    pub(crate) fn record_check(&self, ok: bool, cfg: &HealthCfg) -> Option<Transition> {
        if ok {
            self.check_fails.store(0, Relaxed);
            let oks = self.check_oks.fetch_add(1, Relaxed) + 1;
            if !self.checked_up.load(Relaxed) && oks >= cfg.healthy_after {
                self.checked_up.store(true, Relaxed);
                return Some(Transition::CheckUp { oks });
            }
        } else {
            self.check_oks.store(0, Relaxed);
            let fails = self.check_fails.fetch_add(1, Relaxed) + 1;
            if self.checked_up.load(Relaxed) && fails >= cfg.unhealthy_after {
                self.checked_up.store(false, Relaxed);
                return Some(Transition::CheckDown { fails });
            }
        }
        None
    }

    /// A real request's result. `may_eject` says whether the pool's ejection cap allows one
    /// more. `probe` says whether this request was the origin's probe.
    pub(crate) fn record(
        &self,
        result: Result,
        probe: bool,
        may_eject: bool,
        cfg: &Outlier,
        now: u64,
    ) -> Option<Transition> {
        if probe {
            self.probe_in_flight.store(false, Relaxed);
        }
        match result {
            Result::Ok => {
                self.consecutive_errors.store(0, Relaxed);
                self.consecutive_5xx.store(0, Relaxed);
                if self.ejected_until.load(Relaxed) != 0 && (probe || self.ejected_until.load(Relaxed) <= now) {
                    self.ejected_until.store(0, Relaxed);
                    self.returned_at.store(now, Relaxed);
                    return Some(Transition::Returned);
                }
                None
            }
            Result::Error | Result::ServerError => {
                let (counter, threshold, reason) = if result == Result::Error {
                    (&self.consecutive_errors, cfg.consecutive_errors, "consecutive connect errors, timeouts or resets")
                } else {
                    (&self.consecutive_5xx, cfg.consecutive_5xx, "consecutive 5xx responses")
                };
                let n = counter.fetch_add(1, Relaxed) + 1;
                let failed_probe = probe && self.ejected_until.load(Relaxed) != 0;
                let already = self.ejected_until.load(Relaxed) > now;
                if already || !(failed_probe || (threshold > 0 && n >= threshold && may_eject)) {
                    return None;
                }
                // The backoff starts over once the origin has stayed back for max_ejection.
                let returned = self.returned_at.load(Relaxed);
                if returned != 0 && now.saturating_sub(returned) > cfg.max_ejection.get().as_millis() as u64 {
                    self.ejections.store(0, Relaxed);
                }
                let k = self.ejections.fetch_add(1, Relaxed).min(20);
                let base = cfg.base_ejection.get().as_millis() as u64;
                let for_ms = base.saturating_mul(1 << k).min(cfg.max_ejection.get().as_millis() as u64).max(1);
                self.ejected_until.store(now + for_ms, Relaxed);
                counter.store(0, Relaxed);
                let reason = if failed_probe { "probe request failed" } else { reason };
                Some(Transition::Ejected { for_ms, reason, in_a_row: k + 1 })
            }
        }
    }

    /// Peak EWMA (Finagle's): a slower response than the average is taken at once; faster
    /// ones pull the average down with a 10 s time constant.
    pub(crate) fn observe_latency(&self, rtt_us: f64, now: u64) {
        const TAU_MS: f64 = 10_000.0;
        let prev = f64::from_bits(self.ewma_us.load(Relaxed));
        let dt = now.saturating_sub(self.ewma_at.swap(now, Relaxed)) as f64;
        let next = if rtt_us > prev || prev == 0.0 {
            rtt_us
        } else {
            let w = (-dt / TAU_MS).exp();
            prev * w + rtt_us * (1.0 - w)
        };
        self.ewma_us.store(next.to_bits(), Relaxed);
    }

    pub(crate) fn ewma_us(&self) -> f64 {
        f64::from_bits(self.ewma_us.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn outlier() -> Outlier {
        Outlier {
            consecutive_errors: 3,
            consecutive_5xx: 2,
            base_ejection: Dur::secs(5),
            max_ejection: Dur::secs(40),
            max_ejected_percent: 50,
        }
    }

    #[test]
    fn checks_need_consecutive_results() {
        let h = OriginHealth::default();
        let cfg = HealthCfg::default();
        assert_eq!(h.state(1), State::Available);
        assert_eq!(h.record_check(false, &cfg), None);
        assert_eq!(h.record_check(true, &cfg), None, "a pass resets the failure count");
        assert_eq!(h.record_check(false, &cfg), None);
        assert_eq!(h.record_check(false, &cfg), Some(Transition::CheckDown { fails: 2 }));
        assert_eq!(h.state(1), State::Down);
        assert_eq!(h.record_check(true, &cfg), None);
        assert_eq!(h.record_check(true, &cfg), Some(Transition::CheckUp { oks: 2 }));
        assert_eq!(h.state(1), State::Available);
    }

    #[test]
    fn ejection_backoff_grows_and_a_single_probe_returns_it() {
        let h = OriginHealth::default();
        let cfg = outlier();
        assert_eq!(h.record(Result::Error, false, true, &cfg, 1000), None);
        assert_eq!(h.record(Result::Error, false, true, &cfg, 1000), None);
        let t = h.record(Result::Error, false, true, &cfg, 1000);
        assert_eq!(
            t,
            Some(Transition::Ejected {
                for_ms: 5000,
                reason: "consecutive connect errors, timeouts or resets",
                in_a_row: 1
            })
        );
        assert_eq!(h.state(5999), State::Down);
        assert_eq!(h.state(6000), State::Probe);
        assert!(h.try_probe());
        assert_eq!(h.state(6000), State::Down, "only one probe at a time");
        assert!(!h.try_probe());
        // The probe fails: ejected again for twice as long.
        let t = h.record(Result::Error, true, true, &cfg, 6100);
        assert_eq!(t, Some(Transition::Ejected { for_ms: 10_000, reason: "probe request failed", in_a_row: 2 }));
        assert_eq!(h.state(16_099), State::Down);
        assert_eq!(h.state(16_100), State::Probe);
        assert!(h.try_probe());
        assert_eq!(h.record(Result::Ok, true, true, &cfg, 16_200), Some(Transition::Returned));
        assert_eq!(h.state(16_200), State::Available);
    }

    #[test]
    fn backoff_is_capped_and_5xx_counts_separately() {
        let h = OriginHealth::default();
        let cfg = outlier();
        let mut now = 0;
        let mut last = 0;
        for _ in 0..6 {
            h.record(Result::ServerError, false, true, &cfg, now);
            if let Some(Transition::Ejected { for_ms, .. }) = h.record(Result::ServerError, false, true, &cfg, now) {
                last = for_ms;
                now += for_ms;
                assert!(h.try_probe());
                h.record(Result::Ok, true, true, &cfg, now);
            }
        }
        assert_eq!(last, 40_000, "capped at max_ejection");
        // The ejection cap of the pool is respected.
        let h = OriginHealth::default();
        for _ in 0..5 {
            assert_eq!(h.record(Result::Error, false, false, &cfg, 1), None);
        }
        assert_eq!(h.state(1), State::Available);
    }

    #[test]
    fn peak_ewma_takes_peaks_at_once_and_decays() {
        let h = OriginHealth::default();
        h.observe_latency(1000.0, 1);
        h.observe_latency(50_000.0, 2);
        assert_eq!(h.ewma_us(), 50_000.0);
        h.observe_latency(1000.0, 10_002);
        let e = h.ewma_us();
        assert!(e > 1000.0 && e < 50_000.0 * 0.4, "{e}");
    }
}
