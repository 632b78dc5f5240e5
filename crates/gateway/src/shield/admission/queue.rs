//! Slots at a site's origins and the queue for them. Under the adaptive limit a request
//! takes a slot at once; over it, it waits in its priority's queue. A slot given back goes
//! straight to the oldest waiter of the most urgent priority (as HAProxy dequeues: first
//! come, first served within a priority class), never to a request that just arrived while
//! others wait, so a waiter cannot lose its turn to a later one.
//!
//! Everything is a guard: a [`Slot`] is handed on or given back when dropped, and a
//! waiter that is dropped (patience run out, or the request cancelled) leaves the queue and
//! its count.

use super::{Priority, SiteLoad};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

/// The waiters of each priority, oldest first.
#[derive(Debug, Default)]
pub(super) struct Queues {
    waiters: Mutex<[VecDeque<Waiter>; 3]>,
    /// Waiters by priority (read without the lock: most slots are given back with nobody
    /// waiting).
    pub(super) waiting: [AtomicU32; 3],
    next_ticket: AtomicU64,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    tx: oneshot::Sender<Slot>,
}

/// A slot at the site's origins; handed to the next waiter, or given back, on drop.
#[derive(Debug)]
pub(crate) struct Slot(Option<Arc<SiteLoad>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(load) = self.0.take() {
            load.release();
        }
    }
}

/// A request in a queue: counted there until dropped, and taken out of the queue then (it
/// got its slot, gave up, or was cancelled while it waited).
struct InQueue<'a> {
    load: &'a SiteLoad,
    priority: usize,
    ticket: u64,
}

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        let q = &self.load.queues;
        q.lock()[self.priority].retain(|w| w.ticket != self.ticket);
        q.waiting[self.priority].fetch_sub(1, Relaxed);
    }
}

impl Queues {
    /// The queues. A poisoned lock is taken over: the queues are consistent between any two
    /// statements that touch them.
    fn lock(&self) -> MutexGuard<'_, [VecDeque<Waiter>; 3]> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests waiting, in all priorities.
    pub(super) fn len(&self) -> u32 {
        self.waiting.iter().map(|w| w.load(Relaxed)).sum()
    }

    /// Whether requests of priority `p` or more urgent are waiting.
    fn any_at_or_above(&self, p: usize) -> bool {
        self.waiting[..=p.min(2)].iter().any(|w| w.load(Relaxed) > 0)
    }
}

impl SiteLoad {
    /// A slot at the origins for a request of `priority` if one is free now and nobody of
    /// its priority or a more urgent one waits; else [`SiteLoad::queue`] (kept apart so that
    /// the request path boxes only the rare wait).
    pub(crate) fn try_enter(self: &Arc<Self>, priority: Priority) -> Option<Slot> {
        if self.queues.any_at_or_above(priority as usize) {
            return None;
        }
        self.take_slot()
    }

