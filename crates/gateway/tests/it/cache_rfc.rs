//! The cache against RFC 9111 and RFC 9110, rule by rule, with the scripted origin of
//! `cache.rs` (each test names the rule it checks; docs/cache.md lists them): collapsed
//! revalidation, heuristic freshness, the client's preconditions and ranges answered from
//! the cache (never with the client's validators sent to the origin), Age, stale rules,
//! the update of stored fields by a 304, directive names in any case, private with
//! s-maxage, and the origins' own error pages.

use crate::cache::{cache_status, fetch, fetch_when_stale, world, world_with, LM_FIXED};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// RFC 9111 §4 (and the storm): twenty requests for a stale page at once make one
/// revalidation; the others wait for it and are answered from what it refreshed.
#[tokio::test]
async fn a_stale_page_is_revalidated_once_for_all_who_ask_at_the_same_time() {
    let (o, gw) = world("").await;
    let (_, _, first) = fetch(&gw, "GET", "/reval", &[]).await;
    let gw = Arc::new(gw);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { fetch(&gw, "GET", "/reval", &[]).await })
        })
        .collect();
    let mut collapsed = 0;
    for t in tasks {
        let (s, h, b) = t.await.unwrap();
        assert_eq!((s, b.as_str()), (200, first.as_str()));
        collapsed += usize::from(cache_status(&h).contains("collapsed"));
    }
    let revalidations = o.sent("/reval", "if-none-match").iter().filter(|v| v.is_some()).count();
    assert_eq!(revalidations, 1, "one revalidation for twenty requests");
    assert!(collapsed >= 15, "the others waited for it: {collapsed}");
}

/// RFC 9111 §4.2.2: a page rewritten a second ago, without freshness information, is fresh
/// for a tenth of its age but at least a second: the next request is a hit, not a
/// revalidation.
#[tokio::test]
async fn heuristic_freshness_never_leaves_a_page_stale_at_once() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/recent", &[]).await;
    let (_, h, _) = fetch(&gw, "GET", "/recent", &[]).await;
    assert!(cache_status(&h).starts_with("holdfast; hit; ttl="), "{h:?}");
    assert_eq!(o.hits.load(SeqCst), 1);
}

/// RFC 9110 §13.1.2, §13.1.3, §13.2.2, §15.4.5: the client's If-None-Match or
/// If-Modified-Since on a fresh stored response is answered 304 by the cache, with the
/// required fields; If-None-Match wins; the origin is not asked.
#[tokio::test]
async fn conditional_requests_are_answered_from_the_cache() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/cond", &[]).await;
    for asks in [
        &[("if-none-match", "\"c1\"")][..],
        &[("if-none-match", "\"x\", W/\"c1\"")],
        &[("if-modified-since", LM_FIXED)],
    ] {
        let (s, h, b) = fetch(&gw, "GET", "/cond", asks).await;
        assert_eq!((s, b.as_str()), (304, ""), "{asks:?}");
        assert_eq!(h["etag"], "\"c1\"");
        assert_eq!(h["cache-control"], "public, max-age=60");
        assert!(h.contains_key("date") && !h.contains_key("content-type"), "{h:?}");
        assert!(cache_status(&h).contains("hit"), "{h:?}");
    }
    let (s, _, b) = fetch(&gw, "GET", "/cond", &[("if-none-match", "\"c0\""), ("if-modified-since", LM_FIXED)]).await;
    assert_eq!((s, b.as_str()), (200, "0123456789abcdefghij"), "If-None-Match takes precedence");
    assert_eq!(fetch(&gw, "GET", "/cond", &[("if-match", "\"c0\"")]).await.0, 412);
    assert_eq!(o.hits.load(SeqCst), 1, "the origin was asked once, for the first GET");
}

