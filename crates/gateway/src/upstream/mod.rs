//! Origins and their pools per data center, keep-alive connections to them ([`pool`]),
//! origin choice, and the classification of origin failures.

pub mod pool;

use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One origin server of one site in one data center. Kept across reloads when the site,
/// data center and address stay the same, so its counters survive.
#[derive(Debug)]
pub struct Origin {
    pub authority: http::uri::Authority,
    pub datacenter: Arc<str>,
    pub stats: OriginStats,
    /// Idle keep-alive connections to this origin.
    pub conns: pool::ConnPool,
}

#[derive(Debug, Default)]
pub struct OriginStats {
    pub in_flight: AtomicU64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<OriginErrorEvent>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OriginErrorEvent {
    #[serde(with = "crate::util::rfc3339")]
    pub at: SystemTime,
    pub kind: &'static str,
}

impl Origin {
    pub fn new(authority: http::uri::Authority, datacenter: Arc<str>) -> Origin {
        Origin { authority, datacenter, stats: OriginStats::default(), conns: pool::ConnPool::default() }
    }

    pub fn record_error(&self, kind: ErrorKind) {
        self.stats.errors.fetch_add(1, Relaxed);
        if let Ok(mut last) = self.stats.last_error.lock() {
            *last = Some(OriginErrorEvent { at: SystemTime::now(), kind: kind.as_str() });
        }
    }
}

/// The origins of one site in one data center.
#[derive(Debug)]
pub struct Pool {
    pub datacenter: Arc<str>,
    pub origins: Vec<Arc<Origin>>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(datacenter: Arc<str>, origins: Vec<Arc<Origin>>) -> Pool {
        Pool { datacenter, origins, next: AtomicUsize::new(0) }
    }

    /// Round robin over the pool's origins.
    pub fn pick(&self) -> Option<&Arc<Origin>> {
        let n = self.origins.len();
        if n == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Relaxed) % n;
        self.origins.get(i)
    }
}

/// Chooses an origin from a site's pools (in failover order): returns the pool's index and
/// the origin. The core serves from the first pool; failover across pools builds on this.
pub fn choose(pools: &[Pool]) -> Option<(usize, &Arc<Origin>)> {
    pools.first().and_then(Pool::pick).map(|o| (0, o))
}

/// Why a request to an origin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP connect refused (nothing listening, process gone).
    ConnectRefused,
    /// TCP connect did not complete in time (black hole, dead network).
    ConnectTimeout,
    /// Other connect failure (unreachable, DNS).
    Connect,
    /// Connected, but no response headers within `timeouts.origin_response`.
    ResponseTimeout,
    /// The connection was reset or closed before a response.
    Reset,
    /// The origin's response was not valid HTTP.
    Protocol,
    /// The client's request body exceeded `limits.max_body_bytes`.
    BodyTooLarge,
    /// The client's request body failed (client went away mid-upload).
    ClientBody,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::ResponseTimeout => "response_timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Protocol => "protocol",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::ClientBody => "client_body",
        }
    }

    /// True when the failure is the origin's (counted against it), not the client's.
    pub fn is_origin_fault(self) -> bool {
        !matches!(self, ErrorKind::BodyTooLarge | ErrorKind::ClientBody)
    }

    /// Classifies a failed send.
    pub fn classify(err: &pool::SendError) -> ErrorKind {
        match err {
            pool::SendError::ConnectTimeout => ErrorKind::ConnectTimeout,
            pool::SendError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                ErrorKind::ConnectRefused
            }
            pool::SendError::Connect(_) => ErrorKind::Connect,
            pool::SendError::Http(e) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
                while let Some(s) = source {
                    if s.is::<crate::proxy::body::BodyTooLarge>() {
                        return ErrorKind::BodyTooLarge;
                    }
                    source = s.source();
                }
                if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
                    ErrorKind::Protocol
                } else if e.is_user() || e.is_body_write_aborted() {
                    ErrorKind::ClientBody
                } else {
                    ErrorKind::Reset
                }
            }
        }
    }
}
