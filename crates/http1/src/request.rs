//! Request heads from clients: parsed with httparse in its default, strict configuration,
//! and judged for framing so that a request is never read one way here and another way by
//! an origin (request smuggling).
//!
//! A request whose framing is ambiguous gets [`RequestHead::framing`] `None`: the caller
//! answers it 400 and closes the connection, and it never reaches an origin. Ambiguous:
//! both Content-Length and Transfer-Encoding; Content-Length values that are not plain
//! digits or that differ; Transfer-Encoding other than exactly one `chunked` (obfuscations
//! such as `xchunked`, `chunked, identity`, a vertical tab, a repeated field);
//! Transfer-Encoding in HTTP/1.0.

use crate::fields::field_name;
use crate::framing::{parse_length, range_in};
use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// Most header fields a head may have (callers' limits are capped here).
pub const MAX_HEADERS: usize = 256;

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// The chunked coding ([`crate::Chunked`] decodes it).
    Chunked,
}

/// A parsed request head and what the connection needs to know about it.
#[derive(Debug)]
pub struct RequestHead {
    /// The method (never CONNECT: refused).
    pub method: Method,
    /// The request target as sent (origin or absolute form).
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, in order, as sent.
    pub headers: HeaderMap,
    /// None: ambiguous framing (answer 400 and close).
    pub framing: Option<BodyFraming>,
    /// The connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expects_continue: bool,
}

/// Parses a request head from the front of `buf`, consuming it (and any empty lines before
/// it, RFC 9112 §2.2). Ok(None): incomplete, read more. Err(status): a head that cannot be
/// served at all (400, 405 for CONNECT, 431 beyond `max_head` bytes or `max_headers`
/// fields, 505).
pub fn parse_request(
    buf: &mut BytesMut,
    max_head: usize,
    max_headers: usize,
) -> Result<Option<RequestHead>, StatusCode> {
    // Empty lines (CRLF, or a bare LF) only: a lone CR is no empty line.
    loop {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
        } else if buf.starts_with(b"\n") {
            buf.advance(1);
        } else {
            break;
        }
    }
    if buf.is_empty() || &buf[..] == b"\r" {
        return Ok(None);
    }
    // Slots left uninitialised: httparse writes those it fills (nothing cleared per head).
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let slots = &mut slots[..max_headers.clamp(1, MAX_HEADERS)];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(httparse::Error::Version) => return Err(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    if len > max_head {
        return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let bad = || StatusCode::BAD_REQUEST;
    let (Some(method), Some(path)) = (req.method, req.path) else { return Err(bad()) };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad())?;
    if method == Method::CONNECT {
        return Err(StatusCode::METHOD_NOT_ALLOWED); // a gateway, not a tunnel
    }
    let version = if req.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let (base, end) = (buf.as_ptr() as usize, len);
    let path_range = range_in(base, end, path.as_bytes()).ok_or_else(bad)?;
    let target_start = path.as_bytes().first().copied();
    // Names, and where the values lie, before the head is split off as shared bytes; the
    // framing fields on the way (one pass).
    let mut fields = Vec::with_capacity(req.headers.len());
    let (mut te, mut te_chunked, mut length, mut framing_ok) = (0usize, false, None::<u64>, true);
    let (mut close, mut keep_alive_token, mut expects_continue) = (false, false, false);
    for h in req.headers.iter() {
        let name = field_name(h.name.as_bytes()).map_err(|_| bad())?;
        let v = h.value;
        if name == header::TRANSFER_ENCODING {
            te += 1;
            te_chunked = v.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name == header::CONTENT_LENGTH {
            // Plain digits only: no sign, no list ("5, 5"), which some parsers accept. The
            // same value twice is one (RFC 9110 §8.6), and passed on once.
            match parse_length(v) {
                Some(n) if length == Some(n) => continue,
                Some(n) if length.is_none() => length = Some(n),
                _ => framing_ok = false,
            }
        } else if name == header::CONNECTION {
            for token in v.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == header::EXPECT {
            expects_continue = v.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        fields.push((name, range_in(base, end, v).ok_or_else(bad)?));
    }
    let framing = match (te, length) {
        _ if !framing_ok => None,
        (0, None) => Some(BodyFraming::Length(0)),
        (0, Some(n)) => Some(BodyFraming::Length(n)),
        (1, None) if te_chunked && version == Version::HTTP_11 => Some(BodyFraming::Chunked),
        _ => None,
    };
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_range)).map_err(|_| bad())?;
    // RFC 9112 §3.2: origin form (`/…`), absolute form (`http://host/…`), or `*` for
    // OPTIONS. Anything else (`?x`, a bare host) is a target no origin reads the same way
    // (found by the differential test).
    let origin_form = target_start == Some(b'/');
    let absolute_form = matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some();
    let asterisk = uri == "*" && method == Method::OPTIONS;
    if !(origin_form || absolute_form || asterisk) {
        return Err(bad());
    }
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, range) in fields {
        // httparse accepted these bytes as a field value; HeaderValue checks them again
        // (one pass over the value, as the crate forbids `unsafe`: ~100 instructions per
        // request head, callgrind; docs/architecture.md).
        let value = HeaderValue::from_maybe_shared(head.slice(range)).map_err(|_| bad())?;
        headers.append(name, value);
    }
    let keep_alive = !close && (version == Version::HTTP_11 || keep_alive_token);
    Ok(Some(RequestHead { method, uri, version, headers, framing, keep_alive, expects_continue }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(input: &[u8]) -> Result<Option<RequestHead>, StatusCode> {
        let mut buf = BytesMut::from(input);
        parse_request(&mut buf, 8192, 100)
    }

    #[test]
    fn a_plain_head_parses_in_one_pass() {
        let h = head(b"\r\nGET /a?b=1 HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.uri, "/a?b=1");
        assert_eq!(h.headers["host"], "shop.de");
        assert!(!h.keep_alive);
        assert!(matches!(h.framing, Some(BodyFraming::Length(0))));
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
        assert!(matches!(h.framing, Some(BodyFraming::Length(5))), "repeated equal values are one length");
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
        assert_eq!(
            head(big.as_bytes()).err(),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            "complete but too large"
        );
    }
}
