//! The shared cache with a scripted origin: RFC 9111 storing rules, Vary, HEAD, revalidation
//! with 304, stale-if-error and the operator's serve_stale_on_error, must-revalidate,
//! stale-while-revalidate, invalidation by unsafe methods, the maintenance page.

use crate::common::*;
use bytes::Bytes;
use holdfast_gateway::Gateway;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Requests the origin was sent: path and header fields.
pub(crate) type Seen = Arc<std::sync::Mutex<Vec<(String, http::HeaderMap)>>>;

/// 0: up; 1: answers 503; 2: resets connections.
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) mode: Arc<AtomicU8>,
    pub(crate) seen: Seen,
}

impl Origin {
    /// The header field `name` of the requests for `path` the origin was sent.
    pub(crate) fn sent(&self, path: &str, name: &str) -> Vec<Option<String>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string))
            .collect()
    }
}

async fn origin() -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let mode = Arc::new(AtomicU8::new(0));
    let seen: Seen = Default::default();
    let (h, m, sn) = (hits.clone(), mode.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (h, m, sn) = (h.clone(), m.clone(), sn.clone());
            tokio::spawn(async move {
                let m2 = m.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    sn.lock().unwrap().push((req.uri().path().to_string(), req.headers().clone()));
                    respond(req, h.clone(), m2.clone())
                });
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
                tokio::pin!(conn);
                loop {
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {
                            if m.load(SeqCst) == 2 { return; } // reset: drop the connection
                        }
                    }
                }
            });
        }
    });
    Origin { addr, hits, mode, seen }
}

/// A fixed Last-Modified of the range and conditional pages.
pub(crate) const LM_FIXED: &str = "Sun, 12 Dec 2010 19:00:00 GMT";

