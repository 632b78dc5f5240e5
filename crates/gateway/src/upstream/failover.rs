//! Which data center (pool) a request goes to: pools in failover order; a pool whose share
//! of available origins is below `min_healthy_share` hands its traffic on (all at once, or in
//! proportion); a pool that has just come back gets a share that ramps up over
//! `slow_start`; when no pool has an available origin, panic mode tries them anyway.

use crate::config::{Failover, FailoverMode};

pub(crate) use crate::config::MAX_POOLS;

/// What the chooser needs to know about a pool.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PoolView {
    pub(crate) available: usize,
    pub(crate) total: usize,
    /// When the pool became eligible again (clock ms); 0: eligible since start.
    pub(crate) up_since: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    Pool(usize),
    /// No pool has an available origin: try the best candidates anyway.
    Panic,
}

impl PoolView {
    pub(crate) fn share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.available as f64 / self.total as f64
        }
    }

    pub(crate) fn eligible(&self, cfg: &Failover) -> bool {
        self.available > 0 && self.share() >= cfg.min_healthy_share
    }

    /// 0.1 to 1: how much of its traffic a recovering pool takes back now.
    fn ramp(&self, cfg: &Failover, now: u64) -> f64 {
        let window = cfg.slow_start.get().as_millis() as f64;
        if self.up_since == 0 || window == 0.0 {
            return 1.0;
        }
        (now.saturating_sub(self.up_since) as f64 / window).clamp(0.1, 1.0)
    }
}

/// Chooses a pool; `r` is a uniform random number in [0, 1).
pub(crate) fn choose(views: &[PoolView], cfg: &Failover, now: u64, r: f64) -> Choice {
    if views.iter().all(|v| v.available == 0) {
        return Choice::Panic;
    }
    let mut remaining = 1.0;
    let mut acc = 0.0;
    let mut last_candidate = None;
    for (i, v) in views.iter().enumerate() {
        if v.available == 0 {
            continue;
        }
        last_candidate = Some(i);
        let weight = match cfg.mode {
            FailoverMode::AllAtOnce if v.eligible(cfg) => 1.0,
            FailoverMode::AllAtOnce => 0.0,
            FailoverMode::Proportional => (v.share() / cfg.min_healthy_share.max(f64::MIN_POSITIVE)).min(1.0),
        } * v.ramp(cfg, now);
        let take = remaining * weight;
        acc += take;
        if r < acc {
            return Choice::Pool(i);
        }
        remaining -= take;
        if remaining <= 0.0 {
            break;
        }
    }
    // What is left goes to the last pool with anything available.
    last_candidate.map_or(Choice::Panic, Choice::Pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn cfg(mode: FailoverMode) -> Failover {
        Failover { mode, min_healthy_share: 0.5, slow_start: Dur::secs(10) }
    }

    fn v(available: usize, total: usize) -> PoolView {
        PoolView { available, total, up_since: 0 }
    }

    fn shares(views: &[PoolView], c: &Failover, now: u64) -> Vec<f64> {
        let mut n = vec![0.0f64; views.len() + 1];
        for i in 0..1000 {
            match choose(views, c, now, i as f64 / 1000.0) {
                Choice::Pool(p) => n[p] += 0.001,
                Choice::Panic => n[views.len()] += 0.001,
            }
        }
        n.iter().map(|x| (x * 100.0).round() / 100.0).collect()
    }

    #[test]
    fn all_at_once_uses_the_first_eligible_pool() {
        let c = cfg(FailoverMode::AllAtOnce);
        assert_eq!(shares(&[v(2, 2), v(1, 1), v(1, 1)], &c, 0), vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(shares(&[v(0, 2), v(1, 1), v(1, 1)], &c, 0), vec![0.0, 1.0, 0.0, 0.0]);
        // 1 of 3 available is below the 50% threshold: hand over to the next.
        assert_eq!(shares(&[v(1, 3), v(1, 1)], &c, 0), vec![0.0, 1.0, 0.0]);
        assert_eq!(shares(&[v(0, 2), v(0, 1)], &c, 0), vec![0.0, 0.0, 1.0], "panic");
        // Nothing eligible but something available: the last pool with anything left.
        assert_eq!(shares(&[v(1, 3), v(0, 1)], &c, 0), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn proportional_spills_the_unhealthy_share() {
        let c = cfg(FailoverMode::Proportional);
        // 1 of 4 = 25% healthy, threshold 50%: keeps half of its traffic.
        assert_eq!(shares(&[v(1, 4), v(1, 1)], &c, 0), vec![0.5, 0.5, 0.0]);
        assert_eq!(shares(&[v(4, 4), v(1, 1)], &c, 0), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn slow_start_ramps_a_recovered_pool_up() {
        let c = cfg(FailoverMode::AllAtOnce);
        let back = |since| [PoolView { available: 2, total: 2, up_since: since }, v(1, 1)];
        assert_eq!(shares(&back(1000), &c, 1000), vec![0.1, 0.9, 0.0], "starts at 10%");
        assert_eq!(shares(&back(1000), &c, 6000), vec![0.5, 0.5, 0.0]);
        assert_eq!(shares(&back(1000), &c, 11_000), vec![1.0, 0.0, 0.0], "all back after slow_start");
    }
}
