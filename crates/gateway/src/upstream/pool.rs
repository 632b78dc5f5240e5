//! Keep-alive connections to one origin ([`http1::Conn`]): each origin owns its idle list,
//! a connection is handed back by the response body when it ends (see `proxy::body`), and
//! a request that could not be written on a pooled connection (closed by the origin
//! meanwhile) is sent on a fresh one, which is always safe. So is one the origin closed
//! unanswered after it was written (the keep-alive race), when the request may go twice.
//! A connection is not reused past the idle time the origin announced (`Keep-Alive:
//! timeout=N`), so that the race is rare to begin with.

use super::http1::{Conn, OriginBody, Outgoing, SendError};
use super::Origin;
use crate::body::ReqBody;
use crate::telemetry::{Phase, RequestPhase};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Idle connections kept per origin at most.
const MAX_IDLE: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct ConnPool {
    idle: Mutex<Vec<(Conn, Instant)>>,
}

impl ConnPool {
    /// Takes a usable idle connection, dropping closed and expired ones.
    fn checkout(&self, max_idle_age: Duration, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((mut conn, since)) = idle.pop() {
            if now.saturating_duration_since(since) < conn.idle_limit(max_idle_age) && conn.is_reusable_idle() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after its response body ended (`now`).
    pub(crate) fn checkin(&self, conn: Conn, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push((conn, now));
            }
        }
    }

    /// Drops every idle connection (the origin's TLS settings changed).
    pub(crate) fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Sends a request to `origin` (whose pool this is) on a pooled or new connection,
    /// answered by `timing.deadline`. The response body holds the connection; it comes
    /// back here when the body has been read to its end.
    pub(crate) async fn send(
        &self,
        origin: &Origin,
        mut msg: Outgoing<'_>,
        timing: Timing,
        phase: &RequestPhase,
    ) -> Result<http::Response<OriginBody>, SendError> {
        if let Some(conn) = self.checkout(timing.max_idle_age, timing.now) {
            let (head, forwarding, idempotent) = (msg.head, msg.forwarding, msg.idempotent);
            // A request that may go twice, with no body or a buffered one, is sent again on a
            // new connection if the origin closes this one without a word: it was closing
            // it, idle, as the request went out (as Go's and nginx's clients do).
            let again = if idempotent { msg.body.replay() } else { None };
            match conn.send(msg, timing.deadline, phase).await {
                // Not written: the pooled connection was closed under us; use a new one.
                Err(SendError::NotSent { body, .. }) => msg = Outgoing { head, body, forwarding, idempotent },
                Err(SendError::Unanswered) if again.is_some() => {
                    origin.stats.resent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(origin = %origin.authority, "a reused connection closed unanswered; sent again on a new one");
                    let body = again.unwrap_or_else(ReqBody::empty);
                    msg = Outgoing { head, body, forwarding, idempotent };
                }
                done => return done,
            }
        }
        // Boxed: connecting is the rare case, and its futures would otherwise make every
        // request's future larger.
        Box::pin(send_on_new(origin, msg, timing, phase)).await
    }
}

/// When a try must be done, and how long its parts may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// A new connection must be up within this (and the deadline).
    pub(crate) connect: Duration,
    /// Pooled connections idle longer than this are not used.
    pub(crate) max_idle_age: Duration,
    pub(crate) now: Instant,
    /// The response head must have arrived by then.
    pub(crate) deadline: Instant,
}

/// Sends a request on a new connection.
async fn send_on_new(
    origin: &Origin,
    msg: Outgoing<'_>,
    timing: Timing,
    phase: &RequestPhase,
) -> Result<http::Response<OriginBody>, SendError> {
    phase.enter(Phase::Connect);
    let connect_timeout = timing.connect.min(timing.deadline.saturating_duration_since(timing.now));
    match connect(origin, connect_timeout).await {
        Ok(conn) => conn.send(msg, timing.deadline, phase).await,
        Err(kind) => Err(SendError::NotSent { kind, body: msg.body }),
    }
}

/// Opens a connection to `origin` within `timeout` (with its TLS, if it has any).
pub(crate) async fn connect(origin: &Origin, timeout: Duration) -> Result<Conn, super::ErrorKind> {
    // (An owned Arc, not arc-swap's guard, across the awaits of the handshake.)
    let tls = origin.tls.load_full();
    let stream = super::stream::open(origin.addr, tls.as_deref(), &origin.tls_notes, timeout).await?;
    Ok(Conn::new(stream))
}
