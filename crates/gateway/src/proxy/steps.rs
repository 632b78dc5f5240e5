//! The steps of [`super::handle`], in the order the pipeline calls them. Each one asks the
//! module that owns its decision and either lets the request go on or answers it
//! ([`Stop`]). A step that waits marks the request's phase while it does, so a request
//! cancelled there is counted and logged as cancelled there.

// A step's early answer (a cache hit, a refusal) is as common as going on: boxing the
// response would cost an allocation per answered request, so it is returned by value.
#![allow(clippy::result_large_err)]

use super::body::RespBody;
use super::cached::{self, Plan};
use super::forward::{self, Forwarded, Trip};
use super::{headers, local_response, shielded, RequestCtx, Step, Stop};
use crate::body::{ClientBody, ReqBody};
use crate::codec::BadFraming;
use crate::incident::Outcome;
use crate::pages::{self, Problem};
use crate::shield::{admission::Slot, Priority, Verdict};
use crate::snapshot::SiteRt;
use crate::telemetry::metrics::CacheResult;
use crate::telemetry::{Phase, RequestPhase};
use crate::upstream::ErrorKind;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use std::sync::Arc;

/// Step 1: Framing (HTTP/1.x, judged by `listen::h1` as the head was parsed): an ambiguous
/// request never reaches an origin.
pub(super) fn framing(cx: &RequestCtx, req: &Request<ClientBody>) -> Step<()> {
    if req.extensions().get::<BadFraming>().is_some() {
        return Err(refuse(cx, "framing", StatusCode::BAD_REQUEST, true));
    }
    Ok(())
}

/// Step 1b: Tunnels: whether the request asks to switch protocols (WebSocket); a CONNECT
/// that is not RFC 8441's extended CONNECT is refused.
pub(super) fn tunnel(cx: &RequestCtx, req: &Request<ClientBody>) -> Step<Option<super::tunnel::Asked>> {
    super::tunnel::asked(req).map_err(|status| refuse(cx, "connect", status, false))
}

/// Step 2: Host and route: the site that serves `host`, and of it the route with the longest
/// prefix of `path` (else the site's own pools); a TLS connection's requests must be for a
/// host of the site its server name chose.
pub(super) fn route(cx: &mut RequestCtx, host: Option<&str>, path: &str) -> Step<Arc<SiteRt>> {
    let Some(host) = host else { return Err(refuse(cx, "no_host", StatusCode::BAD_REQUEST, true)) };
    let Some(site) = cx.snap.site_for_host(host).cloned() else {
        return Err(refuse(cx, "unknown_host", StatusCode::NOT_FOUND, false));
    };
    if let Some(sni) = &cx.conn.sni {
        if cx.snap.routes.lookup(sni) != cx.snap.routes.lookup(host) {
            return Err(refuse(cx, "misdirected", StatusCode::MISDIRECTED_REQUEST, false));
        }
    }
    let site = site.for_path(path).clone();
    cx.record.site = Some(site.clone());
    Ok(site)
}

/// A request that matched no site (or cannot be routed): a small page, counted by reason.
fn refuse(cx: &RequestCtx, reason: &str, status: StatusCode, close: bool) -> Stop {
    cx.edge.telemetry.metrics.reject(reason);
    Stop::Answer(local_response(status, pages::no_site_page(status), close))
}

/// Step 3: The shield: client identity, blocks, rate limits, flood signatures, the challenge;
/// the request's admission priority.
pub(super) fn shield(cx: &mut RequestCtx, site: &SiteRt, parts: &http::request::Parts) -> Step<Verdict> {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let facts = crate::shield::Facts {
        peer: cx.conn.client.ip,
        version: parts.version,
        method: &parts.method,
        path_and_query: target,
        headers: &parts.headers,
        new_connection: cx.record.seq == 1,
        site: &site.name,
        site_load: &site.load,
        ignored_params: &site.cfg.cache.ignore_params,
    };
    let now = tokio::time::Instant::from_std(cx.record.started);
    let verdict = cx.edge.shield.check(&cx.snap.shield, &facts, &cx.edge.telemetry, now);
    let r = &mut cx.record;
    r.suspicious = verdict.suspicious;
    r.new_client = verdict.priority == Priority::Other;
    r.checkout = !parts.method.is_safe()
        && cx.snap.file.shield.admission.priority_paths.iter().any(|p| crate::shield::path_in(target, p));
    if let Some(action) = &verdict.action {
        r.outcome = match action {
            crate::shield::Action::Challenge { .. } => Outcome::Challenged,
            _ => Outcome::Refused,
        };
        return Err(shielded::act(cx, site, action, &verdict.client, target));
    }
    // A challenge's answer (within the rate limits and blocks like any request).
    if parts.uri.path() == crate::shield::challenge::VERIFY_PATH {
        r.outcome = Outcome::Challenged;
        return Err(Stop::Answer(shielded::verify(cx, site, &parts.uri, &verdict.client)));
    }
    Ok(verdict)
}

