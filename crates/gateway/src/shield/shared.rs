//! What the shield shares with a fleet (docs/fleet.md), as plain data the request path
//! reads and writes without waiting: the requests each shared limit saw since the last sync,
//! the share of each limit this instance enforces, the blocks to publish, and the fleet's
//! flood state. The fleet's sync task (`crate::fleet`) is the only one that talks to Redis:
//! it takes the counts and the blocks out, and puts the shares and the fleet's state in.
//!
//! Without a fleet, `enabled` is false and none of it is touched but that flag.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A key of a shared rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum LimitKey {
    Prefix(IpNet),
    /// A path class (its index) for an address.
    Class(u16, IpAddr),
    Address(IpAddr),
}

impl LimitKey {
    /// The key as a Redis hash field.
    pub(crate) fn field(&self) -> String {
        match self {
            LimitKey::Prefix(n) => format!("p:{n}"),
            LimitKey::Class(c, a) => format!("c:{c}:{a}"),
            LimitKey::Address(a) => format!("a:{a}"),
        }
    }
}

/// How shared limits are enforced now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    /// Redis is reachable: each instance enforces its share of the fleet's traffic.
    Shared = 0,
    /// Redis is not: the last shares, never below limit ÷ live instances.
    Local,
    /// Redis is not: every instance enforces whole limits.
    Open,
    /// Redis is not: requests under a shared limit are refused.
    Closed,
}

/// A block to tell the fleet about, or one the fleet told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockNote {
    pub(crate) net: IpNet,
    /// How long from now (zero: an unblock).
    pub(crate) duration: Duration,
    pub(crate) reason: String,
}

const SHARDS: usize = 16;

/// The shield's side of the fleet.
#[derive(Debug)]
pub(crate) struct Shared {
    enabled: AtomicBool,
    per_address: AtomicBool,
    mode: AtomicU8,
    /// 1 ÷ live instances (f32 bits), the least share in `Local` mode.
    floor: AtomicU32,
    counts: [Mutex<HashMap<LimitKey, u32>>; SHARDS],
    shares: arc_swap::ArcSwap<HashMap<LimitKey, f32>>,
    outbox: Mutex<Vec<BlockNote>>,
    /// Another instance of the fleet is in a flood.
    pub(crate) fleet_flood: AtomicBool,
    /// Prefixes first seen here, to tell the fleet (bounded).
    new_prefixes: Mutex<Vec<IpNet>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            enabled: AtomicBool::new(false),
            per_address: AtomicBool::new(false),
            mode: AtomicU8::new(Mode::Shared as u8),
            floor: AtomicU32::new(1.0f32.to_bits()),
            counts: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            shares: arc_swap::ArcSwap::from_pointee(HashMap::new()),
            outbox: Mutex::new(Vec::new()),
            fleet_flood: AtomicBool::new(false),
            new_prefixes: Mutex::new(Vec::new()),
        }
    }
}

/// New prefixes kept for the fleet between two syncs at most.
const NEW_PREFIXES_MAX: usize = 4096;
/// Blocks kept for the fleet between two syncs at most.
const OUTBOX_MAX: usize = 4096;

impl Shared {
    /// This instance is part of a fleet (read at start).
    pub(crate) fn enable(&self, per_address: bool) {
        self.enabled.store(true, Relaxed);
        self.per_address.store(per_address, Relaxed);
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    pub(crate) fn per_address(&self) -> bool {
        self.enabled() && self.per_address.load(Relaxed)
    }

    fn shard(key: &LimitKey) -> usize {
        let h = std::hash::BuildHasher::hash_one(
            &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
            key,
        );
        (h as usize) % SHARDS
    }

    /// Counts one request under `key` and returns the share of the limit this instance
    /// enforces for it (1: all of it; 0: refuse).
    pub(crate) fn count(&self, key: LimitKey) -> f32 {
        if let Ok(mut m) = self.counts[Shared::shard(&key)].lock() {
            *m.entry(key).or_default() += 1;
        }
        self.share(&key)
    }

    /// The share of a limit this instance enforces for `key` now.
    pub(crate) fn share(&self, key: &LimitKey) -> f32 {
        let floor = f32::from_bits(self.floor.load(Relaxed));
        match self.mode() {
            Mode::Open => 1.0,
            Mode::Closed => 0.0,
            // A key the fleet has not counted yet: a prefix (many clients, where floods
            // come from) gets limit ÷ live instances until the next sync tells its share;
            // one client's key (an address, its path class) the whole limit, as DNS and
            // anycast keep a client at one point of presence.
            Mode::Shared => self.shares.load().get(key).copied().unwrap_or(match key {
                LimitKey::Prefix(_) => floor,
                _ => 1.0,
            }),
            Mode::Local => self.shares.load().get(key).copied().unwrap_or(floor).max(floor),
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        match self.mode.load(Relaxed) {
            1 => Mode::Local,
            2 => Mode::Open,
            3 => Mode::Closed,
            _ => Mode::Shared,
        }
    }

    /// The fleet's sync task: how limits are enforced now, and the least share.
    pub(crate) fn set_mode(&self, mode: Mode, live_instances: u32) {
        self.mode.store(mode as u8, Relaxed);
        self.floor.store((1.0 / live_instances.max(1) as f32).to_bits(), Relaxed);
    }

    /// The fleet's sync task: the requests counted since the last call.
    pub(crate) fn take_counts(&self) -> HashMap<LimitKey, u32> {
        let mut all = HashMap::new();
        for shard in &self.counts {
            if let Ok(mut m) = shard.lock() {
                for (k, n) in m.drain() {
                    *all.entry(k).or_default() += n;
                }
            }
        }
        all
    }

    /// The fleet's sync task: the shares to enforce (keys not in it: the whole limit).
    pub(crate) fn set_shares(&self, shares: HashMap<LimitKey, f32>) {
        self.shares.store(Arc::new(shares));
    }

    /// A block made here (an operator's, a flood signature's), to tell the fleet.
    pub(crate) fn publish_block(&self, note: BlockNote) {
        if !self.enabled() {
            return;
        }
        push_bounded(&self.outbox, note, OUTBOX_MAX);
    }

    /// A prefix seen here for the first time, to tell the fleet.
    pub(crate) fn publish_prefix(&self, net: IpNet) {
        if !self.enabled() {
            return;
        }
        push_bounded(&self.new_prefixes, net, NEW_PREFIXES_MAX);
    }

    /// Takes the blocks and prefixes to tell the fleet; they go back to be told on the next
    /// sync unless [`Outgoing::sent`] is called (a sync that fails, or is cancelled at any
    /// await, loses nothing).
    pub(crate) fn outgoing(&self) -> Outgoing<'_> {
        Outgoing { shared: self, blocks: take_all(&self.outbox), prefixes: take_all(&self.new_prefixes), sent: false }
    }
}

/// Blocks and prefixes on their way to the fleet (see [`Shared::outgoing`]).
pub(crate) struct Outgoing<'a> {
    shared: &'a Shared,
    pub(crate) blocks: Vec<BlockNote>,
    pub(crate) prefixes: Vec<IpNet>,
    sent: bool,
}

