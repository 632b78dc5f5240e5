//! The shared HTTP cache of a site (RFC 9111), bounded in bytes.
//!
//! Freshness, storability, Vary and revalidation come from `http-cache-semantics` (a
//! complete implementation of the RFC's rules; writing them by hand is how caches leak one
//! user's page to another). Storage is `moka` (a concurrent cache with a byte weigher and
//! TinyLFU admission, so a scan of one-off pages cannot flush the popular ones).
//! On top of them, holdfast's own rules: never store a response with Set-Cookie, never one
//! to a request with Authorization (the policy also checks), and serve stale when every
//! origin fails (RFC 5861 stale-if-error, or the site's `serve_stale_on_error`), never for
//! must-revalidate, proxy-revalidate or no-cache.

mod directives;

pub use directives::Directives;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One stored response (one Vary variant of a URL).
#[derive(Debug)]
pub struct Variant {
    pub policy: CachePolicy,
    /// The response as stored (for answers served stale, with Age added).
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// When it stops being fresh.
    pub fresh_until: SystemTime,
    pub directives: Directives,
}

/// The variants of one URL (by Vary).
type Entry = Arc<Vec<Arc<Variant>>>;

pub struct SiteCache {
    store: moka::sync::Cache<String, Entry>,
    /// URLs being refreshed in the background (stale-while-revalidate).
    refreshing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Misses being fetched now: later requests for the same URL wait for them.
    inflight: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
    pub max_object: usize,
    pub serve_stale_on_error: Duration,
    /// Entries evicted for space (moka's listener counts them).
    evictions: Arc<std::sync::atomic::AtomicU64>,
    /// Evictions already reported to the metrics counter.
    pub evictions_reported: std::sync::atomic::AtomicU64,
}

/// What the cache holds for a request.
pub enum Lookup {
    /// Fresh: answer with these headers (Age updated) and the stored body.
    Fresh(Arc<Variant>, http::response::Parts),
    /// Stored but stale (or the request asks to revalidate): send this request (it carries
    /// validators) to the origin; the variant can still serve on error.
    Stale(Arc<Variant>, Box<http::request::Parts>),
    Miss,
}

impl std::fmt::Debug for SiteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("SiteCache").field("entries", &self.store.entry_count()).finish()
    }
}