async fn respond(
    req: Request<Incoming>,
    hits: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if mode.load(SeqCst) == 2 {
        std::future::pending::<()>().await;
    }
    let n = hits.fetch_add(1, SeqCst) + 1;
    let path = req.uri().path().to_string();
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut r = Response::builder();
    if mode.load(SeqCst) == 1 {
        return Ok(r
            .status(503)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from("origin down")))
            .unwrap());
    }
    let now = std::time::SystemTime::now();
    let inm = req.headers().get("if-none-match").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // The pages of the RFC 9111 / 9110 cases (tests in cache_rfc.rs).
    let plain = |status: u16, headers: &[(&str, String)], body: &str| {
        let mut r = Response::builder().status(status);
        for (k, v) in headers {
            r = r.header(*k, v.as_str());
        }
        Ok(r.body(Full::new(Bytes::from(body.to_string()))).unwrap())
    };
    match path.as_str() {
        // Stale at once; its revalidation takes 300 ms.
        "/reval" => {
            let h = [("cache-control", "max-age=0".to_string()), ("etag", "\"r1\"".to_string())];
            if inm == "\"r1\"" {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return plain(304, &h, "");
            }
            return plain(200, &h, &format!("/reval #{n}"));
        }
        // Rewritten a second ago, no freshness given: heuristic freshness.
        "/recent" => {
            let lm = httpdate::fmt_http_date(now - Duration::from_secs(1));
            return plain(
                200,
                &[("last-modified", lm), ("date", httpdate::fmt_http_date(now))],
                &format!("/recent #{n}"),
            );
        }
        "/cond" => {
            let h = [
                ("cache-control", "public, max-age=60".to_string()),
                ("etag", "\"c1\"".to_string()),
                ("last-modified", LM_FIXED.to_string()),
                ("content-type", "text/plain".to_string()),
            ];
            if inm == "\"c1\"" {
                return plain(304, &h, "");
            }
            return plain(200, &h, "0123456789abcdefghij");
        }
        "/agebad" => {
            return plain(
                200,
                &[("cache-control", "public, max-age=60".into()), ("age", "abc".into())],
                &format!("#{n}"),
            )
        }
        "/smaxage-short" => return plain(200, &[("cache-control", "s-maxage=1".into())], &format!("#{n}")),
        "/upper" => {
            return plain(
                200,
                &[("cache-control", "No-Cache, Max-Age=60".into()), ("etag", "\"up\"".into())],
                &format!("#{n}"),
            )
        }
        "/private-smaxage" => return plain(200, &[("cache-control", "private, s-maxage=60".into())], &format!("#{n}")),
        "/err503" => return plain(503, &[("cache-control", "no-store".into())], "the origin's own 503 page"),
        "/upd" => {
            if inm == "\"u1\"" {
                let h = [
                    ("cache-control", "max-age=60".to_string()),
                    ("etag", "\"u1\"".to_string()),
                    ("x-version", "2".to_string()),
                    ("content-length", "0".to_string()),
                ];
                return plain(304, &h, "");
            }
            let h = [
                ("cache-control", "max-age=1".to_string()),
                ("etag", "\"u1\"".to_string()),
                ("x-version", "1".to_string()),
            ];
            return plain(200, &h, "updated body");
        }
        _ => {}
    }
    let extra: &[(&str, String)] = &match path.as_str() {
        "/expires" => vec![("expires", httpdate::fmt_http_date(now + Duration::from_secs(60)))],
        "/age" => vec![("age", "100".into())],
        // A fixed Last-Modified, long before Date: heuristic freshness (10% of the age).
        "/heuristic" | "/lastmod" => vec![
            ("last-modified", httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))),
            ("date", httpdate::fmt_http_date(now)),
        ],
        "/lastmod-moved" => vec![("last-modified", httpdate::fmt_http_date(now))],
        "/varystar" => vec![("vary", "*".into())],
        _ => vec![],
    };
    for (k, v) in extra {
        r = r.header(*k, v.as_str());
    }
    if path.starts_with("/lastmod") && req.headers().contains_key("if-modified-since") {
        return Ok(r.header("cache-control", "max-age=1").status(304).body(Full::new(Bytes::new())).unwrap());
    }
    let cc = match path.as_str() {
        "/smaxage" => "s-maxage=60, max-age=0",
        "/nocache" => "no-cache, max-age=60",
        "/immutable" => "public, max-age=60, immutable",
        "/age" | "/varystar" | "/reqnocache" | "/reqnostore" => "public, max-age=60",
        "/expires" | "/heuristic" => "",
        "/lastmod" | "/lastmod-moved" => "max-age=1",
        "/fresh" | "/vary" | "/cookie" | "/big" | "/slow" => "public, max-age=60",
        p if p.starts_with("/page/") => "public, max-age=60",
        "/private" => "private, max-age=60",
        "/nostore" => "no-store",
        "/etag" => "max-age=1",
        "/sie" => "max-age=1, stale-if-error=600",
        "/short" => "max-age=1",
        "/mustreval" => "max-age=1, must-revalidate",
        "/swr" => "max-age=1, stale-while-revalidate=30",
        _ => "no-store",
    };
    if !cc.is_empty() {
        r = r.header("cache-control", cc);
    }
    if path == "/etag" {
        r = r.header("etag", "\"v1\"");
        if req.headers().get("if-none-match").is_some_and(|v| v == "\"v1\"") {
            return Ok(r.status(304).body(Full::new(Bytes::new())).unwrap());
        }
    }
    if path == "/cookie" {
        r = r.header("set-cookie", "session=secret");
    }
    let mut body = format!("{path} #{n}");
    if path == "/vary" {
        r = r.header("vary", "Accept-Language");
        body.push_str(&format!(
            " lang={}",
            req.headers().get("accept-language").and_then(|v| v.to_str().ok()).unwrap_or("-")
        ));
    }
    if path == "/big" {
        body = "x".repeat(2 * 1024 * 1024);
    }
    if path.starts_with("/page/") {
        body = format!("{path} {}", "p".repeat(4000));
    }
    Ok(r.body(Full::new(Bytes::from(body))).unwrap())
}

