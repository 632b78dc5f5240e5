//! Header hygiene on the request path: the request's host, hop-by-hop removal
//! (RFC 9110 §7.6.1), and Forwarded / X-Forwarded-* / Via (RFC 7239, RFC 9110 §7.6.3).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Mutex;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A field name as read off the wire and accepted by httparse (a token). The names clients
/// and origins send most are matched here first: one candidate picked by length and first
/// letter, compared a word at a time. That costs a fraction of `HeaderName::from_bytes`'
/// general lookup (callgrind: ~150 instructions a name there), which every other name
/// still goes through.
pub fn field_name(name: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    use header::*;
    let first = name.first().map_or(0, u8::to_ascii_lowercase);
    let (text, known): (&[u8], HeaderName) = match (name.len(), first) {
        (4, b'h') => (b"host", HOST),
        (4, b'd') => (b"date", DATE),
        (4, b'e') => (b"etag", ETAG),
        (4, b'v') => (b"vary", VARY),
        (6, b'a') => (b"accept", ACCEPT),
        (6, b'c') => (b"cookie", COOKIE),
        (6, b's') => (b"server", SERVER),
        (6, b'o') => (b"origin", ORIGIN),
        (6, b'e') => (b"expect", EXPECT),
        (7, b'r') => (b"referer", REFERER),
        (7, b'e') => (b"expires", EXPIRES),
        (8, b'l') => (b"location", LOCATION),
        (10, b'u') => (b"user-agent", USER_AGENT),
        (10, b'c') => (b"connection", CONNECTION),
        (10, b's') => (b"set-cookie", SET_COOKIE),
        (12, b'c') => (b"content-type", CONTENT_TYPE),
        (13, b'l') => (b"last-modified", LAST_MODIFIED),
        (13, b'c') => (b"cache-control", CACHE_CONTROL),
        (13, b'a') => (b"accept-ranges", ACCEPT_RANGES),
        (14, b'c') => (b"content-length", CONTENT_LENGTH),
        (15, b'a') if name[7].eq_ignore_ascii_case(&b'e') => (b"accept-encoding", ACCEPT_ENCODING),
        (15, b'a') => (b"accept-language", ACCEPT_LANGUAGE),
        (16, b'c') => (b"content-encoding", CONTENT_ENCODING),
        (17, b'i') => (b"if-modified-since", IF_MODIFIED_SINCE),
        (17, b't') => (b"transfer-encoding", TRANSFER_ENCODING),
        _ => return HeaderName::from_bytes(name),
    };
    if token_eq_lowercase(name, text) {
        Ok(known)
    } else {
        HeaderName::from_bytes(name)
    }
}

/// Whether `token` (token characters only, 4 to 24 bytes) is `lower` in any case. Setting
/// bit 5 maps exactly the uppercase letters onto the lowercase ones among token characters
/// ('-' has it already; the one other byte it would map onto '-' is CR, not a token byte).
fn token_eq_lowercase(token: &[u8], lower: &[u8]) -> bool {
    fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
        let mut w = [0u8; N];
        w.copy_from_slice(&s[at..at + N]);
        w
    }
    let n = token.len();
    if n != lower.len() {
        return false;
    }
    let same8 = |at| u64::from_le_bytes(word(token, at)) | 0x2020_2020_2020_2020 == u64::from_le_bytes(word(lower, at));
    let same4 = |at| u32::from_le_bytes(word(token, at)) | 0x2020_2020 == u32::from_le_bytes(word(lower, at));
    match n {
        4..=7 => same4(0) && same4(n - 4),
        8..=16 => same8(0) && same8(n - 8),
        17..=24 => same8(0) && same8(8) && same8(n - 8),
        _ => token.eq_ignore_ascii_case(lower),
    }
}

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

/// Hop-by-hop fields that are removed whether or not Connection names them, besides
/// Connection itself.
fn fixed_hop_by_hop() -> [&'static HeaderName; 5] {
    [&KEEP_ALIVE, &PROXY_CONNECTION, &header::TE, &header::TRANSFER_ENCODING, &header::UPGRADE]
}

