//! The shared HTTP cache of a site (RFC 9111), bounded in bytes.
//!
//! Freshness, storability, Vary and revalidation come from `http-cache-semantics` (a
//! complete implementation of the RFC's rules; writing them by hand is how caches leak one
//! user's page to another). Storage is `moka` (a concurrent cache with a byte weigher and
//! TinyLFU admission, so a scan of one-off pages cannot flush the popular ones).
//! On top of them, holdfast's own rules: never store a response with Set-Cookie, never one
//! to a request with Authorization (the policy also checks), and serve stale when every
//! origin fails (RFC 5861 stale-if-error, or the site's `serve_stale_on_error`), never for
//! must-revalidate, proxy-revalidate, no-cache or s-maxage.
//!
//! - [`directives`]: Cache-Control as RFC 9111 reads it (any case, invalid values), Age;
//! - [`variant`]: one stored response: freshness (with a heuristic that never leaves a
//!   page without any), age, Vary, stale rules, the update by a 304;
//! - [`conditional`]: the client's preconditions and ranges, answered from a full response.
//!
//! Misses and revalidations of one URL are collapsed: one request goes to the origin, the
//! others wait for it ([`Leader`], [`Fill`]) and are answered from what it stored.

mod conditional;
mod directives;
pub(crate) mod filling;
mod variant;

pub(crate) use conditional::ClientAsks;
pub(crate) use directives::Directives;
pub(crate) use variant::Variant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The variants of one URL (by Vary).
type Entry = Arc<Vec<Arc<Variant>>>;

pub(crate) struct SiteCache {
    store: moka::sync::Cache<String, Entry>,
    /// URLs being refreshed in the background (stale-while-revalidate).
    refreshing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Misses being fetched now: later requests for the same URL wait for them. The sender
    /// is dropped (and every follower sees it) when its [`Leader`] is.
    inflight: std::sync::Mutex<std::collections::HashMap<String, tokio::sync::watch::Sender<()>>>,
    pub(crate) max_object: usize,
    /// Bytes held by bodies on their way into the store ([`filling`]), and their bound: the
    /// store's own size (what does not fit there would be evicted at once anyway).
    filling_bytes: AtomicU64,
    max_filling: u64,
    /// The operator's stale rules (ms), set by each snapshot: `serve_stale_on_error` and
    /// `stale_while_revalidate`.
    stale_on_error_ms: AtomicU64,
    stale_while_revalidate_ms: AtomicU64,
    /// Entries evicted for space (moka's listener counts them).
    evictions: Arc<std::sync::atomic::AtomicU64>,
    /// Evictions already reported to the metrics counter.
    evictions_reported: std::sync::atomic::AtomicU64,
}

/// What the cache holds for a request.
pub(crate) enum Lookup {
    /// Fresh: answer with it.
    Fresh(Arc<Variant>),
    /// Stored but stale (or the request asks to revalidate): revalidate it with its
    /// validators; it can still serve on error.
    Stale(Arc<Variant>),
    Miss,
}

impl std::fmt::Debug for SiteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("SiteCache").field("entries", &self.store.entry_count()).finish()
    }
}