    /// Waits in `priority`'s queue for a slot (after [`SiteLoad::try_enter`] found none),
    /// critical ones first and each priority in arrival order, up to `queue_timeout`
    /// (critical), a third of it (known) or not at all (the rest); None: shed.
    pub(crate) async fn queue(self: &Arc<Self>, priority: Priority, queue_timeout: Duration) -> Option<Slot> {
        let p = priority as usize;
        let patience = match priority {
            Priority::Critical => queue_timeout,
            Priority::Known => queue_timeout / 3,
            Priority::Other => Duration::ZERO,
        };
        if patience.is_zero() {
            self.shed.fetch_add(1, Relaxed);
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let in_queue = {
            let mut waiters = self.queues.lock();
            // A slot may have come free since `try_enter` looked (under the lock, so that no
            // slot given back now can miss this waiter).
            if !self.queues.any_at_or_above(p) {
                if let Some(slot) = self.take_slot() {
                    return Some(slot);
                }
            }
            let ticket = self.queues.next_ticket.fetch_add(1, Relaxed);
            waiters[p].push_back(Waiter { ticket, tx });
            self.queues.waiting[p].fetch_add(1, Relaxed);
            InQueue { load: self, priority: p, ticket }
        };
        let deadline = crate::clock::later(tokio::time::Instant::now(), patience);
        let slot = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(slot)) => Some(slot),
            _ => None,
        };
        drop(in_queue);
        if slot.is_none() {
            self.shed.fetch_add(1, Relaxed);
        }
        slot
    }

    /// A slot under the limit, if there is one.
    pub(super) fn take_slot(self: &Arc<Self>) -> Option<Slot> {
        let limit = self.effective_limit();
        let mut n = self.slots.load(Relaxed);
        loop {
            if n >= limit {
                return None;
            }
            match self.slots.compare_exchange_weak(n, n + 1, Relaxed, Relaxed) {
                Ok(_) => {
                    self.peak.fetch_max(n + 1, Relaxed);
                    return Some(Slot(Some(self.clone())));
                }
                Err(now) => n = now,
            }
        }
    }

    /// A slot given back: to the oldest waiter of the most urgent priority, else free.
    fn release(self: Arc<Self>) {
        if self.queues.len() > 0 && self.slots.load(Relaxed) <= self.effective_limit() {
            let mut waiters = self.queues.lock();
            for queue in waiters.iter_mut() {
                while let Some(w) = queue.pop_front() {
                    match w.tx.send(Slot(Some(self.clone()))) {
                        Ok(()) => return,               // the slot lives on in the waiter's hands
                        Err(mut dead) => dead.0 = None, // it gave up meanwhile: the next one
                    }
                }
            }
        }
        self.slots.fetch_sub(1, Relaxed);
    }

    /// After the limit grew: free slots go to waiters, oldest and most urgent first.
    pub(super) fn admit_waiting(self: &Arc<Self>) {
        while self.queues.len() > 0 {
            let Some(slot) = self.take_slot() else { return };
            let sent = {
                let mut waiters = self.queues.lock();
                let mut slot = Some(slot);
                'found: for queue in waiters.iter_mut() {
                    while let Some(w) = queue.pop_front() {
                        let Some(s) = slot.take() else { break 'found };
                        match w.tx.send(s) {
                            Ok(()) => break 'found,
                            Err(back) => slot = Some(back), // it gave up meanwhile: the next one
                        }
                    }
                }
                slot
            };
            // Nobody was left to take it (they gave up meanwhile): give it back.
            if let Some(mut unused) = sent {
                unused.0 = None;
                self.slots.fetch_sub(1, Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::task::JoinHandle;

    /// A load with room for `limit` requests, all taken.
    fn full(limit: u32) -> (Arc<SiteLoad>, Vec<Slot>) {
        let s = Arc::new(SiteLoad::default());
        s.limit.store(limit, Relaxed);
        let held = (0..limit).map(|_| s.take_slot().unwrap()).collect();
        (s, held)
    }

    /// Queues a request of `p` and waits until it is in the queue.
    async fn waiter(s: &Arc<SiteLoad>, p: Priority) -> JoinHandle<Option<Slot>> {
        let before = s.queues.len();
        let (s2, t) = (s.clone(), Duration::from_secs(60));
        let task = tokio::spawn(async move { s2.queue(p, t).await });
        while s.queues.len() == before {
            tokio::task::yield_now().await;
        }
        task
    }

    /// Lets the spawned waiters run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_given_back_goes_to_the_oldest_waiter_of_the_most_urgent_priority() {
        let (s, mut held) = full(2);
        let known = waiter(&s, Priority::Known).await;
        let a = waiter(&s, Priority::Critical).await;
        let b = waiter(&s, Priority::Critical).await;
        assert!(s.try_enter(Priority::Critical).is_none(), "an arrival does not pass the queue");
        held.pop();
        settle().await;
        assert!(a.is_finished() && !b.is_finished() && !known.is_finished(), "critical first, oldest first");
        let a = a.await.unwrap().expect("a has the slot");
        held.pop();
        let b = b.await.unwrap().expect("then b");
        drop(a);
        let k = known.await.unwrap().expect("then the known client");
        assert_eq!((s.queues.len(), s.slots.load(Relaxed)), (0, 2), "two slots held: b's and k's");
        drop((b, k));
        assert_eq!(s.slots.load(Relaxed), 0);
        assert!(s.try_enter(Priority::Other).is_some(), "nobody waits: a slot at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_the_queue_and_its_turn_passes_on() {
        let (s, mut held) = full(1);
        let a = waiter(&s, Priority::Critical).await;
        let b = waiter(&s, Priority::Critical).await;
        a.abort();
        let _ = a.await;
        assert_eq!(s.queues.len(), 1, "counted out when cancelled");
        assert_eq!(s.queues.lock()[0].len(), 1, "and out of the queue");
        held.pop();
        let b = b.await.unwrap().expect("the slot passes to the next waiter");
        drop(b);
        assert_eq!((s.slots.load(Relaxed), s.queues.len()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_whose_patience_runs_out_is_shed_and_counted_out() {
        let (s, held) = full(1);
        let (s2, t) = (s.clone(), Duration::from_secs(3));
        let known = tokio::spawn(async move { s2.queue(Priority::Known, t).await }); // a second
        assert!(known.await.unwrap().is_none());
        assert_eq!((s.queues.len(), s.view().shed_total), (0, 1));
        drop(held);
        assert_eq!(s.slots.load(Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_operators_cap_holds_whatever_the_adaptive_limit_says() {
        let s = Arc::new(SiteLoad::default());
        s.set_cap(2);
        let held: Vec<Slot> = (0..2).map(|_| s.try_enter(Priority::Critical).unwrap()).collect();
        assert!(s.try_enter(Priority::Critical).is_none(), "capped at 2 under an adaptive limit of 100000");
        let w = waiter(&s, Priority::Critical).await;
        s.set_cap(3); // a reload raises it: the waiter gets the new room at once
        let got = w.await.unwrap();
        assert!(got.is_some());
        assert_eq!((s.slots.load(Relaxed), s.view().concurrency_limit), (3, 3));
        drop((held, got));
        assert_eq!(s.slots.load(Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_limit_grows_waiters_get_the_new_slots() {
        let (s, held) = full(4);
        let waiters = [waiter(&s, Priority::Critical).await, waiter(&s, Priority::Critical).await];
        // Origins are not saturated: the limit grows by an eighth (at least one) per tick.
        s.tick(&crate::config::shield::Admission::default(), Duration::ZERO, 1);
        settle().await;
        assert_eq!(s.view().concurrency_limit, 5);
        assert!(waiters[0].is_finished() && !waiters[1].is_finished(), "one new slot, to the oldest");
        s.tick(&crate::config::shield::Admission::default(), Duration::ZERO, 2);
        for w in waiters {
            assert!(w.await.unwrap().is_some());
        }
        drop(held);
        assert_eq!(s.slots.load(Relaxed), 0, "every slot given back");
    }
}
