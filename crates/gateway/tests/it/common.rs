//! Test helpers: an echo origin, gateways on ephemeral ports, and raw and hyper clients.

use bytes::Bytes;
use holdfast_gateway::Gateway;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// An origin that answers with what it received; counts requests.
/// Paths: `…/slow/MS` waits MS ms; `/big/N` streams N bytes; `/drip` sends its head and one
/// chunk, then nothing more for a minute; anything else echoes as text:
/// `method path\nheader: value\n...\nbody-bytes: N\n`.
pub(crate) struct Echo {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    /// TCP connections accepted.
    pub(crate) conns: Arc<AtomicUsize>,
    /// TCP connections open now.
    pub(crate) open: Arc<AtomicUsize>,
}

pub(crate) async fn echo_origin(name: &'static str) -> Echo {
    echo_origin_with_idle(name, None).await
}

/// An echo origin that closes keep-alive connections idle for `idle_close`.
pub(crate) async fn echo_origin_with_idle(name: &'static str, idle_close: Option<Duration>) -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (h, c, o) = (hits.clone(), conns.clone(), open.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            o.fetch_add(1, Ordering::SeqCst);
            let (h, o) = (h.clone(), o.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    echo(name, req)
                });
                let mut b = hyper::server::conn::http1::Builder::new();
                if let Some(idle) = idle_close {
                    b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(idle);
                }
                let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Echo { addr, hits, conns, open }
}

type EchoBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn echo(name: &'static str, req: Request<Incoming>) -> Result<Response<EchoBody>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(ms) = path.rsplit_once("/slow/").and_then(|(_, m)| m.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/drip" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"first chunk\n")))).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        let body = StreamBody::new(tokio_stream(rx));
        return Ok(Response::new(BodyExt::boxed(body)));
    }
    if let Some(n) = path.strip_prefix("/big/").and_then(|m| m.parse::<u64>().ok()) {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let count = n / chunk.len() as u64;
        let stream = futures_stream(chunk, count);
        let body = StreamBody::new(stream);
        return Ok(Response::new(BodyExt::boxed(body)));
    }
    let mut text = format!("{} {}\n", req.method(), req.uri());
    for (k, v) in req.headers() {
        text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
    }
    let mut body = req.into_body();
    let mut n = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            n += d.len() as u64;
        }
    }
    text.push_str(&format!("body-bytes: {n}\n"));
    let mut resp = Response::new(Full::new(Bytes::from(text)).boxed());
    resp.headers_mut().insert("x-origin", name.parse().unwrap());
    resp.headers_mut().insert("connection", "keep-alive, x-origin-secret".parse().unwrap());
    resp.headers_mut().insert("x-origin-secret", "1".parse().unwrap());
    resp.headers_mut().insert("keep-alive", "timeout=5".parse().unwrap());
    Ok(resp)
}

/// A stream of what a channel receives.
pub(crate) fn tokio_stream<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> + Send + Sync
where
    T: Send + Sync + 'static,
{
    struct S<T>(std::sync::Mutex<tokio::sync::mpsc::Receiver<T>>);
    impl<T> futures_core::Stream for S<T> {
        type Item = T;
        fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
            match self.0.lock() {
                Ok(mut rx) => rx.poll_recv(cx),
                Err(_) => std::task::Poll::Ready(None),
            }
        }
    }
    S(std::sync::Mutex::new(rx))
}

fn futures_stream(
    chunk: Bytes,
    count: u64,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync {
    struct S {
        chunk: Bytes,
        left: u64,
    }
    impl futures_core::Stream for S {
        type Item = Result<Frame<Bytes>, Infallible>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            self.left -= 1;
            std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
        }
    }
    S { chunk, left: count }
}

/// A config with one site per (name, hosts, origin). Active health checks are off, so the
/// origins see only the test's own requests.
pub(crate) fn config(sites: &[(&str, &[&str], SocketAddr)], extra: &str) -> String {
    let mut s = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n{extra}\n[[datacenter]]\nname = \"dc1\"\n"
    );
    for (name, hosts, origin) in sites {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        s.push_str(&format!(
            "[[site]]\nname = \"{name}\"\nhosts = [{}]\nlanguage = \"de\"\nhealth = {{ enabled = false }}\n[[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"{origin}\"]\n",
            hosts.join(", ")
        ));
    }
    s
}

pub(crate) async fn gateway(text: &str) -> Gateway {
    let file = holdfast_gateway::config::parse_str("test.toml", text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Gateway::start(file, None).await.unwrap()
}

pub(crate) fn http_addr(gw: &Gateway) -> SocketAddr {
    gw.http_addrs[0]
}

/// Sends raw bytes, reads until the server closes (or `wait` passes); returns the text.
pub(crate) async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_all(&mut s, wait).await
}

/// Reads until close (true) or `wait` elapsed (false).
pub(crate) async fn read_all(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// A simple GET over a fresh HTTP/1.1 connection; returns (status, headers, body).
pub(crate) async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, http::HeaderMap, String) {
    send(addr, Request::get(path).header("host", host).body(Full::new(Bytes::new())).unwrap()).await
}

pub(crate) async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> (u16, http::HeaderMap, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub(crate) fn executor() -> TokioExecutor {
    TokioExecutor::new()
}

pub(crate) async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src.into(), 0))?;
    s.connect(dst).await
}

/// A GET from `src` on a fresh connection; None when the connection is refused or closed
/// without an answer.
pub(crate) async fn get_from(
    src: Ipv4Addr,
    dst: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, http::HeaderMap, String)> {
    let tcp = connect_from(src, dst).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.ok()?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", "shop.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp =
        tokio::time::timeout(Duration::from_secs(5), sender.send_request(req.body(Full::new(Bytes::new())).ok()?))
            .await
            .ok()?
            .ok()?;
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, h, String::from_utf8_lossy(&body).into_owned()))
}

/// The admin listener's /status.json.
pub(crate) async fn status_json(gw: &Gateway) -> serde_json::Value {
    let (_, _, body) = get(gw.admin_addr.unwrap(), "admin", "/status.json").await;
    serde_json::from_str(&body).unwrap()
}

/// Waits until the async condition `f` holds or `limit` passes (polling).
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f().await
}

/// A PROXY protocol v2 header (haproxy's proxy-protocol.txt §2.2) naming `src` as the
/// client of a TCP connection to `dst`, written here from the specification so that the
/// gateway's parser is checked against an encoder that is not its own.
pub(crate) fn proxy_v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x21); // version 2, PROXY
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11); // TCP over IPv4
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                std::net::IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // TCP over IPv6
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

/// Waits until `f` holds or `limit` passes.
pub(crate) async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
