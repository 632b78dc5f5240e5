//! One active health check of an origin: a GET of the site's health path on a fresh
//! connection (so that a check never hides behind a pooled connection). The schedule, one
//! task per origin, is the gateway's (`gateway::checkers`).

use super::http1::Outgoing;
use super::Origin;
use crate::body::ReqBody;
use crate::telemetry::RequestPhase;

/// One check: connect, GET, status in the expected range, all within the timeout (the
/// connect has its own, the exchange the deadline counted from the start).
pub(crate) async fn check(o: &Origin, host: &str, cfg: &crate::config::Health) -> bool {
    let deadline = tokio::time::Instant::now() + cfg.timeout.get();
    let Ok(conn) = super::pool::connect(&o.authority, cfg.timeout.get()).await else { return false };
    let Ok(req) = http::Request::get(cfg.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "holdfast-health-check")
        .header(http::header::CONNECTION, "close")
        .body(ReqBody::empty())
    else {
        return false;
    };
    let (head, body) = req.into_parts();
    let msg = Outgoing { head: &head, body, forwarding: &bytes::Bytes::new() };
    match conn.send(msg, deadline, &RequestPhase::uncounted()).await {
        Ok(resp) => (cfg.expect_status[0]..=cfg.expect_status[1]).contains(&resp.status().as_u16()),
        Err(_) => false,
    }
}
