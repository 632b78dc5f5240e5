//! What the request path knows about the client connection a request came on, and the
//! count of its requests in flight that the listener's idle watchdog reads. Created by the
//! listener for each connection; a request counts itself in through its
//! [`Record`](super::record::Record), which counts it out when it is dropped, however the
//! request ended.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::Instant;

/// One client connection, as the request path and the watchdog see it.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) peer: SocketAddr,
    /// The peer's address, formatted for the forwarding headers.
    pub(crate) client: super::headers::ClientAddr,
    pub(crate) https: bool,
    /// The TLS server name the client asked for, lowercase.
    pub(crate) sni: Option<String>,
    born: Instant,
    seq: AtomicU64,
    in_flight: AtomicU32,
    /// Milliseconds after `born` when the last request finished.
    last_done_ms: AtomicU64,
    /// The connection is to close once its current request is answered.
    closing: AtomicBool,
    /// The gateway is draining: the next response is the last (`Connection: close`), and
    /// the connection closes sooner when idle ([`DRAIN_IDLE`]).
    draining: AtomicBool,
}

/// How long a connection may sit idle while the gateway drains (after a request, or before
/// its first). An idle HTTP/1.1 keep-alive connection is not closed the moment a drain
/// begins: a request its client sent in that instant would be lost. It is given this long
/// for a next request, which is answered with `Connection: close` (as HAProxy's
/// `idle-close-on-response`).
pub(crate) const DRAIN_IDLE: Duration = Duration::from_secs(1);

impl ConnState {
    pub(crate) fn new(peer: SocketAddr, https: bool, sni: Option<String>) -> ConnState {
        ConnState {
            peer,
            client: super::headers::ClientAddr::new(peer.ip()),
            https,
            sni,
            born: Instant::now(),
            seq: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            last_done_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Relaxed)
    }

    /// The connection closes once its current request is answered.
    pub(crate) fn close_after_this(&self) {
        self.closing.store(true, Relaxed);
    }

    /// The gateway drains: the next answer closes the connection, and idleness is
    /// [`DRAIN_IDLE`] at most.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Relaxed);
    }

    /// Whether the connection may be kept open after its current answer.
    pub(crate) fn keeps_alive(&self) -> bool {
        !self.closing.load(Relaxed) && !self.draining.load(Relaxed)
    }

    /// Whether a request has arrived on the connection yet.
    pub(crate) fn has_requests(&self) -> bool {
        self.seq.load(Relaxed) > 0
    }

    /// Marks a request as started; returns its 1-based sequence number on the connection.
    /// Only [`Record::begin`](super::record::Record::begin) calls it, and the record's drop
    /// calls [`ConnState::request_done`].
    pub(super) fn begin_request(&self) -> u64 {
        self.in_flight.fetch_add(1, Relaxed);
        self.seq.fetch_add(1, Relaxed) + 1
    }

    /// Marks a request as finished (answered, or dropped) at `now`.
    pub(super) fn request_done(&self, now: Instant) {
        self.last_done_ms.store(now.saturating_duration_since(self.born).as_millis() as u64, Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// When the connection expires if nothing happens: `first_request` after it opened until
    /// a first request arrives, then `idle` after the last request finished. None while a
    /// request is in flight.
    pub(crate) fn deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        let (first_request, idle) = if self.draining.load(Relaxed) {
            (first_request.min(DRAIN_IDLE), idle.min(DRAIN_IDLE))
        } else {
            (first_request, idle)
        };
        if self.seq.load(Relaxed) == 0 {
            return Some(self.born + first_request);
        }
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        Some(self.born + Duration::from_millis(self.last_done_ms.load(Relaxed)) + idle)
    }
}
