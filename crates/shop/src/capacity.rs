//! An origin's capacity: requests per second, served in arrival order. A request that would
//! wait longer than the queue limit is refused (the caller answers 503), as an overloaded
//! real origin does after its accept queue fills.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) struct Capacity {
    interval: Duration,
    queue_limit: Duration,
    /// When the next request may start.
    next: Mutex<Option<Instant>>,
}

impl Capacity {
    pub(crate) fn new(rps: u32, queue_limit: Duration) -> Capacity {
        Capacity { interval: Duration::from_secs(1) / rps.max(1), queue_limit, next: Mutex::new(None) }
    }

    /// Reserves a slot; None when the queue is longer than the limit.
    pub(crate) fn reserve(&self, now: Instant) -> Option<Instant> {
        let mut next = self.next.lock().ok()?;
        let start = next.map_or(now, |n| n.max(now));
        if start.duration_since(now) > self.queue_limit {
            return None;
        }
        *next = Some(start + self.interval);
        Some(start)
    }

    /// Waits for a slot; false when refused.
    pub(crate) async fn admit(&self) -> bool {
        match self.reserve(Instant::now()) {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn queues_then_refuses() {
        let c = Capacity::new(10, Duration::from_millis(250));
        let now = Instant::now();
        let slots: Vec<_> = (0..5).map(|_| c.reserve(now)).collect();
        assert_eq!(slots[0], Some(now));
        assert_eq!(slots[1], Some(now + Duration::from_millis(100)));
        assert_eq!(slots[2], Some(now + Duration::from_millis(200)));
        assert_eq!(slots[3], None, "300 ms of queue is over the 250 ms limit");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.reserve(Instant::now()), Some(Instant::now()));
    }
}
