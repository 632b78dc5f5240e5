//! The request path. [`front`] and [`to_origins`] read top-down as the pipeline of the
//! design, one step per line: framing, route, shield, limits, cache (the steps that never
//! wait: [`handle`] answers what they answer at once), then the cache fill being made,
//! admission, forward, respond. Each step (in [`steps`]) calls into the module that owns
//! its decision and may answer the request itself. What one request holds lives in its
//! [`RequestCtx`], whose [`Record`] is the guard that ends the request exactly once however
//! it stops: answered, or dropped at any `.await` because its client reset the stream or
//! hung up.

pub(crate) mod body;
pub(crate) mod cached;
pub(crate) mod conn;
mod fill;
pub(crate) mod forward;
pub(crate) mod headers;
pub(crate) mod record;
pub(crate) mod shielded;
mod steps;
pub(crate) mod trace;
pub(crate) mod tunnel;

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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) use shielded::CloseSilently;

/// What the request path needs from the gateway: the current config snapshot, telemetry,
/// and the shield's state. One per gateway, shared by every connection.
pub(crate) struct Edge {
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) shield: Arc<Shield>,
    /// `Alt-Svc` for https responses while QUIC listeners serve (HTTP/3 on their ports).
    pub(crate) alt_svc: arc_swap::ArcSwapOption<HeaderValue>,
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

/// What [`handle`] gives the connection: the answer at once, or a future of it.
#[allow(clippy::large_enum_variant)] // the answer is the common case: not boxed, by value
pub(crate) enum Handled {
    /// Answered without waiting for anything (a cache hit, a refusal, a challenge). Err:
    /// the shield's "close", no answer at all (the connection is dropped).
    Now(Result<Response<RespBody>, CloseSilently>),
    /// The request waits (for the origins, an admission slot, another request's fetch of
    /// the same URL): this future answers it. Dropping it cancels the request where it
    /// stands.
    Later(Pin<Box<dyn Future<Output = Result<Response<RespBody>, CloseSilently>> + Send>>),
}

impl Handled {
    /// The answer, waiting for it if it is not there yet.
    pub(crate) async fn answer(self) -> Result<Response<RespBody>, CloseSilently> {
        match self {
            Handled::Now(answer) => answer,
            Handled::Later(answer) => answer.await,
        }
    }
}

/// Serves one client request.
///
/// The steps up to the cache ([`front`]) never wait but for another request's fetch of the
/// same URL, so a request they answer (a cache hit, a refusal) is answered here, at once:
/// no future is built for it, moved or polled. Only a request that goes on (to the
/// origins, or to wait for a fill) gets one, boxed ([`to_origins`]). Measured on cache
/// hits (callgrind, instructions per hit): 12.9k with one async pipeline for all requests,
/// whose future (1.7 kB) was built and moved on every request; 11.8k answered at once.
pub(crate) fn handle(edge: &Arc<Edge>, conn: &Arc<ConnState>, req: Request<ClientBody>) -> Handled {
    let snap = edge.snapshot.load_full();
    let target = snap.file.log.access.then(|| req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string());
    let ids = trace::ids(req.headers(), snap.file.proxy.traces == crate::config::Traces::Start);
    let record = Record::begin(&edge.telemetry, conn.clone(), req.method().clone(), target, ids);
    let mut cx = RequestCtx { edge, conn, snap, record };
    let front = match front(&mut cx, req) {
        Ok(front) => front,
        Err(stop) => return Handled::Now(cx.end(Err(stop))),
    };
    let (edge, conn) = (edge.clone(), conn.clone());
    let RequestCtx { snap, record, .. } = cx;
    Handled::Later(Box::pin(async move {
        let mut cx = RequestCtx { edge: &edge, conn: &conn, snap, record };
        let answered = to_origins(&mut cx, front).await;
        cx.end(answered)
    }))
}

/// A request the steps up to the cache let through, and what they found.
struct Front {
    site: Arc<SiteRt>,
    /// The normalized host (routing, the cache key) and the Host field as sent.
    host: String,
    host_value: Option<HeaderValue>,
    verdict: crate::shield::Verdict,
    parts: http::request::Parts,
    body: ClientBody,
    cache: steps::Cached,
    /// A tunnel it asks for, and the content coding its response gets.
    wants: steps::Wants,
}

