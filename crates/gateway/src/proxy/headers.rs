//! Header hygiene on the request path: the request's host, hop-by-hop removal
//! (RFC 9110 §7.6.1), and Forwarded / X-Forwarded-* / Via (RFC 7239, RFC 9110 §7.6.3).

pub(crate) use crate::codec::fields::remove_hop_by_hop;
use crate::codec::fields::{FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Mutex;

pub(crate) use holdfast_http1::host::{host_value, normalize_host};

/// The client end of a connection, formatted once per connection for the forwarding
/// headers.
#[derive(Debug)]
pub(crate) struct ClientAddr {
    pub(crate) ip: IpAddr,
    /// `203.0.113.9` or `2001:db8::1`, for X-Forwarded-For.
    pub(crate) text: HeaderValue,
    /// `203.0.113.9` or `"[2001:db8::1]"`, for Forwarded (RFC 7239 §6).
    pub(crate) node: String,
    /// The last block of forwarding fields built for this client, with what it depends on.
    block: Mutex<Option<(BlockKey, Bytes)>>,
}

/// What a block of forwarding fields depends on besides the client.
#[derive(Debug, PartialEq)]
struct BlockKey {
    https: bool,
    host_value: HeaderValue,
    via: Option<HeaderValue>,
}

/// The forwarding fields for a request from an untrusted client, as header lines ready to
/// be written after the request's own fields (which leave out [`is_forwarding_field`]
/// ones): X-Forwarded-For, Forwarded, X-Forwarded-Proto, X-Forwarded-Host, and Via when
/// configured. Built once per connection for as long as the host stays the same, so a
/// request costs a copy of these bytes instead of four header-map insertions.
pub(crate) fn forwarding_block(hop: &Hop, via: Option<&HeaderValue>) -> Bytes {
    let key = BlockKey { https: hop.https, host_value: hop.host_value.clone(), via: via.cloned() };
    let mut last = hop.client.block.lock().ok();
    if let Some(Some((k, block))) = last.as_deref() {
        if *k == key {
            return block.clone();
        }
    }
    let mut b = Vec::with_capacity(192);
    let mut line = |name: &HeaderName, value: &[u8]| {
        b.extend_from_slice(name.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(value);
        b.extend_from_slice(b"\r\n");
    };
    line(&X_FORWARDED_FOR, hop.client.text.as_bytes());
    if let Some(v) = hop.client.forwarded_element(hop.https, hop.host) {
        line(&FORWARDED, v.as_bytes());
    }
    line(&X_FORWARDED_PROTO, if hop.https { b"https" } else { b"http" });
    line(&X_FORWARDED_HOST, hop.host_value.as_bytes());
    if let Some(via) = via {
        line(&header::VIA, via.as_bytes());
    }
    let block = Bytes::from(b);
    if let Some(last) = last.as_deref_mut() {
        *last = Some((key, block.clone()));
    }
    block
}

impl ClientAddr {
    pub(crate) fn new(ip: IpAddr) -> ClientAddr {
        let s = ip.to_string();
        let node = if ip.is_ipv6() { format!("\"[{s}]\"") } else { s.clone() };
        let text = HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static("unknown"));
        ClientAddr { ip, text, node, block: Mutex::new(None) }
    }

    /// `for=<client>;proto=<scheme>;host=<host>`, this hop's Forwarded element.
    fn forwarded_element(&self, https: bool, host: &str) -> Option<HeaderValue> {
        let proto = if https { "https" } else { "http" };
        let host_param = if host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)) {
            Cow::Borrowed(host)
        } else {
            Cow::Owned(format!("\"{}\"", host.replace(['"', '\\'], "")))
        };
        HeaderValue::try_from(format!("for={};proto={proto};host={host_param}", self.node)).ok()
    }
}

/// What the forwarding headers say about one hop.
pub(crate) struct Hop<'a> {
    pub(crate) client: &'a ClientAddr,
    pub(crate) https: bool,
    /// The routing host (lowercase, no port) and the Host value as received.
    pub(crate) host: &'a str,
    pub(crate) host_value: &'a HeaderValue,
}

