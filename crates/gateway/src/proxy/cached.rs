//! The cache on the request path: what to do before forwarding (answer fresh; answer stale
//! while revalidating in the background; revalidate with the cache's own validators, one
//! request at a time) and after (store; answer a 304 from the stored body; answer stale when
//! the origins failed), the client's own preconditions and ranges answered from what the
//! cache holds or fetched, and invalidation by unsafe methods.

use super::body::{Encoded, RespBody};
use crate::cache::{self, ClientAsks, Lookup, SiteCache, Tee, Variant};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The cache's part in one request.
pub(crate) struct Plan {
    pub(crate) cache: Arc<SiteCache>,
    pub(crate) key: String,
    /// The request as stored with a response (GET, origin-form, client headers but their
    /// conditional and range fields).
    pub(crate) request: http::request::Parts,
    /// A stored response that is stale: for a 304, or to answer if the origins fail.
    pub(crate) stale: Option<Arc<Variant>>,
    /// The request goes to the origin with the cache's validators, not the client's.
    pub(crate) revalidating: bool,
    pub(crate) method: Method,
    /// The client's own preconditions and range, answered by the cache.
    pub(crate) asks: ClientAsks,
    /// This request fetches (or revalidates) for others that wait.
    pub(crate) leader: Option<cache::Leader>,
}

impl Plan {
    pub(crate) fn head(&self) -> bool {
        self.method == Method::HEAD
    }
}

/// An answer from the cache.
pub(crate) struct Hit {
    pub(crate) variant: Arc<Variant>,
    /// When it was looked up (its Age is as of then).
    pub(crate) now: SystemTime,
    pub(crate) method: Method,
    /// The Cache-Status value after "holdfast; ".
    pub(crate) status: Said,
    pub(crate) asks: ClientAsks,
}

/// What Cache-Status says of a hit, after "holdfast; ". A fresh hit's (by far the most
/// common) is written as it is needed, without formatting; the others are spelled out.
pub(crate) enum Said {
    /// `hit; ttl=N`, and `; collapsed` when it waited for another request's fetch.
    Fresh {
        ttl: i64,
        collapsed: bool,
    },
    Text(String),
}

impl From<&str> for Said {
    fn from(s: &str) -> Said {
        Said::Text(s.to_string())
    }
}

impl From<String> for Said {
    fn from(s: String) -> Said {
        Said::Text(s)
    }
}

impl Said {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Said::Fresh { ttl, collapsed } => {
                out.extend_from_slice(b"hit; ttl=");
                if *ttl < 0 {
                    out.push(b'-');
                }
                out.extend_from_slice(crate::codec::itoa(ttl.unsigned_abs(), &mut [0; 20]));
                if *collapsed {
                    out.extend_from_slice(b"; collapsed");
                }
            }
            Said::Text(s) => out.extend_from_slice(s.as_bytes()),
        }
    }

    /// The whole Cache-Status field value (`cache::status`).
    fn value(&self) -> HeaderValue {
        let mut v = Vec::new();
        self.write(&mut v);
        cache::status(&String::from_utf8_lossy(&v))
    }

    /// Answered stale because the origins failed (stale-if-error).
    pub(crate) fn is_stale_if_error(&self) -> bool {
        matches!(self, Said::Text(s) if s.contains("stale-if-error"))
    }
}

pub(crate) enum Before {
    /// Answer from the cache; when `refresh` is set, fetch a fresh copy in the background.
    Hit(Box<Hit>, Option<Box<Plan>>),
    /// Forward (with the cache's validators when it revalidates), then `after_response`.
    Forward(Box<Plan>),
    /// Not a cacheable request.
    Bypass,
    /// Another request is fetching or revalidating this URL: wait for it, then look again.
    Wait(cache::Fill),
}