impl SiteCache {
    pub(crate) fn new(max_bytes: u64, max_object: u64) -> SiteCache {
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
            filling_bytes: AtomicU64::new(0),
            max_filling: max_bytes,
            stale_on_error_ms: AtomicU64::new(0),
            stale_while_revalidate_ms: AtomicU64::new(0),
            evictions,
            evictions_reported: Default::default(),
        }
    }

    /// The operator's stale rules, from the site's config (a reload changes them).
    pub(crate) fn set_stale_rules(&self, on_error: Duration, while_revalidating: Duration) {
        self.stale_on_error_ms.store(on_error.as_millis() as u64, Relaxed);
        self.stale_while_revalidate_ms.store(while_revalidating.as_millis() as u64, Relaxed);
    }

    pub(crate) fn serve_stale_on_error(&self) -> Duration {
        Duration::from_millis(self.stale_on_error_ms.load(Relaxed))
    }

    pub(crate) fn stale_while_revalidate(&self) -> Duration {
        Duration::from_millis(self.stale_while_revalidate_ms.load(Relaxed))
    }

    /// The key: host and target without the parameters the site ignores (`[site.cache]
    /// ignore_params`: tracking tags); the method is GET for GET and HEAD; Vary picks the
    /// variant.
    pub(crate) fn key(host: &str, target: &str, ignored: &[String]) -> String {
        let target = crate::util::without_params(target, ignored);
        let mut k = String::with_capacity(host.len() + target.len());
        k.push_str(host);
        k.push_str(&target);
        k
    }

    /// The variant a request selects, fresh or stale. A request without directives of its
    /// own is looked up without copying anything; one with them (no-cache, max-age,
    /// max-stale, min-fresh) is judged by http-cache-semantics.
    pub(crate) fn lookup(&self, key: &str, req: &http::request::Parts, now: SystemTime) -> Lookup {
        let Some(entry) = self.store.get(key) else { return Lookup::Miss };
        let Some(v) = entry.iter().find(|v| v.selected_by(&req.headers)) else { return Lookup::Miss };
        let fresh = if Directives::in_request(&req.headers) {
            let req = normalized_request(req);
            matches!(v.policy.before_request(&*req, now), BeforeRequest::Fresh(_)) && v.is_fresh(now)
        } else {
            v.is_fresh(now)
        };
        if fresh {
            Lookup::Fresh(v.clone())
        } else {
            Lookup::Stale(v.clone())
        }
    }

    /// A policy for a response, if it may be stored (holdfast's rules on top of RFC 9111).
    pub(crate) fn policy_for(
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
        let policy = policy(req, resp, now);
        // Worth storing: fresh for a while, or revalidatable with a conditional request.
        let useful = policy.time_to_live(now) > Duration::ZERO || Directives::revalidatable(&resp.headers);
        (policy.is_storable() && useful).then_some(policy)
    }

    /// Stores a variant, replacing one with the same Vary match.
    pub(crate) fn insert(&self, key: String, variant: Variant, req: &http::request::Parts) {
        self.insert_shared(key, Arc::new(variant), req);
    }

    pub(crate) fn insert_shared(&self, key: String, variant: Arc<Variant>, req: &http::request::Parts) {
        let mut list: Vec<Arc<Variant>> = self
            .store
            .get(&key)
            .map(|e| e.iter().filter(|v| !v.selected_by(&req.headers)).take(7).cloned().collect())
            .unwrap_or_default();
        list.push(variant);
        self.store.insert(key, Arc::new(list));
    }

    /// Request collapsing: the first miss for `key` leads (Ok, with a guard that releases
    /// the others when dropped); later ones follow (Err): they wait for the leader's end.
    /// A follower subscribes under the same lock the leader's end takes, so it cannot miss
    /// that end, however late it comes.
    pub(crate) fn lead_or_follow(self: &Arc<Self>, key: &str) -> Result<Leader, Fill> {
        let Ok(mut inflight) = self.inflight.lock() else {
            return Ok(Leader { cache: None, key: String::new() });
        };
        if let Some(tx) = inflight.get(key) {
            return Err(Fill(tx.subscribe()));
        }
        inflight.insert(key.to_string(), tokio::sync::watch::channel(()).0);
        Ok(Leader { cache: Some(self.clone()), key: key.to_string() })
    }

    /// Claims the background refresh of `key`; None if one is running. The claim ends when
    /// the guard is dropped.
    pub(crate) fn begin_refresh(self: &Arc<Self>, key: &str) -> Option<Refreshing> {
        let claimed = self.refreshing.lock().is_ok_and(|mut r| r.insert(key.to_string()));
        claimed.then(|| Refreshing { cache: self.clone(), key: key.to_string() })
    }

    /// Bytes and entries stored now, and entries evicted for space since the last call
    /// (for the metrics at scrape time).
    pub(crate) fn sizes(&self) -> (u64, u64, u64) {
        let evicted = self.evictions.load(std::sync::atomic::Ordering::Relaxed);
        let before = self.evictions_reported.swap(evicted, std::sync::atomic::Ordering::Relaxed);
        (self.weighted_size(), self.entries(), evicted.saturating_sub(before))
    }

    /// Takes `n` more bytes for a body on its way into the store; false (nothing taken)
    /// when the bodies being filled already hold the store's size.
    pub(crate) fn take_filling(&self, n: u64) -> bool {
        let held = self.filling_bytes.fetch_add(n, Relaxed);
        if held.saturating_add(n) > self.max_filling {
            self.filling_bytes.fetch_sub(n, Relaxed);
            return false;
        }
        true
    }

    /// Gives back bytes taken by [`SiteCache::take_filling`].
    pub(crate) fn give_filling(&self, n: u64) {
        self.filling_bytes.fetch_sub(n, Relaxed);
    }

    /// Bytes held by bodies on their way into the store now.
    pub(crate) fn filling(&self) -> u64 {
        self.filling_bytes.load(Relaxed)
    }

    pub(crate) fn invalidate(&self, key: &str) {
        self.store.invalidate(key);
    }

    pub(crate) fn clear(&self) {
        self.store.invalidate_all();
    }

    /// Bytes stored (approximately; moka counts lazily).
    pub(crate) fn weighted_size(&self) -> u64 {
        self.store.run_pending_tasks();
        self.store.weighted_size()
    }

    pub(crate) fn entries(&self) -> u64 {
        self.store.entry_count()
    }
}

