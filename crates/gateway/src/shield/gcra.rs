//! GCRA (the generic cell rate algorithm, as in governor and HAProxy's rate limits) over a
//! compact clock: time is counted in ticks of 1/16 ms in a wrapping `u32`, so a cell is
//! four bytes. Wrapping comparisons are valid while two times are less than 37 hours apart;
//! cells idle longer than the shield's `idle` are swept long before that.
//!
//! Hand-written because the cells must live in the shield's compact tables (see
//! `table.rs`); governor's limiters carry their own store.

use crate::config::shield::Limit;
use std::time::Duration;

pub(crate) const TICKS_PER_SEC: u64 = 16_000;

/// A point on the shield's clock.
pub(crate) type Tick = u32;

pub(crate) fn ticks(d: Duration) -> u64 {
    (d.as_micros() as u64).saturating_mul(TICKS_PER_SEC) / 1_000_000
}

/// `a - b` as a signed distance on the wrapping clock.
pub(crate) fn diff(a: Tick, b: Tick) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// A limit in ticks: one request every `t`, `tau` of tolerance for bursts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gcra {
    t: u32,
    tau: u32,
}

impl Gcra {
    /// None when the limit is off (rate 0).
    pub(crate) fn new(limit: Limit) -> Option<Gcra> {
        if limit.rate <= 0.0 {
            return None;
        }
        let t = ((TICKS_PER_SEC as f64 / limit.rate).round() as u64).clamp(1, u64::from(u32::MAX / 4));
        let tau = (t * u64::from(limit.burst.max(1) - 1)).min(u64::from(i32::MAX as u32 / 2));
        Some(Gcra { t: t as u32, tau: tau as u32 })
    }

    /// Counts one request at `now` against the cell `tat` (theoretical arrival time).
    /// Err carries how long until a request would conform.
    pub(crate) fn check(&self, tat: &mut Tick, now: Tick) -> Result<(), Duration> {
        let start = if diff(*tat, now) < 0 { now } else { *tat };
        let ahead = diff(start, now);
        if ahead > i64::from(self.tau) {
            let wait = (ahead - i64::from(self.tau)) as u64;
            return Err(Duration::from_micros(wait * 1_000_000 / TICKS_PER_SEC));
        }
        *tat = start.wrapping_add(self.t);
        Ok(())
    }

    /// As [`Gcra::check`], for the `share` of the limit this instance enforces in a fleet
    /// (the rest is the other instances'): one request every `t ÷ share`, the same burst
    /// tolerance in time. A share of 0 refuses (the fleet's limits are closed).
    pub(crate) fn check_share(&self, tat: &mut Tick, now: Tick, share: f32) -> Result<(), Duration> {
        if share >= 0.999 {
            return self.check(tat, now);
        }
        if share <= 0.0 {
            return Err(Duration::from_secs(1));
        }
        self.scaled(share).check(tat, now)
    }

    /// This limit times `factor`: one request every `t ÷ factor`, the same burst tolerance
    /// in time (so the burst in requests scales too).
    pub(crate) fn scaled(&self, factor: f32) -> Gcra {
        let t = (f64::from(self.t) / f64::from(factor.max(1e-6))).round().clamp(1.0, f64::from(u32::MAX / 4)) as u32;
        Gcra { t, tau: self.tau }
    }

    /// Allows requests more often than `other` does.
    pub(crate) fn looser_than(&self, other: &Gcra) -> bool {
        self.t < other.t
    }

    /// The cell has been idle for at least `idle` ticks at `now`.
    pub(crate) fn idle(tat: Tick, now: Tick, idle: u64) -> bool {
        diff(now, tat) > idle as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(rate: f64, burst: u32) -> Gcra {
        Gcra::new(Limit { rate, burst }).unwrap()
    }

    #[test]
    fn burst_then_rate() {
        let g = lim(10.0, 5);
        let mut tat = 1000;
        for _ in 0..5 {
            assert!(g.check(&mut tat, 1000).is_ok());
        }
        let wait = g.check(&mut tat, 1000).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // 100 ms later exactly one more conforms.
        let later = 1000 + ticks(Duration::from_millis(100)) as u32;
        assert!(g.check(&mut tat, later).is_ok());
        assert!(g.check(&mut tat, later).is_err());
        // A second later the burst is back.
        let much_later = later + TICKS_PER_SEC as u32;
        for _ in 0..5 {
            assert!(g.check(&mut tat, much_later).is_ok());
        }
    }

    #[test]
    fn works_across_the_wrap() {
        let g = lim(1000.0, 2);
        let mut tat = u32::MAX - 10;
        let now = u32::MAX - 10;
        assert!(g.check(&mut tat, now).is_ok());
        assert!(g.check(&mut tat, now).is_ok());
        assert!(g.check(&mut tat, now).is_err());
        let after_wrap = now.wrapping_add(100);
        assert!(g.check(&mut tat, after_wrap).is_ok());
        assert!(!Gcra::idle(tat, after_wrap, 1000));
        assert!(Gcra::idle(tat, after_wrap.wrapping_add(2000), 1000));
    }

    #[test]
    fn zero_rate_is_off() {
        assert!(Gcra::new(Limit { rate: 0.0, burst: 0 }).is_none());
    }
}