/// Step 4: Limits: a declared body over `limits.max_body_bytes` is refused before anything is
/// read (a body without a declared length is cut off as it streams).
pub(super) fn limits(cx: &RequestCtx, site: &SiteRt, parts: &http::request::Parts) -> Step<()> {
    let max_body = cx.snap.file.limits.max_body_bytes.get();
    if max_body > 0 && crate::codec::content_length(&parts.headers).is_some_and(|n| n > max_body) {
        cx.edge.telemetry.metrics.reject("body_too_large");
        return Err(Stop::Answer(cx.page(site, Problem::TooLarge, true)));
    }
    Ok(())
}

/// ACME's HTTP-01 answers live here (RFC 8555 §8.3): never redirected to https.
pub(crate) const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// An HTTP-01 challenge of holdfast's own ACME orders is answered here, before the shield
/// (the ACME server's validators are no shoppers, and the answer costs nothing); a token it
/// does not know goes on to the origins, which may run their own ACME client.
#[allow(clippy::result_large_err)]
pub(crate) fn acme_answer(cx: &RequestCtx<'_>, parts: &http::request::Parts) -> Result<(), Stop> {
    let Some(token) = parts.uri.path().strip_prefix(ACME_CHALLENGE_PREFIX) else { return Ok(()) };
    let Some(answer) = cx.snap.acme.http_answer(token) else { return Ok(()) };
    let mut resp = local_response(StatusCode::OK, answer, false);
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Err(Stop::Answer(resp))
}

/// Step 4b: HTTPS: a plain-HTTP request to a site with `[site.https] redirect` gets a `308`
/// to the same host, path and query over https (308 keeps the method and body, where
/// 301 lets clients turn a POST into a GET). ACME's challenges are answered over plain
/// HTTP, as they must be.
pub(super) fn https(cx: &RequestCtx, site: &SiteRt, host: &str, parts: &http::request::Parts) -> Step<()> {
    let cfg = &site.cfg.https;
    if !cfg.redirect || cx.conn.https || parts.uri.path().starts_with(ACME_CHALLENGE_PREFIX) {
        return Ok(());
    }
    let port = cfg.port.filter(|p| *p != 443).map(|p| format!(":{p}")).unwrap_or_default();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = if target.starts_with('/') { target } else { "/" };
    let location = format!("https://{host}{port}{target}");
    let mut resp = local_response(StatusCode::PERMANENT_REDIRECT, String::new(), false);
    let h = resp.headers_mut();
    match HeaderValue::try_from(location) {
        Ok(v) => h.insert(header::LOCATION, v),
        Err(_) => return Err(Stop::Answer(cx.page(site, Problem::BadRequest, true))),
    };
    h.remove(header::CONTENT_TYPE);
    Err(Stop::Answer(resp))
}

/// What a request asks of its response besides the response: a tunnel, a content coding.
pub(crate) struct Wants {
    pub(crate) tunnel: Option<super::tunnel::Asked>,
    pub(crate) coding: Option<crate::config::Coding>,
}

/// Step 4c: Content coding: the coding the response gets by the client's Accept-Encoding
/// (`compress::choose`), which becomes the request's Accept-Encoding for the cache and the
/// origin. A site without compression leaves the field as it is.
pub(super) fn coding(site: &SiteRt, parts: &mut http::request::Parts, tunnel: bool) -> Option<crate::config::Coding> {
    let cfg = &site.cfg.compression;
    if !cfg.enabled || tunnel {
        return None;
    }
    let coding = crate::compress::choose(&parts.headers, cfg);
    crate::compress::settle_request(&mut parts.headers, coding);
    coding
}

/// What the cache step found for a request it did not answer.
pub(crate) enum Cached {
    /// Go on to the origins with the cache's plan for the response (validators added, a
    /// stale copy kept for failures), or none (not a cacheable request).
    Go(Option<Box<Plan>>),
    /// Another request is fetching this URL: wait for it, then look again.
    Wait(crate::cache::Fill),
}

