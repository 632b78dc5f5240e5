//! Slow clients, as an attack shows them: request heads begun and not finished
//! (slowloris sends a header line every few seconds to hold a connection open), heads cut
//! off by `timeouts.client_header`, and request bodies cut off below
//! `shield.connections.min_upload_rate` (slow POST). The defence is elsewhere (the header
//! budget, the upload pace); this only counts, for the incident engine to name the attack.
//!
//! Lock-free: a few relaxed atomics per slow client. Their sources are counted over the
//! last 10 to 20 seconds by two HyperLogLog sketches taking turns.

use super::distinct::Distinct;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// How long each sketch of sources counts before the other takes over.
const TURN_MS: u64 = 10_000;

/// Slow clients seen.
#[derive(Debug, Default)]
pub(crate) struct SlowClients {
    /// Heads begun and not finished, now.
    partial_heads: AtomicU64,
    /// Heads that did not arrive whole in one read, since start.
    heads_begun: AtomicU64,
    /// Heads cut off by the header budget, and bodies cut off below the upload pace, since
    /// start.
    heads_cut: AtomicU64,
    bodies_cut: AtomicU64,
    sources: [Distinct; 2],
    current: AtomicUsize,
    turned_at: AtomicU64,
}

/// A head being read that has not arrived whole: counted while it lives.
pub(crate) struct PartialHead<'a>(&'a SlowClients);

impl Drop for PartialHead<'_> {
    fn drop(&mut self) {
        self.0.partial_heads.fetch_sub(1, Relaxed);
    }
}

/// What [`SlowClients`] shows now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SlowNow {
    pub(crate) partial_heads: u64,
    pub(crate) heads_begun: u64,
    pub(crate) heads_cut: u64,
    pub(crate) bodies_cut: u64,
    /// Distinct addresses of slow clients in the last 10 to 20 seconds.
    pub(crate) sources: u64,
}

impl SlowClients {
    fn saw(&self, ip: IpAddr) {
        self.sources[self.current.load(Relaxed) % 2].add(ip);
    }

    /// A head from `ip` did not arrive whole in one read: counted until the guard drops.
    pub(crate) fn head_begun(&self, ip: IpAddr) -> PartialHead<'_> {
        self.partial_heads.fetch_add(1, Relaxed);
        self.heads_begun.fetch_add(1, Relaxed);
        self.saw(ip);
        PartialHead(self)
    }

    /// A head from `ip` was cut off by the header budget.
    pub(crate) fn head_cut(&self, ip: IpAddr) {
        self.heads_cut.fetch_add(1, Relaxed);
        self.saw(ip);
    }

    /// A body from `ip` was cut off below the upload pace.
    pub(crate) fn body_cut(&self, ip: IpAddr) {
        self.bodies_cut.fetch_add(1, Relaxed);
        self.saw(ip);
    }

    /// The counts now (`now`: unix ms); the sketches take turns every 10 s.
    pub(crate) fn now(&self, now: u64) -> SlowNow {
        let turned = self.turned_at.load(Relaxed);
        if turned == 0 {
            // The first look starts the first turn.
            let _ = self.turned_at.compare_exchange(0, now, Relaxed, Relaxed);
        } else if now.saturating_sub(turned) >= TURN_MS
            && self.turned_at.compare_exchange(turned, now, Relaxed, Relaxed).is_ok()
        {
            let next = (self.current.load(Relaxed) + 1) % 2;
            self.sources[next].clear();
            self.current.store(next, Relaxed);
        }
        let load = |a: &AtomicU64| a.load(Relaxed);
        SlowNow {
            partial_heads: load(&self.partial_heads),
            heads_begun: load(&self.heads_begun),
            heads_cut: load(&self.heads_cut),
            bodies_cut: load(&self.bodies_cut),
            sources: self.sources[0].estimate_union(&self.sources[1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x7F02_0000 + i))
    }

    #[test]
    fn partial_heads_count_while_they_last_and_sources_fade_after_two_turns() {
        let s = SlowClients::default();
        let guards: Vec<_> = (0..300).map(|i| s.head_begun(ip(i % 100))).collect();
        s.head_cut(ip(1));
        s.body_cut(ip(2));
        let now = s.now(1_000_000);
        assert_eq!((now.partial_heads, now.heads_begun, now.heads_cut, now.bodies_cut), (300, 300, 1, 1));
        assert!((95..=105).contains(&now.sources), "{}", now.sources);
        drop(guards);
        assert_eq!(s.now(1_000_001).partial_heads, 0);
        // One turn later the sources still count; two turns later they are gone.
        assert!(s.now(1_010_001).sources >= 95);
        assert_eq!(s.now(1_020_001).sources, 0);
    }
}
