//! What a flood looks like while it lasts, for the incident that names it: how many
//! distinct addresses and prefixes its requests came from, and how often each trait of the
//! flood signature showed. Fed by every request that looks like a flood's, lock-free (a
//! few relaxed atomics), and cleared when the flood ends.
//!
//! Distinct sources are counted with HyperLogLog (1,024 one-byte registers each for
//! addresses and prefixes, about 3% standard error): a flood from millions of addresses
//! costs the same 2 KiB as one from ten. Written here rather than taken from a crate: the
//! HLL crates keep their registers behind `&mut self`, and a lock on every flood request
//! is exactly what the shield must not take.

use super::signature;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

const BITS: u32 = 10;
const REGISTERS: usize = 1 << BITS;

/// A HyperLogLog sketch of distinct values.
#[derive(Debug)]
struct Distinct {
    registers: [AtomicU8; REGISTERS],
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct { registers: std::array::from_fn(|_| AtomicU8::new(0)) }
    }
}

impl Distinct {
    fn add(&self, value: impl Hash) {
        let mut h = std::hash::DefaultHasher::new();
        value.hash(&mut h);
        let x = h.finish();
        let index = (x >> (64 - BITS)) as usize;
        // The position of the first 1 in the remaining bits (a guard bit bounds it).
        let rank = ((x << BITS) | (1 << (BITS - 1))).leading_zeros() as u8 + 1;
        self.registers[index].fetch_max(rank, Relaxed);
    }

    fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let (mut sum, mut zeros) = (0.0, 0u32);
        for r in &self.registers {
            let v = r.load(Relaxed);
            sum += (-f64::from(v)).exp2();
            zeros += u32::from(v == 0);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let e = if raw <= 2.5 * m && zeros > 0 { m * (m / f64::from(zeros)).ln() } else { raw };
        e.round() as u64
    }

    fn clear(&self) {
        for r in &self.registers {
            r.store(0, Relaxed);
        }
    }
}

/// The traits of the flood signature, in the order of [`signature`]'s bits, and their names.
const TRAITS: [(u8, &str); 6] = [
    (signature::NO_UA, "no User-Agent"),
    (signature::IMPLAUSIBLE, "implausible headers"),
    (signature::NEW_CONN, "a new connection per request"),
    (signature::NO_COOKIE, "no cookies"),
    (signature::BUSTING, "cache-busting targets"),
    (signature::NEW_PREFIX, "never-seen prefixes"),
];

/// Sources and traits of the requests that look like a flood's.
#[derive(Debug, Default)]
pub(crate) struct Witness {
    addresses: Distinct,
    prefixes: Distinct,
    requests: AtomicU64,
    traits: [AtomicU64; 6],
}

/// What a [`Witness`] has seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Seen {
    pub(crate) requests: u64,
    pub(crate) addresses: u64,
    pub(crate) prefixes: u64,
    /// The traits shown by at least half the requests, most common first, with their share.
    pub(crate) traits: Vec<(&'static str, f64)>,
}

impl Witness {
    /// A request that looks like a flood's, from `ip` in `prefix`, with these signature
    /// traits.
    pub(crate) fn saw(&self, ip: IpAddr, prefix: ipnet::IpNet, features: u8) {
        self.addresses.add(ip);
        self.prefixes.add(prefix);
        self.requests.fetch_add(1, Relaxed);
        for (i, (bit, _)) in TRAITS.iter().enumerate() {
            if features & bit != 0 {
                self.traits[i].fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn seen(&self) -> Seen {
        let n = self.requests.load(Relaxed);
        let mut traits: Vec<(&'static str, f64)> = TRAITS
            .iter()
            .zip(&self.traits)
            .map(|((_, name), c)| (*name, if n == 0 { 0.0 } else { c.load(Relaxed) as f64 / n as f64 }))
            .filter(|(_, share)| *share >= 0.5)
            .collect();
        traits.sort_by(|a, b| b.1.total_cmp(&a.1));
        Seen {
            requests: n,
            addresses: if n == 0 { 0 } else { self.addresses.estimate().max(1) },
            prefixes: if n == 0 { 0 } else { self.prefixes.estimate().max(1) },
            traits,
        }
    }

    /// The flood is over: the next one is counted afresh.
    pub(crate) fn clear(&self) {
        self.addresses.clear();
        self.prefixes.clear();
        self.requests.store(0, Relaxed);
        for t in &self.traits {
            t.store(0, Relaxed);
        }
    }
}

impl Seen {
    /// The signature in words: "no User-Agent (100%), no cookies (98%)".
    pub(crate) fn signature(&self) -> Option<String> {
        (!self.traits.is_empty()).then(|| {
            self.traits
                .iter()
                .map(|(name, share)| format!("{name} ({:.0}%)", share * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_sources_are_counted_within_a_few_percent() {
        for n in [1u32, 10, 300, 3000, 60_000] {
            let w = Witness::default();
            for i in 0..n {
                let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + i * 7));
                let prefix = ipnet::IpNet::new(ip, 24).unwrap().trunc();
                // Every address sends three requests.
                for _ in 0..3 {
                    w.saw(ip, prefix, signature::NO_UA | signature::NEW_CONN);
                }
            }
            let seen = w.seen();
            let error = (seen.addresses as f64 - f64::from(n)).abs() / f64::from(n);
            assert!(error < 0.06, "{n} addresses counted as {}", seen.addresses);
            assert_eq!(seen.requests, u64::from(n) * 3);
            assert_eq!(seen.signature().as_deref(), Some("no User-Agent (100%), a new connection per request (100%)"));
        }
        let w = Witness::default();
        assert_eq!(w.seen(), Seen::default(), "nothing seen");
    }
}