/// Step 5: The cache: a fresh copy answers (a stale one under stale-while-revalidate answers
/// and is refreshed in the background); a miss that another request is fetching waits for
/// it ([`wait_for_fill`]); else the request goes on with the cache's plan for its response.
/// `waited_since`: when the request began to wait for another's fetch (None on the first
/// look).
pub(super) fn cache(
    cx: &mut RequestCtx<'_>,
    site: &Arc<SiteRt>,
    host: &str,
    host_value: Option<&HeaderValue>,
    parts: &mut http::request::Parts,
    waited_since: Option<std::time::SystemTime>,
) -> Step<Cached> {
    match cached::before(&site.cache, &site.cfg.cache.ignore_params, host, parts, waited_since) {
        cached::Before::Hit(hit, refresh) => {
            if let (Some(plan), Some(hv)) = (refresh, host_value) {
                refresh_in_background(cx, site.clone(), *plan, hv.clone());
            }
            site.metrics.cache(CacheResult::Hit);
            cx.record.outcome = Outcome::Cache;
            Err(Stop::Answer(cached::answer(*hit)))
        }
        cached::Before::Forward(plan) => Ok(Cached::Go(Some(plan))),
        cached::Before::Bypass => Ok(Cached::Go(None)),
        cached::Before::Wait(fill) => Ok(Cached::Wait(fill)),
    }
}

/// Step 5, waiting: while another request fetches the URL, this one waits for it
/// (bounded by `timeouts.origin_response`), then looks again; what that fetch stored
/// answers it. It waits once: if the URL is still being fetched, it goes on by itself.
pub(super) async fn wait_for_fill(
    cx: &mut RequestCtx<'_>,
    site: &Arc<SiteRt>,
    host: &str,
    host_value: Option<&HeaderValue>,
    parts: &mut http::request::Parts,
    cached: Cached,
) -> Step<Option<Box<Plan>>> {
    let fill = match cached {
        Cached::Go(plan) => return Ok(plan),
        Cached::Wait(fill) => fill,
    };
    let waited_since = Some(std::time::SystemTime::now());
    cx.record.phase.enter(Phase::CacheFill);
    let wait = tokio::time::timeout(cx.snap.file.timeouts.origin_response.get(), fill.done());
    let _ = Box::pin(wait).await;
    cx.record.phase.enter(Phase::Route);
    match cache(cx, site, host, host_value, parts, waited_since)? {
        Cached::Go(plan) => Ok(plan),
        // Never: `cached::before` asks a request to wait once only.
        Cached::Wait(_) => Ok(None),
    }
}

/// Step 6: Adaptive admission: while origins are saturated, requests that need them are admitted
/// by priority, and over the adaptive limit they queue (critical first) or are shed; a
/// shed one gets a stale copy if there is one, else 503. The slot is held until the
/// origin has answered.
pub(super) async fn admission(
    cx: &mut RequestCtx<'_>,
    site: &SiteRt,
    priority: Priority,
    plan: Option<&Plan>,
) -> Step<Option<Slot>> {
    let cfg = &cx.snap.file.shield;
    if !(cfg.enabled && cfg.admission.enabled) {
        return Ok(None);
    }
    let dry = cfg.mode == crate::config::shield::ShieldMode::DryRun;
    let mut admitted = site.load.admit(priority, crate::util::uniform(&site.rng));
    let mut slot = None;
    if admitted && !dry {
        slot = match site.load.try_enter(priority) {
            Some(slot) => Some(slot),
            None => {
                cx.record.phase.enter(Phase::Admission);
                let queued = Box::pin(site.load.queue(priority, cfg.admission.queue_timeout.get())).await;
                cx.record.phase.enter(Phase::Route);
                queued
            }
        };
        admitted = slot.is_some();
    }
    if !admitted {
        let action = if dry { "dry_run_shed" } else { "shed" };
        cx.edge.telemetry.metrics.shield.action(action, priority.as_str(), &site.name);
        if !dry {
            if let Some(hit) = plan.and_then(|p| cached::stale_on_error(p, None)) {
                site.metrics.cache(CacheResult::Stale);
                cx.record.outcome = Outcome::Stale;
                return Err(Stop::Answer(cached::answer(hit)));
            }
            cx.record.outcome = Outcome::Shed;
            return Err(Stop::Answer(shielded::shed(cx, site, cfg.admission.retry_after.get())));
        }
    }
    Ok(slot)
}

