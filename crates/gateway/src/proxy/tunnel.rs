//! Tunnels on the request path: which requests ask to switch protocols, how the request to
//! the origin asks for it, and what the client is told when the origin agrees. The bytes
//! are then copied by [`crate::listen::tunnel`].
//!
//! - HTTP/1.1 `Upgrade` (WebSocket, or any protocol but `h2c`): `Connection: upgrade` and
//!   `Upgrade` go to the origin as the client sent them; the origin's `101` goes back with
//!   the protocol it chose. `h2c` is never passed on: an HTTP/2 connection to the origin
//!   past the edge would carry requests the edge never saw (h2c smuggling); such a request
//!   is served as a plain request.
//! - HTTP/2 extended CONNECT (RFC 8441, `:protocol = websocket`): the origin gets the
//!   HTTP/1.1 handshake (RFC 6455 §4.1: `GET`, `Upgrade: websocket`, a `Sec-WebSocket-Key`
//!   of our own), and the client gets `200` once the origin answers `101`. A CONNECT
//!   without `:protocol` (a TCP tunnel to anywhere) is refused with 405.
//!
//! The upgrade request goes through the shield, routing and failover like any request (it
//! is never cached); the tunnel stays on the origin that agreed.

use crate::body::ClientBody;
use crate::upstream::stream::OriginStream;
use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Version};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// A request that asks for a tunnel.
#[derive(Debug, Clone)]
pub(crate) enum Asked {
    /// HTTP/1.1 Upgrade, with the client's Upgrade value.
    H1(HeaderValue),
    /// HTTP/2 extended CONNECT, with its `:protocol`.
    H2(HeaderValue),
}

impl Asked {
    /// The protocol's name for metrics: `websocket`, or another Upgrade token.
    pub(crate) fn protocol(&self) -> String {
        let (Asked::H1(v) | Asked::H2(v)) = self;
        let first = v.to_str().unwrap_or("other").split(',').next().unwrap_or("other");
        let name = first.split('/').next().unwrap_or("other").trim().to_ascii_lowercase();
        if name.is_empty() || name.len() > 32 {
            "other".into()
        } else {
            name
        }
    }
}

/// Whether `req` asks for a tunnel. Err: a CONNECT that is not an extended CONNECT.
pub(crate) fn asked(req: &Request<ClientBody>) -> Result<Option<Asked>, StatusCode> {
    if req.method() == Method::CONNECT {
        return match req.extensions().get::<hyper::ext::Protocol>() {
            Some(p) => Ok(HeaderValue::from_str(p.as_str()).ok().map(Asked::H2)),
            None => Err(StatusCode::METHOD_NOT_ALLOWED),
        };
    }
    if req.version() != Version::HTTP_11 {
        return Ok(None);
    }
    let h = req.headers();
    let connection_upgrade = h
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade")));
    let Some(upgrade) = h.get(header::UPGRADE).filter(|_| connection_upgrade) else { return Ok(None) };
    let smuggles = upgrade.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"h2c"));
    Ok((!smuggles && !upgrade.is_empty()).then(|| Asked::H1(upgrade.clone())))
}

