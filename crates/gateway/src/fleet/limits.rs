//! Fleet-wide rate limits by summed windows: each instance writes, for each key it saw, how
//! many requests it counted in the current one-second window (an absolute count per
//! instance and window, so a retried write never counts twice, and counts of an old window
//! never land in a new one), reads the other live instances' counts for the same keys, and
//! enforces the share of the limit that its own traffic is of the fleet's:
//! `share = mine / fleet`, over the current window and the part of the previous one that
//! is still within the last second.
//!
//! Every instance then lets through `limit × share` of the key's requests, which sum to the
//! limit whatever the spread. Until the first sync after a key appears, a prefix is enforced
//! at `limit ÷ live instances` (never more than the limit in all); shares lag the traffic by
//! one sync interval, so a shift of traffic between instances overshoots by at most
//! `limit × sync_interval` per shift. The bounds, measured, are in docs/fleet.md.

use crate::shield::shared::LimitKey;
use std::collections::{HashMap, HashSet};

/// One window of counts (milliseconds).
pub(crate) const WINDOW_MS: u64 = 1000;

/// This instance's counts, by window.
#[derive(Debug, Default)]
pub(crate) struct Windows {
    /// The current window's id and counts, and the previous window's.
    current: (u64, HashMap<LimitKey, u64>),
    previous: (u64, HashMap<LimitKey, u64>),
    /// Keys of the current window whose count Redis does not have yet (a sync that failed
    /// or was cancelled leaves them to the next).
    unwritten: HashSet<LimitKey>,
}

impl Windows {
    /// Adds the requests counted since the last sync, at `now_ms`; returns the current
    /// window's id and the keys whose count Redis does not have yet, with their counts (to
    /// write; [`Windows::written`] once they are).
    pub(crate) fn add(&mut self, counts: HashMap<LimitKey, u32>, now_ms: u64) -> (u64, Vec<(LimitKey, u64)>) {
        let w = now_ms / WINDOW_MS;
        if self.current.0 != w {
            let old = std::mem::take(&mut self.current);
            self.previous = if old.0 + 1 == w { old } else { (w.saturating_sub(1), HashMap::new()) };
            self.current.0 = w;
            self.unwritten.clear();
        }
        for (k, n) in counts {
            *self.current.1.entry(k).or_default() += u64::from(n);
            self.unwritten.insert(k);
        }
        let changed = self.unwritten.iter().map(|k| (*k, self.current.1.get(k).copied().unwrap_or(0))).collect();
        (w, changed)
    }

    /// Redis has the counts [`Windows::add`] returned.
    pub(crate) fn written(&mut self) {
        self.unwritten.clear();
    }

    /// The keys this instance enforces now: those it saw in this window or the previous.
    pub(crate) fn keys(&self) -> Vec<LimitKey> {
        let mut keys: Vec<LimitKey> = self.current.1.keys().chain(self.previous.1.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The shares to enforce, given the other instances' counts for `keys` in the current
    /// window (`others_now`) and the previous (`others_before`), at `now_ms`: one for every
    /// key this instance saw (1 where no other instance did).
    pub(crate) fn shares(
        &self,
        keys: &[LimitKey],
        others_now: &HashMap<LimitKey, u64>,
        others_before: &HashMap<LimitKey, u64>,
        now_ms: u64,
    ) -> HashMap<LimitKey, f32> {
        // The previous window counts for what of it is still within the last second.
        let elapsed = (now_ms % WINDOW_MS) as f64 / WINDOW_MS as f64;
        let weight = 1.0 - elapsed;
        let mut out = HashMap::new();
        for k in keys {
            let mine_now = self.current.1.get(k).copied().unwrap_or(0) as f64;
            let mine_before = self.previous.1.get(k).copied().unwrap_or(0) as f64;
            let mine = mine_now + weight * mine_before;
            let others = others_now.get(k).copied().unwrap_or(0) as f64
                + weight * others_before.get(k).copied().unwrap_or(0) as f64;
            let share = if others <= 0.0 { 1.0 } else { (mine / (mine + others)) as f32 };
            out.insert(*k, share.max(0.001));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> LimitKey {
        LimitKey::Prefix(n.parse().unwrap())
    }

    #[test]
    fn the_share_is_this_instances_part_of_the_fleets_traffic() {
        let a = key("10.0.0.0/24");
        let mut w = Windows::default();
        // 200 requests here in the current window, 400 at the others: a third.
        let (id, changed) = w.add(HashMap::from([(a, 200)]), 5_000);
        assert_eq!((id, changed), (5, vec![(a, 200)]));
        let shares = w.shares(&w.keys(), &HashMap::from([(a, 400)]), &HashMap::new(), 5_000);
        assert!((shares[&a] - 1.0 / 3.0).abs() < 0.001, "{shares:?}");
        // Nobody else: the whole limit.
        assert_eq!(w.shares(&w.keys(), &HashMap::new(), &HashMap::new(), 5_000)[&a], 1.0);
        // Uneven: 500 here, 50 and 50 elsewhere.
        let mut w = Windows::default();
        w.add(HashMap::from([(a, 500)]), 7_000);
        let shares = w.shares(&w.keys(), &HashMap::from([(a, 100)]), &HashMap::new(), 7_000);
        assert!((shares[&a] - 500.0 / 600.0).abs() < 0.001);
    }

    #[test]
    fn counts_a_failed_sync_did_not_write_are_written_by_the_next() {
        let (a, b) = (key("10.0.0.0/24"), key("10.0.1.0/24"));
        let mut w = Windows::default();
        w.add(HashMap::from([(a, 10)]), 3_100); // this sync fails: not written
        let (_, mut changed) = w.add(HashMap::from([(b, 5)]), 3_200);
        changed.sort_unstable();
        assert_eq!(changed, vec![(a, 10), (b, 5)], "a's count goes again, whole");
        w.written();
        let (_, changed) = w.add(HashMap::from([(b, 1)]), 3_300);
        assert_eq!(changed, vec![(b, 6)], "once written, only what changed");
    }

    #[test]
    fn windows_roll_and_old_counts_never_land_in_a_new_window() {
        let a = key("10.0.0.0/24");
        let mut w = Windows::default();
        w.add(HashMap::from([(a, 10)]), 1_100);
        w.add(HashMap::from([(a, 5)]), 1_900);
        let (id, changed) = w.add(HashMap::from([(a, 1)]), 2_100);
        assert_eq!((id, changed), (2, vec![(a, 1)]), "a new window counts from zero");
        // At 2.5 s half of the previous window still counts: 1 + 15/2 here.
        let shares = w.shares(&[a], &HashMap::from([(a, 1)]), &HashMap::from([(a, 15)]), 2_500);
        assert!((shares[&a] - 0.5).abs() < 0.001);
        // After a gap (a partition) the previous window is empty, not the old one.
        w.add(HashMap::from([(a, 3)]), 9_000);
        assert_eq!(w.keys(), vec![a]);
        let shares = w.shares(&[a], &HashMap::from([(a, 3)]), &HashMap::new(), 9_000);
        assert!((shares[&a] - 0.5).abs() < 0.001);
    }
}