/// The request as it goes to the origins.
pub(super) struct Outbound {
    req: Request<ReqBody>,
    /// Forwarding fields written after the request's own (empty: none).
    forwarding: Bytes,
    /// An unsafe method's target, made stale in the cache if the origin accepts it.
    invalidate: Option<String>,
}

/// Step 7: The request to the origin: hop-by-hop fields out, forwarding fields and Via in, the
/// origin-form target, HTTP/1.1, and the body limited in size and held to a minimum pace.
pub(super) fn prepare(
    cx: &RequestCtx,
    site: &SiteRt,
    host: &str,
    host_value: Option<&HeaderValue>,
    mut parts: http::request::Parts,
    body: ClientBody,
    tunnel: Option<&super::tunnel::Asked>,
) -> Outbound {
    let snap = &cx.snap;
    let invalidate = (!parts.method.is_safe() && site.cache.is_some())
        .then(|| parts.uri.path_and_query().map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()));
    let received = parts.version;
    headers::remove_hop_by_hop(&mut parts.headers);
    if let Some(asked) = tunnel {
        super::tunnel::ask_origin(asked, &mut parts);
    }
    let trusted = snap.file.proxy.trusted_proxies.iter().any(|n| n.contains(&cx.conn.client.ip));
    let via = snap.via.as_ref().map(|[v11, v2, v3]| match received {
        Version::HTTP_2 => v2,
        Version::HTTP_3 => v3,
        _ => v11,
    });
    // The forwarding fields and Via: from an untrusted client, a block of lines written after
    // the request's own fields (the client's claims left out); from a trusted proxy, added
    // to what it sent.
    let mut forwarding = Bytes::new();
    if let Some(host_value) = host_value {
        let hop = headers::Hop { client: &cx.conn.client, https: cx.conn.https, host, host_value };
        if trusted {
            headers::append_forwarded(&mut parts.headers, &hop);
        } else {
            forwarding = headers::forwarding_block(&hop, via);
        }
    }
    if let (Some(via), true) = (via, forwarding.is_empty()) {
        headers::append_via(&mut parts.headers, via);
    }
    // The request's id and trace, for the shop to follow it by.
    parts.headers.insert(super::trace::X_REQUEST_ID.clone(), cx.record.ids.request_id.clone());
    if let Some(tp) = cx.record.ids.trace.as_ref().and_then(|t| t.traceparent()) {
        parts.headers.insert(super::trace::TRACEPARENT.clone(), tp);
    }
    if parts.uri.authority().is_some() {
        // HTTP/1.1 to the origin needs Host; for HTTP/2 it comes from :authority.
        if let Some(v) = host_value {
            parts.headers.insert(header::HOST, v.clone());
        }
    }
    // Origin-form request target (RFC 9112 §3.2.1): path and query only.
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => Uri::from(pq.clone()),
        Some(_) if parts.method == http::Method::OPTIONS => Uri::from_static("*"),
        _ => Uri::from_static("/"),
    };
    parts.version = Version::HTTP_11;
    let pace = &snap.file.shield.connections;
    let min_rate = if snap.file.shield.enabled { pace.min_upload_rate.get() } else { 0 };
    let body =
        ReqBody::new(body, snap.file.limits.max_body_bytes.get()).with_min_rate(min_rate, pace.upload_grace.get());
    Outbound { req: Request::from_parts(parts, body), forwarding, invalidate }
}

/// Step 8: The origins: failover order, balancing, retries elsewhere ([`forward`]).
pub(super) async fn forward(cx: &RequestCtx<'_>, site: &SiteRt, out: Outbound) -> (Forwarded, Option<String>) {
    let Outbound { req, forwarding, invalidate } = out;
    let trip = Trip {
        telemetry: &cx.edge.telemetry,
        snap: &cx.snap,
        site,
        started: cx.record.started,
        phase: &cx.record.phase,
        forwarding: &forwarding,
    };
    (forward::forward(&trip, req).await, invalidate)
}

