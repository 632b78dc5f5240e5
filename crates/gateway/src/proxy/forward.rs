//! Sending a request to a site's origins: choose an origin (failover order, balancing,
//! probes), send, classify the result, feed passive health, and on failure send it again
//! elsewhere when the retry policy and budget allow, within the overall deadline.
//!
//! Everything a try holds is a guard, released wherever the request stops (a client that
//! resets its stream drops this future at any `.await`): the origin's in-flight count
//! ([`InFlight`]), the site's count of tries at its origins ([`AtOrigins`]), and an
//! ejected origin's probe slot ([`ProbePermit`]). Retry-budget tokens are spent, not
//! lent: a retry taken stays counted for its window, as in Envoy's and Linkerd's budgets.
//!
//! [`AtOrigins`]: crate::shield::admission::AtOrigins

use crate::body::ReqBody;
use crate::clock;
use crate::snapshot::{SiteRt, Snapshot};
use crate::telemetry::{Phase, RequestPhase, Telemetry};
use crate::upstream::health::{Result as Passive, Transition};
use crate::upstream::http1::{OriginBody, Outgoing, SendError};
use crate::upstream::pool::Timing;
use crate::upstream::retry::{self, Failure};
use crate::upstream::{self, ErrorKind, InFlight, Origin, ProbePermit};
use http::{Request, Response};
use std::sync::Arc;
use std::time::Instant;

// The response is the common case: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Forwarded {
    /// The response head; its body holds the origin connection, `origin` its in-flight count.
    Response { resp: Response<OriginBody>, pool: usize, origin: InFlight },
    /// No origin gave a usable answer; the last failure.
    Failed { kind: ErrorKind },
}

/// What forwarding one request needs besides the request itself.
pub(crate) struct Trip<'a> {
    pub(crate) telemetry: &'a Telemetry,
    pub(crate) snap: &'a Snapshot,
    pub(crate) site: &'a SiteRt,
    /// When the request arrived: the overall deadline counts from it.
    pub(crate) started: Instant,
    /// The request's phase, moved as it connects, uploads and waits.
    pub(crate) phase: &'a RequestPhase,
    /// Header lines written after the request's own (see
    /// [`forwarding_block`](super::headers::forwarding_block)); empty: none.
    pub(crate) forwarding: &'a bytes::Bytes,
}

pub(crate) async fn forward(trip: &Trip<'_>, req: Request<ReqBody>) -> Forwarded {
    let Trip { telemetry, snap, site, started, phase, forwarding } = *trip;
    // The head is lent to each try (no copy for a retry); the body goes with a try.
    let (head, mut body) = req.into_parts();
    let cfg = &site.cfg;
    let timeouts = &snap.file.timeouts;
    let idempotent = retry::idempotent(&head.method, head.headers.contains_key(retry::IDEMPOTENCY_KEY));
    // The origins' time counts from the end of an upload read before them.
    let started = match read_small_body(snap, cfg.retry.buffer_body_bytes.get(), &head, &mut body, phase).await {
        Ok(true) => Instant::now(),
        Ok(false) => started,
        Err(kind) => return Forwarded::Failed { kind },
    };
    let deadline = started + timeouts.origin_response.get();
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
    let mut repeated = false;
    // The last 5xx an origin answered while a retry was tried: the answer if no retry
    // does better (the origin's own page, for `replace_origin_errors = false`).
    let mut kept: Option<Forwarded> = None;
    for attempt in 1..=cfg.retry.attempts.min(10) {
        let idx = attempt as usize - 1;
        let (mut selection, changes) = upstream::choose(&site.pools, cfg, &tried[..idx], clock::ms(now), &site.rng);
        for c in changes {
            site.pool_changed(telemetry, &c);
        }
        if selection.is_none() && overloaded {
            // Every origin was tried and the last said 503 (overloaded): rather than fail, try
            // them again once, after a short, jittered pause, as a browser's user would;
            // never in a loop (an overloaded origin is not to be hammered).
            overloaded = false;
            let pause = std::time::Duration::from_millis(
                100 * u64::from(attempt) + upstream::balance::next_random(&site.rng) % 100,
            );
            if Instant::now() + pause < deadline {
                repeated = true;
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
        let in_flight = InFlight::new(&origin);
        let try_started = now;
        let try_now = tokio::time::Instant::from_std(now);
        let timing = Timing {
            connect: timeouts.connect.get(),
            max_idle_age: timeouts.origin_idle.get(),
            now: try_now,
            deadline: try_now + try_timeout,
        };
        let at_origins = site.load.at_origins();
        let result = origin.send(Outgoing { head: &head, body, forwarding, idempotent }, timing, phase).await;
        drop(at_origins);
        now = Instant::now();
        let now_ms = clock::ms(now);
        let (failure, kind, back) = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // 503 (and 429) say "overloaded": admission's signal, not a failure to eject
                // for (ejecting an overloaded origin pours its load onto the others).
                let passive = if status >= 500 && status != 503 { Passive::ServerError } else { Passive::Ok };
                site.load.observe(now.duration_since(try_started), !matches!(status, 503 | 429));
                origin.stats.answered(now.duration_since(try_started), status);
                origin.health.observe_latency(now.duration_since(try_started).as_micros() as f64, now_ms);
                report(telemetry, site, &origin, sel.pool, passive, sel.probe, now_ms);
                let can_retry = !last_try
                    && matches!(status, 500 | 502..=504)
                    && retry_ok(Failure::Status(status))
                    && now < deadline;
                if can_retry
                    && site.retry_budget.try_retry(now_ms, cfg.retry.budget_ratio, cfg.retry.budget_min_per_second)
                {
                    // Only the first round of 503s earns the pause and the repeat.
                    overloaded = status == 503 && !repeated;
                    telemetry.metrics.retry(&site.name, "status_5xx");
                    kept = Some(Forwarded::Response { resp, pool: sel.pool, origin: in_flight });
                    body = match &template {
                        Some(t) => t.replay().unwrap_or_else(ReqBody::empty),
                        None => return Forwarded::Failed { kind: ErrorKind::Protocol },
                    };
                    continue;
                }
                return Forwarded::Response { resp, pool: sel.pool, origin: in_flight };
            }
            Err(SendError::NotSent { kind, body }) => (Failure::NotSent, kind, Some(body)),
            Err(e @ (SendError::Failed(_) | SendError::Unanswered)) => (Failure::BeforeResponse, e.kind(), None),
        };
        drop(in_flight);
        last = kind;
        if !kind.is_origin_fault() {
            return Forwarded::Failed { kind };
        }
        origin.record_error(kind);
        telemetry.metrics.origin_error(&site.name, &origin.datacenter, origin.authority.as_str(), kind.as_str());
        report(telemetry, site, &origin, sel.pool, Passive::Error, sel.probe, now_ms);
        tracing::debug!(site = %site.name, datacenter = %origin.datacenter, origin = %origin.authority, kind = kind.as_str(), attempt, "origin try failed");
        if last_try || now >= deadline || !retry_ok(failure) {
            break;
        }
        // A request that was never sent cost the origins nothing: its retry is bounded by
        // `attempts` only. Anything that reached an origin spends the budget.
        if failure != Failure::NotSent
            && !site.retry_budget.try_retry(now_ms, cfg.retry.budget_ratio, cfg.retry.budget_min_per_second)
        {
            telemetry.metrics.retry(&site.name, "budget_exhausted");
            break;
        }
        telemetry.metrics.retry(&site.name, kind.as_str());
        body = match (back, &template) {
            (Some(b), _) => b,
            (None, Some(t)) => t.replay().unwrap_or_else(ReqBody::empty),
            (None, None) => break,
        };
    }
    kept.unwrap_or(Forwarded::Failed { kind: last })
}

