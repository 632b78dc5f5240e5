//! The request path. [`handle`] reads top-down as the pipeline of the design, one step per
//! line: framing, route, shield, limits, cache, admission, forward, respond. Each step
//! (in [`steps`]) calls into the module that owns its decision and may answer the request
//! itself. What one request holds lives in its [`RequestCtx`], whose [`Record`] is the
//! guard that ends the request exactly once however it stops: answered, or dropped at any
//! `.await` because its client reset the stream or hung up.

pub(crate) mod body;
pub(crate) mod cached;
pub(crate) mod conn;
pub(crate) mod forward;
pub(crate) mod headers;
pub(crate) mod record;
pub(crate) mod shielded;
mod steps;

use crate::body::ClientBody;
use crate::pages::{self, Problem};
use crate::shield::Shield;
use crate::snapshot::{SiteRt, Snapshot};
use crate::telemetry::Telemetry;
use arc_swap::ArcSwap;
use body::RespBody;
use conn::ConnState;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use record::Record;
use std::sync::Arc;

pub(crate) use shielded::CloseSilently;

/// What the request path needs from the gateway: the current config snapshot, telemetry,
/// and the shield's state. One per gateway, shared by every connection.
pub(crate) struct Edge {
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) shield: Arc<Shield>,
}

/// One request as it goes down the pipeline.
pub(crate) struct RequestCtx<'a> {
    pub(crate) edge: &'a Edge,
    pub(crate) conn: &'a ConnState,
    /// The config the request started with; it keeps it to the end, across reloads.
    pub(crate) snap: Arc<Snapshot>,
    /// Counts and logs the request when it is dropped, wherever that is.
    pub(crate) record: Box<Record>,
}

/// How a step ends the request early. An answer is by far the common case (see `steps`).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Stop {
    /// Answer with this response.
    Answer(Response<RespBody>),
    /// The shield's "close": no answer at all, the connection is dropped.
    Close,
    /// The client went away; nobody is left to answer (logged as cancelled).
    Gone,
}

/// A step's outcome: go on with `T`, or stop.
pub(crate) type Step<T> = Result<T, Stop>;

/// Serves one client request. Err: the shield's "close", no answer at all (the connection
/// is dropped).
///
/// This future is what the connection holds per request and moves around: what only a
/// request to the origins needs is boxed ([`pipeline`]), and so are the rarely taken waits
/// (a new origin connection, buffering a body for retries, waiting for a cache fill or an
/// admission slot), so that it stays small.
pub(crate) async fn handle(
    edge: Arc<Edge>,
    conn: Arc<ConnState>,
    req: Request<ClientBody>,
) -> Result<Response<RespBody>, CloseSilently> {
    let snap = edge.snapshot.load_full();
    let target = snap.file.log.access.then(|| req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string());
    let record = Record::begin(&edge.telemetry, conn.clone(), req.method().clone(), target);
    let mut cx = RequestCtx { edge: &edge, conn: &conn, snap, record };
    let answer = match pipeline(&mut cx, req).await {
        Ok(resp) | Err(Stop::Answer(resp)) => resp,
        Err(Stop::Close) => {
            // Recorded (access log, metrics) as a 403 that was never sent.
            cx.record.answered(StatusCode::FORBIDDEN.as_u16());
            cx.record.body_complete = true;
            return Err(CloseSilently);
        }
        // Recorded as cancelled (499) in the phase it was in.
        Err(Stop::Gone) => return Err(CloseSilently),
    };
    Ok(cx.finish(answer))
}

/// The steps, in order. Each may answer the request (`?`); the last one always does.
///
/// Everything up to the cache runs without waiting in the common case (a hit, a refusal):
/// the steps that go to the origins are a future of their own, boxed, so that the future
/// every request builds and moves stays small (measured: the request's future went from
/// 5,264 to 1,752 bytes with the forward boxed, and callgrind counted ~1,300 instructions
/// of memcpy per cache hit before).
#[allow(clippy::result_large_err)] // see `steps`: an early answer is returned by value
async fn pipeline(cx: &mut RequestCtx<'_>, req: Request<ClientBody>) -> Step<Response<RespBody>> {
    steps::framing(cx, &req)?;
    let (mut parts, body) = req.into_parts();
    let host_value = headers::host_value(&parts.uri, &parts.headers);
    let host = host_value.as_ref().and_then(headers::normalize_host);
    let site = steps::route(cx, host.as_deref())?;
    let (host, host_value) = (host.as_deref().unwrap_or_default(), host_value.as_ref());
    let verdict = steps::shield(cx, &site, &parts)?;
    steps::limits(cx, &site, &parts)?;
    let plan = steps::cache(cx, &site, host, host_value, &mut parts).await?;
    let to_origins = Box::pin(to_origins(cx, &site, host, host_value, verdict.priority, plan, parts, body)).await;
    let mut resp = to_origins?;
    if verdict.give_visitor_cookie {
        shielded::give_visitor_cookie(&cx.edge.shield, &mut resp, cx.conn.https);
    }
    Ok(resp)
}

/// The steps for a request the origins answer: admission, prepare, forward, respond.
#[allow(clippy::result_large_err, clippy::too_many_arguments)]
async fn to_origins(
    cx: &mut RequestCtx<'_>,
    site: &Arc<SiteRt>,
    host: &str,
    host_value: Option<&HeaderValue>,
    priority: crate::shield::Priority,
    mut plan: Option<Box<cached::Plan>>,
    parts: http::request::Parts,
    body: ClientBody,
) -> Step<Response<RespBody>> {
    let slot = steps::admission(cx, site, priority, plan.as_deref()).await?;
    let out = steps::prepare(cx, site, host, host_value, parts, body);
    let forwarded = steps::forward(cx, site, out).await;
    drop(slot); // the origin has answered (or failed): its slot is free for the next request
    steps::respond(cx, site, host, plan.as_deref_mut(), forwarded)
}

impl RequestCtx<'_> {
    /// The request is answered with `resp`: its record goes with the response's body.
    fn finish(self, mut resp: Response<RespBody>) -> Response<RespBody> {
        let mut record = self.record;
        record.answered(resp.status().as_u16());
        resp.body_mut().attach(record);
        resp
    }

    /// A page of our own for the request's site.
    pub(crate) fn page(&self, site: &SiteRt, problem: Problem, close: bool) -> Response<RespBody> {
        let (status, html) = pages::site_page(&site.language, &site.name, problem, !self.record.method.is_safe());
        let close = close || matches!(problem, Problem::TooLarge | Problem::BadRequest | Problem::TooSlow);
        local_response(status, html, close)
    }
}

/// A small response of our own (a page, a redirect, an empty refusal).
pub(crate) fn local_response(status: StatusCode, html: String, close: bool) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