/// Step 9: The response: the origin's (stored in the cache as it streams, or a 304 answered from
/// the stored body); when no origin could answer, a stale copy, else the site's
/// maintenance page. A client that went away during its upload gets nothing.
pub(super) fn respond(
    cx: &mut RequestCtx,
    site: &SiteRt,
    host: &str,
    plan: Option<&mut Plan>,
    (forwarded, invalidate): (Forwarded, Option<String>),
    wants: &Wants,
) -> Step<Response<RespBody>> {
    let tunnel = wants.tunnel.as_ref();
    match forwarded {
        Forwarded::Response { resp, pool, origin } if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            cx.record.served_by = Some((pool, origin.origin().clone()));
            cx.record.outcome = Outcome::Origin;
            let (mut head, body) = resp.into_parts();
            // The origin's connection becomes the tunnel's (a 101 comes only when asked).
            let (Some(asked), Some((io, from_origin))) = (tunnel, body.into_upgraded()) else {
                return Ok(cx.page(site, Problem::Unavailable, false));
            };
            super::tunnel::answer_client(asked, &mut head.status, &mut head.headers);
            let t = super::tunnel::Tunnel {
                origin: io,
                from_origin,
                idle: cx.snap.file.timeouts.tunnel_idle.get(),
                drain: cx.snap.file.timeouts.drain.get(),
                site: site.label(),
                origin_name: origin.origin().authority.to_string(),
                guard: super::tunnel::TunnelGuard::new(&cx.edge.telemetry, &asked.protocol()),
            };
            // The request ends here; the tunnel is counted apart, for as long as it lives.
            drop(origin);
            Ok(Response::from_parts(head, RespBody::full(Bytes::new()).with_tunnel(Box::new(t))))
        }
        // An HTTP/2 WebSocket the origin did not switch to: a 2xx would tell the client its
        // stream is a tunnel (RFC 8441 §5), so the origin's answer becomes a 502.
        Forwarded::Response { resp, .. }
            if resp.status().is_success() && matches!(tunnel, Some(super::tunnel::Asked::H2(_))) =>
        {
            drop(resp);
            Ok(cx.page(site, Problem::OriginError(StatusCode::BAD_GATEWAY), false))
        }
        Forwarded::Response { resp, pool, origin } => {
            // Hop-by-hop fields were left out when the head was read (upstream::http1).
            let (mut head, body) = resp.into_parts();
            if let Some([v11, ..]) = &cx.snap.via {
                headers::append_via(&mut head.headers, v11);
            }
            if let Some(target) = &invalidate {
                cached::invalidate(&site.cache, &site.cfg.cache.ignore_params, host, target, &head);
            }
            let head_request = cx.record.method == http::Method::HEAD;
            let Ok(encoder) = encoding(site, wants.coding, &mut head, head_request) else {
                return Ok(cx.page(site, Problem::Unavailable, false));
            };
            let mut tee = None;
            let mut plan = plan;
            if let Some(plan) = plan.as_deref_mut() {
                match cached::after_response(plan, &head) {
                    cached::After::Hit(hit) => {
                        let stale = hit.status.is_stale_if_error();
                        site.metrics.cache(if stale { CacheResult::Stale } else { CacheResult::Revalidated });
                        cx.record.outcome = if stale { Outcome::Stale } else { Outcome::Cache };
                        // The origin's answer is not used; its connection is not reused.
                        drop((body, origin));
                        return Ok(cached::answer(*hit));
                    }
                    cached::After::Pass { tee: t, status } => {
                        site.metrics.cache(CacheResult::Miss);
                        head.headers.insert(cached::CACHE_STATUS.clone(), crate::cache::status(&status));
                        tee = t;
                    }
                }
            }
            cx.record.served_by = Some((pool, origin.origin().clone()));
            cx.record.outcome = Outcome::Origin;
            // The origin's own error page, or the site's (`[site.errors]`).
            let status = head.status;
            if crate::cache::is_origin_failure(status) && site.cfg.errors.replace_origin_errors {
                drop((body, tee));
                return Ok(cx.page(site, Problem::OriginError(status), false));
            }
            // A body the cache stores is filled at the origin's pace, apart from this client.
            let Some(tee) = tee else {
                cx.record.at_origin = Some(origin);
                return Ok(Response::from_parts(head, RespBody::origin(body, encoder)));
            };
            let reader = super::fill::start(body, tee, origin, encoder);
            // The client's own preconditions (taken off the request for the cache's sake),
            // answered from the origin's head: 304 or 412 while the body goes on into the
            // cache.
            if let Some(bare) = plan.as_deref().and_then(|p| p.asks.without_content(&p.method, &head)) {
                drop(reader);
                return Ok(Response::from_parts(bare, RespBody::full(bytes::Bytes::new())));
            }
            Ok(Response::from_parts(head, RespBody::filled(reader)))
        }
        // The client went away while its body was being sent: nobody is left to answer.
        Forwarded::Failed { kind: ErrorKind::ClientGone } => Err(Stop::Gone),
        Forwarded::Failed { kind } => {
            if let Some(hit) = plan.as_deref().and_then(|p| cached::stale_on_error(p, None)) {
                site.metrics.cache(CacheResult::Stale);
                cx.record.outcome = Outcome::Stale;
                return Ok(cached::answer(hit));
            }
            if kind.is_origin_fault() {
                cx.record.outcome = Outcome::Failed;
            }
            let problem = match kind {
                ErrorKind::BodyTooLarge => Problem::TooLarge,
                ErrorKind::ClientTooSlow => {
                    cx.edge.shield.slow.body_cut(cx.conn.peer.ip());
                    Problem::TooSlow
                }
                ErrorKind::ClientBody => Problem::BadRequest,
                _ => Problem::Unavailable,
            };
            let mut resp = cx.page(site, problem, false);
            if plan.is_some() {
                resp.headers_mut()
                    .insert(cached::CACHE_STATUS.clone(), crate::cache::status("fwd=miss; detail=no-origin"));
            }
            Ok(resp)
        }
    }
}

