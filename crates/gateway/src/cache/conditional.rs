//! A client's own preconditions and ranges (RFC 9110 §13, §14), answered by the cache from
//! a full response it holds, so that they never reach an origin in place of the cache's own
//! validators: If-Match and If-Unmodified-Since (412), If-None-Match and If-Modified-Since
//! (304, with the fields §15.4.5 requires), Range with If-Range (206, multipart/byteranges
//! for several ranges, 416). Range syntax is http-range-header's.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use std::time::SystemTime;

/// The fields a 304 keeps of the 200 it stands for (RFC 9110 §15.4.5), and Age.
const KEPT_BY_304: [header::HeaderName; 8] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
    header::AGE,
];

/// Ranged answers whose parts add up to more than this many times the representation are
/// answered whole (overlapping ranges must not multiply what one request costs).
const MAX_RANGE_BYTES_FACTOR: u64 = 2;

/// What a client's own conditional and range fields ask.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientAsks {
    if_match: Option<String>,
    if_unmodified_since: Option<SystemTime>,
    if_none_match: Option<String>,
    if_modified_since: Option<SystemTime>,
    range: Option<String>,
    if_range: Option<String>,
}

fn joined(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|s| httpdate::parse_http_date(s.trim()).ok())
}

/// The entity tags of a list ("*" is None).
fn tags(list: &str) -> Option<Vec<&str>> {
    if list.trim() == "*" {
        return None;
    }
    Some(list.split(',').map(str::trim).filter(|t| !t.is_empty()).collect())
}

/// Weak comparison (§8.8.3.2): the opaque tags are equal, W/ or not.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// Strong comparison: both strong and equal.
fn strong_eq(a: &str, b: &str) -> bool {
    !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

impl ClientAsks {
    /// Takes the client's conditional and range fields out of `headers` (the request that
    /// goes to the origin carries the cache's validators, not the client's).
    pub(crate) fn take(headers: &mut HeaderMap) -> ClientAsks {
        // Most requests carry none of them: nothing is copied.
        const FIELDS: [header::HeaderName; 6] = [
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::RANGE,
            header::IF_RANGE,
        ];
        // One pass over the names (standard names compare as tags) instead of one hashed
        // look per field.
        if !headers.keys().any(|name| FIELDS.contains(name)) {
            return ClientAsks::default();
        }
        let asks = ClientAsks {
            if_match: joined(headers, header::IF_MATCH),
            if_unmodified_since: date(headers, header::IF_UNMODIFIED_SINCE),
            if_none_match: joined(headers, header::IF_NONE_MATCH),
            if_modified_since: date(headers, header::IF_MODIFIED_SINCE),
            range: joined(headers, header::RANGE),
            if_range: joined(headers, header::IF_RANGE),
        };
        for name in [
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::RANGE,
            header::IF_RANGE,
        ] {
            headers.remove(name);
        }
        asks
    }

    /// The answer to the client from a full response (`parts`, `body`) for `method`: 412
    /// when a precondition fails, 304 when it has the representation, 206 or 416 for a
    /// range; else the response as it is. Only a 200 is subject to them.
    pub(crate) fn answer(
        &self,
        method: &Method,
        mut parts: http::response::Parts,
        body: Bytes,
    ) -> (http::response::Parts, Bytes) {
        if self.is_empty() {
            if parts.status == StatusCode::OK {
                parts.headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            }
            return (parts, body);
        }
        match self.preconditions(method, parts) {
            Err(bare) => (bare, Bytes::new()),
            Ok(mut parts) => {
                if parts.status != StatusCode::OK {
                    return (parts, body);
                }
                let etag = parts.headers.get(header::ETAG).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
                let modified = date(&parts.headers, header::LAST_MODIFIED);
                parts.headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                match (&self.range, method == Method::GET) {
                    (Some(range), true) if self.if_range_holds(etag.as_deref(), modified) => ranged(parts, body, range),
                    _ => (parts, body),
                }
            }
        }
    }

    /// The client asked nothing of the kind.
    pub(crate) fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_unmodified_since.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.range.is_none()
    }

    /// From a response head alone: the 304 or 412 the client's preconditions call for
    /// (None: the response as it is; a range is not answered this way).
    pub(crate) fn without_content(
        &self,
        method: &Method,
        head: &http::response::Parts,
    ) -> Option<http::response::Parts> {
        if self.if_match.is_none()
            && self.if_unmodified_since.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
        {
            return None;
        }
        let mut copy = http::Response::new(());
        *copy.status_mut() = head.status;
        *copy.headers_mut() = head.headers.clone();
        self.preconditions(method, copy.into_parts().0).err()
    }

    /// RFC 9110 §13.2.2: Err with the bare 412 or 304 when a precondition says so, else the
    /// response unchanged.
    fn preconditions(
        &self,
        method: &Method,
        mut parts: http::response::Parts,
    ) -> Result<http::response::Parts, http::response::Parts> {
        if parts.status != StatusCode::OK {
            return Ok(parts);
        }
        let text = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::trim);
        let etag = text(header::ETAG).map(str::to_string);
        let modified = date(&parts.headers, header::LAST_MODIFIED);
        // §13.2.2: If-Match, else If-Unmodified-Since.
        let precondition = match (&self.if_match, self.if_unmodified_since) {
            (Some(list), _) => {
                tags(list).is_none_or(|ts| etag.as_deref().is_some_and(|e| ts.iter().any(|t| strong_eq(t, e))))
            }
            (None, Some(since)) => modified.is_none_or(|m| m <= since),
            (None, None) => true,
        };
        if !precondition {
            return Err(bare(parts, StatusCode::PRECONDITION_FAILED));
        }
        // If-None-Match, else If-Modified-Since: GET and HEAD get a 304.
        let changed = match (&self.if_none_match, self.if_modified_since) {
            (Some(list), _) => {
                !tags(list).is_none_or(|ts| etag.as_deref().is_some_and(|e| ts.iter().any(|t| weak_eq(t, e))))
            }
            (None, Some(since)) => modified.is_none_or(|m| m > since),
            (None, None) => true,
        };
        if !changed && (method == Method::GET || method == Method::HEAD) {
            parts.status = StatusCode::NOT_MODIFIED;
            let kept: HeaderMap = KEPT_BY_304
                .iter()
                .flat_map(|n| parts.headers.get_all(n).iter().map(move |v| (n.clone(), v.clone())))
                .collect();
            let mut status = parts.headers.get("cache-status").cloned();
            parts.headers = kept;
            if let Some(s) = status.take() {
                parts.headers.insert("cache-status", s);
            }
            return Err(parts);
        }
        Ok(parts)
    }

    /// If-Range (§13.1.5): an entity tag must match strongly, a date must be the
    /// Last-Modified exactly; without If-Range the range applies.
    fn if_range_holds(&self, etag: Option<&str>, modified: Option<SystemTime>) -> bool {
        let Some(v) = self.if_range.as_deref().map(str::trim) else { return true };
        if v.starts_with('"') || v.starts_with("W/") {
            return etag.is_some_and(|e| strong_eq(v, e));
        }
        httpdate::parse_http_date(v).ok().is_some_and(|d| modified == Some(d))
    }
}