pub(crate) async fn world(extra_site: &str) -> (Origin, Gateway) {
    world_with(extra_site, "retry = { attempts = 1 }\n").await
}

/// A gateway with shop-de before the scripted origin; `extra_site` and `retry` go into
/// the site.
pub(crate) async fn world_with(extra_site: &str, retry: &str) -> (Origin, Gateway) {
    let o = origin().await;
    let text = config(&[("shop-de", &["shop.de"], o.addr)], "[timeouts]\norigin_response = \"2s\"\n")
        .replace("health = { enabled = false }\n", &format!("health = {{ enabled = false }}\n{retry}{extra_site}"));
    (o, gateway(&text).await)
}

pub(crate) async fn fetch(
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder().method(method).uri(path).header("host", "shop.de");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(http_addr(gw), req.body(Full::new(Bytes::new())).unwrap()).await
}

pub(crate) fn cache_status(h: &http::HeaderMap) -> String {
    h.get("cache-status").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// GETs `path` once the cache no longer holds a fresh copy of it. While it answers from a
/// fresh copy (the origin is not asked, nothing changes) it is asked again a little later;
/// the first answer that is not a fresh hit is returned. Freshness lifetimes here are one
/// second (HTTP's resolution), so this is the wait for the lifetime to pass.
pub(crate) async fn fetch_when_stale(gw: &Gateway, path: &str) -> (u16, http::HeaderMap, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = fetch(gw, "GET", path, &[]).await;
        if !cache_status(&r.1).starts_with("holdfast; hit; ttl=") || tokio::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fresh_responses_are_served_from_the_cache_and_head_from_a_stored_get() {
    let (o, gw) = world("").await;
    let (s, h, b1) = fetch(&gw, "GET", "/fresh", &[]).await;
    assert_eq!(s, 200);
    assert!(cache_status(&h).contains("fwd=miss; fwd-status=200; stored"), "{h:?}");
    let (s, h, b2) = fetch(&gw, "GET", "/fresh", &[]).await;
    assert_eq!((s, b2.as_str()), (200, b1.as_str()));
    assert!(cache_status(&h).starts_with("holdfast; hit; ttl="), "{h:?}");
    assert!(h.contains_key("age"));
    let (s, h, body) = fetch(&gw, "HEAD", "/fresh", &[]).await;
    assert_eq!((s, body.as_str()), (200, ""));
    assert!(cache_status(&h).contains("hit"), "{h:?}");
    assert_eq!(o.hits.load(SeqCst), 1, "one origin request for three answers");
}

#[tokio::test]
async fn tracking_parameters_name_no_page_of_their_own() {
    // A newsletter's readers each land with a utm_ query of their own: one page, one fill.
    let (o, gw) = world("").await;
    let (s, h, first) = fetch(&gw, "GET", "/fresh?utm_source=newsletter&utm_id=1", &[]).await;
    assert_eq!(s, 200);
    assert!(cache_status(&h).contains("stored"), "{h:?}");
    for n in 2..6 {
        let (s, h, b) = fetch(&gw, "GET", &format!("/fresh?utm_source=newsletter&utm_id={n}&gclid=x{n}"), &[]).await;
        assert_eq!((s, b.as_str()), (200, first.as_str()));
        assert!(cache_status(&h).contains("hit"), "{h:?}");
    }
    let (_, h, _) = fetch(&gw, "GET", "/fresh", &[]).await;
    assert!(cache_status(&h).contains("hit"), "the same page without them: {h:?}");
    assert_eq!(o.hits.load(SeqCst), 1);
    // A parameter that names a page is kept in the key.
    let (_, h, _) = fetch(&gw, "GET", "/fresh?page=2&utm_id=9", &[]).await;
    assert!(cache_status(&h).contains("fwd=miss"), "{h:?}");
    assert_eq!(o.hits.load(SeqCst), 2);
}

#[tokio::test]
async fn private_no_store_set_cookie_and_authorized_responses_are_never_shared() {
    let (o, gw) = world("").await;
    for path in ["/private", "/nostore", "/cookie"] {
        let (_, _, a) = fetch(&gw, "GET", path, &[]).await;
        let (_, h, b) = fetch(&gw, "GET", path, &[]).await;
        assert_ne!(a, b, "{path} must not be shared");
        assert!(!cache_status(&h).contains("hit"), "{path}: {h:?}");
    }
    let (_, _, a) = fetch(&gw, "GET", "/fresh", &[("authorization", "Bearer alice")]).await;
    let (_, _, b) = fetch(&gw, "GET", "/fresh", &[("authorization", "Bearer bob")]).await;
    assert_ne!(a, b, "one user's authorized response is not another's");
    assert_eq!(o.hits.load(SeqCst), 8);
}

#[tokio::test]
async fn vary_keeps_a_variant_per_request_header_value() {
    let (o, gw) = world("").await;
    let (_, _, de) = fetch(&gw, "GET", "/vary", &[("accept-language", "de")]).await;
    let (_, _, fr) = fetch(&gw, "GET", "/vary", &[("accept-language", "fr")]).await;
    assert!(de.contains("lang=de") && fr.contains("lang=fr"));
    let (_, h, de2) = fetch(&gw, "GET", "/vary", &[("accept-language", "de")]).await;
    let (_, _, fr2) = fetch(&gw, "GET", "/vary", &[("accept-language", "fr")]).await;
    assert_eq!((de2, fr2), (de, fr));
    assert!(cache_status(&h).contains("hit"));
    assert_eq!(o.hits.load(SeqCst), 2);
}

#[tokio::test]
async fn stale_responses_are_revalidated_with_their_etag() {
    let (o, gw) = world("").await;
    let (_, _, first) = fetch(&gw, "GET", "/etag", &[]).await;
    let (s, h, again) = fetch_when_stale(&gw, "/etag").await;
    assert_eq!(s, 200, "the client did not ask conditionally: it gets the whole body");
    assert_eq!(again, first, "from the stored body");
    assert!(cache_status(&h).contains("fwd=stale; fwd-status=304"), "{h:?}");
    assert_eq!(o.hits.load(SeqCst), 2);
}

#[tokio::test]
async fn stale_if_error_and_serve_stale_on_error_answer_when_the_origin_fails() {
    let (o, gw) = world("").await;
    let (_, _, sie) = fetch(&gw, "GET", "/sie", &[]).await;
    let (_, _, short) = fetch(&gw, "GET", "/short", &[]).await;
    let _ = fetch(&gw, "GET", "/mustreval", &[]).await;
    o.mode.store(1, SeqCst); // 503
    let (s, h, b) = fetch_when_stale(&gw, "/sie").await;
    assert_eq!((s, b.as_str()), (200, sie.as_str()));
    assert!(cache_status(&h).contains("detail=stale-if-error") && cache_status(&h).contains("fwd-status=503"), "{h:?}");
    o.mode.store(2, SeqCst); // resets: no origin answers at all
    let (s, h, b) = fetch_when_stale(&gw, "/short").await;
    assert_eq!(
        (s, b.as_str()),
        (200, short.as_str()),
        "the operator's serve_stale_on_error applies without stale-if-error"
    );
    assert!(cache_status(&h).contains("stale"), "{h:?}");
    let (s, h, b) = fetch_when_stale(&gw, "/mustreval").await;
    assert_eq!(s, 503, "must-revalidate is never served stale");
    assert!(b.contains("Wir sind gleich wieder da") && h.contains_key("retry-after"), "{b}");
    let (s, _, b) = fetch(&gw, "GET", "/never-fetched", &[]).await;
    assert_eq!(s, 503);
    assert!(b.contains("lang=\"de\""));
}

#[tokio::test]
async fn serve_stale_on_error_zero_means_no_stale_without_stale_if_error() {
    let (o, gw) = world("cache = { serve_stale_on_error = \"0s\" }\n").await;
    let _ = fetch(&gw, "GET", "/short", &[]).await;
    o.mode.store(2, SeqCst);
    assert_eq!(fetch_when_stale(&gw, "/short").await.0, 503);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let (o, gw) = world("").await;
    let (_, _, first) = fetch(&gw, "GET", "/swr", &[]).await;
    let (s, h, stale) = fetch_when_stale(&gw, "/swr").await;
    assert_eq!((s, stale.as_str()), (200, first.as_str()));
    assert!(cache_status(&h).contains("stale-while-revalidate"), "{h:?}");
    assert!(wait_until(Duration::from_secs(3), || o.hits.load(SeqCst) == 2).await);
    // The refresh is stored as its body ends, just after the origin counted it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let (h, fresh) = loop {
        let (_, h, body) = fetch(&gw, "GET", "/swr", &[]).await;
        if body != first || tokio::time::Instant::now() > deadline {
            break (h, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(fresh, first, "the background refresh stored a new copy");
    assert!(cache_status(&h).starts_with("holdfast; hit; ttl="), "{h:?}");
}

#[tokio::test]
async fn unsafe_methods_invalidate_and_large_bodies_pass_unstored() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/fresh", &[]).await;
    let _ = fetch(&gw, "GET", "/fresh", &[]).await;
    assert_eq!(o.hits.load(SeqCst), 1);
    let _ = fetch(&gw, "POST", "/fresh", &[]).await;
    let (_, h, _) = fetch(&gw, "GET", "/fresh", &[]).await;
    assert!(!cache_status(&h).contains("hit"), "invalidated by the POST: {h:?}");
    assert_eq!(o.hits.load(SeqCst), 3);
    let (_, h, b) = fetch(&gw, "GET", "/big", &[]).await;
    assert_eq!(b.len(), 2 * 1024 * 1024);
    assert!(cache_status(&h).contains("too-large"), "{h:?}");
    let _ = fetch(&gw, "GET", "/big", &[]).await;
    assert_eq!(o.hits.load(SeqCst), 5);
}

#[tokio::test]
async fn concurrent_misses_collapse_into_one_origin_request() {
    let (o, gw) = world("").await;
    let gw = Arc::new(gw);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { fetch(&gw, "GET", "/slow", &[]).await })
        })
        .collect();
    let mut collapsed = 0;
    for t in tasks {
        let (s, h, b) = t.await.unwrap();
        assert_eq!((s, b.as_str()), (200, "/slow #1"));
        collapsed += usize::from(cache_status(&h).contains("collapsed"));
    }
    assert_eq!(o.hits.load(SeqCst), 1, "ten concurrent misses, one origin request");
    assert!(collapsed >= 8, "the waiting requests say they were collapsed: {collapsed}");
}

