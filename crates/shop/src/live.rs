//! The shop's live channel: a WebSocket (`/live/socket`) that echoes every message, as a
//! shop's live stock or chat feed would answer, and a page (`/live`) whose script opens it
//! and shows the echo. holdfast's tunnel tests and the browser check use both.
//!
//! A text message `close` makes the shop close the socket (a close from the origin's side).

use super::Resp;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;

pub(crate) const PAGE_PATH: &str = "/live";
pub(crate) const SOCKET_PATH: &str = "/live/socket";

pub(crate) const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>live</title></head>\
<body><p id=\"state\">connecting</p><p id=\"echo\"></p><script>\
const s = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/live/socket');\
s.onopen = () => { document.getElementById('state').textContent = 'open'; s.send('stock 42'); };\
s.onmessage = (e) => { document.getElementById('echo').textContent = 'echo: ' + e.data; s.close(); };\
s.onerror = () => { document.getElementById('state').textContent = 'error'; };\
</script></body></html>";

/// Answers a WebSocket handshake (RFC 6455 §4.2) with `101` and echoes on the socket; any
/// other request to the path gets 426.
pub(crate) fn socket(req: &mut Request<Incoming>) -> Resp {
    let h = req.headers();
    let is_ws = h.get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && h.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = h.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().to_vec());
    let (true, Some(key)) = (is_ws, key) else {
        let mut r = Resp::new(Full::new(Bytes::from_static(b"a WebSocket handshake is expected\n")));
        *r.status_mut() = StatusCode::UPGRADE_REQUIRED;
        r.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return r;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(io) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            let closing = matches!(&msg, Message::Text(t) if t.as_str() == "close");
            if closing {
                let frame = CloseFrame { code: 1000u16.into(), reason: "bye".into() };
                let _ = ws.close(Some(frame)).await;
                // Read on until the client's close answers ours.
                while let Some(Ok(_)) = ws.next().await {}
                return;
            }
            let echo = match msg {
                Message::Close(_) => {
                    // tungstenite answers the close; flush it.
                    let _ = ws.flush().await;
                    return;
                }
                m @ (Message::Text(_) | Message::Binary(_)) => m,
                _ => continue,
            };
            if ws.send(echo).await.is_err() {
                return;
            }
        }
    });
    let mut r = Resp::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}