/// A response without content: the status, and the stored fields but those describing the
/// content.
fn bare(mut parts: http::response::Parts, status: StatusCode) -> http::response::Parts {
    parts.status = status;
    for name in [header::CONTENT_LENGTH, header::CONTENT_TYPE, header::CONTENT_ENCODING, header::CONTENT_RANGE] {
        parts.headers.remove(name);
    }
    parts
}

/// The parts of `body` a Range asks for: 206 (one range), 206 multipart/byteranges
/// (several), 416 (none satisfiable); a range that cannot be parsed, or that asks for too
/// much, is ignored and the whole answers (§14.2 allows it).
fn ranged(mut parts: http::response::Parts, body: Bytes, range: &str) -> (http::response::Parts, Bytes) {
    let len = body.len() as u64;
    let ranges = match http_range_header::parse_range_header(range).map(|r| r.validate(len)) {
        Ok(Ok(ranges)) if !ranges.is_empty() => ranges,
        Ok(Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable))
        | Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => {
            let mut p = bare(parts, StatusCode::RANGE_NOT_SATISFIABLE);
            p.headers.insert(header::CONTENT_RANGE, content_range(None, len));
            return (p, Bytes::new());
        }
        _ => return (parts, body),
    };
    let asked: u64 = ranges.iter().map(|r| r.end() - r.start() + 1).sum();
    if asked > MAX_RANGE_BYTES_FACTOR * len.max(1) {
        return (parts, body);
    }
    parts.status = StatusCode::PARTIAL_CONTENT;
    parts.headers.remove(header::CONTENT_LENGTH);
    if let [one] = ranges.as_slice() {
        parts.headers.insert(header::CONTENT_RANGE, content_range(Some((*one.start(), *one.end())), len));
        return (parts, body.slice(*one.start() as usize..=*one.end() as usize));
    }
    let content_type = parts.headers.remove(header::CONTENT_TYPE);
    // A boundary that the content does not hold (64 random bits; checked all the same).
    let mut seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut boundary = format!("{:016x}", crate::util::next_random_local(&mut seed));
    while body.windows(boundary.len()).any(|w| w == boundary.as_bytes()) {
        boundary = format!("{:016x}", crate::util::next_random_local(&mut seed));
    }
    let mut out = BytesMut::with_capacity(asked as usize + ranges.len() * 128);
    for r in &ranges {
        out.put_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        if let Some(ct) = &content_type {
            out.put_slice(b"Content-Type: ");
            out.put_slice(ct.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Range: ");
        out.put_slice(content_range(Some((*r.start(), *r.end())), len).as_bytes());
        out.put_slice(b"\r\n\r\n");
        out.put_slice(&body[*r.start() as usize..=*r.end() as usize]);
    }
    out.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}")) {
        parts.headers.insert(header::CONTENT_TYPE, v);
    }
    (parts, out.freeze())
}

