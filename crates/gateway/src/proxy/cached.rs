//! The cache on the request path: what to do before forwarding (answer fresh; answer stale
//! while revalidating in the background; add validators to revalidate) and after (store;
//! answer a 304 from the stored body; answer stale when the origins failed), and
//! invalidation by unsafe methods.

use super::body::RespBody;
use crate::cache::{self, Lookup, SiteCache, Tee, Variant};
use http::header::{self, HeaderName};
use http::{Method, Response, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The cache's part in one request.
pub(crate) struct Plan {
    pub(crate) cache: Arc<SiteCache>,
    pub(crate) key: String,
    /// The request as stored with a response (GET, origin-form, client headers).
    pub(crate) request: http::request::Parts,
    /// A stored response that is stale: for a 304, or to answer if the origins fail.
    pub(crate) stale: Option<Arc<Variant>>,
    /// We added validators the client did not send: a 304 is ours, not the client's.
    pub(crate) added_validators: bool,
    pub(crate) head: bool,
    /// This request fetches a miss that others wait for.
    pub(crate) leader: Option<cache::Leader>,
}

/// An answer from the cache.
pub(crate) struct Hit {
    pub(crate) variant: Arc<Variant>,
    pub(crate) parts: http::response::Parts,
    pub(crate) head: bool,
    /// The Cache-Status value after "holdfast; ".
    pub(crate) status: String,
}

pub(crate) enum Before {
    /// Answer from the cache; when `refresh` is set, fetch a fresh copy in the background.
    Hit(Hit, Option<Box<Plan>>),
    /// Forward (validators may have been added to the request headers), then `after_response`.
    Forward(Box<Plan>),
    /// Not a cacheable request.
    Bypass,
    /// Another request is fetching this miss: wait for it, then look again.
    Wait(cache::Fill),
}

/// Before forwarding: look the request up. `may_wait`: join another request's fetch of the
/// same miss (false on the second look, after waiting once).
pub(crate) fn before(
    cache: &Option<Arc<SiteCache>>,
    host: &str,
    parts: &mut http::request::Parts,
    may_wait: bool,
) -> Before {
    let Some(cache) = cache else { return Before::Bypass };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Before::Bypass;
    }
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let key = SiteCache::key(host, target);
    let request = cache::cache_request(parts);
    let now = SystemTime::now();
    let head = parts.method == Method::HEAD;
    let mut plan =
        Plan { cache: cache.clone(), key, request, stale: None, added_validators: false, head, leader: None };
    match plan.cache.lookup(&plan.key, &plan.request, now) {
        Lookup::Fresh(variant, parts) => {
            let collapsed = if may_wait { "" } else { "; collapsed" };
            let status = format!("hit; ttl={}{collapsed}", -variant.staleness(now));
            return Before::Hit(Hit { variant, parts, head, status }, None);
        }
        Lookup::Stale(variant, revalidation) => {
            if variant.serves_while_revalidating(now) {
                let status = format!("hit; fwd=stale; ttl={}; detail=stale-while-revalidate", -variant.staleness(now));
                let hit = Hit { parts: variant.parts(now), variant, head, status };
                let refresh = Plan { head: false, ..plan };
                return Before::Hit(hit, Some(Box::new(refresh)));
            }
            for name in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE] {
                if let (Some(value), false) = (revalidation.headers.get(&name), parts.headers.contains_key(&name)) {
                    parts.headers.insert(name, value.clone());
                    plan.added_validators = true;
                }
            }
            plan.stale = Some(variant);
        }
        Lookup::Miss if !head => match plan.cache.lead_or_follow(&plan.key) {
            Ok(leader) => plan.leader = Some(leader),
            Err(notify) if may_wait => return Before::Wait(notify),
            Err(_) => {}
        },
        Lookup::Miss => {}
    }
    Before::Forward(Box::new(plan))
}

/// A response from the cache.
pub(crate) fn answer(hit: Hit) -> Response<RespBody> {
    let body = if hit.head { bytes::Bytes::new() } else { hit.variant.body.clone() };
    let mut resp = Response::from_parts(hit.parts, RespBody::full(body));
    resp.headers_mut().insert(CACHE_STATUS.clone(), cache::status(&hit.status));
    resp
}

pub(crate) enum After {
    /// The cache answers (a 304 to our validators, or stale in place of a failure).
    Hit(Hit),
    /// Pass the origin's response on, storing it through the tee if there is one.
    Pass { tee: Option<Box<Tee>>, status: String },
}