#[tokio::test]
async fn purge_by_url_and_by_site_and_cache_metrics() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/fresh", &[]).await;
    let _ = fetch(&gw, "GET", "/fresh", &[]).await;
    let admin = gw.admin_addr.unwrap();
    let (_, _, metrics) = get(admin, "a", "/metrics").await;
    assert!(metrics.contains("holdfast_cache_total{site=\"shop-de\",reason=\"hit\"} 1"), "{metrics}");
    assert!(metrics.contains("holdfast_cache_total{site=\"shop-de\",reason=\"miss\"} 1"), "{metrics}");
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("holdfast_cache_bytes{site=\"shop-de\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(bytes > 0);
    let post =
        |path: &str| send(admin, http::Request::post(path).header("host", "a").body(Full::new(Bytes::new())).unwrap());
    assert_eq!(post("/admin/purge?url=http%3A%2F%2Fshop.de%2Ffresh").await.0, 200);
    let (_, h, _) = fetch(&gw, "GET", "/fresh", &[]).await;
    assert!(!cache_status(&h).contains("hit"), "purged: {h:?}");
    assert_eq!(o.hits.load(SeqCst), 2);
    assert_eq!(post("/admin/purge?site=shop-de").await.0, 200);
    let _ = fetch(&gw, "GET", "/fresh", &[]).await;
    assert_eq!(o.hits.load(SeqCst), 3);
    assert_eq!(post("/admin/purge?site=nope").await.0, 404);
    assert_eq!(post("/admin/purge").await.0, 400);
}

