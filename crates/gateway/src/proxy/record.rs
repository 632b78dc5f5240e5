//! The record of one request, and the guard of its end. It is made when the request arrives
//! and goes with it: held by the request's context while the request path runs, then by the
//! response body. Whenever it is dropped (the body sent, the response abandoned, or the
//! request future dropped at any `.await` because its client reset the stream or hung up)
//! it ends the request exactly once: the connection's in-flight count, the origin's
//! in-flight count (held by [`InFlight`](crate::upstream::InFlight)), the request's phase
//! count, the metrics and one access-log line (tracing target `access`).
//!
//! A request cancelled before it had a response is logged with status 499, as nginx does,
//! and the phase it was in; one whose response did not go out whole, with the status that
//! was sent and the phase `response_body`.

use super::conn::ConnState;
use crate::incident::signals::Ended;
use crate::incident::Outcome;
use crate::snapshot::SiteRt;
use crate::telemetry::{Phase, RequestPhase, Telemetry};
use crate::upstream::{http1::Conn, InFlight, Origin};
use std::sync::Arc;
use std::time::Instant;

/// Status logged for a request whose client went away before it was answered (nginx's).
pub(crate) const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Everything known about one request, and what it holds until it ends.
pub(crate) struct Record {
    pub(crate) started: Instant,
    conn: Arc<ConnState>,
    telemetry: Arc<Telemetry>,
    /// Where the request is now (counted per phase while it is there).
    pub(crate) phase: RequestPhase,
    /// The request's 1-based number on its connection.
    pub(crate) seq: u64,
    pub(crate) site: Option<Arc<SiteRt>>,
    pub(crate) method: http::Method,
    /// Path and query, kept only when access logging is on.
    pub(crate) target: Option<String>,
    /// The response's status; 0 until there is a response.
    pub(crate) status: u16,
    /// The pool index and origin that answered, if any.
    pub(crate) served_by: Option<(usize, Arc<Origin>)>,
    /// The origin's in-flight count, while the origin's body streams to this request's
    /// client (a body that goes into the cache is the fill's, which holds its count).
    pub(crate) at_origin: Option<InFlight>,
    pub(crate) bytes: u64,
    /// The origin's body failed (not the client's doing).
    pub(crate) origin_body_error: bool,
    /// The response body went out whole.
    pub(crate) body_complete: bool,
    /// The origin connection, when its response ended and it may carry another request:
    /// back to the origin's pool when the request ends.
    pub(crate) reusable: Option<Conn>,
    /// How it was answered, for its site's tally (the incident engine).
    pub(crate) outcome: Outcome,
    /// An unsafe request to one of the site's priority paths (a checkout).
    pub(crate) checkout: bool,
    /// It looked like a flood's (the shield's signature).
    pub(crate) suspicious: bool,
    /// Its client's prefix was first seen during the current surge.
    pub(crate) new_client: bool,
    /// Its X-Request-Id and trace.
    pub(crate) ids: super::trace::Ids,
}

impl Record {
    /// A request has arrived on `conn`: counted on the connection and in [`Phase::Route`].
    pub(crate) fn begin(
        telemetry: &Arc<Telemetry>,
        conn: Arc<ConnState>,
        method: http::Method,
        target: Option<String>,
        ids: super::trace::Ids,
    ) -> Box<Record> {
        let seq = conn.begin_request();
        Box::new(Record {
            started: Instant::now(),
            conn,
            telemetry: telemetry.clone(),
            phase: RequestPhase::counted(&telemetry.requests),
            seq,
            site: None,
            method,
            target,
            status: 0,
            served_by: None,
            at_origin: None,
            bytes: 0,
            origin_body_error: false,
            body_complete: false,
            reusable: None,
            outcome: Outcome::Local,
            checkout: false,
            suspicious: false,
            new_client: false,
            ids,
        })
    }

    /// The request is answered with `status`; what is left is sending the response.
    pub(crate) fn answered(&mut self, status: u16) {
        self.status = status;
        self.phase.enter(Phase::ResponseBody);
    }

    /// Whether the client went away before the request ended: no response yet, or one that
    /// did not go out whole although the origin's body was fine.
    fn cancelled(&self) -> bool {
        self.status == 0 || (!self.body_complete && !self.origin_body_error)
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let now = Instant::now(); // the one clock read at a request's end
        let elapsed = now.saturating_duration_since(self.started);
        let cancelled = self.cancelled().then(|| self.phase.get());
        let status = if self.status == 0 { CLIENT_CLOSED_REQUEST } else { self.status };
        if let Some(phase) = cancelled {
            self.telemetry.requests.cancelled(phase);
        }
        if let Some(site) = &self.site {
            let pool = self.served_by.as_ref().map(|s| s.0);
            site.metrics.count(pool, status);
            site.metrics.duration.observe(elapsed.as_secs_f64());
            site.tally.record(&Ended {
                outcome: self.outcome,
                pool: pool.map(|p| site.tally_pool.get(p).copied().unwrap_or(p)),
                status: self.status,
                cancelled: cancelled.is_some(),
                checkout: self.checkout,
                suspicious: self.suspicious,
                new_client: self.new_client,
            });
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
                route = self.site.as_ref().and_then(|s| s.route.as_deref()).unwrap_or("-"),
                method = %self.method,
                path = %target,
                status,
                datacenter = dc,
                origin = origin,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                bytes = self.bytes,
                complete = self.body_complete && !self.origin_body_error,
                cancelled = cancelled.map_or("-", Phase::as_str),
                request_id = self.ids.request_id.to_str().unwrap_or("-"),
                trace_id = self.ids.trace.as_ref().map_or("-", |t| t.trace_id()),
                span_id = self.ids.trace.as_ref().map_or("-", |t| t.span_id()),
            );
        }
        let now = tokio::time::Instant::from_std(now);
        if let (Some(conn), Some((_, o))) = (self.reusable.take(), &self.served_by) {
            o.conns.checkin(conn, now);
        }
        self.conn.request_done(now);
        // `at_origin` (the origin's in-flight count) and `phase` are released as the fields drop.
    }
}