/// After forwarding, with the origin's response head.
pub(crate) fn after_response(plan: &mut Plan, resp: &http::response::Parts) -> After {
    let now = SystemTime::now();
    let status = resp.status;
    if let Some(v) = &plan.stale {
        if status == StatusCode::NOT_MODIFIED && plan.added_validators {
            // A 304 to validators the client did not send is never passed on. When its
            // validators do not match the stored response (RFC 9111 §4.3.4) it cannot update
            // it, but the origin did say the stored copy is current: answer with it as is.
            let http_cache_semantics::AfterResponse::NotModified(policy, parts) =
                v.policy.after_response(&plan.request, resp, now)
            else {
                let status = "hit; fwd=stale; fwd-status=304; detail=not-updated".to_string();
                return After::Hit(Hit { variant: v.clone(), parts: v.parts(now), head: plan.head, status });
            };
            {
                let updated = Variant {
                    fresh_until: now + policy.time_to_live(now),
                    policy,
                    status: parts.status,
                    headers: parts.headers.clone(),
                    body: v.body.clone(),
                    directives: cache::Directives::of(&parts.headers),
                };
                let updated = Arc::new(updated);
                // A cookie in the 304 was meant for this client only: never stored for all.
                if !resp.headers.contains_key(header::SET_COOKIE) {
                    plan.cache.insert_shared(plan.key.clone(), updated.clone(), &plan.request);
                }
                let hit =
                    Hit { variant: updated, parts, head: plan.head, status: "hit; fwd=stale; fwd-status=304".into() };
                return After::Hit(hit);
            }
        }
        if cache::is_origin_failure(status) {
            if let Some(hit) = stale_on_error(plan, Some(status)) {
                return After::Hit(hit);
            }
        }
    }
    let fwd = if plan.stale.is_some() { "stale" } else { "miss" };
    let code = status.as_u16();
    if plan.head {
        return After::Pass { tee: None, status: format!("fwd={fwd}; fwd-status={code}") };
    }
    let Some(policy) = SiteCache::policy_for(&plan.request, resp, now) else {
        return After::Pass { tee: None, status: format!("fwd={fwd}; fwd-status={code}") };
    };
    let declared = crate::codec::content_length(&resp.headers);
    if declared.is_some_and(|n| n > plan.cache.max_object as u64) {
        return After::Pass { tee: None, status: format!("fwd={fwd}; fwd-status={code}; detail=too-large") };
    }
    let tee = Tee {
        cache: plan.cache.clone(),
        key: plan.key.clone(),
        // The plan is done with its request: the tee takes it rather than a copy.
        request: std::mem::replace(&mut plan.request, http::Request::new(()).into_parts().0),
        policy,
        status,
        headers: resp.headers.clone(),
        directives: cache::Directives::of(&resp.headers),
        buf: bytes::BytesMut::new(),
        leader: plan.leader.take(),
    };
    After::Pass { tee: Some(Box::new(tee)), status: format!("fwd={fwd}; fwd-status={code}; stored") }
}

/// When every origin failed: the stale copy, if it may serve.
pub(crate) fn stale_on_error(plan: &Plan, fwd_status: Option<StatusCode>) -> Option<Hit> {
    let v = plan.stale.as_ref()?;
    let now = SystemTime::now();
    if !v.serves_on_error(now, plan.cache.serve_stale_on_error) {
        return None;
    }
    let code = fwd_status.map_or_else(|| "fwd-status=none".to_string(), |s| format!("fwd-status={}", s.as_u16()));
    let status = format!("hit; fwd=stale; {code}; ttl={}; detail=stale-if-error", -v.staleness(now));
    Some(Hit { variant: v.clone(), parts: v.parts(now), head: plan.head, status })
}

/// Invalidation: an unsafe request that succeeded makes the stored target (and its
/// Location / Content-Location on the same host) stale for everyone (RFC 9111 §4.4).
/// Called for unsafe methods only.
pub(crate) fn invalidate(cache: &Option<Arc<SiteCache>>, host: &str, target: &str, resp: &http::response::Parts) {
    let Some(cache) = cache else { return };
    if !(resp.status.is_success() || resp.status.is_redirection()) {
        return;
    }
    cache.invalidate(&SiteCache::key(host, target));
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        if let Some(path) = resp.headers.get(&name).and_then(|v| v.to_str().ok()).filter(|p| p.starts_with('/')) {
            cache.invalidate(&SiteCache::key(host, path));
        }
    }
}
