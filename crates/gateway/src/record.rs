//! The end of a request: what it did, counted in metrics and written as one access-log line
//! (tracing target `access`). Runs when the response body is dropped, so bytes and duration
//! cover the whole response.

use crate::listen::ConnState;
use crate::snapshot::SiteRt;
use crate::upstream::Origin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Everything known about a request once its response is under way.
pub struct Finished {
    pub started: Instant,
    pub conn: Arc<ConnState>,
    pub site: Option<Arc<SiteRt>>,
    pub method: http::Method,
    /// Path and query, kept only when access logging is on.
    pub target: Option<String>,
    pub status: u16,
    /// The pool index and origin that answered, if any.
    pub served_by: Option<(usize, Arc<Origin>)>,
    pub bytes: u64,
    pub origin_body_error: bool,
}

impl Finished {
    /// Called exactly once, from the response body's drop, at `now`.
    pub fn complete(self, body_complete: bool, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if let Some((_, origin)) = &self.served_by {
            origin.stats.in_flight.fetch_sub(1, Relaxed);
        }
        if let Some(site) = &self.site {
            site.metrics.count(self.served_by.as_ref().map(|s| s.0), self.status);
            site.metrics.duration.observe(elapsed.as_secs_f64());
        }
        if let Some(target) = &self.target {
            let (dc, origin) = match &self.served_by {
                Some((_, o)) => (&*o.datacenter, o.authority.as_str()),
                None => ("-", "-"),
            };
            tracing::info!(
                target: "access",
                client = %self.conn.peer.ip(),
                site = self.site.as_ref().map_or("-", |s| &*s.name),
                method = %self.method,
                path = %target,
                status = self.status,
                datacenter = dc,
                origin = origin,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                bytes = self.bytes,
                complete = body_complete && !self.origin_body_error,
            );
        }
        self.conn.request_done(tokio::time::Instant::from_std(now));
    }
}
