//! Listeners: accepting client connections (with a total cap), TLS with SNI and ALPN,
//! serving HTTP/1.x ([`h1`]) and HTTP/2 (hyper) on each connection, closing idle
//! connections, and draining on shutdown.

pub mod h1;
pub mod proxy_protocol;
pub mod tls;

use crate::gateway::Shared;
use crate::proxy::{self, body::ClientBody};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What the request path knows about the client connection a request came on.
#[derive(Debug)]
pub struct ConnState {
    pub peer: SocketAddr,
    /// The peer's address, formatted for the forwarding headers.
    pub client: crate::proxy::headers::ClientAddr,
    pub https: bool,
    /// The TLS server name the client asked for, lowercase.
    pub sni: Option<String>,
    born: Instant,
    seq: AtomicU64,
    in_flight: AtomicU32,
    /// Milliseconds after `born` when the last request finished.
    last_done_ms: AtomicU64,
    /// The connection is to close once its current request is answered.
    closing: AtomicBool,
}

impl ConnState {
    fn new(peer: SocketAddr, https: bool, sni: Option<String>) -> ConnState {
        ConnState {
            peer,
            client: crate::proxy::headers::ClientAddr::new(peer.ip()),
            https,
            sni,
            born: Instant::now(),
            seq: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            last_done_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Relaxed)
    }

    /// Marks a request as started; returns its 1-based sequence number on the connection.
    pub fn begin_request(&self) -> u64 {
        self.in_flight.fetch_add(1, Relaxed);
        self.seq.fetch_add(1, Relaxed) + 1
    }

    /// Marks a request as finished (its response body is done or dropped) at `now`.
    pub fn request_done(&self, now: Instant) {
        self.last_done_ms.store(now.saturating_duration_since(self.born).as_millis() as u64, Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// When the connection expires if nothing happens: `first_request` after it opened until
    /// a first request arrives, then `idle` after the last request finished. None while a
    /// request is in flight.
    fn deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        if self.seq.load(Relaxed) == 0 {
            return Some(self.born + first_request);
        }
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        Some(self.born + Duration::from_millis(self.last_done_ms.load(Relaxed)) + idle)
    }
}

/// Counts a connection as open for as long as it lives (in total, and against its
/// client's address and prefix in the shield).
struct OpenConn(Arc<Shared>, crate::shield::ConnTicket);

impl OpenConn {
    fn new(shared: Arc<Shared>) -> OpenConn {
        shared.open_connections.fetch_add(1, Relaxed);
        shared.metrics.open_connections.inc();
        shared.metrics.connections.inc();
        OpenConn(shared, Default::default())
    }

    /// The shield's connection defence for `client`; Err(reason) when it refuses (counted
    /// in the shield's metrics).
    fn admit(&mut self, rt: &crate::shield::ShieldRt, client: std::net::IpAddr) -> Result<(), &'static str> {
        match self.0.shield.on_accept(rt, client, Instant::now()) {
            Ok(ticket) => {
                if let Some(reason) = ticket.would_refuse {
                    self.0.metrics.shield.action("dry_run_close", reason, "-");
                }
                self.1 = ticket;
                Ok(())
            }
            Err(reason) => {
                self.0.metrics.shield.action("close", reason, "-");
                Err(reason)
            }
        }
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.shield.release(std::mem::take(&mut self.1));
        self.0.metrics.open_connections.dec();
        if self.0.open_connections.fetch_sub(1, Relaxed) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// Accepts connections on `listener` until shutdown is signalled.
pub async fn serve_listener(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let snap = shared.snapshot.load();
                let p = &snap.file.proxy;
                let proxied = p.proxy_protocol && p.trusted_proxies.iter().any(|n| n.contains(&peer.ip()));
                if shared.open_connections.load(Relaxed) >= snap.file.limits.max_connections {
                    shared.metrics.reject("max_connections");
                    drop(tcp);
                    continue;
                }
                let mut open = OpenConn::new(shared.clone());
                // The shield's connection defence, before a byte is read; behind a PROXY
                // protocol proxy, once the header has named the client.
                if !proxied && open.admit(&snap.shield, peer.ip()).is_err() {
                    continue;
                }
                drop(snap);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    serve_tcp(open, tcp, peer, proxied, tls, shutdown).await;
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve_tcp(
    mut open: OpenConn,
    mut tcp: TcpStream,
    mut peer: SocketAddr,
    proxied: bool,
    tls: bool,
    shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let shared = open.0.clone();
    if proxied {
        let wait = shared.snapshot.load().file.timeouts.client_header.get();
        match tokio::time::timeout(wait, proxy_protocol::read_header(&mut tcp)).await {
            Ok(Ok(Some(client))) => peer = client,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "PROXY protocol");
                shared.metrics.reject("proxy_protocol");
                return;
            }
            Err(_) => {
                shared.metrics.reject("proxy_protocol_timeout");
                return;
            }
        }
        if open.admit(&shared.snapshot.load().shield, peer.ip()).is_err() {
            return;
        }
    }
    if !tls {
        let wait = shared.snapshot.load().file.timeouts.client_header.get();
        let mut stop = shutdown.clone();
        let mut first = bytes::BytesMut::with_capacity(16 * 1024);
        let h2 = tokio::select! {
            h2 = opens_with_h2_preface(&mut tcp, &mut first, wait) => h2,
            _ = stop.changed() => None,
        };
        let Some(h2) = h2 else { return };
        serve_http(&shared, tcp, first, peer, false, None, h2, shutdown).await;
        return;
    }
    let (cfg, handshake) = {
        let snap = shared.snapshot.load();
        (snap.tls.clone(), snap.file.timeouts.tls_handshake.get())
    };
    let Some(cfg) = cfg else { return };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            shared.metrics.reject("tls_handshake");
            return;
        }
        Err(_) => {
            shared.metrics.reject("tls_handshake_timeout");
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let sni = session.server_name().map(str::to_ascii_lowercase);
    let h2 = session.alpn_protocol() == Some(b"h2");
    serve_http(&shared, stream, bytes::BytesMut::new(), peer, true, sni, h2, shutdown).await;
    drop(open);
}

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.3).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain-text client opens with the HTTP/2 preface, reading its first bytes into
/// `first` (they are served from there). None: it closed, or sent nothing in time.
async fn opens_with_h2_preface(tcp: &mut TcpStream, first: &mut bytes::BytesMut, wait: Duration) -> Option<bool> {
    use tokio::io::AsyncReadExt;
    let look = async {
        loop {
            if tcp.read_buf(first).await.ok()? == 0 {
                return None;
            }
            let n = first.len().min(H2_PREFACE.len());
            if n == H2_PREFACE.len() || !H2_PREFACE.starts_with(&first[..n]) {
                return Some(first.starts_with(H2_PREFACE));
            }
            // A prefix of the preface so far (rare, and only at the start): read on.
        }
    };
    tokio::time::timeout(wait, look).await.ok().flatten()
}

