//! Unit tests of the HTTP/1.x server's head parsing (chunked decoding is tested in
//! `crate::codec`; the connection's behaviour end to end in tests/it: framing.rs,
//! http1.rs, limits.rs, proxying.rs).

use super::*;

fn head(input: &[u8]) -> Result<Option<Head>, StatusCode> {
    let mut buf = BytesMut::from(input);
    parse_head(&mut buf, 8192, 100)
}

#[test]
fn a_plain_head_parses_in_one_pass() {
    let h = head(b"\r\nGET /a?b=1 HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n").unwrap().unwrap();
    assert_eq!(h.method, Method::GET);
    assert_eq!(h.uri, "/a?b=1");
    assert_eq!(h.headers["host"], "shop.de");
    assert!(!h.keep_alive);
    assert!(matches!(h.framing, Some(Framing::Length(0))));
    let h = head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().unwrap();
    assert!(h.keep_alive && h.version == Version::HTTP_10);
    let h = head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!h.keep_alive);
    assert!(head(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none(), "incomplete");
    let h = head(b"GET / HTTP/1.1\r\nX-Empty:\r\nX-Space: \r\nHost: a\r\n\r\n").unwrap().unwrap();
    assert_eq!(h.headers["x-empty"], "");
    assert_eq!(h.headers["x-space"], "");
    assert_eq!(h.headers["host"], "a");
}

#[test]
fn ambiguous_framing_is_flagged() {
    for extra in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        "Content-Length: 4\r\nContent-Length: 5\r\n",
        "Content-Length: +4\r\n",
        "Content-Length: 4, 4\r\n",
        "Content-Length: -1\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let input = format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        let h = head(input.as_bytes()).unwrap().unwrap();
        assert!(h.framing.is_none(), "{extra:?}");
    }
    let h = head(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
    assert!(h.framing.is_none(), "chunked in HTTP/1.0");
    let h = head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").unwrap().unwrap();
    assert!(matches!(h.framing, Some(Framing::Length(5))), "repeated equal values are one length");
}

#[test]
fn unservable_heads_get_their_status() {
    assert_eq!(head(b"GET / HTTP/1.1 x\r\n\r\n").err(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(head(b"GET / HTTP/9.9\r\n\r\n").err(), Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED));
    assert_eq!(head(b"GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n").err(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(head(b"GET / HTTP/1.1\r\nA: \x01\r\n\r\n").err(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(head(b"CONNECT a:443 HTTP/1.1\r\n\r\n").err(), Some(StatusCode::METHOD_NOT_ALLOWED));
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let input = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(head(input.as_bytes()).err(), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(8192));
    assert_eq!(head(big.as_bytes()).err(), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE), "complete but too large");
}

#[test]
fn the_date_field_is_an_http_date() {
    let d = date::now();
    let text = std::str::from_utf8(&d).unwrap();
    assert!(httpdate::parse_http_date(text).is_ok(), "{text}");
}