/// A response to a request that chose `coding`: compressed as it streams (into the cache,
/// or to the client) when it qualifies, its fields saying so before the cache stores them.
/// Err: the encoder could not start.
fn encoding(
    site: &SiteRt,
    coding: Option<crate::config::Coding>,
    head: &mut http::response::Parts,
    head_request: bool,
) -> Result<Option<crate::compress::Encoder>, ()> {
    let cfg = &site.cfg.compression;
    if coding.is_some() && head.status == StatusCode::NOT_MODIFIED {
        crate::compress::weaken_etag(&mut head.headers); // a compressed variant's tag stays weak
    }
    if !cfg.enabled || !crate::compress::applies(head.status, &head.headers, cfg, head_request) {
        return Ok(None);
    }
    // Compressible: its identity form varies by Accept-Encoding too, or a cache (this one,
    // or a browser's) would give it to clients that asked for a coding.
    crate::compress::add_vary(&mut head.headers);
    let Some(c) = coding else { return Ok(None) };
    crate::compress::mark(&mut head.headers, c);
    crate::compress::Encoder::new(c).map(Some).map_err(|_| ())
}

/// stale-while-revalidate: fetch a fresh copy for the cache after answering stale, as a
/// request of holdfast's own. One refresh per URL at a time (the claim is a guard).
fn refresh_in_background(cx: &RequestCtx, site: Arc<SiteRt>, mut plan: Plan, host: HeaderValue) {
    let Some(claim) = plan.cache.begin_refresh(&plan.key) else { return };
    let (telemetry, snap) = (cx.edge.telemetry.clone(), cx.snap.clone());
    tokio::spawn(async move {
        let _claim = claim;
        let mut req = Request::new(ReqBody::empty());
        *req.uri_mut() = plan.request.uri.clone();
        *req.headers_mut() = plan.request.headers.clone();
        headers::remove_hop_by_hop(req.headers_mut());
        // The cache's validators, not the client's (those were taken off the request).
        if let Some(v) = &plan.stale {
            for (name, value) in v.validators() {
                req.headers_mut().insert(name, value);
            }
        }
        req.headers_mut().insert(header::HOST, host);
        let phase = RequestPhase::uncounted();
        let forwarding = Bytes::new();
        let trip = Trip {
            telemetry: &telemetry,
            snap: &snap,
            site: &site,
            started: std::time::Instant::now(),
            phase: &phase,
            forwarding: &forwarding,
        };
        if let Forwarded::Response { resp, origin, .. } = forward::forward(&trip, req).await {
            let (mut head, body) = resp.into_parts();
            // Coded as the variant it refreshes (its request's Accept-Encoding was settled).
            let coding = crate::compress::settled(&plan.request.headers);
            let Ok(encoder) = encoding(&site, coding, &mut head, false) else { return };
            // A body to store is filled by its own task (nobody reads it here).
            if let cached::After::Pass { tee: Some(tee), .. } = cached::after_response(&mut plan, &head) {
                drop(super::fill::start(body, tee, origin, encoder));
            }
        }
    });
}
