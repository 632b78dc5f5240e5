//! Response heads from origins: parsed with httparse (strict), their framing (RFC 9112
//! §6.3), keep-alive, and the hop-by-hop fields that stay on this hop.
//!
//! An origin is trusted more than a client, but not blindly: differing Content-Length
//! values, or one that is not digits, are a protocol error (the connection is not reused,
//! and a response split in two cannot poison the pool); a response with both
//! Transfer-Encoding and Content-Length is read by Transfer-Encoding and its connection is
//! not reused.

use crate::fields::{field_name, is_hop_by_hop, KEEP_ALIVE};
use crate::framing::range_in;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, Version};

/// Most header fields a response head may have.
pub const MAX_HEADERS: usize = 256;

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Until the origin closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status (interim ones included: see [`skip_interim`]).
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Without the hop-by-hop fields (and those `Connection` names).
    pub headers: HeaderMap,
    /// How the body is delimited (a HEAD request's response, 1xx, 204 and 304 have none
    /// whatever this says: the caller knows its request).
    pub framing: ResponseFraming,
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// How long the origin keeps the connection open idle, in seconds, as its `Keep-Alive`
    /// field says (`timeout=5, max=100`, RFC 2068 §19.7.1.1; Apache and Node.js send it).
    pub keep_alive_timeout: Option<u64>,
}

/// Why a response head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadResponse;

/// Parses a response head from the front of `buf` (consuming it). Ok(None): incomplete.
pub fn parse_response(buf: &mut BytesMut) -> Result<Option<ResponseHead>, BadResponse> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Slots left uninitialised: httparse writes those it fills (4 KiB not cleared per read).
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse),
    };
    let status = parsed.code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or(BadResponse)?;
    let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    // Names, and where the values lie, before the head is split off as shared bytes.
    let base = buf.as_ptr() as usize;
    let mut fields = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = field_name(h.name.as_bytes()).map_err(|_| BadResponse)?;
        fields.push((name, range_in(base, len, h.value).ok_or(BadResponse)?));
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut length: Option<u64> = None;
    let mut te_chunked = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut keep_alive_timeout = None;
    // Fields named by Connection besides its usual tokens, removed at the end (rare).
    let mut listed: Vec<Bytes> = Vec::new();
    for (name, range) in fields {
        let value = HeaderValue::from_maybe_shared(head.slice(range)).map_err(|_| BadResponse)?;
        if name == header::CONTENT_LENGTH {
            let n = origin_length(value.as_bytes()).ok_or(BadResponse)?;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse); // differing Content-Length values
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding matters: chunked there delimits the body.
            let last = value.as_bytes().rsplit(|&b| b == b',').next().unwrap_or_default();
            te_chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == KEEP_ALIVE {
            keep_alive_timeout = keep_alive_timeout.or(timeout_param(value.as_bytes()));
        } else if name == header::CONNECTION {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                } else if !token.is_empty() {
                    listed.push(Bytes::copy_from_slice(token));
                }
            }
        }
        // Hop-by-hop fields stay on this hop (RFC 9110 §7.6.1); framing is redone downstream.
        // A 101 keeps its Upgrade: the protocol switched to, which the client must be told.
        if !is_hop_by_hop(&name) || (status == StatusCode::SWITCHING_PROTOCOLS && name == header::UPGRADE) {
            headers.append(name, value);
        }
    }
    for name in &listed {
        if let Ok(name) = std::str::from_utf8(name) {
            let switched = status == StatusCode::SWITCHING_PROTOCOLS && name.eq_ignore_ascii_case("upgrade");
            if !switched {
                headers.remove(name);
            }
        }
    }
    let bodiless = !crate::framing::status_has_body(status);
    let (framing, te) = match (te_chunked, length) {
        _ if bodiless => (ResponseFraming::Length(0), te_chunked.is_some()),
        (Some(true), _) => (ResponseFraming::Chunked, true),
        (Some(false), _) => (ResponseFraming::UntilClose, true),
        (None, Some(n)) => (ResponseFraming::Length(n), false),
        (None, None) => (ResponseFraming::UntilClose, false),
    };
    // A body until close ends the connection (found by fuzzing: it was marked reusable).
    let keep_alive = !close
        && (version == Version::HTTP_11 || keep_alive_token)
        && !(te && length.is_some())
        && framing != ResponseFraming::UntilClose;
    Ok(Some(ResponseHead { status, version, headers, framing, keep_alive, keep_alive_timeout }))
}

