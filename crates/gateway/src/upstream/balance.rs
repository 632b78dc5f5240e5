//! Balancing inside a pool: the power of two choices. Two random candidates are compared
//! by peak-EWMA latency times outstanding requests (or outstanding requests alone), divided
//! by weight, and the better one wins.

use super::Origin;
use crate::config::Balance;
pub(crate) use crate::util::{next_random, uniform};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

fn score(o: &Origin, mode: Balance) -> f64 {
    let outstanding = o.stats.in_flight.load(Relaxed) as f64 + 1.0;
    let weight = o.weight().max(1e-3);
    match mode {
        // An origin with no latency seen yet counts as 1 ms so new ones get traffic.
        Balance::PeakEwma => o.health.ewma_us().max(1000.0) * outstanding / weight,
        Balance::LeastRequest => outstanding / weight,
    }
}

/// Picks one of `candidates`; `rand` supplies two random numbers.
#[cfg(test)]
fn pick<'a>(candidates: &[&'a Arc<Origin>], mode: Balance, rand: u64) -> Option<&'a Arc<Origin>> {
    pick_where(candidates.iter().copied(), mode, rand)
}

/// P2C over the origins an iterator yields, without collecting them (it is walked twice:
/// once to count, once to find the two chosen).
pub(crate) fn pick_where<'a, I>(candidates: I, mode: Balance, rand: u64) -> Option<&'a Arc<Origin>>
where
    I: Iterator<Item = &'a Arc<Origin>> + Clone,
{
    let n = candidates.clone().count();
    match n {
        0 => None,
        1 => candidates.clone().next(),
        n => {
            let a = (rand as usize) % n;
            let mut b = ((rand >> 32) as usize) % (n - 1);
            if b >= a {
                b += 1;
            }
            let oa = candidates.clone().nth(a)?;
            let ob = candidates.clone().nth(b)?;
            Some(if score(oa, mode) <= score(ob, mode) { oa } else { ob })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(port: u16, weight: u32) -> Arc<Origin> {
        Arc::new(Origin::new(format!("127.0.0.1:{port}").parse().unwrap(), None, Arc::from("dc"), f64::from(weight)))
    }

    #[test]
    fn prefers_fewer_outstanding_and_lower_latency() {
        let a = origin(1, 1);
        let b = origin(2, 1);
        a.stats.in_flight.store(5, Relaxed);
        let c = [&a, &b];
        for r in 0..50u64 {
            assert!(Arc::ptr_eq(pick(&c, Balance::LeastRequest, r.wrapping_mul(0x9E37_79B9_7F4A_7C15)).unwrap(), &b));
        }
        a.stats.in_flight.store(0, Relaxed);
        a.health.observe_latency(80_000.0, 1);
        b.health.observe_latency(2_000.0, 1);
        for r in 0..50u64 {
            assert!(Arc::ptr_eq(pick(&c, Balance::PeakEwma, r.wrapping_mul(0x9E37_79B9_7F4A_7C15)).unwrap(), &b));
        }
    }

    #[test]
    fn weights_shift_load() {
        let a = origin(1, 4);
        let b = origin(2, 1);
        a.stats.in_flight.store(3, Relaxed);
        b.stats.in_flight.store(1, Relaxed);
        // (3+1)/4 = 1 beats (1+1)/1 = 2.
        assert!(Arc::ptr_eq(pick(&[&a, &b], Balance::LeastRequest, 7).unwrap(), &a));
    }
}