/// Connection and the hop-by-hop fields removed whether or not Connection names them.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION || fixed_hop_by_hop().contains(&name)
}

/// Removes hop-by-hop fields: those named by Connection, and the fixed list.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds which are present (most messages carry none, or only
    // Connection); only those are looked up and removed.
    let mut connection = false;
    let mut present = 0u8;
    for name in headers.keys() {
        if name == header::CONNECTION {
            connection = true;
        } else if let Some(i) = fixed_hop_by_hop().iter().position(|h| *h == name) {
            present |= 1 << i;
        }
    }
    if connection {
        if let header::Entry::Occupied(e) = headers.entry(header::CONNECTION) {
            // Every Connection field; the names they list are removed even if unusual
            // (looked up by &str: no allocation; what is not a field name is absent).
            let mut values = e.remove_entry_mult().1;
            let first = values.next();
            let rest: Vec<HeaderValue> = values.collect(); // empty, without allocating, for one field
            for value in first.iter().chain(&rest) {
                for token in value.as_bytes().split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    // The usual tokens: no field named close; Keep-Alive was found above.
                    if token.eq_ignore_ascii_case(b"close") || token.eq_ignore_ascii_case(b"keep-alive") {
                        continue;
                    }
                    if let Ok(name) = std::str::from_utf8(token) {
                        headers.remove(name);
                    }
                }
            }
        }
    }
    for (i, name) in fixed_hop_by_hop().into_iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The client end of a connection, formatted once per connection for the forwarding
/// headers.
#[derive(Debug)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// `203.0.113.9` or `2001:db8::1`, for X-Forwarded-For.
    pub text: HeaderValue,
    /// `203.0.113.9` or `"[2001:db8::1]"`, for Forwarded (RFC 7239 §6).
    pub node: String,
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

/// Fields this hop sets for an untrusted client, replacing whatever the client sent.
pub fn is_forwarding_field(name: &HeaderName) -> bool {
    name == X_FORWARDED_FOR || name == FORWARDED || name == X_FORWARDED_PROTO || name == X_FORWARDED_HOST
}

/// The forwarding fields for a request from an untrusted client, as header lines ready to
/// be written after the request's own fields (which leave out [`is_forwarding_field`]
/// ones): X-Forwarded-For, Forwarded, X-Forwarded-Proto, X-Forwarded-Host, and Via when
/// configured. Built once per connection for as long as the host stays the same, so a
/// request costs a copy of these bytes instead of four header-map insertions.
pub fn forwarding_block(hop: &Hop, via: Option<&HeaderValue>) -> Bytes {
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
    pub fn new(ip: IpAddr) -> ClientAddr {
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
pub struct Hop<'a> {
    pub client: &'a ClientAddr,
    pub https: bool,
    /// The routing host (lowercase, no port) and the Host value as received.
    pub host: &'a str,
    pub host_value: &'a HeaderValue,
}

/// From a trusted proxy: appends this hop to the X-Forwarded-For and Forwarded it sent,
/// and sets X-Forwarded-Proto/-Host if it did not. (From an untrusted client the fields are
/// replaced: [`forwarding_block`].)
pub fn append_forwarded(headers: &mut HeaderMap, hop: &Hop) {
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
pub fn append_via(headers: &mut HeaderMap, via: &HeaderValue) {
    headers.append(header::VIA, via.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_match_the_general_lookup() {
        let names = [
            "Host",
            "DATE",
            "etag",
            "Vary",
            "content-length",
            "Content-Type",
            "X-Custom",
            "Accept-Rangez",
            "hosT",
            "accept-encoding",
            "Accept-Language",
            "accept-lenguage",
            "Transfer-Encoding",
            "if-modified-since",
            "Set-Cookie",
        ];
        for name in names {
            assert_eq!(
                field_name(name.as_bytes()).unwrap(),
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "{name}"
            );
        }
        assert!(field_name(b"bad name").is_err());
        assert!(field_name(b"").is_err());
    }

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
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
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