impl SiteCache {
    pub fn new(max_bytes: u64, max_object: u64, serve_stale_on_error: Duration) -> SiteCache {
        let evictions = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = evictions.clone();
        let store = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .eviction_listener(move |_k, _v, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .weigher(|k: &String, v: &Entry| {
                let bytes: usize = v.iter().map(|x| x.weight()).sum::<usize>() + k.len();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        SiteCache {
            store,
            refreshing: Default::default(),
            inflight: Default::default(),
            max_object: max_object as usize,
            serve_stale_on_error,
            evictions,
            evictions_reported: Default::default(),
        }
    }

    /// The key: host and target (method is GET for GET and HEAD; Vary picks the variant).
    pub fn key(host: &str, target: &str) -> String {
        let mut k = String::with_capacity(host.len() + target.len());
        k.push_str(host);
        k.push_str(target);
        k
    }

    pub fn lookup(&self, key: &str, req: &http::request::Parts, now: SystemTime) -> Lookup {
        let Some(entry) = self.store.get(key) else { return Lookup::Miss };
        let mut stale = None;
        for v in entry.iter() {
            match v.policy.before_request(req, now) {
                BeforeRequest::Fresh(parts) => return Lookup::Fresh(v.clone(), parts),
                BeforeRequest::Stale { request, matches: true } if stale.is_none() => {
                    stale = Some((v.clone(), Box::new(request)));
                }
                BeforeRequest::Stale { .. } => {}
            }
        }
        match stale {
            Some((v, r)) => Lookup::Stale(v, r),
            None => Lookup::Miss,
        }
    }

    /// A policy for a response, if it may be stored (holdfast's rules on top of RFC 9111).
    pub fn policy_for(
        req: &http::request::Parts,
        resp: &http::response::Parts,
        now: SystemTime,
    ) -> Option<CachePolicy> {
        if req.method != Method::GET || resp.headers.contains_key(http::header::SET_COOKIE) {
            return None;
        }
        if req.headers.contains_key(http::header::AUTHORIZATION) {
            return None;
        }
        let opts = CacheOptions { shared: true, ..CacheOptions::default() };
        let policy = CachePolicy::new_options(req, resp, now, opts);
        // Worth storing: fresh for a while, or revalidatable with a conditional request.
        let useful = policy.time_to_live(now) > Duration::ZERO || Directives::revalidatable(&resp.headers);
        (policy.is_storable() && useful).then_some(policy)
    }

    /// Stores a variant, replacing one with the same Vary match.
    pub fn insert(&self, key: String, variant: Variant, req: &http::request::Parts) {
        self.insert_shared(key, Arc::new(variant), req);
    }

    pub fn insert_shared(&self, key: String, variant: Arc<Variant>, req: &http::request::Parts) {
        let now = SystemTime::now();
        let mut list: Vec<Arc<Variant>> = self
            .store
            .get(&key)
            .map(|e| {
                e.iter()
                    .filter(|v| {
                        !matches!(
                            v.policy.before_request(req, now),
                            BeforeRequest::Fresh(_) | BeforeRequest::Stale { matches: true, .. }
                        )
                    })
                    .take(7)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        list.push(variant);
        self.store.insert(key, Arc::new(list));
    }

    /// Request collapsing: the first miss for `key` leads (Ok, with a guard that wakes the
    /// others when dropped); later ones get the leader's signal to wait on (Err).
    pub fn lead_or_follow(self: &Arc<Self>, key: &str) -> Result<Leader, Arc<tokio::sync::Notify>> {
        let Ok(mut inflight) = self.inflight.lock() else {
            return Ok(Leader { cache: None, key: String::new() });
        };
        if let Some(n) = inflight.get(key) {
            return Err(n.clone());
        }
        inflight.insert(key.to_string(), Arc::new(tokio::sync::Notify::new()));
        Ok(Leader { cache: Some(self.clone()), key: key.to_string() })
    }

    /// Claims the background refresh of `key`; false if one is running.
    pub fn begin_refresh(&self, key: &str) -> bool {
        self.refreshing.lock().is_ok_and(|mut r| r.insert(key.to_string()))
    }

    pub fn end_refresh(&self, key: &str) {
        if let Ok(mut r) = self.refreshing.lock() {
            r.remove(key);
        }
    }

    pub fn invalidate(&self, key: &str) {
        self.store.invalidate(key);
    }

    pub fn clear(&self) {
        self.store.invalidate_all();
    }

    /// Bytes stored (approximately; moka counts lazily).
    pub fn weighted_size(&self) -> u64 {
        self.store.run_pending_tasks();
        self.store.weighted_size()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn entries(&self) -> u64 {
        self.store.entry_count()
    }
}

/// The request as the cache sees it: GET (HEAD is answered from a stored GET), the
/// origin-form target, the client's headers (Vary is about them).
pub fn cache_request(parts: &http::request::Parts) -> http::request::Parts {
    let mut r = http::Request::new(());
    *r.method_mut() = Method::GET;
    *r.uri_mut() =
        parts.uri.path_and_query().map_or_else(|| http::Uri::from_static("/"), |pq| http::Uri::from(pq.clone()));
    *r.headers_mut() = parts.headers.clone();
    r.into_parts().0
}

impl Variant {
    /// Bytes it takes: body, headers, and a fixed share for the policy and bookkeeping.
    fn weight(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        self.body.len() + headers + 256
    }

    /// The stored response's head as of `now` (Age updated).
    pub fn parts(&self, now: SystemTime) -> http::response::Parts {
        let mut r = http::Response::new(());
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r.headers_mut().insert(http::header::AGE, HeaderValue::from(self.policy.age(now).as_secs()));
        r.into_parts().0
    }

    /// Seconds past freshness (negative while fresh).
    pub fn staleness(&self, now: SystemTime) -> i64 {
        match now.duration_since(self.fresh_until) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    /// May it answer when every origin failed (stale-if-error)?
    pub fn serves_on_error(&self, now: SystemTime, operator_max: Duration) -> bool {
        if self.directives.must_revalidate {
            return false;
        }
        let allowed = self.directives.stale_if_error.map_or(operator_max, |s| operator_max.max(Duration::from_secs(s)));
        self.staleness(now) <= allowed.as_secs() as i64
    }

    /// May it answer now while a fresh copy is fetched (stale-while-revalidate)?
    pub fn serves_while_revalidating(&self, now: SystemTime) -> bool {
        !self.directives.must_revalidate
            && self.directives.stale_while_revalidate.is_some_and(|s| self.staleness(now) <= s as i64)
    }
}

/// The request fetching a miss for others; when dropped (its response stored, or found
/// not storable, or failed) the waiting requests look again.
pub struct Leader {
    cache: Option<Arc<SiteCache>>,
    key: String,
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(c) = &self.cache {
            if let Some(n) = c.inflight.lock().ok().and_then(|mut m| m.remove(&self.key)) {
                n.notify_waiters();
            }
        }
    }
}

/// Collects a response body on its way to the client; stores it when it ends whole.
pub struct Tee {
    pub cache: Arc<SiteCache>,
    pub key: String,
    pub request: http::request::Parts,
    pub policy: CachePolicy,
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub directives: Directives,
    pub buf: BytesMut,
    /// Waiting requests are woken when the body is stored (or the tee is dropped).
    pub leader: Option<Leader>,
}

impl Tee {
    /// Adds a chunk; false when the body grew too large to store.
    pub fn push(&mut self, data: &Bytes) -> bool {
        if self.buf.len() + data.len() > self.cache.max_object {
            return false;
        }
        self.buf.extend_from_slice(data);
        true
    }

    /// The body ended whole: store it (then the leader guard wakes the waiters).
    pub fn finish(mut self) {
        let leader = self.leader.take();
        let now = SystemTime::now();
        let fresh_until = now + self.policy.time_to_live(now);
        let v = Variant {
            policy: self.policy,
            status: self.status,
            headers: self.headers,
            body: self.buf.freeze(),
            fresh_until,
            directives: self.directives,
        };
        self.cache.insert(self.key, v, &self.request);
        drop(leader);
    }
}

/// RFC 9211 Cache-Status values.
pub fn status(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("holdfast; {value}")).unwrap_or(HeaderValue::from_static("holdfast"))
}

/// Is this status one a shared cache may serve stale in place of (origin failing)?
pub fn is_origin_failure(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}
