//! Request ids and W3C trace context (Trace Context Level 1): what lets an operator follow
//! one request from the edge through the shop.
//!
//! - `X-Request-Id`: the client's, if it sent a sane one (1 to 128 visible ASCII
//!   characters), else one of holdfast's own (32 hex digits). It goes to the origin, into
//!   the access log, and back to the client.
//! - `traceparent`: a valid one from the client keeps its trace id and flags, and holdfast's
//!   own span becomes the parent the origin sees; without one (or with an invalid one,
//!   which the spec says to drop), holdfast starts a trace (`[proxy] traces = "start"`,
//!   the default) whose id is the request id it made, or passes nothing (`"pass"`).
//!   `tracestate` passes untouched, as the spec allows a proxy that adds no state.
//!
//! Ids come from a per-thread xorshift64* generator seeded from the operating system: unique
//! and unguessable enough for correlation, at a few nanoseconds per id (a system call per
//! request would not be).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::cell::Cell;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The ids of one request.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    pub(crate) request_id: HeaderValue,
    /// The trace it belongs to, if any: 32 lowercase hex digits.
    pub(crate) trace: Option<Trace>,
}

/// A W3C trace the request is part of, with holdfast's own span in it.
#[derive(Debug, Clone)]
pub(crate) struct Trace {
    pub(crate) trace_id: [u8; 32],
    /// holdfast's span: the parent the origin sees.
    span_id: [u8; 16],
    flags: [u8; 2],
}

impl Trace {
    pub(crate) fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id).unwrap_or("-")
    }

    /// holdfast's span in the trace (the parent id the origin sees).
    pub(crate) fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or("-")
    }

    /// `traceparent` for the origin: the same trace, holdfast's span as parent.
    pub(crate) fn traceparent(&self) -> Option<HeaderValue> {
        let mut v = Vec::with_capacity(55);
        v.extend_from_slice(b"00-");
        v.extend_from_slice(&self.trace_id);
        v.push(b'-');
        v.extend_from_slice(&self.span_id);
        v.push(b'-');
        v.extend_from_slice(&self.flags);
        HeaderValue::from_bytes(&v).ok()
    }
}

/// The ids of a request with these headers; `start`: begin a trace when it has none.
pub(crate) fn ids(headers: &HeaderMap, start: bool) -> Ids {
    let given = headers.get(&X_REQUEST_ID).filter(|v| sane_request_id(v.as_bytes())).cloned();
    let traced = headers.get(&TRACEPARENT).and_then(|v| parse_traceparent(v.as_bytes()));
    let mut own = None;
    let request_id = given.unwrap_or_else(|| {
        let id = hex::<32>(random_nonzero(), random());
        own = Some(id);
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
    });
    let span_id = hex::<16>(random_nonzero(), 0);
    let trace = match traced {
        Some((trace_id, flags)) => Some(Trace { trace_id, span_id, flags }),
        None if start => Some(Trace {
            trace_id: own.unwrap_or_else(|| hex::<32>(random_nonzero(), random())),
            span_id,
            flags: *b"01",
        }),
        None => None,
    };
    Ids { request_id, trace }
}

fn sane_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len()) && v.iter().all(|b| b.is_ascii_graphic())
}

/// The trace id and flags of a valid version-00 `traceparent` (a later version is read as
/// 00, as the spec says, from its first four fields). An all-zero id is invalid.
fn parse_traceparent(v: &[u8]) -> Option<([u8; 32], [u8; 2])> {
    let hexes = |s: &[u8]| s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let (version, trace, parent, flags) = (&v[..2], &v[3..35], &v[36..52], &v[53..55]);
    let later = v.len() > 55;
    if !hexes(version) || version == b"ff" || (version == b"00" && later) || (later && v[55] != b'-') {
        return None;
    }
    if !hexes(trace) || !hexes(parent) || !hexes(flags) {
        return None;
    }
    if trace.iter().all(|b| *b == b'0') || parent.iter().all(|b| *b == b'0') {
        return None;
    }
    let mut t = [0u8; 32];
    t.copy_from_slice(trace);
    Some((t, [flags[0], flags[1]]))
}

/// `N` lowercase hex digits of `hi` then `lo` (N = 16: `hi` only), into an array: no
/// allocation and no formatting machinery per request (`util::hex` writes a `String`
/// through `fmt`, which is fine for the cookies it serves, not for every request).
fn hex<const N: usize>(hi: u64, lo: u64) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; N];
    for (i, o) in out.iter_mut().enumerate() {
        let word = if i < 16 { hi } else { lo };
        let shift = 60 - 4 * (i % 16);
        *o = DIGITS[((word >> shift) & 0xf) as usize];
    }
    out
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut b).is_err() {
        // No system randomness: the time and the thread still make ids unique here.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        return t ^ (&b as *const _ as u64);
    }
    u64::from_le_bytes(b)
}

/// 64 random bits (not for secrets: for ids and nonces): the request path's xorshift64*
/// (`util::next_random_local`) on a per-thread state seeded from the system.
pub(crate) fn random() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        let r = crate::util::next_random_local(&mut x);
        s.set(x);
        r
    })
}

fn random_nonzero() -> u64 {
    random() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn a_request_id_is_kept_or_made() {
        let kept = ids(&h(&[("x-request-id", "abc-123")]), false);
        assert_eq!(kept.request_id, "abc-123");
        assert!(kept.trace.is_none());
        let made = ids(&h(&[("x-request-id", "")]), true);
        let id = made.request_id.to_str().unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(made.trace.as_ref().unwrap().trace_id(), id, "the trace started is the request id");
        assert_ne!(ids(&HeaderMap::new(), false).request_id, made.request_id);
        let long = "x".repeat(129);
        assert_ne!(ids(&h(&[("x-request-id", &long)]), false).request_id, long.as_str());
    }

    #[test]
    fn traceparent_keeps_the_trace_with_our_span() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let i = ids(&h(&[("traceparent", tp)]), true);
        let t = i.trace.unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let out = t.traceparent().unwrap();
        let out = out.to_str().unwrap();
        assert_eq!(out.len(), 55);
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert_ne!(&out[36..52], "00f067aa0ba902b7", "holdfast's own span is the parent");
        assert!(parse_traceparent(out.as_bytes()).is_some());
        // Invalid ones are dropped (a new trace starts, or none).
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad.as_bytes()).is_none(), "{bad}");
        }
        // A later version is read by its first fields.
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what").is_some());
        assert!(ids(&h(&[("traceparent", "garbage")]), false).trace.is_none());
    }
}
