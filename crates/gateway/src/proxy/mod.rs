//! The request path. [`handle`] reads top-down as the pipeline of the design: framing check,
//! host, route, limits, origin choice, header hygiene, the origin call, and the response;
//! each step calls into the module that owns it.

pub mod body;
pub mod cached;
pub mod forward;
pub mod headers;
pub mod shielded;

use crate::gateway::Shared;
use crate::listen::ConnState;
use crate::pages::{self, Problem};
use crate::record::Finished;
use crate::snapshot::SiteRt;
use crate::upstream::ErrorKind;
use body::{ClientBody, ReqBody, RespBody};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use std::sync::Arc;
use std::time::Instant;

/// Serves one client request. Err: the shield's "close" action, no answer at all (the
/// connection is dropped).
///
/// This future is what hyper holds per request and moves around: its rarely taken waits
/// (a new origin connection, buffering a body for retries, waiting for a cache fill or an
/// admission slot) are boxed so that it stays small.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<ClientBody>,
) -> Result<Response<RespBody>, shielded::CloseSilently> {
    let seq = conn.begin_request();
    let snap = shared.snapshot.load_full();
    let mut fin = Box::new(Finished {
        started: Instant::now(),
        conn: conn.clone(),
        site: None,
        method: req.method().clone(),
        target: None,
        status: 0,
        served_by: None,
        bytes: 0,
        origin_body_error: false,
    });
    if snap.file.log.access {
        fin.target = Some(req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string());
    }

    // 1. Framing (HTTP/1.x, judged by listen::h1): ambiguous requests never reach an origin.
    if req.extensions().get::<crate::listen::h1::BadFraming>().is_some() {
        shared.metrics.reject("framing");
        return Ok(no_site(fin, StatusCode::BAD_REQUEST, true));
    }

    // 2. Host and route.
    let (parts, body) = req.into_parts();
    let host_value = headers::host_value(&parts.uri, &parts.headers);
    let Some(host) = host_value.as_ref().and_then(headers::normalize_host) else {
        shared.metrics.reject("no_host");
        return Ok(no_site(fin, StatusCode::BAD_REQUEST, true));
    };
    let Some(site) = snap.site_for_host(&host).cloned() else {
        shared.metrics.reject("unknown_host");
        return Ok(no_site(fin, StatusCode::NOT_FOUND, false));
    };
    if let Some(sni) = &conn.sni {
        if snap.routes.lookup(sni) != snap.routes.lookup(&host) {
            shared.metrics.reject("misdirected");
            return Ok(no_site(fin, StatusCode::MISDIRECTED_REQUEST, false));
        }
    }
    fin.site = Some(site.clone());

    // 3. The shield: client identity, blocks, rate limits, flood signatures, the challenge.
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let verdict = shared.shield.check(
        &snap.shield,
        &crate::shield::Facts {
            peer: conn.client.ip,
            version: parts.version,
            method: &parts.method,
            path_and_query: target,
            headers: &parts.headers,
            new_connection: seq == 1,
            site: &site.name,
            site_load: &site.load,
        },
        &crate::shield::Report { metrics: &shared.metrics, events: &shared.events },
        tokio::time::Instant::from_std(fin.started),
    );
    if let Some(action) = &verdict.action {
        let target = target.to_string();
        return shielded::act(&shared, &site, fin, action, &verdict.client, &target);
    }
    // A challenge's answer (within the rate limits and blocks like any request).
    if parts.uri.path() == crate::shield::challenge::VERIFY_PATH {
        return Ok(shielded::verify(&shared, &snap, &site, conn.https, fin, &parts.uri, &verdict.client));
    }
    let mut resp = to_site(&shared, &conn, snap, site, fin, parts, body, &host, &host_value, verdict.priority).await;
    if verdict.give_visitor_cookie {
        shielded::give_visitor_cookie(&shared, &mut resp, conn.https);
    }
    Ok(resp)
}