/// The request as the cache sees it: GET (HEAD is answered from a stored GET), the
/// origin-form target, the client's headers (Vary is about them).
pub(crate) fn cache_request(parts: &http::request::Parts) -> http::request::Parts {
    let mut r = http::Request::new(());
    *r.method_mut() = Method::GET;
    *r.uri_mut() =
        parts.uri.path_and_query().map_or_else(|| http::Uri::from_static("/"), |pq| http::Uri::from(pq.clone()));
    *r.headers_mut() = parts.headers.clone();
    r.into_parts().0
}

/// The policy of a response as http-cache-semantics sees it: a shared cache, the headers
/// in their normal form.
pub(crate) fn policy(req: &http::request::Parts, resp: &http::response::Parts, now: SystemTime) -> CachePolicy {
    let opts = CacheOptions { shared: true, ..CacheOptions::default() };
    match directives::normalize(&resp.headers) {
        None => CachePolicy::new_options(req, resp, now, opts),
        Some(headers) => {
            let mut r = http::Response::new(());
            *r.status_mut() = resp.status;
            *r.headers_mut() = headers;
            CachePolicy::new_options(req, &r.into_parts().0, now, opts)
        }
    }
}

/// The request with its Cache-Control in normal form (for http-cache-semantics).
fn normalized_request(req: &http::request::Parts) -> std::borrow::Cow<'_, http::request::Parts> {
    match directives::normalize(&req.headers) {
        None => std::borrow::Cow::Borrowed(req),
        Some(headers) => {
            let mut r = http::Request::new(());
            *r.method_mut() = req.method.clone();
            *r.uri_mut() = req.uri.clone();
            *r.headers_mut() = headers;
            std::borrow::Cow::Owned(r.into_parts().0)
        }
    }
}

/// The request fetching a miss for others; when dropped (its response stored, or found
/// not storable, or failed, or the request cancelled) the waiting requests look again.
pub(crate) struct Leader {
    cache: Option<Arc<SiteCache>>,
    key: String,
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(c) = &self.cache {
            // Dropping the sender ends every follower's wait.
            drop(c.inflight.lock().ok().and_then(|mut m| m.remove(&self.key)));
        }
    }
}

/// A follower's wait for the leader fetching the same miss.
pub(crate) struct Fill(tokio::sync::watch::Receiver<()>);

impl Fill {
    /// Resolves when the leader is done (stored, failed or cancelled).
    pub(crate) async fn done(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

/// A background refresh of one URL (stale-while-revalidate) in progress; the claim ends
/// when it is dropped.
pub(crate) struct Refreshing {
    cache: Arc<SiteCache>,
    key: String,
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        if let Ok(mut r) = self.cache.refreshing.lock() {
            r.remove(&self.key);
        }
    }
}

/// What a response needs to be stored once its body has come in whole ([`Filling`]).
pub(crate) struct Tee {
    pub(crate) cache: Arc<SiteCache>,
    pub(crate) key: String,
    pub(crate) request: http::request::Parts,
    pub(crate) policy: CachePolicy,
    pub(crate) status: StatusCode,
    pub(crate) headers: http::HeaderMap,
    /// Waiting requests are woken when the body is stored (or the tee is dropped).
    pub(crate) leader: Option<Leader>,
}

impl Tee {
    /// The body came in whole: store it (then the leader guard wakes the waiters).
    pub(crate) fn finish(mut self, body: Bytes) {
        let leader = self.leader.take();
        let v = Variant::new(self.policy, self.status, self.headers, body, &self.request, SystemTime::now());
        self.cache.insert(self.key, v, &self.request);
        drop(leader);
    }
}

/// RFC 9211 Cache-Status values.
pub(crate) fn status(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("holdfast; {value}")).unwrap_or(HeaderValue::from_static("holdfast"))
}

/// Is this status one a shared cache may serve stale in place of (origin failing)?
pub(crate) fn is_origin_failure(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}
