//! Header field names on the wire, shared by both HTTP/1 sides and the request path: a fast
//! lookup of the names clients and origins send most, the hop-by-hop fields (RFC 9110
//! §7.6.1), and the forwarding fields this hop writes itself.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `Forwarded` (RFC 7239).
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// `Keep-Alive`.
pub static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection` (hop-by-hop in practice).
pub static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

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

/// Fields this hop sets for an untrusted client, replacing whatever the client sent.
pub fn is_forwarding_field(name: &HeaderName) -> bool {
    name == X_FORWARDED_FOR || name == FORWARDED || name == X_FORWARDED_PROTO || name == X_FORWARDED_HOST
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
}