/// The request to the origin asks for the tunnel (after hop-by-hop fields were removed).
pub(crate) fn ask_origin(asked: &Asked, parts: &mut http::request::Parts) {
    let h = &mut parts.headers;
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    match asked {
        Asked::H1(v) => {
            h.insert(header::UPGRADE, v.clone());
        }
        Asked::H2(v) => {
            // RFC 8441 §5: the HTTP/1.1 handshake a WebSocket origin expects.
            parts.method = Method::GET;
            h.insert(header::UPGRADE, v.clone());
            if !h.contains_key(header::SEC_WEBSOCKET_KEY) {
                h.insert(header::SEC_WEBSOCKET_KEY, websocket_key());
            }
            if !h.contains_key(header::SEC_WEBSOCKET_VERSION) {
                h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
        }
    }
}

/// What the client is told once the origin agreed: `101` with the protocol over HTTP/1.1,
/// `200` over HTTP/2 (the handshake's other fields are HTTP/1.1's, RFC 8441 §5).
pub(crate) fn answer_client(asked: &Asked, status: &mut StatusCode, headers: &mut HeaderMap) {
    if let Asked::H2(_) = asked {
        *status = StatusCode::OK;
        headers.remove(header::UPGRADE);
        headers.remove(header::CONNECTION);
        headers.remove(header::SEC_WEBSOCKET_ACCEPT);
    }
}

/// A random `Sec-WebSocket-Key`: 16 bytes in base64 (RFC 6455 §4.1).
fn websocket_key() -> HeaderValue {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&super::trace::random().to_le_bytes());
    raw[8..].copy_from_slice(&super::trace::random().to_le_bytes());
    let mut out = Vec::with_capacity(24);
    for chunk in raw.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

/// An established tunnel on its way to the connection that copies its bytes.
pub(crate) struct Tunnel {
    /// The origin's connection, and what it already sent in the new protocol.
    pub(crate) origin: OriginStream,
    pub(crate) from_origin: BytesMut,
    /// `timeouts.tunnel_idle` and `timeouts.drain`.
    pub(crate) idle: std::time::Duration,
    pub(crate) drain: std::time::Duration,
    /// For its log line: the site (or route) and the origin.
    pub(crate) site: String,
    pub(crate) origin_name: String,
    pub(crate) guard: TunnelGuard,
}

/// Tunnels opened in all, and how many were closed for being quiet or by a drain (open
/// now is the `holdfast_tunnels_open` gauge).
#[derive(Debug, Default)]
pub(crate) struct TunnelCounts {
    pub(crate) opened: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    pub(crate) closed_drain: AtomicU64,
}

/// Counts a tunnel as open for as long as it lives.
pub(crate) struct TunnelGuard {
    telemetry: Arc<crate::telemetry::Telemetry>,
}

impl TunnelGuard {
    pub(crate) fn new(telemetry: &Arc<crate::telemetry::Telemetry>, protocol: &str) -> TunnelGuard {
        let m = &telemetry.metrics;
        m.tunnels_open.inc();
        m.tunnels.get_or_create(&crate::telemetry::metrics::KindLabel { kind: protocol.to_string() }).inc();
        telemetry.tunnels.opened.fetch_add(1, Relaxed);
        TunnelGuard { telemetry: telemetry.clone() }
    }

    /// The tunnel was closed for being quiet (`idle`) or by a drain.
    pub(crate) fn closed_by(&self, idle: bool) {
        let t = &self.telemetry.tunnels;
        if idle { &t.closed_idle } else { &t.closed_drain }.fetch_add(1, Relaxed);
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.telemetry.metrics.tunnels_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, fields: &[(&str, &str)]) -> Request<ClientBody> {
        let mut r = Request::new(ClientBody::Empty);
        *r.version_mut() = version;
        for (k, v) in fields {
            r.headers_mut()
                .append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        r
    }

    #[test]
    fn which_requests_ask_for_a_tunnel() {
        let ws = req(Version::HTTP_11, &[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")]);
        assert!(matches!(asked(&ws), Ok(Some(Asked::H1(_)))));
        assert_eq!(asked(&ws).unwrap().unwrap().protocol(), "websocket");
        let no_token = req(Version::HTTP_11, &[("upgrade", "websocket")]);
        assert!(matches!(asked(&no_token), Ok(None)), "Upgrade without Connection: upgrade");
        let h2c = req(Version::HTTP_11, &[("connection", "upgrade"), ("upgrade", "h2c")]);
        assert!(matches!(asked(&h2c), Ok(None)), "h2c is never passed on");
        let old = req(Version::HTTP_10, &[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert!(matches!(asked(&old), Ok(None)));
        let mut connect = req(Version::HTTP_2, &[]);
        *connect.method_mut() = Method::CONNECT;
        assert_eq!(asked(&connect).err(), Some(StatusCode::METHOD_NOT_ALLOWED));
        connect.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
        assert!(matches!(asked(&connect), Ok(Some(Asked::H2(_)))));
    }

    #[test]
    fn the_h1_handshake_for_an_h2_websocket() {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = Method::CONNECT;
        ask_origin(&Asked::H2(HeaderValue::from_static("websocket")), &mut parts);
        assert_eq!(parts.method, Method::GET);
        assert_eq!(parts.headers["upgrade"], "websocket");
        assert_eq!(parts.headers["connection"], "upgrade");
        assert_eq!(parts.headers["sec-websocket-version"], "13");
        let key = parts.headers["sec-websocket-key"].to_str().unwrap();
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));
    }
}
