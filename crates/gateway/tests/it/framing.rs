//! Request smuggling and malformed requests: 400, connection closed, origin never called.

use crate::common::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SMUGGLING: &[&str] = &[
    "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
    "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    "Content-Length: 4\r\nContent-Length: 5\r\n",
    "Content-Length: 4, 5\r\n",
    "Transfer-Encoding: xchunked\r\n",
    "Transfer-Encoding: chunked, identity\r\n",
    "Transfer-Encoding: \x0bchunked\r\n",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    "Transfer-Encoding : chunked\r\n",
    "Content-Length: -1\r\n",
];

#[tokio::test]
async fn ambiguous_framing_is_rejected_and_never_forwarded() {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "")).await;
    for extra in SMUGGLING {
        let req = format!(
            "POST /first HTTP/1.1\r\nHost: shop.de\r\n{extra}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: shop.de\r\n\r\n"
        );
        let (text, closed) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{extra:?}: {text}");
        assert!(closed, "{extra:?}: connection must close");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{extra:?}: nothing after the 400: {text}");
    }
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "no smuggling attempt reached the origin");
}

#[tokio::test]
async fn bad_request_after_good_ones_on_the_same_connection() {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "")).await;
    let req = "POST /ok HTTP/1.1\r\nHost: shop.de\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
POST /bad HTTP/1.1\r\nHost: shop.de\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let (text, closed) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(closed);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("body-bytes: 3"), "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "")).await;
    for bad in [
        "GET / HTTP/1.1 extra\r\nHost: shop.de\r\n\r\n",
        "GET\r\n\r\n",
        "G E T / HTTP/1.1\r\nHost: shop.de\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: shop.de\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop.de\r\nBad Header: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop.de\r\nHost: evil.example\r\n\r\n",
    ] {
        let (text, closed) = raw(http_addr(&gw), bad.as_bytes(), Duration::from_secs(2)).await;
        assert!(text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 505"), "{bad:?}: {text}");
        assert!(closed, "{bad:?}");
    }
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0);
}