#[tokio::test]
async fn each_directive_decides_whether_a_second_request_is_a_hit() {
    let (o, gw) = world("").await;
    // (path, request headers, the second request is answered from the cache)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        ("/smaxage", &[], true), // s-maxage is for shared caches like this one
        ("/immutable", &[], true),
        ("/expires", &[], true),   // Expires in the future
        ("/heuristic", &[], true), // no freshness given; Last-Modified 10 days ago
        ("/nocache", &[], false),  // response no-cache: revalidate every time
        ("/age", &[], false),      // Age 100 > max-age 60: already stale
        ("/varystar", &[], false), // Vary: * matches nothing
        ("/reqnocache", &[("cache-control", "no-cache")], false),
        ("/reqnostore", &[("cache-control", "no-store")], false),
    ];
    for (path, headers, hit) in cases {
        let before = o.hits.load(SeqCst);
        let _ = fetch(&gw, "GET", path, headers).await;
        let (s, h, _) = fetch(&gw, "GET", path, headers).await;
        assert_eq!(s, 200, "{path}");
        let origin_requests = o.hits.load(SeqCst) - before;
        assert_eq!(
            origin_requests == 1,
            *hit,
            "{path}: {origin_requests} origin requests, cache-status {:?}",
            cache_status(&h)
        );
        assert_eq!(cache_status(&h).starts_with("holdfast; hit"), *hit, "{path}: {h:?}");
    }
}