/// RFC 9111 §4.3.1: the cache revalidates with its own validators; the client's never
/// reach the origin in their place, on a miss or a revalidation. The client's are then
/// answered by the cache.
#[tokio::test]
async fn the_clients_validators_never_reach_the_origin() {
    let (o, gw) = world("").await;
    // A miss with the client's If-None-Match: the origin gets an unconditional GET, the
    // cache stores its 200, the client gets its 304.
    let (s, h, _) = fetch(&gw, "GET", "/cond", &[("if-none-match", "\"c1\"")]).await;
    assert_eq!(s, 304, "{h:?}");
    assert_eq!(o.sent("/cond", "if-none-match"), vec![None]);
    assert!(cache_status(&fetch(&gw, "GET", "/cond", &[]).await.1).starts_with("holdfast; hit"), "stored");
    // A stale page revalidated for a client with other validators: the origin sees the
    // cache's ETag; the client, whose ETag does not match, gets the whole page.
    let (_, _, stored) = fetch(&gw, "GET", "/reval", &[]).await;
    let (s, _, b) = fetch(&gw, "GET", "/reval", &[("if-none-match", "\"other\"")]).await;
    assert_eq!((s, b.as_str()), (200, stored.as_str()));
    assert_eq!(o.sent("/reval", "if-none-match"), vec![None, Some("\"r1\"".into())]);
}

/// RFC 9110 §14: ranges of a stored response: 206 with Content-Range, multipart/byteranges
/// for several, 416 with `bytes */length`, and If-Range.
#[tokio::test]
async fn range_requests_are_answered_from_the_cache() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/cond", &[]).await;
    let (s, h, b) = fetch(&gw, "GET", "/cond", &[("range", "bytes=2-5")]).await;
    assert_eq!((s, b.as_str()), (206, "2345"));
    assert_eq!(h["content-range"], "bytes 2-5/20");
    assert_eq!(h["content-length"], "4");
    let (s, h, b) = fetch(&gw, "GET", "/cond", &[("range", "bytes=0-1,-2")]).await;
    assert_eq!(s, 206);
    assert!(h["content-type"].to_str().unwrap().starts_with("multipart/byteranges; boundary="));
    assert!(
        b.contains("Content-Range: bytes 0-1/20\r\n\r\n01") && b.contains("Content-Range: bytes 18-19/20\r\n\r\nij"),
        "{b}"
    );
    let (s, h, _) = fetch(&gw, "GET", "/cond", &[("range", "bytes=100-")]).await;
    assert_eq!((s, h["content-range"].to_str().unwrap()), (416, "bytes */20"));
    assert_eq!(fetch(&gw, "GET", "/cond", &[("range", "bytes=2-5"), ("if-range", "\"c1\"")]).await.0, 206);
    assert_eq!(fetch(&gw, "GET", "/cond", &[("range", "bytes=2-5"), ("if-range", "\"c9\"")]).await.0, 200);
    assert_eq!(o.hits.load(SeqCst), 1);
    // A range of a URL not stored goes to the origin as it is.
    let _ = fetch(&gw, "GET", "/fresh", &[("range", "bytes=0-1")]).await;
    assert_eq!(o.sent("/fresh", "range"), vec![Some("bytes=0-1".into())]);
}

/// RFC 9111 §5.1: an Age that is not one non-negative integer makes the response stale.
#[tokio::test]
async fn an_invalid_age_makes_the_response_stale() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/agebad", &[]).await;
    let (_, h, _) = fetch(&gw, "GET", "/agebad", &[]).await;
    assert!(!cache_status(&h).starts_with("holdfast; hit"), "{h:?}");
    assert_eq!(o.hits.load(SeqCst), 2);
}

/// RFC 9111 §5.2.2.10, §4.2.4: s-maxage implies proxy-revalidate: never served stale, also
/// when the origin drops the connection without an answer.
#[tokio::test]
async fn s_maxage_is_never_served_stale_even_when_the_origin_drops_the_connection() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/smaxage-short", &[]).await;
    o.mode.store(2, SeqCst);
    let (s, h, _) = fetch_when_stale(&gw, "/smaxage-short").await;
    assert_eq!(s, 503, "{h:?}");
    assert!(!cache_status(&h).contains("stale"), "{h:?}");
}

/// RFC 9111 §3.2, §4.3.4: a 304 updates the stored fields (here X-Version and
/// Cache-Control); Content-Length is never updated.
#[tokio::test]
async fn a_304_updates_the_stored_fields_but_not_the_length() {
    let (_o, gw) = world("").await;
    let (_, h, _) = fetch(&gw, "GET", "/upd", &[]).await;
    assert_eq!(h["x-version"], "1");
    let (s, h, b) = fetch_when_stale(&gw, "/upd").await;
    assert_eq!((s, b.as_str()), (200, "updated body"));
    assert_eq!(h["x-version"], "2", "{h:?}");
    assert_eq!(h["content-length"], "12");
    let (_, h, _) = fetch(&gw, "GET", "/upd", &[]).await;
    assert!(cache_status(&h).starts_with("holdfast; hit; ttl=5"), "fresh for 60 s now: {h:?}");
}

