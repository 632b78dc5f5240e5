//! When a request may be sent again, to another origin: the policy (RFC 9110 §9.2.2
//! idempotency; never a second POST unless it carries an Idempotency-Key or nothing of it
//! was sent) and the budget that keeps retries from becoming a storm.

use http::Method;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How a try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Nothing of the request reached the origin (connect failed; a pooled connection was
    /// closed before the request was written).
    NotSent,
    /// Sent, then reset or timed out before response headers.
    BeforeResponse,
    /// Answered with this status.
    Status(u16),
}

/// The request field that makes a POST or PATCH safe to send twice.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Methods safe to send twice, and POST/PATCH that carry an Idempotency-Key.
pub(crate) fn idempotent(method: &Method, has_idempotency_key: bool) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
        || has_idempotency_key
}

/// Whether a failed try may be tried again. `replayable`: the request body can be sent
/// again (none, or buffered).
pub(crate) fn should_retry(failure: Failure, idempotent: bool, replayable: bool, on_5xx: bool) -> bool {
    match failure {
        Failure::NotSent => true,
        Failure::BeforeResponse => idempotent && replayable,
        // 500 too: a broken origin's answer, which another origin may not share.
        Failure::Status(500 | 502..=504) => on_5xx && idempotent && replayable,
        Failure::Status(_) => false,
    }
}

/// Retries as a share of requests over a 10 s window, with a floor per second
/// (as Linkerd's and Envoy's budgets).
#[derive(Debug, Default)]
pub(crate) struct Budget {
    window: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

const WINDOW_MS: u64 = 10_000;

impl Budget {
    fn roll(&self, now: u64) {
        let w = now / WINDOW_MS;
        if self.window.swap(w, Relaxed) != w {
            self.requests.store(0, Relaxed);
            self.retries.store(0, Relaxed);
        }
    }

    pub(crate) fn request(&self, now: u64) {
        self.roll(now);
        self.requests.fetch_add(1, Relaxed);
    }

    /// Takes a retry from the budget if there is one left.
    pub(crate) fn try_retry(&self, now: u64, ratio: f64, min_per_second: u32) -> bool {
        self.roll(now);
        let allowed =
            (self.requests.load(Relaxed) as f64 * ratio) as u64 + u64::from(min_per_second) * (WINDOW_MS / 1000);
        if self.retries.fetch_add(1, Relaxed) < allowed {
            true
        } else {
            self.retries.fetch_sub(1, Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_a_second_post_once_sent() {
        assert!(idempotent(&Method::GET, false));
        assert!(idempotent(&Method::PUT, false));
        assert!(!idempotent(&Method::POST, false));
        assert!(idempotent(&Method::POST, true));
        assert!(should_retry(Failure::NotSent, false, false, true), "nothing was sent: safe for any method");
        assert!(!should_retry(Failure::BeforeResponse, false, true, true), "a POST that reached the origin");
        assert!(should_retry(Failure::BeforeResponse, true, true, true));
        assert!(!should_retry(Failure::BeforeResponse, true, false, true), "body already streamed");
        assert!(should_retry(Failure::Status(503), true, true, true));
        assert!(!should_retry(Failure::Status(503), true, true, false));
        assert!(should_retry(Failure::Status(500), true, true, true));
        assert!(!should_retry(Failure::Status(501), true, true, true), "not implemented: the same everywhere");
    }

    #[test]
    fn budget_limits_retries() {
        let b = Budget::default();
        for _ in 0..1000 {
            b.request(5);
        }
        // 20% of 1000 + 1/s floor over 10 s = 210.
        let granted = (0..500).filter(|_| b.try_retry(5, 0.2, 1)).count();
        assert_eq!(granted, 210);
        // A new window starts fresh.
        assert!(b.try_retry(10_005, 0.2, 1));
    }
}
