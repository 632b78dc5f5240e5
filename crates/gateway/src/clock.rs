//! A monotonic millisecond clock for state that lives in atomics (ejections, slow start),
//! and the wall clock's Unix time. Decisions take `now` as an argument, so tests pass any
//! time they like.

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at + d`, or a year after `at` when a configured duration is too large to add.
pub(crate) fn later(at: tokio::time::Instant, d: std::time::Duration) -> tokio::time::Instant {
    at.checked_add(d).unwrap_or_else(|| at + std::time::Duration::from_secs(365 * 24 * 3600))
}

/// Wall-clock seconds since the Unix epoch (for signed cookies and tokens).
pub(crate) fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// Wall-clock milliseconds since the Unix epoch (for events and status).
pub(crate) fn unix_ms() -> u64 {
    to_unix_ms(std::time::SystemTime::now())
}

/// A wall-clock time as milliseconds since the Unix epoch (0 before it).
pub(crate) fn to_unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the process's clock epoch; never 0 (0 means "never" in state).
pub(crate) fn now_ms() -> u64 {
    ms(Instant::now())
}

/// The clock's milliseconds for an instant already read (saves a clock read).
pub(crate) fn ms(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64 + 1
}