/// The steps that never wait, in order: framing, route, shield, limits, cache. Each may
/// answer the request (`?`).
#[allow(clippy::result_large_err)] // see `steps`: an early answer is returned by value
fn front(cx: &mut RequestCtx<'_>, req: Request<ClientBody>) -> Step<Front> {
    steps::framing(cx, &req)?;
    let tunnel = steps::tunnel(cx, &req)?;
    let (mut parts, body) = req.into_parts();
    let host_value = headers::host_value(&parts.uri, &parts.headers);
    let host = host_value.as_ref().and_then(headers::normalize_host);
    let site = steps::route(cx, host.as_deref(), parts.uri.path())?;
    steps::acme_answer(cx, &parts)?;
    let verdict = steps::shield(cx, &site, &parts)?;
    steps::limits(cx, &site, &parts)?;
    steps::https(cx, &site, host.as_deref().unwrap_or_default(), &parts)?;
    let wants = steps::Wants { coding: steps::coding(&site, &mut parts, tunnel.is_some()), tunnel };
    // A page from the cache is as much a visit as one from an origin: it carries the
    // visitor's cookie too (most first visits are hits).
    let cache = match wants.tunnel {
        Some(_) => Ok(steps::Cached::Go(None)),
        None => steps::cache(cx, &site, host.as_deref().unwrap_or_default(), host_value.as_ref(), &mut parts, None),
    };
    let cache = cache.map_err(|stop| match stop {
        Stop::Answer(mut resp) => {
            shielded::give_visitor_cookie(verdict.visitor_cookie.as_deref(), &mut resp, cx.conn.https);
            Stop::Answer(resp)
        }
        other => other,
    })?;
    let host = host.map(std::borrow::Cow::into_owned).unwrap_or_default();
    Ok(Front { site, host, host_value, verdict, parts, body, cache, wants })
}

/// The steps that wait, in order: a fill of the cache another request is making (then
/// the cache again), admission, prepare, forward, respond.
#[allow(clippy::result_large_err)]
async fn to_origins(cx: &mut RequestCtx<'_>, front: Front) -> Step<Response<RespBody>> {
    let Front { site, host, host_value, verdict, mut parts, body, cache, wants } = front;
    let (host, host_value) = (host.as_str(), host_value.as_ref());
    let mut plan = steps::wait_for_fill(cx, &site, host, host_value, &mut parts, cache).await?;
    let slot = steps::admission(cx, &site, verdict.priority, plan.as_deref()).await?;
    let out = steps::prepare(cx, &site, host, host_value, parts, body, wants.tunnel.as_ref());
    let forwarded = steps::forward(cx, &site, out).await;
    drop(slot); // the origin has answered (or failed): its slot is free for the next request
    let mut resp = steps::respond(cx, &site, host, plan.as_deref_mut(), forwarded, &wants)?;
    shielded::give_visitor_cookie(verdict.visitor_cookie.as_deref(), &mut resp, cx.conn.https);
    Ok(resp)
}

impl RequestCtx<'_> {
    /// How the request ends: answered (its record goes with the response's body), or with
    /// no answer at all.
    fn end(self, answered: Step<Response<RespBody>>) -> Result<Response<RespBody>, CloseSilently> {
        match answered {
            Ok(resp) | Err(Stop::Answer(resp)) => Ok(self.finish(resp)),
            Err(Stop::Close) => {
                // Recorded (access log, metrics) as a 403 that was never sent.
                let mut record = self.record;
                record.answered(StatusCode::FORBIDDEN.as_u16());
                record.body_complete = true;
                Err(CloseSilently)
            }
            // Recorded as cancelled (499) in the phase it was in.
            Err(Stop::Gone) => Err(CloseSilently),
        }
    }

    /// The request is answered with `resp`: its request id, the site's HSTS and Alt-Svc go on it,
    /// and its record goes with the response's body.
    fn finish(self, mut resp: Response<RespBody>) -> Response<RespBody> {
        let mut record = self.record;
        let h = resp.headers_mut();
        // Each response's id is its own: HPACK and QPACK are told never to index it
        // (RFC 7541 §7.1.3). Indexed, every response would add an entry that no later one
        // can use, and push out the ones they can (callgrind on h2c: 7.4% of all
        // instructions were the encoder's search of a table churned so).
        let mut request_id = record.ids.request_id.clone();
        request_id.set_sensitive(true);
        h.insert(trace::X_REQUEST_ID.clone(), request_id);
        if self.conn.https {
            if let Some(hsts) = record.site.as_ref().and_then(|s| s.hsts.clone()) {
                h.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
            }
            if let Some(alt) = self.edge.alt_svc.load().as_deref() {
                h.insert(header::ALT_SVC, alt.clone());
            }
        }
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