#[tokio::test]
async fn last_modified_revalidation_refreshes_the_stored_copy() {
    let (o, gw) = world("").await;
    let (_, _, first) = fetch(&gw, "GET", "/lastmod", &[]).await;
    let (s, h, again) = fetch_when_stale(&gw, "/lastmod").await;
    assert_eq!((s, again.as_str()), (200, first.as_str()));
    assert!(cache_status(&h).contains("fwd-status=304"), "If-Modified-Since sent, 304 answered: {h:?}");
    let (_, h, _) = fetch(&gw, "GET", "/lastmod", &[]).await;
    assert!(cache_status(&h).starts_with("holdfast; hit"), "fresh again after the 304: {h:?}");
    assert_eq!(o.hits.load(SeqCst), 2);
}

#[tokio::test]
async fn a_304_that_cannot_update_the_stored_copy_is_never_passed_to_an_unconditional_client() {
    // The origin's Last-Modified changes on every answer, so its 304 matches nothing stored.
    let (_o, gw) = world("").await;
    let (_, _, first) = fetch(&gw, "GET", "/lastmod-moved", &[]).await;
    let (s, h, again) = fetch_when_stale(&gw, "/lastmod-moved").await;
    assert_eq!((s, again.as_str()), (200, first.as_str()), "{h:?}");
    assert!(cache_status(&h).contains("detail=not-updated"), "{h:?}");
}

#[tokio::test]
async fn the_cache_stays_within_its_byte_bound() {
    let (_o, gw) = world("cache = { max_bytes = \"64KiB\" }\n").await;
    for i in 0..200 {
        assert_eq!(fetch(&gw, "GET", &format!("/page/{i}"), &[]).await.0, 200);
    }
    let (_, _, metrics) = get(gw.admin_addr.unwrap(), "a", "/metrics").await;
    let value = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    let bytes = value("holdfast_cache_bytes{site=\"shop-de\"}");
    assert!(bytes > 0 && bytes <= 64 * 1024, "800 KB of pages through a 64 KiB cache: {bytes} bytes stored");
    assert!(value("holdfast_cache_evictions_total{site=\"shop-de\"}") > 0, "{metrics}");
}