/// The rest of the path for an admitted request: limits, the cache, admission, the origins.
#[allow(clippy::too_many_arguments)]
async fn to_site(
    shared: &Arc<Shared>,
    conn: &ConnState,
    snap: Arc<crate::snapshot::Snapshot>,
    site: Arc<SiteRt>,
    mut fin: Box<Finished>,
    mut parts: http::request::Parts,
    body: ClientBody,
    host: &str,
    host_value: &Option<HeaderValue>,
    priority: crate::shield::Priority,
) -> Response<RespBody> {
    // 4. Limits.
    let max_body = snap.file.limits.max_body_bytes.get();
    if max_body > 0 && declared_length(&parts.headers).is_some_and(|n| n > max_body) {
        shared.metrics.reject("body_too_large");
        return site_page(fin, &site, Problem::TooLarge, true);
    }

    // 5. The cache: a fresh copy answers here; a stale one may answer if the origins fail.
    // An unsafe method invalidates its target in the cache (kept only for those).
    let unsafe_target = (!parts.method.is_safe() && site.cache.is_some())
        .then(|| parts.uri.path_and_query().map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()));
    let mut may_wait = true;
    let mut plan = loop {
        match cached::before(&site.cache, host, &mut parts, may_wait) {
            cached::Before::Hit(hit, refresh) => {
                if let (Some(plan), Some(hv)) = (refresh, &host_value) {
                    refresh_in_background(shared.clone(), snap.clone(), site.clone(), *plan, hv.clone());
                }
                shared.metrics.cache(&site.name, "hit");
                return cached::answer(fin, hit);
            }
            cached::Before::Forward(plan) => break Some(plan),
            cached::Before::Bypass => break None,
            cached::Before::Wait(notify) => {
                // Another request is fetching this page: wait for it (bounded), look again.
                let wait = tokio::time::timeout(snap.file.timeouts.origin_response.get(), notify.notified());
                let _ = Box::pin(wait).await;
                may_wait = false;
            }
        }
    };

    // 6. Adaptive admission: while origins are saturated, requests that need them are
    // admitted by priority, and over the adaptive limit they queue (critical first) or are
    // shed; a shed one gets a stale copy if there is one, else 503.
    let adm = &snap.file.shield;
    let mut _slot = None;
    if adm.enabled && adm.admission.enabled {
        let dry = adm.mode == crate::config::shield::ShieldMode::DryRun;
        let mut admitted = site.load.admit(priority, crate::upstream::balance::uniform(&site.rng));
        if admitted && !dry {
            _slot = match site.load.try_enter(priority) {
                Some(slot) => Some(slot),
                None => Box::pin(site.load.queue(priority, adm.admission.queue_timeout.get())).await,
            };
            admitted = _slot.is_some();
        }
        if !admitted {
            shared.metrics.shield.action(if dry { "dry_run_shed" } else { "shed" }, priority.as_str(), &site.name);
            if !dry {
                if let Some(hit) = plan.as_deref().and_then(|p| cached::stale_on_error(p, None)) {
                    shared.metrics.cache(&site.name, "stale");
                    return cached::answer(fin, hit);
                }
                return shielded::shed(fin, &site, adm.admission.retry_after.get());
            }
        }
    }

    // The request to the origin: header hygiene, forwarding headers, origin-form target.
    let received = parts.version;
    headers::remove_hop_by_hop(&mut parts.headers);
    let trusted = snap.file.proxy.trusted_proxies.iter().any(|n| n.contains(&conn.client.ip));
    let via = snap.via.as_ref().map(|(v11, v2)| if received == Version::HTTP_2 { v2 } else { v11 });
    // The forwarding fields and Via: from an untrusted client, a block of lines written after
    // the request's own fields (the client's claims left out); from a trusted proxy, added
    // to what it sent.
    let mut forwarding = bytes::Bytes::new();
    if let Some(host_value) = &host_value {
        let hop = headers::Hop { client: &conn.client, https: conn.https, host, host_value };
        if trusted {
            headers::append_forwarded(&mut parts.headers, &hop);
        } else {
            forwarding = headers::forwarding_block(&hop, via);
        }
    }
    if let (Some(via), true) = (via, forwarding.is_empty()) {
        headers::append_via(&mut parts.headers, via);
    }
    if parts.uri.authority().is_some() {
        // HTTP/1.1 to the origin needs Host; for HTTP/2 it comes from :authority.
        if let Some(v) = host_value.clone() {
            parts.headers.insert(header::HOST, v);
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
    let upstream_req =
        Request::from_parts(parts, ReqBody::new(body, max_body).with_min_rate(min_rate, pace.upload_grace.get()));

    // 7. The origins: failover order, balancing, retries elsewhere (proxy::forward).
    let forwarded = forward::forward(shared, &snap, &site, upstream_req, &forwarding, fin.started).await;
    drop(_slot); // the origin has answered (or failed): its slot is free for the next request
    match forwarded {
        forward::Forwarded::Response { resp, pool, origin } => {
            // Hop-by-hop fields were left out when the head was read (upstream::http1).
            let (mut head, body) = resp.into_parts();
            if let Some((v11, _)) = &snap.via {
                headers::append_via(&mut head.headers, v11);
            }
            if let Some(target) = &unsafe_target {
                cached::invalidate(&site.cache, host, target, &head);
            }
            let mut tee = None;
            if let Some(plan) = plan.as_deref_mut() {
                match cached::after_response(plan, &head) {
                    cached::After::Hit(hit) => {
                        shared.metrics.cache(
                            &site.name,
                            if hit.status.contains("stale-if-error") { "stale" } else { "revalidated" },
                        );
                        // The origin's answer is not used; its connection is not reused.
                        drop(body);
                        origin.stats.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        return cached::answer(fin, hit);
                    }
                    cached::After::Pass { tee: t, status } => {
                        shared.metrics.cache(&site.name, "miss");
                        head.headers.insert(cached::CACHE_STATUS.clone(), crate::cache::status(&status));
                        tee = t;
                    }
                }
            }
            fin.status = head.status.as_u16();
            fin.served_by = Some((pool, origin));
            Response::from_parts(head, RespBody::origin(body).with_tee(tee).with_record(fin))
        }
        // 8. No origin could answer: a stale copy, else the site's maintenance page.
        forward::Forwarded::Failed { kind } => {
            if let Some(hit) = plan.as_deref().and_then(|p| cached::stale_on_error(p, None)) {
                shared.metrics.cache(&site.name, "stale");
                return cached::answer(fin, hit);
            }
            let problem = match kind {
                ErrorKind::BodyTooLarge => Problem::TooLarge,
                ErrorKind::ClientTooSlow => Problem::TooSlow,
                ErrorKind::ClientBody => Problem::BadRequest,
                _ => Problem::Unavailable,
            };
            let mut resp = site_page(fin, &site, problem, false);
            if plan.is_some() {
                resp.headers_mut()
                    .insert(cached::CACHE_STATUS.clone(), crate::cache::status("fwd=miss; detail=no-origin"));
            }
            resp
        }
    }
}

/// stale-while-revalidate: fetch a fresh copy for the cache after answering stale. One
/// refresh per URL at a time.
fn refresh_in_background(
    shared: Arc<Shared>,
    snap: Arc<crate::snapshot::Snapshot>,
    site: Arc<SiteRt>,
    mut plan: cached::Plan,
    host: HeaderValue,
) {
    if !plan.cache.begin_refresh(&plan.key) {
        return;
    }
    tokio::spawn(async move {
        let mut req = Request::new(ReqBody::empty());
        *req.uri_mut() = plan.request.uri.clone();
        *req.headers_mut() = plan.request.headers.clone();
        headers::remove_hop_by_hop(req.headers_mut());
        req.headers_mut().insert(header::HOST, host);
        if let forward::Forwarded::Response { resp, origin, .. } =
            forward::forward(&shared, &snap, &site, req, &bytes::Bytes::new(), std::time::Instant::now()).await
        {
            let (head, body) = resp.into_parts();
            let tee = match cached::after_response(&mut plan, &head) {
                cached::After::Pass { tee, .. } => tee,
                cached::After::Hit(_) => None,
            };
            // Read the body through the tee, which stores it at its end.
            let mut body = RespBody::origin(body).with_tee(tee);
            while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {}
            if let Some(conn) = body.take_finished_conn() {
                origin.conns.checkin(conn, tokio::time::Instant::now());
            }
            origin.stats.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        plan.cache.end_refresh(&plan.key);
    });
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// A page of our own for a site.
pub(crate) fn site_page(mut fin: Box<Finished>, site: &SiteRt, problem: Problem, close: bool) -> Response<RespBody> {
    let unsafe_method = !fin.method.is_safe();
    let (status, html) = pages::site_page(&site.language, &site.name, problem, unsafe_method);
    fin.status = status.as_u16();
    let close = close || matches!(problem, Problem::TooLarge | Problem::BadRequest | Problem::TooSlow);
    local_response(fin, status, html, close)
}

/// A page for a request that matched no site.
fn no_site(mut fin: Box<Finished>, status: StatusCode, close: bool) -> Response<RespBody> {
    fin.status = status.as_u16();
    local_response(fin, status, pages::no_site_page(status), close)
}

pub(crate) fn local_response(fin: Box<Finished>, status: StatusCode, html: String, close: bool) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::full(html).with_record(fin));
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
