//! Request heads written to origins: the request line in origin form, the fields but this
//! hop's framing (Transfer-Encoding is rewritten; hop-by-hop fields were removed by the
//! caller) and, when given, this hop's forwarding fields instead of the request's own.

use crate::fields::is_forwarding_field;
use crate::framing::itoa;
use http::header;
use http::Method;

/// What is known of a request body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// None at all.
    Empty,
    /// Exactly this many bytes.
    Known(u64),
    /// Not known: it goes chunked.
    Unknown,
}

/// Writes the request line and header fields into `out` (with `forwarding`, complete
/// `name: value\r\n` lines, instead of the request's own forwarding fields when it is not
/// empty); returns whether the body goes chunked.
pub fn encode_request_head(req: &http::request::Parts, body: BodyLen, forwarding: &[u8], out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(origin_form(&req.uri).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let has_length = req.headers.contains_key(header::CONTENT_LENGTH);
    let replace = !forwarding.is_empty();
    for (name, value) in &req.headers {
        // Framing is this hop's: hop-by-hop fields were removed, Transfer-Encoding is ours.
        if name == header::TRANSFER_ENCODING || (replace && is_forwarding_field(name)) {
            continue;
        }
        let (name, value) = (name.as_str().as_bytes(), value.as_bytes());
        out.reserve(name.len() + value.len() + 4);
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(forwarding);
    let mut chunked = false;
    if !has_length {
        match body {
            BodyLen::Empty => {
                // A method that carries content says it has none (as hyper's client does).
                if matches!(req.method, Method::POST | Method::PUT | Method::PATCH) {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
            }
            BodyLen::Known(n) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa(n, &mut [0; 20]));
                out.extend_from_slice(b"\r\n");
            }
            BodyLen::Unknown => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    chunked
}

/// The target in origin form (RFC 9112 §3.2.1): the path and query of an absolute-form
/// target, with `/` for an empty path (`http://shop.test?q` is `/?q`).
pub fn origin_form(uri: &http::Uri) -> std::borrow::Cow<'_, str> {
    match uri.path_and_query().map(|pq| pq.as_str()) {
        Some(pq) if pq.starts_with('/') || pq == "*" => std::borrow::Cow::Borrowed(pq),
        Some(pq) => std::borrow::Cow::Owned(format!("/{pq}")),
        None => std::borrow::Cow::Borrowed("/"),
    }
}
