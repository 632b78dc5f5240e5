//! WebSocket through holdfast with a real client (tokio-tungstenite) and a real WebSocket
//! origin (the shop's live socket): over HTTP/1.1 Upgrade and over HTTP/2 extended
//! CONNECT (RFC 8441); echo, a close from either side, an abrupt reset, idle expiry, a
//! reload and a drain while tunnels are open.

use crate::common::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use holdfast_gateway::Gateway;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

async fn shop() -> SocketAddr {
    let cfg = holdfast_shop::ShopConfig::new("shop-de", "de", "dc1");
    holdfast_shop::spawn(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap().0
}

/// A WebSocket over HTTP/1.1 through the gateway at `gw`.
async fn ws_h1(gw: SocketAddr) -> WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(gw).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async("ws://shop.de/live/socket", tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("sec-websocket-accept"), "the origin's handshake answer");
    assert!(resp.headers().contains_key("x-request-id"), "{:?}", resp.headers());
    ws
}

async fn tunnels(gw: &Gateway) -> serde_json::Value {
    status_json(gw).await["tunnels"].clone()
}

async fn echo<S>(ws: &mut WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got, Message::text(text));
}

/// Whether the socket is closed (a close frame, an error or its end) within 5 s.
async fn closed_by_the_gateway<S>(ws: &mut WebSocketStream<S>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ended = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ended).await.is_ok()
}

#[tokio::test]
async fn websocket_over_http1_echoes_and_closes_from_either_side() {
    let origin = shop().await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], origin)], "")).await;
    let mut ws = ws_h1(http_addr(&gw)).await;
    echo(&mut ws, "hello").await;
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    let t = tunnels(&gw).await;
    assert_eq!((t["open"].as_u64(), t["opened"].as_u64()), (Some(1), Some(1)), "{t}");
    let metrics = get(gw.admin_addr.unwrap(), "admin", "/metrics").await.2;
    assert!(metrics.contains("holdfast_tunnels_open 1"), "{metrics}");
    assert!(metrics.contains("holdfast_tunnels_total{kind=\"websocket\"} 1"), "{metrics}");

    // The client closes: the close handshake goes through and the tunnel ends.
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    assert!(eventually(Duration::from_secs(5), || async { tunnels(&gw).await["open"] == 0 }).await);

    // The origin closes (its answer to "close"): the client gets the origin's close frame.
    let mut ws = ws_h1(http_addr(&gw)).await;
    ws.send(Message::text("close")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.reason.as_str(), "bye"),
        other => panic!("expected the origin's close, got {other:?}"),
    }
    while let Some(Ok(_)) = ws.next().await {}
    assert!(eventually(Duration::from_secs(5), || async { tunnels(&gw).await["open"] == 0 }).await);
    // Plain requests on the same site go on as before.
    assert_eq!(get(http_addr(&gw), "shop.de", "/").await.0, 200);
}

/// Neither `timeouts.origin_response` nor `idle_keepalive` (both far shorter than the
/// tunnel's life here) cuts a tunnel that carries messages; `tunnel_idle` closes one that
/// carries none. An abrupt reset by the client ends the tunnel too.
#[tokio::test]
async fn a_quiet_tunnel_is_closed_after_tunnel_idle_and_request_timeouts_do_not_apply() {
    let origin = shop().await;
    let extra = "[timeouts]\norigin_response = \"200ms\"\nidle_keepalive = \"200ms\"\ntunnel_idle = \"600ms\"\n";
    let gw = gateway(&config(&[("shop-de", &["shop.de"], origin)], extra)).await;
    let mut ws = ws_h1(http_addr(&gw)).await;
    // 1.5 s of messages, one every 150 ms: past every request timeout, never quiet.
    for i in 0..10 {
        echo(&mut ws, &format!("tick {i}")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Then quiet: the gateway closes it.
    assert!(closed_by_the_gateway(&mut ws).await, "the quiet tunnel was closed");
    assert!(eventually(Duration::from_secs(5), || async { tunnels(&gw).await["closed_idle"] == 1 }).await);

    // An abrupt reset: the client's socket goes away without a close.
    let ws = ws_h1(http_addr(&gw)).await;
    assert!(eventually(Duration::from_secs(5), || async { tunnels(&gw).await["open"] == 1 }).await);
    // SO_LINGER 0: the close is a reset (RST), not a FIN.
    #[allow(deprecated)]
    ws.get_ref().set_linger(Some(Duration::ZERO)).unwrap();
    drop(ws);
    assert!(eventually(Duration::from_secs(5), || async { tunnels(&gw).await["open"] == 0 }).await);
}

/// RFC 8441: a WebSocket over an HTTP/2 stream (hyper's client, prior knowledge), bridged to
/// an HTTP/1.1 upgrade at the origin.
#[tokio::test]
async fn websocket_over_http2_extended_connect_is_bridged_to_an_http1_upgrade() {
    let origin = shop().await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], origin)], "")).await;
    let tcp = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http2::handshake(executor(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    // A plain request first: the server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) are in.
    let r =
        tx.send_request(http::Request::get("http://shop.de/").body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    let socket = |tx: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>, path: &str| {
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://shop.de{path}"))
            .header("sec-websocket-version", "13")
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
        tx.send_request(req)
    };
    let resp = socket(&mut tx, "/live/socket").await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    assert!(!resp.headers().contains_key("sec-websocket-accept"), "HTTP/1.1's handshake fields stay there");
    let upgraded = hyper::upgrade::on(resp).await.unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    echo(&mut ws, "über h2").await;
    assert_eq!(tunnels(&gw).await["open"], 1);
    ws.send(Message::text("close")).await.unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Close(_)))));
    while let Some(Ok(_)) = ws.next().await {} // our answer to the close goes out
    assert!(eventually(Duration::from_secs(5), || async { tunnels(&gw).await["open"] == 0 }).await);

    // A classic CONNECT (a TCP tunnel to anywhere) is refused.
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("shop.de:443")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(tx.send_request(req).await.unwrap().status(), 405);
    // A path whose origin does not switch (it answers 200 with a page): no tunnel, 502.
    let resp = socket(&mut tx, "/p/1").await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(tunnels(&gw).await["opened"], 1);
}

#[tokio::test]
async fn tunnels_live_through_a_reload_and_are_closed_by_the_drain() {
    let origin = shop().await;
    let path = std::env::temp_dir().join(format!("holdfast-test-{}-tunnel-reload.toml", std::process::id()));
    let text = config(&[("shop-de", &["shop.de"], origin)], "[timeouts]\ndrain = \"500ms\"\n");
    std::fs::write(&path, &text).unwrap();
    let gw = Gateway::start(holdfast_gateway::config::load_file(&path).unwrap(), Some(path.clone())).await.unwrap();
    let mut ws = ws_h1(http_addr(&gw)).await;
    echo(&mut ws, "before").await;
    std::fs::write(&path, text.replace("language = \"de\"", "language = \"en\"")).unwrap();
    let req = http::Request::post("/admin/reload").header("host", "admin").body(Full::new(Bytes::new())).unwrap();
    let (status, _, body) = send(gw.admin_addr.unwrap(), req).await;
    assert_eq!(status, 200, "{body}");
    echo(&mut ws, "after the reload").await;

    // Stop: the tunnel runs on through the drain, then is closed.
    let stopping = tokio::spawn(gw.stop());
    echo(&mut ws, "while draining").await;
    assert!(closed_by_the_gateway(&mut ws).await, "closed once the drain time is over");
    tokio::time::timeout(Duration::from_secs(5), stopping).await.unwrap().unwrap();
    let _ = std::fs::remove_file(&path);
}