fn content_range(range: Option<(u64, u64)>, len: u64) -> HeaderValue {
    let text = match range {
        Some((a, b)) => format!("bytes {a}-{b}/{len}"),
        None => format!("bytes */{len}"),
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("bytes */0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"0123456789abcdefghij";
    const LM: &str = "Sun, 12 Dec 2010 19:00:00 GMT";

    fn full() -> http::response::Parts {
        let mut r = http::Response::new(());
        let h = r.headers_mut();
        h.insert("etag", HeaderValue::from_static("\"v1\""));
        h.insert("last-modified", HeaderValue::from_static(LM));
        h.insert("cache-control", HeaderValue::from_static("max-age=60"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("content-length", HeaderValue::from_static("20"));
        h.insert("x-other", HeaderValue::from_static("1"));
        r.into_parts().0
    }

    fn ask(fields: &[(&'static str, &'static str)]) -> (http::response::Parts, Bytes) {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            h.append(*k, HeaderValue::from_static(v));
        }
        let asks = ClientAsks::take(&mut h);
        assert!(h.is_empty(), "the client's fields are taken out of what goes to the origin");
        asks.answer(&Method::GET, full(), Bytes::from_static(BODY))
    }

    #[test]
    fn if_none_match_and_if_modified_since_give_a_304_with_the_required_fields() {
        for fields in [
            &[("if-none-match", "\"v1\"")][..],
            &[("if-none-match", "\"x\", W/\"v1\"")],
            &[("if-none-match", "*")],
            &[("if-modified-since", LM)],
            &[("if-modified-since", "Mon, 13 Dec 2010 00:00:00 GMT")],
        ] {
            let (p, body) = ask(fields);
            assert_eq!(p.status, 304, "{fields:?}");
            assert!(body.is_empty());
            assert_eq!(p.headers["etag"], "\"v1\"");
            assert_eq!(p.headers["cache-control"], "max-age=60");
            assert!(!p.headers.contains_key("content-length") && !p.headers.contains_key("x-other"));
        }
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(ask(&[("if-none-match", "\"v2\""), ("if-modified-since", LM)]).0.status, 200);
        assert_eq!(ask(&[("if-modified-since", "Sat, 11 Dec 2010 00:00:00 GMT")]).0.status, 200);
        assert_eq!(ask(&[("if-modified-since", "not a date")]).0.status, 200);
    }

    #[test]
    fn failed_preconditions_give_412() {
        assert_eq!(ask(&[("if-match", "\"v2\"")]).0.status, 412);
        assert_eq!(ask(&[("if-match", "W/\"v1\"")]).0.status, 412, "strong comparison");
        assert_eq!(ask(&[("if-match", "\"v1\"")]).0.status, 200);
        assert_eq!(ask(&[("if-unmodified-since", "Sat, 11 Dec 2010 00:00:00 GMT")]).0.status, 412);
    }

    #[test]
    fn ranges_give_206_multipart_or_416_and_if_range_decides() {
        let (p, b) = ask(&[("range", "bytes=2-5")]);
        assert_eq!((p.status.as_u16(), &b[..]), (206, &b"2345"[..]));
        assert_eq!(p.headers["content-range"], "bytes 2-5/20");
        let (p, b) = ask(&[("range", "bytes=-3")]);
        assert_eq!((&b[..], p.headers["content-range"].to_str().unwrap()), (&b"hij"[..], "bytes 17-19/20"));
        let (p, b) = ask(&[("range", "bytes=0-1, 10-11")]);
        assert_eq!(p.status, 206);
        let ct = p.headers["content-type"].to_str().unwrap().to_string();
        let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
        let text = String::from_utf8(b.to_vec()).unwrap();
        assert_eq!(text.matches(&format!("--{boundary}")).count(), 3, "{text}");
        assert!(
            text.contains("Content-Range: bytes 0-1/20\r\n\r\n01")
                && text.contains("Content-Range: bytes 10-11/20\r\n\r\nab")
        );
        assert!(text.contains("Content-Type: text/plain"));
        let (p, _) = ask(&[("range", "bytes=50-60")]);
        assert_eq!((p.status.as_u16(), p.headers["content-range"].to_str().unwrap()), (416, "bytes */20"));
        assert_eq!(ask(&[("range", "pages=1-2")]).0.status, 200, "not bytes: ignored");
        assert_eq!(ask(&[("range", "bytes=2-5"), ("if-range", "\"v1\"")]).0.status, 206);
        assert_eq!(ask(&[("range", "bytes=2-5"), ("if-range", "\"v0\"")]).0.status, 200);
        assert_eq!(ask(&[("range", "bytes=2-5"), ("if-range", LM)]).0.status, 206);
        assert_eq!(ask(&[("range", "bytes=2-5"), ("if-range", "Mon, 13 Dec 2010 00:00:00 GMT")]).0.status, 200);
        // Overlapping ranges that ask for far more than there is: the whole.
        assert_eq!(ask(&[("range", "bytes=0-19, 0-19, 0-19")]).0.status, 200);
    }
}