/// RFC 9111 §5.2: directive names are case-insensitive: `No-Cache` is no-cache.
#[tokio::test]
async fn directive_names_are_read_in_any_case() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/upper", &[]).await;
    let (_, h, _) = fetch(&gw, "GET", "/upper", &[]).await;
    assert!(!cache_status(&h).starts_with("holdfast; hit; ttl"), "no-cache: revalidated: {h:?}");
    assert_eq!(o.sent("/upper", "if-none-match"), vec![None, Some("\"up\"".into())]);
}

/// RFC 9111 §5.2.2.7: a shared cache never stores a private response, s-maxage or not.
#[tokio::test]
async fn private_with_s_maxage_is_not_stored() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/private-smaxage", &[]).await;
    let _ = fetch(&gw, "GET", "/private-smaxage", &[]).await;
    assert_eq!(o.hits.load(SeqCst), 2);
}

/// `[site.errors] replace_origin_errors`: the site's page (default), or the origin's own
/// 503 passed through; either way a 503 is not retried against the same origin in a loop.
#[tokio::test]
async fn origin_error_pages_are_replaced_or_passed_through() {
    let retries = "retry = { attempts = 3 }\n";
    let (o, gw) = world_with("", retries).await;
    let (s, h, b) = fetch(&gw, "GET", "/err503", &[]).await;
    assert_eq!(s, 503);
    assert!(b.contains("Wir sind gleich wieder da") && !b.contains("own 503"), "{b}");
    assert!(h.contains_key("retry-after"));
    assert!(o.hits.load(SeqCst) <= 2, "tried at most twice: {}", o.hits.load(SeqCst));
    let (o, gw) = world_with("errors = { replace_origin_errors = false }\n", retries).await;
    let (s, _, b) = fetch(&gw, "GET", "/err503", &[]).await;
    assert_eq!((s, b.as_str()), (503, "the origin's own 503 page"));
    assert!(o.hits.load(SeqCst) <= 2);
}

/// A hit's fields (written from the encoding made when the response was stored): each
/// stored field once, Age and Cache-Status of its own, Accept-Ranges once, its length; the
/// same over HTTP/1.1 and HTTP/2; a HEAD hit has the length a GET has, and no body
/// (RFC 9110 §9.3.2).
#[tokio::test]
async fn a_hit_has_its_stored_fields_once_over_http1_and_http2() {
    let (o, gw) = world("").await;
    let _ = fetch(&gw, "GET", "/cond", &[]).await;
    let check = |proto: &str, h: &http::HeaderMap| {
        for name in ["etag", "last-modified", "cache-control", "content-type", "date", "age", "accept-ranges"] {
            assert_eq!(h.get_all(name).iter().count(), 1, "{proto}: one {name}: {h:?}");
        }
        assert_eq!(h["etag"], "\"c1\"");
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["content-length"], "20", "{proto}");
        assert!(cache_status(h).starts_with("holdfast; hit; ttl="), "{proto}: {h:?}");
        assert!(!h.contains_key("transfer-encoding") && !h.contains_key("connection"), "{proto}: {h:?}");
    };
    let (s, h, b) = fetch(&gw, "GET", "/cond", &[]).await;
    assert_eq!((s, b.as_str()), (200, "0123456789abcdefghij"));
    check("HTTP/1.1", &h);
    let (s, h, b) = fetch(&gw, "HEAD", "/cond", &[]).await;
    assert_eq!((s, b.as_str()), (200, ""));
    check("HTTP/1.1 HEAD", &h);

    let tcp = tokio::net::TcpStream::connect(crate::common::http_addr(&gw)).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(crate::common::executor(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for method in ["GET", "HEAD"] {
        let req = http::Request::builder()
            .method(method)
            .uri("http://shop.de/cond")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let h = resp.headers().clone();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        check(&format!("HTTP/2 {method}"), &h);
        assert_eq!(&body[..], if method == "GET" { &b"0123456789abcdefghij"[..] } else { b"" });
    }
    assert_eq!(o.hits.load(SeqCst), 1, "all answered from the cache");
}
