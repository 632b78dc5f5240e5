//! Bounded, sharded tables of small per-client state (an address's rate-limit cells and
//! connection count, a prefix's signature window).
//!
//! Written here rather than taken from governor's keyed store or dashmap because of the
//! memory bound the shield promises: one million source addresses in at most 64 MiB. A
//! generic map keyed by `IpAddr` with an 8-byte cell per limiter costs about 70 MiB per
//! limiter at that size; here an entry is a 64-bit keyed hash of the address (SipHash with a
//! random key, so an attacker cannot aim collisions) and all of the address's state in
//! 16 bytes, 24 bytes with the key. Capacity is capped; idle entries are swept.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 64;

/// The keys are already SipHash outputs: hashing them again would be wasted work.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

pub(crate) struct Table<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    cap_per_shard: usize,
    keys: std::hash::RandomState,
}

impl<V> Table<V> {
    /// A table holding at most about `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Table<V> {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Table { shards, cap_per_shard: capacity.div_ceil(SHARDS).max(1), keys: std::hash::RandomState::new() }
    }

    /// The table's key for `k`.
    pub(crate) fn key<K: Hash>(&self, k: &K) -> u64 {
        self.keys.hash_one(k)
    }

    fn shard(&self, key: u64) -> &Mutex<Shard<V>> {
        // The low bits pick the bucket inside a shard; the high bits pick the shard.
        &self.shards[(key >> 58) as usize % SHARDS]
    }

    /// Runs `f` on the entry for `key`, creating it with `init` when absent. None when the
    /// entry is absent and the table is full.
    pub(crate) fn with<R>(&self, key: u64, init: impl FnOnce() -> V, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut shard = self.shard(key).lock().ok()?;
        if let Some(v) = shard.get_mut(&key) {
            return Some(f(v));
        }
        if shard.len() >= self.cap_per_shard {
            return None;
        }
        let v = shard.entry(key).or_insert_with(init);
        Some(f(v))
    }

    /// Runs `f` on the entry for `key` if there is one.
    pub(crate) fn get<R>(&self, key: u64, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut shard = self.shard(key).lock().ok()?;
        shard.get_mut(&key).map(f)
    }

    /// Keeps the entries for which `keep` is true; gives memory back when a shard shrank a lot.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&mut V) -> bool) {
        for shard in self.shards.iter() {
            let Ok(mut s) = shard.lock() else { continue };
            s.retain(|_, v| keep(v));
            if s.capacity() > 64 && s.len() < s.capacity() / 4 {
                let keep = s.len() * 2;
                s.shrink_to(keep);
            }
        }
    }

    /// Visits every entry (a shard locked at a time).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&V)) {
        for shard in self.shards.iter() {
            if let Ok(s) = shard.lock() {
                s.values().for_each(&mut f);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map_or(0, |s| s.len())).sum()
    }

    /// Bytes the table's buckets take (key, value and hashbrown's control byte per bucket).
    pub(crate) fn bytes(&self) -> usize {
        let per = std::mem::size_of::<(u64, V)>() + 1;
        self.shards.iter().map(|s| s.lock().map_or(0, |s| s.capacity() * per)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_swept() {
        let t: Table<u32> = Table::new(640);
        let mut stored = 0;
        for i in 0..10_000u32 {
            if t.with(t.key(&i), || i, |_| ()).is_some() {
                stored += 1;
            }
        }
        assert!(stored <= 640 && stored > 300, "{stored}");
        assert_eq!(t.len(), stored);
        t.retain(|v| *v % 2 == 0);
        assert!(t.len() < stored);
        let mut kept = 0;
        t.for_each(|v| {
            assert_eq!(v % 2, 0);
            kept += 1;
        });
        assert_eq!(kept, t.len());
    }
}