/// Before forwarding: look the request up. `waited_since`: when this request began to wait
/// for another's fetch of the same URL (None on the first look); what that fetch stored
/// after then answers it, even if it is stale already (it was validated after the request
/// came).
pub(crate) fn before(
    cache: &Option<Arc<SiteCache>>,
    ignored: &[String],
    host: &str,
    parts: &mut http::request::Parts,
    waited_since: Option<SystemTime>,
) -> Before {
    let Some(cache) = cache else { return Before::Bypass };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Before::Bypass;
    }
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let key = SiteCache::key(host, target, ignored);
    let now = SystemTime::now();
    let method = parts.method.clone();
    let lookup = cache.lookup(&key, parts, now);
    // A range asked of a URL the cache does not hold goes to the origin as it is (the
    // origin's 206 is not stored; the next whole GET fills the cache).
    if matches!(lookup, Lookup::Miss) && parts.headers.contains_key(header::RANGE) {
        return Before::Bypass;
    }
    // The client's conditional and range fields are the cache's to answer; what goes to
    // the origin carries the cache's validators, or none.
    let asks = ClientAsks::take(&mut parts.headers);
    let hit = |variant: Arc<Variant>, status: Said| {
        let asks = asks.clone();
        Before::Hit(Box::new(Hit { variant, now, method: method.clone(), status, asks }), None)
    };
    let variant = match lookup {
        Lookup::Fresh(variant) => {
            let status = Said::Fresh { ttl: -variant.staleness(now), collapsed: waited_since.is_some() };
            return hit(variant, status);
        }
        Lookup::Stale(variant) if waited_since.is_some_and(|w| variant.stored_at >= w) => {
            // Revalidated (or fetched) by the request this one waited for.
            return hit(variant, "hit; collapsed".into());
        }
        lookup => lookup,
    };
    let request = cache::cache_request(parts);
    let mut plan =
        Plan { cache: cache.clone(), key, request, stale: None, revalidating: false, method, asks, leader: None };
    let variant = match variant {
        Lookup::Stale(variant) => {
            if variant.serves_while_revalidating(now, plan.cache.stale_while_revalidate()) {
                let status = format!("hit; fwd=stale; ttl={}; detail=stale-while-revalidate", -variant.staleness(now));
                let refresh = Plan {
                    cache: plan.cache.clone(),
                    key: plan.key.clone(),
                    request: plan.request.clone(),
                    stale: Some(variant.clone()),
                    revalidating: true,
                    method: Method::GET,
                    asks: ClientAsks::default(),
                    leader: None,
                };
                return Before::Hit(Box::new(plan.hit(variant, now, status.into())), Some(Box::new(refresh)));
            }
            Some(variant)
        }
        Lookup::Fresh(_) | Lookup::Miss => None,
    };
    // One request to the origin per URL at a time: the others wait for it. (A HEAD that
    // misses stores nothing, so it leads nobody.)
    if variant.is_some() || plan.method == Method::GET {
        match plan.cache.lead_or_follow(&plan.key) {
            Ok(leader) => plan.leader = Some(leader),
            Err(fill) if waited_since.is_none() => return Before::Wait(fill),
            Err(_) => {}
        }
    }
    if let Some(v) = variant {
        for (name, value) in v.validators() {
            parts.headers.insert(name, value);
        }
        plan.revalidating = true;
        plan.stale = Some(v);
    }
    Before::Forward(Box::new(plan))
}

impl Plan {
    fn hit(&self, variant: Arc<Variant>, now: SystemTime, status: Said) -> Hit {
        Hit { variant, now, method: self.method.clone(), status, asks: self.asks.clone() }
    }
}

/// A response from the cache, the client's preconditions and range applied.
pub(crate) fn answer(hit: Hit) -> Response<RespBody> {
    let head = hit.method == Method::HEAD;
    let v = &hit.variant;
    if hit.asks.is_empty() {
        // The stored response as it is: its fields as encoded when stored, then this
        // answer's own (Age, Cache-Status; and for HEAD the length a GET would have).
        let mut own = Vec::with_capacity(96);
        own.extend_from_slice(b"age: ");
        own.extend_from_slice(crate::codec::itoa(v.age(hit.now).as_secs(), &mut [0; 20]));
        own.extend_from_slice(b"\r\ncache-status: holdfast; ");
        hit.status.write(&mut own);
        own.extend_from_slice(b"\r\n");
        let body = if head {
            if crate::codec::status_has_body(v.status) {
                own.extend_from_slice(b"content-length: ");
                own.extend_from_slice(crate::codec::itoa(v.body.len() as u64, &mut [0; 20]));
                own.extend_from_slice(b"\r\n");
            }
            bytes::Bytes::new()
        } else {
            v.body.clone()
        };
        let encoded = Encoded { stored: v.wire.lines.clone(), own: own.into(), has_date: v.wire.has_date };
        let mut resp = Response::new(RespBody::full(body).with_encoded(encoded));
        *resp.status_mut() = v.status;
        return resp;
    }
    let (mut parts, body) = hit.asks.answer(&hit.method, v.parts(hit.now), v.body.clone());
    parts.headers.insert(CACHE_STATUS.clone(), hit.status.value());
    let body = if head { bytes::Bytes::new() } else { body };
    Response::from_parts(parts, RespBody::full(body))
}

