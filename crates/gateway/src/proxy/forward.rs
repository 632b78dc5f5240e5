//! Sending a request to a site's origins: choose an origin (failover order, balancing,
//! probes), send, classify the result, feed passive health, and on failure send it again
//! elsewhere when the retry policy and budget allow, within the overall deadline.

use super::body::ReqBody;
use crate::clock;
use crate::gateway::Shared;
use crate::snapshot::{SiteRt, Snapshot};
use crate::upstream::health::{Result as Passive, Transition};
use crate::upstream::http1::{OriginBody, SendError};
use crate::upstream::retry::{self, Failure};
use crate::upstream::{self, ErrorKind, Origin};
use http::{Request, Response};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

// The response is the common case: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Forwarded {
    /// The response head; its body holds the origin connection.
    Response { resp: Response<OriginBody>, pool: usize, origin: Arc<Origin> },
    /// No origin gave a usable answer; the last failure.
    Failed { kind: ErrorKind },
}

/// `forwarding`: header lines written after the request's own (see
/// [`crate::proxy::headers::forwarding_block`]); `started`: when the request arrived (the
/// overall deadline counts from it).
pub async fn forward(
    shared: &Shared,
    snap: &Snapshot,
    site: &SiteRt,
    req: Request<ReqBody>,
    forwarding: &bytes::Bytes,
    started: Instant,
) -> Forwarded {
    // The head is lent to each try (no copy for a retry); the body goes with a try.
    let (head, mut body) = req.into_parts();
    let cfg = &site.cfg;
    let timeouts = &snap.file.timeouts;
    let deadline = started + timeouts.origin_response.get();
    let idempotent = retry::idempotent(&head.method, head.headers.contains_key("idempotency-key"));
    // Small bodies of requests that may be sent twice are buffered so they can be.
    if idempotent && cfg.retry.attempts > 1 {
        let small = body.replay().is_none()
            && head
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n <= cfg.retry.buffer_body_bytes.get());
        if small {
            let max = cfg.retry.buffer_body_bytes.get() as usize;
            match Box::pin(body.buffer(max, timeouts.client_header.get())).await {
                Ok(b) => body = b,
                Err(_) => return Forwarded::Failed { kind: ErrorKind::ClientBody },
            }
        }
    }
    // A copy of the body to send again, kept only when a retry after sending is possible at
    // all (empty or buffered: a cheap copy).
    let template = if idempotent && cfg.retry.attempts > 1 { body.replay() } else { None };
    let retry_ok = |failure| retry::should_retry(failure, idempotent, template.is_some(), cfg.retry.on_5xx);
    // One clock read per try: `now` is carried from the previous try's end.
    let mut now = started;
    site.retry_budget.request(clock::ms(now));
    let mut tried = [0usize; 10];
    let mut last = ErrorKind::Connect;
    let mut overloaded = false;
    for attempt in 1..=cfg.retry.attempts.min(10) {
        let idx = attempt as usize - 1;
        let (mut selection, changes) = upstream::choose(&site.pools, cfg, &tried[..idx], clock::ms(now), &site.rng);
        for c in changes {
            crate::events::pool_changed(shared, site, &c);
        }
        if selection.is_none() && overloaded {
            // Every origin was tried and the last said 503 (overloaded): rather than fail, try
            // them again after a short, jittered pause, as a browser's user would.
            let pause = std::time::Duration::from_millis(
                100 * u64::from(attempt) + upstream::balance::next_random(&site.rng) % 100,
            );
            if Instant::now() + pause < deadline {
                tokio::time::sleep(pause).await;
                now = Instant::now();
                selection = upstream::choose(&site.pools, cfg, &[], clock::ms(now), &site.rng).0;
            }
        }
        let Some(sel) = selection else { break };
        let origin = sel.origin;
        tried[idx] = Arc::as_ptr(&origin) as usize;
        let last_try = attempt == cfg.retry.attempts;
        let remaining = deadline.saturating_duration_since(now);
        let try_timeout =
            if template.is_some() && !last_try { remaining.min(cfg.retry.per_try_timeout.get()) } else { remaining };
        origin.stats.requests.fetch_add(1, Relaxed);
        origin.stats.in_flight.fetch_add(1, Relaxed);
        let try_started = now;
        let try_now = tokio::time::Instant::from_std(now);
        let send = origin.conns.send(
            &origin.authority,
            &head,
            body,
            forwarding,
            timeouts.connect.get(),
            timeouts.origin_idle.get(),
            try_now,
            try_now + try_timeout,
        );
        site.load.in_flight.fetch_add(1, Relaxed);
        let result = send.await;
        site.load.in_flight.fetch_sub(1, Relaxed);
        now = Instant::now();
        let now_ms = clock::ms(now);
        let (failure, kind, back) = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let passive = if status >= 500 { Passive::ServerError } else { Passive::Ok };
                site.load.observe(now.duration_since(try_started), !matches!(status, 503 | 429));
                origin.health.observe_latency(now.duration_since(try_started).as_micros() as f64, now_ms);
                report(shared, site, &origin, sel.pool, passive, sel.probe, now_ms);
                let can_retry =
                    !last_try && matches!(status, 502..=504) && retry_ok(Failure::Status(status)) && now < deadline;
                if can_retry
                    && site.retry_budget.try_retry(now_ms, cfg.retry.budget_ratio, cfg.retry.budget_min_per_second)
                {
                    overloaded = status == 503;
                    origin.stats.in_flight.fetch_sub(1, Relaxed);
                    shared.metrics.retry(&site.name, "status_5xx");
                    drop(resp);
                    body = match &template {
                        Some(t) => t.replay().unwrap_or_else(ReqBody::empty),
                        None => return Forwarded::Failed { kind: ErrorKind::Protocol },
                    };
                    continue;
                }
                return Forwarded::Response { resp, pool: sel.pool, origin };
            }
            Err(SendError::NotSent { kind, body }) => (Failure::NotSent, kind, Some(body)),
            Err(SendError::Failed(kind)) => (Failure::BeforeResponse, kind, None),
        };
        origin.stats.in_flight.fetch_sub(1, Relaxed);
        last = kind;
        if !kind.is_origin_fault() {
            return Forwarded::Failed { kind };
        }
        origin.record_error(kind);
        shared.metrics.origin_error(&site.name, &origin.datacenter, origin.authority.as_str(), kind.as_str());
        report(shared, site, &origin, sel.pool, Passive::Error, sel.probe, now_ms);
        tracing::debug!(site = %site.name, datacenter = %origin.datacenter, origin = %origin.authority, kind = kind.as_str(), attempt, "origin try failed");
        if last_try || now >= deadline || !retry_ok(failure) {
            break;
        }
        // A request that was never sent cost the origins nothing: its retry is bounded by
        // `attempts` only. Anything that reached an origin spends the budget.
        if failure != Failure::NotSent
            && !site.retry_budget.try_retry(now_ms, cfg.retry.budget_ratio, cfg.retry.budget_min_per_second)
        {
            shared.metrics.retry(&site.name, "budget_exhausted");
            break;
        }
        shared.metrics.retry(&site.name, kind.as_str());
        body = match (back, &template) {
            (Some(b), _) => b,
            (None, Some(t)) => t.replay().unwrap_or_else(ReqBody::empty),
            (None, None) => break,
        };
    }
    Forwarded::Failed { kind: last }
}

/// Feeds a try's result to the origin's passive health and reports what changed.
fn report(shared: &Shared, site: &SiteRt, origin: &Origin, pool: usize, result: Passive, probe: bool, now: u64) {
    let cfg = &site.cfg.outlier;
    // Only a failure can eject: the pool's ejection count is needed only then.
    let may_eject = result != Passive::Ok && site.pools.get(pool).is_some_and(|p| p.may_eject(cfg.max_ejected_percent));
    let Some(t) = origin.health.record(result, probe, may_eject, cfg, now) else { return };
    let (kind, reason) = match t {
        Transition::Ejected { for_ms, reason, in_a_row } => {
            ("origin_ejected", format!("{reason}; ejected for {:.1} s ({in_a_row} in a row)", for_ms as f64 / 1000.0))
        }
        Transition::Returned => ("origin_returned", "its probe request succeeded".to_string()),
        _ => return,
    };
    crate::events::origin_changed(shared, site, origin, kind, reason);
}
