//! What a flood looks like while it lasts, for the incident that names it: how many
//! distinct addresses and prefixes its requests came from, and how often each trait of the
//! flood signature showed. Fed by every request that looks like a flood's, and by every
//! connection refused on accept from a blocked source while the flood lasts (a blocked
//! source sends no request, but it is still the flood); lock-free (a few relaxed atomics),
//! and cleared when the flood ends.
//!
//! Distinct sources are counted with HyperLogLog ([`Distinct`]): a flood from millions of
//! addresses costs the same 2 KiB as one from ten.

use super::distinct::Distinct;
use super::signature;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A trait beyond the signature's bits: the source's requests are no person's browsing
/// ([`signature::Window::automated`]).
pub(crate) const AUTOMATED: u16 = 1 << 8;

/// The traits of the flood signature, in the order of [`signature`]'s bits, and their names.
const TRAITS: [(u16, &str); 8] = [
    (signature::NO_UA as u16, "no User-Agent"),
    (signature::IMPLAUSIBLE as u16, "implausible headers"),
    (signature::NEW_CONN as u16, "a new connection per request"),
    (signature::NO_COOKIE as u16, "no cookies"),
    (signature::BUSTING as u16, "cache-busting targets"),
    (signature::NEW_PREFIX as u16, "never-seen prefixes"),
    (signature::SHARED_COOKIE as u16, "one visitor cookie from many networks"),
    (AUTOMATED, "browser headers but no sub-resources, a page of its own every request (no person browses so)"),
];

/// Sources and traits of the requests that look like a flood's.
#[derive(Debug, Default)]
pub(crate) struct Witness {
    addresses: Distinct,
    prefixes: Distinct,
    requests: AtomicU64,
    traits: [AtomicU64; 8],
    refused: AtomicU64,
}

/// What a [`Witness`] has seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Seen {
    pub(crate) requests: u64,
    /// Connections from blocked sources refused on accept.
    pub(crate) refused: u64,
    pub(crate) addresses: u64,
    pub(crate) prefixes: u64,
    /// The traits shown by at least half the requests, most common first, with their share.
    pub(crate) traits: Vec<(&'static str, f64)>,
}

impl Witness {
    /// A request that looks like a flood's, from `ip` in `prefix`, with these signature
    /// traits.
    pub(crate) fn saw(&self, ip: IpAddr, prefix: ipnet::IpNet, features: u16) {
        self.addresses.add(ip);
        self.prefixes.add(prefix);
        self.requests.fetch_add(1, Relaxed);
        for (i, (bit, _)) in TRAITS.iter().enumerate() {
            if features & bit != 0 {
                self.traits[i].fetch_add(1, Relaxed);
            }
        }
    }

    /// A connection from a blocked source, refused on accept while the flood lasts.
    pub(crate) fn refused(&self, ip: IpAddr, prefix: ipnet::IpNet) {
        self.addresses.add(ip);
        self.prefixes.add(prefix);
        self.refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn seen(&self) -> Seen {
        let n = self.requests.load(Relaxed);
        let refused = self.refused.load(Relaxed);
        let any = n + refused > 0;
        let mut traits: Vec<(&'static str, f64)> = TRAITS
            .iter()
            .zip(&self.traits)
            .map(|((_, name), c)| (*name, if n == 0 { 0.0 } else { c.load(Relaxed) as f64 / n as f64 }))
            .filter(|(_, share)| *share >= 0.5)
            .collect();
        traits.sort_by(|a, b| b.1.total_cmp(&a.1));
        Seen {
            requests: n,
            refused,
            addresses: if any { self.addresses.estimate().max(1) } else { 0 },
            prefixes: if any { self.prefixes.estimate().max(1) } else { 0 },
            traits,
        }
    }

    /// The flood is over: the next one is counted afresh.
    pub(crate) fn clear(&self) {
        self.addresses.clear();
        self.prefixes.clear();
        self.requests.store(0, Relaxed);
        self.refused.store(0, Relaxed);
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
                    w.saw(ip, prefix, u16::from(signature::NO_UA | signature::NEW_CONN));
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

    #[test]
    fn refused_connections_count_as_sources_but_not_as_requests() {
        let w = Witness::default();
        for i in 0..500u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            w.refused(ip, ipnet::IpNet::new(ip, 24).unwrap().trunc());
        }
        let seen = w.seen();
        assert_eq!((seen.requests, seen.refused), (0, 500));
        assert!((480..=520).contains(&seen.addresses), "{}", seen.addresses);
        w.clear();
        assert_eq!(w.seen(), Seen::default());
    }

    /// What a flood request costs the witness, lock-free, against the same sketch behind a
    /// mutex (what an HLL crate with `&mut self` inserts would need), two threads at once:
    /// `cargo test -p holdfast-gateway --release --lib witness::tests::cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost() {
        use std::sync::{Arc, Mutex};
        use std::time::Instant;
        const N: u32 = 2_000_000;
        let addr = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + (i % 65_536)));
        let w = Arc::new(Witness::default());
        let t = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|k| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        let ip = addr(i * 2 + k);
                        w.saw(ip, ipnet::IpNet::new(ip, 24).unwrap().trunc(), u16::from(signature::NO_UA));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let lock_free = t.elapsed().as_nanos() as f64 / f64::from(2 * N);
        let m = Arc::new(Mutex::new(Witness::default()));
        let t = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|k| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        let ip = addr(i * 2 + k);
                        m.lock().unwrap().saw(
                            ip,
                            ipnet::IpNet::new(ip, 24).unwrap().trunc(),
                            u16::from(signature::NO_UA),
                        );
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let locked = t.elapsed().as_nanos() as f64 / f64::from(2 * N);
        println!("witness: {lock_free:.0} ns a request lock-free, {locked:.0} ns behind a mutex (2 threads)");
    }
}