/// Reads a small request body before an origin is chosen, whatever the method (nginx's
/// `proxy_request_buffering`, HAProxy's `http-buffer-request`): a slow upload holds no
/// origin connection, a body that does not match its Content-Length (a malformed HTTP/2
/// request, RFC 9113 §8.1.1) is never forwarded, and a request that may be sent twice can
/// be. A body of unknown length (chunked, or HTTP/2 and HTTP/3 without Content-Length) is
/// read up to the same size: one that ends there goes with its length. The upload has the
/// time the slow-POST rule gives its size (the rule itself cuts off a slower one), at least
/// `client_header`; of a body longer or slower than that, what was read goes first and the
/// rest streams. A tunnel's request (Upgrade) waits for nothing. Ok(true): it waited.
async fn read_small_body(
    snap: &Snapshot,
    max: u64,
    head: &http::request::Parts,
    body: &mut ReqBody,
    phase: &RequestPhase,
) -> Result<bool, ErrorKind> {
    let declared = crate::codec::content_length(&head.headers);
    let waits =
        body.is_streaming() && declared.is_none_or(|n| n <= max) && !head.headers.contains_key(http::header::UPGRADE);
    if !waits {
        return Ok(false);
    }
    phase.enter(Phase::Upload);
    let pace = &snap.file.shield.connections;
    let rate = if snap.file.shield.enabled { pace.min_upload_rate.get() } else { 0 };
    let paced = match rate {
        0 => std::time::Duration::ZERO,
        rate => {
            pace.upload_grace.get() + std::time::Duration::from_secs_f64(declared.unwrap_or(max) as f64 / rate as f64)
        }
    };
    let wait = snap.file.timeouts.client_header.get().max(paced);
    let streaming = std::mem::replace(body, ReqBody::empty());
    let read = Box::pin(streaming.read_ahead(max as usize, wait)).await;
    *body = read.map_err(|e| upstream::http1::body_error_kind(&*e))?;
    Ok(true)
}

/// Feeds a try's result to the origin's passive health (spending its probe permit, if it
/// was the probe) and reports what changed.
fn report(
    telemetry: &Telemetry,
    site: &SiteRt,
    origin: &Origin,
    pool: usize,
    result: Passive,
    probe: Option<ProbePermit>,
    now: u64,
) {
    let cfg = &site.cfg.outlier;
    let probe = probe.map(ProbePermit::spend).is_some();
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
    site.origin_changed(telemetry, origin, kind, reason);
}
