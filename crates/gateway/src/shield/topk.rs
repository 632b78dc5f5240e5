//! Heavy hitters: the prefixes with the most shield actions, found with the Space-Saving
//! sketch (Metwally et al., 2005) in a fixed number of counters. Counts decay by half on
//! each `decay` so the list shows who offends now. Hand-written: it is forty lines, and the
//! crates that offer it bring generic machinery the shield does not need.

use ipnet::IpNet;
use serde::Serialize;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Offender {
    pub(crate) prefix: String,
    /// Estimated actions (an upper bound; `error` is the most it may overstate).
    pub(crate) count: u64,
    pub(crate) error: u64,
}

pub(crate) struct TopK {
    k: usize,
    counters: Mutex<Vec<(IpNet, u64, u64)>>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> TopK {
        TopK { k, counters: Mutex::new(Vec::with_capacity(k)) }
    }

    pub(crate) fn add(&self, net: IpNet, n: u64) {
        let Ok(mut c) = self.counters.lock() else { return };
        if let Some(e) = c.iter_mut().find(|e| e.0 == net) {
            e.1 += n;
            return;
        }
        if c.len() < self.k {
            c.push((net, n, 0));
            return;
        }
        // Replace the smallest: the newcomer inherits its count as possible error.
        if let Some(min) = c.iter_mut().min_by_key(|e| e.1) {
            *min = (net, min.1 + n, min.1);
        }
    }

    pub(crate) fn decay(&self) {
        if let Ok(mut c) = self.counters.lock() {
            for e in c.iter_mut() {
                e.1 /= 2;
                e.2 /= 2;
            }
            c.retain(|e| e.1 > 0);
        }
    }

    /// The heaviest first.
    pub(crate) fn top(&self, n: usize) -> Vec<Offender> {
        let Ok(c) = self.counters.lock() else { return Vec::new() };
        let mut v: Vec<_> = c.iter().map(|e| Offender { prefix: e.0.to_string(), count: e.1, error: e.2 }).collect();
        v.sort_by_key(|o| std::cmp::Reverse(o.count));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_hitters_survive_a_long_tail() {
        let t = TopK::new(8);
        let heavy: IpNet = "203.0.113.0/24".parse().unwrap();
        for i in 0..5000u32 {
            if i % 3 == 0 {
                t.add(heavy, 1);
            }
            let tail = IpNet::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24).unwrap();
            t.add(tail, 1);
        }
        let top = t.top(3);
        assert_eq!(top[0].prefix, "203.0.113.0/24");
        assert!(top[0].count >= 1667);
        t.decay();
        assert!(t.top(1)[0].count < top[0].count);
    }
}