/// From a trusted proxy: appends this hop to the X-Forwarded-For and Forwarded it sent,
/// and sets X-Forwarded-Proto/-Host if it did not. (From an untrusted client the fields are
/// replaced: [`forwarding_block`].)
pub(crate) fn append_forwarded(headers: &mut HeaderMap, hop: &Hop) {
    let this = hop.client.forwarded_element(hop.https, hop.host);
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => HeaderValue::try_from(format!("{prev}, {}", hop.client.ip)).ok(),
        _ => Some(hop.client.text.clone()),
    };
    let fwd = match (headers.get(&FORWARDED).and_then(|v| v.to_str().ok()), &this) {
        (Some(prev), Some(this)) if !prev.trim().is_empty() => {
            HeaderValue::try_from(format!("{prev}, {}", this.to_str().unwrap_or_default())).ok()
        }
        _ => this,
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Some(v) = fwd {
        headers.insert(FORWARDED.clone(), v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(if hop.https { "https" } else { "http" }));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        headers.insert(X_FORWARDED_HOST.clone(), hop.host_value.clone());
    }
}

/// Appends our Via entry.
pub(crate) fn append_via(headers: &mut HeaderMap, via: &HeaderValue) {
    headers.append(header::VIA, via.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::fields::is_forwarding_field;
    use http::header::HeaderName;

    fn host_of(uri: &str, host: Option<&str>) -> Option<String> {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let req = b.body(()).unwrap();
        let v = host_value(req.uri(), req.headers())?;
        normalize_host(&v).map(|c| c.into_owned())
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("/", Some("Shop.DE:8080")).as_deref(), Some("shop.de"));
        assert_eq!(host_of("/", Some("shop.de")).as_deref(), Some("shop.de"));
        assert_eq!(host_of("http://shop.fr/x", Some("shop.de")).as_deref(), Some("shop.fr"));
        assert_eq!(host_of("/", Some("[::1]:80")).as_deref(), Some("[::1]"));
        assert_eq!(host_of("/", None), None);
        assert_eq!(host_of("/", Some("a b")), None);
        assert_eq!(host_of("/", Some("shop.de:80x")), None);
        assert_eq!(host_of("/", Some("user@shop.de")), None);
        let req = http::Request::get("/").header("host", "shop.de").header("host", "evil.example").body(()).unwrap();
        assert_eq!(host_value(req.uri(), req.headers()), None, "two Host fields");
    }

    #[test]
    fn forwarded_untrusted_replaces_trusted_appends() {
        // Untrusted: the block replaces the client's fields (left out when the head is
        // written: upstream::http1's tests show the client's value is not sent).
        for name in ["x-forwarded-for", "forwarded", "x-forwarded-proto", "x-forwarded-host"] {
            assert!(is_forwarding_field(&HeaderName::from_static(name)), "{name}");
        }
        let client = ClientAddr::new("10.0.0.1".parse().unwrap());
        let hv = HeaderValue::from_static("shop.de:8080");
        let hop = Hop { client: &client, https: false, host: "shop.de", host_value: &hv };
        let via = HeaderValue::from_static("1.1 holdfast");
        let block = forwarding_block(&hop, Some(&via));
        assert_eq!(
            block,
            "x-forwarded-for: 10.0.0.1\r\nforwarded: for=10.0.0.1;proto=http;host=shop.de\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: shop.de:8080\r\nvia: 1.1 holdfast\r\n"
        );
        assert_eq!(forwarding_block(&hop, Some(&via)), block, "the same again from the connection's cache");
        let other = HeaderValue::from_static("shop.fr");
        let block = forwarding_block(&Hop { host: "shop.fr", host_value: &other, https: true, ..hop }, None);
        assert_eq!(
            block,
            "x-forwarded-for: 10.0.0.1\r\nforwarded: for=10.0.0.1;proto=https;host=shop.fr\r\n\
             x-forwarded-proto: https\r\nx-forwarded-host: shop.fr\r\n",
            "another host or scheme builds a new block"
        );

        // Trusted: appended to what the proxy sent.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        let client = ClientAddr::new("::1".parse().unwrap());
        let hv = HeaderValue::from_static("shop.de");
        let hop = Hop { client: &client, https: true, host: "shop.de", host_value: &hv };
        append_forwarded(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, ::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https;host=shop.de");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