/// The `timeout` parameter of a `Keep-Alive` field value, in seconds (at most a day).
fn timeout_param(value: &[u8]) -> Option<u64> {
    value.split(|&b| b == b',').find_map(|p| {
        let eq = p.iter().position(|&b| b == b'=')?;
        let (name, v) = (p[..eq].trim_ascii(), p[eq + 1..].trim_ascii());
        if !name.eq_ignore_ascii_case(b"timeout") {
            return None;
        }
        let v = v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v);
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')).min(86_400))
    })
}

/// An origin's Content-Length: digits, or a list of equal values, which RFC 9110 §8.6
/// lets a recipient take as one (client requests get no such leeway: [`crate::request`]).
pub fn origin_length(v: &[u8]) -> Option<u64> {
    let mut value = None;
    for part in v.split(|&b| b == b',') {
        let n = crate::framing::parse_length(part)?;
        if value.is_some_and(|v| v != n) {
            return None;
        }
        value = Some(n);
    }
    value
}

/// Drops complete interim (1xx but 101) responses at the front of `buf`; whether what is
/// left begins something else (a final response, or bytes that are no response at all).
pub fn skip_interim(buf: &mut BytesMut) -> bool {
    while !buf.is_empty() {
        let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
            Ok(httparse::Status::Complete(len)) if parsed.code.is_some_and(|c| (100..200).contains(&c) && c != 101) => {
                bytes::Buf::advance(buf, len)
            }
            Ok(httparse::Status::Partial) => return false, // not yet known
            _ => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ResponseHead {
        parse_response(&mut BytesMut::from(text)).unwrap().unwrap()
    }

    #[test]
    fn a_101_keeps_the_protocol_switched_to() {
        let h = parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n");
        assert_eq!(h.headers["upgrade"], "websocket");
        assert!(!h.headers.contains_key("connection"));
        let h = parse("HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.headers.contains_key("upgrade"), "hop-by-hop on any other response");
    }

    #[test]
    fn the_keep_alive_timeout_an_origin_announces() {
        let timeout =
            |field: &str| parse(&format!("HTTP/1.1 200 OK\r\n{field}\r\nContent-Length: 0\r\n\r\n")).keep_alive_timeout;
        assert_eq!(timeout("Keep-Alive: timeout=5, max=100"), Some(5), "Apache's");
        assert_eq!(timeout("Keep-Alive: timeout=5"), Some(5), "Node.js's");
        assert_eq!(timeout("keep-alive: max=9, TIMEOUT = \"30\""), Some(30));
        assert_eq!(timeout("Keep-Alive: timeout=99999999999"), Some(86_400), "at most a day");
        for unsaid in [
            "Keep-Alive: max=100",
            "Keep-Alive: timeout=",
            "Keep-Alive: timeout=-1",
            "Keep-Alive: timeout=5s",
            "X-A: b",
        ] {
            assert_eq!(timeout(unsaid), None, "{unsaid}");
        }
        assert!(!parse("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n")
            .headers
            .contains_key("keep-alive"));
    }

    #[test]
    fn framing_and_keep_alive() {
        let h = parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!((h.framing, h.keep_alive), (ResponseFraming::Length(3), true));
        let h = parse("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (ResponseFraming::UntilClose, false), "until close: never reused");
        // Fuzz crash-857bccdd: a 204 after an interim response, without a length.
        let h = parse("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (ResponseFraming::Length(0), true));
        let h = parse("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, ResponseFraming::Length(0), "no body whatever the fields say");
        let h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (ResponseFraming::Chunked, false));
        assert!(parse_response(&mut BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n")).is_err());
        let h = parse("HTTP/1.1 200 OK\r\nConnection: close, x-p\r\nX-P: 1\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive && !h.headers.contains_key("x-p") && !h.headers.contains_key("connection"));
    }
}
