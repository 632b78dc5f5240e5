//! Routing by host, forwarding headers, hop-by-hop removal, unknown hosts.

use crate::common::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn routes_by_exact_and_wildcard_host_with_forwarding_headers() {
    let de = echo_origin("de").await;
    let fr = echo_origin("fr").await;
    let gw =
        gateway(&config(&[("shop-de", &["shop.de", "*.shop.de"], de.addr), ("shop-fr", &["shop.fr"], fr.addr)], ""))
            .await;
    let addr = http_addr(&gw);

    let (status, headers, body) = get(addr, "shop.de", "/a?b=1").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-origin"], "de");
    assert!(body.starts_with("GET /a?b=1\n"), "{body}");
    assert!(body.contains("host: shop.de\n"), "Host is preserved: {body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    assert!(body.contains("x-forwarded-host: shop.de\n"), "{body}");
    assert!(body.contains("forwarded: for=127.0.0.1;proto=http;host=shop.de\n"), "{body}");
    assert!(body.contains("via: 1.1 holdfast\n"), "{body}");
    assert_eq!(headers["via"], "1.1 holdfast");

    let (_, headers, _) = get(addr, "deep.www.SHOP.de:8080", "/").await;
    assert_eq!(headers["x-origin"], "de", "wildcard matches any depth, case-insensitively, port ignored");
    let (_, headers, _) = get(addr, "shop.fr", "/").await;
    assert_eq!(headers["x-origin"], "fr");
    assert_eq!(de.hits.load(Ordering::SeqCst), 2);
    assert_eq!(fr.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_host_gets_404_page_without_origin_call() {
    let de = echo_origin("de").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr)], "")).await;
    let (status, headers, body) = get(http_addr(&gw), "evil.example", "/").await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(body.contains("No site is served"), "{body}");
    let (status, _, _) = get(http_addr(&gw), "shop.de.evil.example", "/").await;
    assert_eq!(status, 404);
    assert_eq!(de.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn spoofed_forwarding_headers_are_replaced_and_hop_by_hop_removed() {
    let de = echo_origin("de").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr)], "")).await;
    let req = b"GET /x HTTP/1.1\r\nHost: shop.de\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\
X-Forwarded-Proto: https\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=9\r\n\
Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n";
    let (text, _) = raw(http_addr(&gw), req, Duration::from_millis(500)).await;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
    assert!(!body.contains("6.6.6.6"), "{body}");
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    for gone in ["x-private", "keep-alive", "proxy-connection", "te:", "upgrade", "connection"] {
        assert!(!body.contains(&format!("\n{gone}")), "{gone} must not reach the origin: {body}");
    }
    assert!(body.contains("x-kept: yes\n"), "{body}");
    // And from the origin's response: the headers it listed in Connection are gone too.
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_ascii_lowercase();
    assert!(!head.contains("x-origin-secret"), "{head}");
    assert!(!head.contains("keep-alive: timeout"), "{head}");
}

#[tokio::test]
async fn trusted_proxy_chain_is_appended() {
    let de = echo_origin("de").await;
    let extra = "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr)], extra)).await;
    let req = b"GET / HTTP/1.1\r\nHost: shop.de\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";
    let (text, _) = raw(http_addr(&gw), req, Duration::from_millis(500)).await;
    assert!(text.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"), "{text}");
    assert!(text.contains("x-forwarded-proto: https\n"), "{text}");
}

#[tokio::test]
async fn keep_alive_to_client_and_origin() {
    let de = echo_origin("de").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr)], "")).await;
    let req = "GET /1 HTTP/1.1\r\nHost: shop.de\r\n\r\nGET /2 HTTP/1.1\r\nHost: shop.de\r\n\r\nGET /3 HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n";
    let (text, closed) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(closed);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    assert!(text.find("GET /1").unwrap() < text.find("GET /2").unwrap());
    assert!(text.find("GET /2").unwrap() < text.find("GET /3").unwrap());
}

#[tokio::test]
async fn refused_origin_gets_the_localized_maintenance_page() {
    // A port that was bound and released: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = gateway(&config(&[("shop-de", &["shop.de"], dead)], "")).await;
    let (status, headers, body) = get(http_addr(&gw), "shop.de", "/").await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body.contains("lang=\"de\"") && body.contains("Wir sind gleich wieder da"), "{body}");
    assert!(!body.contains(&dead.to_string()), "no internal detail leaks: {body}");
}

#[tokio::test]
async fn origin_connections_are_reused() {
    let de = echo_origin("de").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr)], "")).await;
    for _ in 0..10 {
        assert_eq!(get(http_addr(&gw), "shop.de", "/").await.0, 200);
    }
    assert_eq!(de.hits.load(Ordering::SeqCst), 10);
    assert_eq!(de.conns.load(Ordering::SeqCst), 1, "ten sequential requests share one origin connection");
}

#[tokio::test]
async fn pooled_connection_closed_by_origin_is_retried_transparently() {
    let de = echo_origin_with_idle("de", Some(Duration::from_millis(50))).await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr)], "")).await;
    for _ in 0..5 {
        let (status, _, body) = get(http_addr(&gw), "shop.de", "/").await;
        assert_eq!(status, 200, "{body}");
        // The origin closes the idle connection (after 50 ms) before the next request.
        assert!(wait_until(Duration::from_secs(5), || de.open.load(Ordering::SeqCst) == 0).await);
    }
    assert_eq!(de.hits.load(Ordering::SeqCst), 5);
    assert!(de.conns.load(Ordering::SeqCst) >= 2, "idle connections were closed by the origin and replaced");
}

#[tokio::test]
async fn options_asterisk_and_absolute_form_reach_the_origin_in_origin_form() {
    let de = echo_origin("de").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr)], "")).await;
    let req = b"GET http://shop.de/abs?x=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n";
    let (text, _) = raw(http_addr(&gw), req, Duration::from_secs(2)).await;
    assert!(text.contains("GET /abs?x=1\n"), "{text}");
    assert!(text.contains("host: shop.de\n"), "absolute-form authority wins over Host: {text}");
    let req = b"OPTIONS * HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n";
    let (text, _) = raw(http_addr(&gw), req, Duration::from_secs(2)).await;
    assert!(text.contains("OPTIONS *\n"), "{text}");
}
