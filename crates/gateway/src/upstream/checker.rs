//! One active health check of an origin: a GET of the site's health path on a fresh
//! connection (so that a check never hides behind a pooled connection). The schedule, one
//! task per origin, is the gateway's (`gateway::checkers`).
//!
//! An answer in the expected range passes, and so do 503 and 429: the origin is alive but
//! busy, which is adaptive admission's to handle, not failover's (taking an overloaded
//! origin out pours its load onto the others). A check that times out waiting for its
//! answer is failed at once (failover must not
//! wait), but the exchange goes on for a while in a task of its own: an answer that still
//! comes says the origin is slow, not gone, and is recorded
//! ([`OriginStats::late_answer_ms`](super::OriginStats)) for the incident engine to tell a
//! slow data center from a black hole.

use super::http1::Outgoing;
use super::{ErrorKind, Origin};
use crate::body::ReqBody;
use crate::telemetry::RequestPhase;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How long a timed-out check goes on waiting for a late answer.
const LATE_LOOK: Duration = Duration::from_secs(5);

/// One check: connect, GET, status in the expected range, all within the timeout. Err: how
/// it failed.
pub(crate) async fn check(o: &Arc<Origin>, host: &str, cfg: &crate::config::Health) -> Result<(), ErrorKind> {
    let started = tokio::time::Instant::now();
    let timeout = cfg.timeout.get();
    let Ok(req) = http::Request::get(cfg.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "holdfast-health-check")
        .header(http::header::CONNECTION, "close")
        .body(ReqBody::empty())
    else {
        return Err(ErrorKind::Protocol);
    };
    let connected = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (origin, flag) = (o.clone(), connected.clone());
    let expect = cfg.expect_status;
    // The exchange, in a task that outlives the check when the answer is late.
    tokio::spawn(async move {
        let result = async {
            let conn = super::pool::connect(&origin, timeout).await?;
            flag.store(true, Relaxed);
            let (head, body) = req.into_parts();
            let msg = Outgoing { head: &head, body, forwarding: &bytes::Bytes::new(), idempotent: true };
            let resp = conn.send(msg, started + timeout.max(LATE_LOOK), &RequestPhase::uncounted()).await;
            resp.map_err(|e| e.kind())
        }
        .await;
        let elapsed = started.elapsed();
        if let Ok(resp) = &result {
            if elapsed > timeout {
                origin.stats.late_answer_ms.store(elapsed.as_millis().max(1) as u64, Relaxed);
            }
            origin.stats.answered_busy(resp.status().as_u16());
        }
        // 503 and 429 say "alive, but busy": an overloaded origin is admission's to spare,
        // not failover's to take out (which would pour its load onto the others).
        let up = |s: u16| (expect[0]..=expect[1]).contains(&s) || s == 503 || s == 429;
        let _ = tx.send(result.map(|resp| up(resp.status().as_u16())));
    });
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(true))) => Ok(()),
        Ok(Ok(Ok(false))) => Err(ErrorKind::Protocol),
        Ok(Ok(Err(kind))) => Err(kind),
        Ok(Err(_)) => Err(ErrorKind::Reset),
        Err(_) if connected.load(Relaxed) => Err(ErrorKind::ResponseTimeout),
        Err(_) => Err(ErrorKind::ConnectTimeout),
    }
}
