//! The request's host: where it is read from (the absolute-form target or `:authority`,
//! else the Host field, never one of several), and Host values as routing keys (lowercase,
//! without the port), refusing anything that is not a host.

use http::header::{self, HeaderMap, HeaderValue};
use std::borrow::Cow;

/// The request's Host as received: from the absolute-form target or `:authority` when
/// present (RFC 9112 §3.2.2), else the Host header.
/// None also when there are several Host fields (RFC 9112 §3.2: 400), so that no origin
/// can read a different one than holdfast routed by.
pub fn host_value(uri: &http::Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if first.is_some() && hosts.next().is_some() {
        return None;
    }
    match uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => first.cloned(),
    }
}

/// A Host value as a routing key: lowercase, without port. None when not a valid host.
pub fn normalize_host(value: &HeaderValue) -> Option<Cow<'_, str>> {
    // One pass: only these bytes are valid (so the value is ASCII), and whether a colon
    // (a port, or an IPv6 literal) or an uppercase letter needs a closer look.
    let (mut colon, mut upper) = (false, false);
    for &b in value.as_bytes() {
        if !HOST_BYTE[b as usize] {
            return None;
        }
        colon |= b == b':';
        upper |= b.is_ascii_uppercase();
    }
    let raw = std::str::from_utf8(value.as_bytes()).ok()?;
    let host = if colon || raw.starts_with('[') { strip_port(raw)? } else { raw };
    if host.is_empty() {
        return None;
    }
    if upper {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// Bytes a Host value may hold here: letters, digits, `-._[]:` (IP literals, the port).
static HOST_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'[' | b']' | b':');
        b += 1;
    }
    t
};

/// `raw` holds only [`HOST_BYTE`]s (no userinfo `@`).
fn strip_port(raw: &str) -> Option<&str> {
    if raw.starts_with('[') {
        let end = raw.find(']')?;
        let rest = &raw[end + 1..];
        if !(rest.is_empty() || (rest.starts_with(':') && rest[1..].bytes().all(|b| b.is_ascii_digit()))) {
            return None;
        }
        return Some(&raw[..=end]);
    }
    match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => Some(h),
        Some(_) => None,
        None => Some(raw),
    }
}