/// A stream whose first bytes were already read: they are read again first.
struct Prefixed<IO> {
    prefix: bytes::Bytes,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            bytes::Buf::advance(&mut self.prefix, n);
            return std::task::Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// `read`: what was already read from `io` (to tell HTTP/2 from HTTP/1).
#[allow(clippy::too_many_arguments)]
async fn serve_http<IO>(
    shared: &Arc<Shared>,
    io: IO,
    read: bytes::BytesMut,
    peer: SocketAddr,
    https: bool,
    sni: Option<String>,
    h2: bool,
    shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let (limits, timeouts) = {
        let snap = shared.snapshot.load();
        (snap.file.limits.clone(), snap.file.timeouts.clone())
    };
    let max_head = limits.max_header_bytes.get().min(u32::MAX as u64) as usize;
    let state = Arc::new(ConnState::new(peer, https, sni));
    let idle = timeouts.idle_keepalive.get();
    let first_request = timeouts.client_header.get();

    if !h2 {
        let settings = h1::Settings {
            max_head,
            max_headers: limits.max_headers,
            client_header: timeouts.client_header.get(),
            send_timeout: idle,
        };
        let conn = h1::serve(shared.clone(), state.clone(), io, read, settings);
        let closing = state.clone();
        supervise(conn, &state, peer, first_request, idle, shutdown, move |_| closing.closing.store(true, Relaxed))
            .await;
        return;
    }
    let svc_shared = shared.clone();
    let svc_state = state.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        proxy::handle(svc_shared.clone(), svc_state.clone(), req.map(ClientBody::H2))
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(max_head as u32)
        .max_concurrent_streams(limits.max_h2_streams);
    let conn = builder.serve_connection(TokioIo::new(Prefixed { prefix: read.freeze(), io }), svc);
    supervise(conn, &state, peer, first_request, idle, shutdown, |c| c.graceful_shutdown()).await;
}

/// Drives a client connection and closes it: when the gateway shuts down (gracefully,
/// through `close`), when it never sends a first request within `first_request`, and when
/// it has been idle for `idle`. Timers per connection, not per request: the watchdog wakes
/// at the earliest moment the connection could expire and looks at its state.
async fn supervise<F: Future>(
    conn: F,
    state: &ConnState,
    peer: SocketAddr,
    first_request: Duration,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut close: impl FnMut(Pin<&mut F>),
) where
    F::Output: std::fmt::Debug,
{
    let mut conn = std::pin::pin!(conn);
    let watchdog = tokio::time::sleep(first_request.min(idle));
    tokio::pin!(watchdog);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            out = conn.as_mut() => {
                tracing::debug!(%peer, outcome = ?out, "client connection ended");
                return;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                close(conn.as_mut());
            }
            _ = &mut watchdog, if !closing => {
                let now = Instant::now();
                match state.deadline(first_request, idle) {
                    Some(deadline) if deadline <= now => {
                        if state.seq.load(Relaxed) == 0 {
                            return; // never sent a request: nothing to finish, just close
                        }
                        closing = true;
                        close(conn.as_mut());
                    }
                    Some(deadline) => watchdog.as_mut().reset(deadline),
                    None => watchdog.as_mut().reset(now + idle),
                }
            }
        }
    }
}