impl Outgoing<'_> {
    /// Redis has them.
    pub(crate) fn sent(mut self) {
        self.sent = true;
    }
}

impl Drop for Outgoing<'_> {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        // Older first, as they were made; the bounds still hold.
        requeue(&self.shared.outbox, std::mem::take(&mut self.blocks), OUTBOX_MAX);
        requeue(&self.shared.new_prefixes, std::mem::take(&mut self.prefixes), NEW_PREFIXES_MAX);
    }
}

/// Adds `item` to `slot` unless it holds `max` already.
fn push_bounded<T>(slot: &Mutex<Vec<T>>, item: T, max: usize) {
    if let Ok(mut v) = slot.lock() {
        if v.len() < max {
            v.push(item);
        }
    }
}

/// Everything `slot` holds, taken out.
fn take_all<T>(slot: &Mutex<Vec<T>>) -> Vec<T> {
    slot.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
}

/// Puts `older` back in front of what `slot` gathered meanwhile, keeping at most `max`.
fn requeue<T>(slot: &Mutex<Vec<T>>, older: Vec<T>, max: usize) {
    if let Ok(mut v) = slot.lock() {
        let newer = std::mem::replace(&mut *v, older);
        v.extend(newer);
        v.truncate(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_shares_and_modes() {
        let s = Shared::default();
        s.enable(false);
        let k = LimitKey::Prefix("10.0.0.0/24".parse().unwrap());
        assert_eq!(s.count(k), 1.0, "unknown, alone: the whole limit");
        s.count(k);
        assert_eq!(s.take_counts().get(&k), Some(&2));
        assert!(s.take_counts().is_empty());
        s.set_mode(Mode::Shared, 4);
        assert_eq!(s.share(&k), 0.25, "an unknown prefix among four instances: a quarter");
        let addr = LimitKey::Address("10.0.0.9".parse().unwrap());
        assert_eq!(s.share(&addr), 1.0, "an unknown address: the whole limit");
        s.set_shares(HashMap::from([(k, 0.25)]));
        assert_eq!(s.share(&k), 0.25);
        s.set_mode(Mode::Local, 2);
        assert_eq!(s.share(&k), 0.5, "never below limit ÷ live instances");
        let other = LimitKey::Address("10.0.0.1".parse().unwrap());
        assert_eq!(s.share(&other), 0.5);
        s.set_mode(Mode::Open, 2);
        assert_eq!(s.share(&k), 1.0);
        s.set_mode(Mode::Closed, 2);
        assert_eq!(s.share(&k), 0.0);
        assert_eq!(k.field(), "p:10.0.0.0/24");
    }

    #[test]
    fn blocks_not_sent_go_back_to_be_sent_again() {
        let s = Shared::default();
        s.enable(false);
        let note =
            |n: &str| BlockNote { net: n.parse().unwrap(), duration: Duration::from_secs(60), reason: "r".into() };
        s.publish_block(note("10.0.1.0/24"));
        s.publish_prefix("10.0.2.0/24".parse().unwrap());
        let out = s.outgoing();
        assert_eq!(out.blocks.len(), 1);
        s.publish_block(note("10.0.3.0/24"));
        drop(out); // the sync failed, or was cancelled
        let again = s.outgoing();
        assert_eq!(again.blocks, vec![note("10.0.1.0/24"), note("10.0.3.0/24")]);
        assert_eq!(again.prefixes.len(), 1);
        again.sent();
        assert!(s.outgoing().blocks.is_empty());
    }
}