pub(crate) enum After {
    /// The cache answers (a 304 to its validators, or stale in place of a failure).
    Hit(Box<Hit>),
    /// Pass the origin's response on, storing it through the tee if there is one.
    Pass { tee: Option<Box<Tee>>, status: String },
}

/// After forwarding, with the origin's response head.
pub(crate) fn after_response(plan: &mut Plan, resp: &http::response::Parts) -> After {
    let now = SystemTime::now();
    let status = resp.status;
    if let Some(v) = plan.stale.clone() {
        if status == StatusCode::NOT_MODIFIED && plan.revalidating {
            // A 304 to the cache's validators is never passed on. When its validators do
            // not match the stored response (RFC 9111 §4.3.4) it cannot update it, but the
            // origin did say the stored copy is current: answer with it as is.
            if !v.validated_by(&resp.headers) {
                let status = "hit; fwd=stale; fwd-status=304; detail=not-updated".to_string();
                return After::Hit(Box::new(plan.hit(v, now, status.into())));
            }
            let updated = Arc::new(v.updated_by(resp, &plan.request, now));
            // A cookie in the 304 was meant for this client only: never stored for all.
            if !resp.headers.contains_key(header::SET_COOKIE) {
                plan.cache.insert_shared(plan.key.clone(), updated.clone(), &plan.request);
            }
            // The waiting requests look again now.
            drop(plan.leader.take());
            return After::Hit(Box::new(plan.hit(updated, now, "hit; fwd=stale; fwd-status=304".into())));
        }
        if cache::is_origin_failure(status) {
            if let Some(hit) = stale_on_error(plan, Some(status)) {
                return After::Hit(Box::new(hit));
            }
        }
    }
    let fwd = if plan.stale.is_some() { "stale" } else { "miss" };
    let code = status.as_u16();
    if plan.head() {
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
        request: plan.request.clone(),
        policy,
        status,
        headers: resp.headers.clone(),
        leader: plan.leader.take(),
    };
    After::Pass { tee: Some(Box::new(tee)), status: format!("fwd={fwd}; fwd-status={code}; stored") }
}

/// When every origin failed: the stale copy, if it may serve.
pub(crate) fn stale_on_error(plan: &Plan, fwd_status: Option<StatusCode>) -> Option<Hit> {
    let v = plan.stale.as_ref()?;
    let now = SystemTime::now();
    if !v.serves_on_error(now, plan.cache.serve_stale_on_error()) {
        return None;
    }
    let code = fwd_status.map_or_else(|| "fwd-status=none".to_string(), |s| format!("fwd-status={}", s.as_u16()));
    let status = format!("hit; fwd=stale; {code}; ttl={}; detail=stale-if-error", -v.staleness(now));
    Some(plan.hit(v.clone(), now, status.into()))
}

/// Invalidation: an unsafe request that succeeded makes the stored target (and its
/// Location / Content-Location on the same host) stale for everyone (RFC 9111 §4.4).
/// Called for unsafe methods only.
pub(crate) fn invalidate(
    cache: &Option<Arc<SiteCache>>,
    ignored: &[String],
    host: &str,
    target: &str,
    resp: &http::response::Parts,
) {
    let Some(cache) = cache else { return };
    if !(resp.status.is_success() || resp.status.is_redirection()) {
        return;
    }
    cache.invalidate(&SiteCache::key(host, target, ignored));
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        if let Some(path) = resp.headers.get(&name).and_then(|v| v.to_str().ok()).filter(|p| p.starts_with('/')) {
            cache.invalidate(&SiteCache::key(host, path, ignored));
        }
    }
}
