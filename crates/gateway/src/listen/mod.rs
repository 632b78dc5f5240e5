//! Listeners: accepting client connections (with a total cap), TLS with SNI and ALPN,
//! serving HTTP/1.x ([`h1`]) and HTTP/2 (hyper, its writes coalesced by [`coalesce`]) on
//! each connection, HTTP/3 on QUIC ([`quic`], [`h3`]), closing idle connections, and
//! draining on shutdown.

mod coalesce;
pub(crate) mod h1;
mod h3;
pub(crate) mod proxy_protocol;
pub(crate) mod quic;
pub(crate) mod set;
pub(crate) mod tunnel;

use crate::body::ClientBody;
use crate::proxy::{self, conn::ConnState, Edge};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// What the listeners share: the request path's handles and the count of open
/// connections (for the connection cap and the drain on shutdown).
pub(crate) struct Front {
    pub(crate) edge: Arc<Edge>,
    open: AtomicUsize,
    drained: Notify,
}

impl Front {
    pub(crate) fn new(edge: Arc<Edge>) -> Front {
        Front { edge, open: AtomicUsize::new(0), drained: Notify::new() }
    }

    /// Client connections open now.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// Resolves when no client connection is open.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.open.load(Relaxed) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a connection as open for as long as it lives (in total, and against its
/// client's address and prefix in the shield).
struct OpenConn(Arc<Front>, crate::shield::ConnTicket);

impl OpenConn {
    fn new(front: Arc<Front>) -> OpenConn {
        front.open.fetch_add(1, Relaxed);
        let metrics = &front.edge.telemetry.metrics;
        metrics.open_connections.inc();
        metrics.connections.inc();
        OpenConn(front, Default::default())
    }

    /// The shield's connection defence for `client`; Err(reason) when it refuses (counted
    /// in the shield's metrics).
    fn admit(&mut self, rt: &crate::shield::ShieldRt, client: std::net::IpAddr) -> Result<(), &'static str> {
        let edge = &self.0.edge;
        match edge.shield.on_accept(rt, client, Instant::now()) {
            Ok(ticket) => {
                if let Some(reason) = ticket.would_refuse {
                    edge.telemetry.metrics.shield.action("dry_run_close", reason, "-");
                }
                self.1 = ticket;
                Ok(())
            }
            Err(reason) => {
                edge.telemetry.metrics.shield.action("close", reason, "-");
                Err(reason)
            }
        }
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.edge.shield.release(std::mem::take(&mut self.1));
        self.0.edge.telemetry.metrics.open_connections.dec();
        if self.0.open.fetch_sub(1, Relaxed) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// Accepts connections on `listener` until `accepting` says stop (the listener was removed,
/// or the gateway stops); `shutdown` asks its connections to finish.
pub(crate) async fn serve_listener(
    front: Arc<Front>,
    listener: TcpListener,
    tls: bool,
    mut accepting: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = accepting.changed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let snap = front.edge.snapshot.load();
                let p = &snap.file.proxy;
                let proxied = p.proxy_protocol && p.trusted_proxies.iter().any(|n| n.contains(&peer.ip()));
                if front.open.load(Relaxed) >= snap.file.limits.max_connections {
                    front.edge.telemetry.metrics.reject("max_connections");
                    drop(tcp);
                    continue;
                }
                let mut open = OpenConn::new(front.clone());
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
    let front = open.0.clone();
    let edge = &front.edge;
    if proxied {
        let wait = edge.snapshot.load().file.timeouts.client_header.get();
        match tokio::time::timeout(wait, proxy_protocol::read_header(&mut tcp)).await {
            Ok(Ok(Some(client))) => peer = client,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "PROXY protocol");
                edge.telemetry.metrics.reject("proxy_protocol");
                return;
            }
            Err(_) => {
                edge.telemetry.metrics.reject("proxy_protocol_timeout");
                return;
            }
        }
        if open.admit(&edge.snapshot.load().shield, peer.ip()).is_err() {
            return;
        }
    }
    if !tls {
        let wait = edge.snapshot.load().file.timeouts.client_header.get();
        // A drain does not cut this short: the client's first bytes may already be on
        // their way (they are waited for within `client_header`, and the drain's bound).
        let mut first = bytes::BytesMut::with_capacity(16 * 1024);
        let Some(h2) = opens_with_h2_preface(&mut tcp, &mut first, wait).await else { return };
        let conn = ConnState::new(peer, false, None);
        serve_http(edge, conn, crate::codec::io::SendTcp(tcp), first, h2, shutdown).await;
        return;
    }
    let (cfg, handshake) = {
        let snap = edge.snapshot.load();
        (snap.tls.clone(), snap.file.timeouts.tls_handshake.get())
    };
    let Some(cfg) = cfg else { return };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let stream = match tokio::time::timeout(handshake, acceptor.accept(crate::codec::io::SendTcp(tcp))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            edge.telemetry.metrics.reject("tls_handshake");
            return;
        }
        Err(_) => {
            edge.telemetry.metrics.reject("tls_handshake_timeout");
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let sni = session.server_name().map(str::to_ascii_lowercase);
    if session.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
        return; // a TLS-ALPN-01 validation: the handshake was the answer (RFC 8737 §3)
    }
    let h2 = session.alpn_protocol() == Some(b"h2");
    serve_http(edge, ConnState::new(peer, true, sni), stream, bytes::BytesMut::new(), h2, shutdown).await;
    drop(open);
}

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.3).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain-text client opens with the HTTP/2 preface, reading its first bytes into
/// `first` (they are served from there). None: it closed, or sent nothing in time.
async fn opens_with_h2_preface<R: AsyncRead + Unpin>(
    tcp: &mut R,
    first: &mut bytes::BytesMut,
    wait: Duration,
) -> Option<bool> {
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

/// Serves HTTP on an accepted connection (`h2`: HTTP/2, else HTTP/1.x). `read`: what was
/// already read from `io` (to tell HTTP/2 from HTTP/1).
async fn serve_http<IO>(
    edge: &Arc<Edge>,
    conn: ConnState,
    io: IO,
    read: bytes::BytesMut,
    h2: bool,
    shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let (limits, timeouts) = {
        let snap = edge.snapshot.load();
        (snap.file.limits.clone(), snap.file.timeouts.clone())
    };
    let max_head = limits.max_header_bytes.get().min(u32::MAX as u64) as usize;
    let peer = conn.peer;
    let state = Arc::new(conn);
    let idle = timeouts.idle_keepalive.get();
    let first_request = timeouts.client_header.get();

    if !h2 {
        let settings = h1::Settings {
            max_head,
            max_headers: limits.max_headers,
            client_header: timeouts.client_header.get(),
            send_timeout: idle,
        };
        let conn = h1::serve(edge.clone(), state.clone(), io, read, settings, shutdown.clone());
        let (draining, closing) = (state.clone(), state.clone());
        let on_drain = move |_: Pin<&mut _>| {
            draining.drain();
            false
        };
        let close = move |_: Pin<&mut _>| closing.close_after_this();
        supervise(conn, &state, peer, (first_request, idle), shutdown, on_drain, close).await;
        return;
    }
    let svc_edge = edge.clone();
    let svc_state = state.clone();
    let svc_shutdown = shutdown.clone();
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        // An extended CONNECT (RFC 8441): the stream becomes the tunnel's once answered 2xx.
        let upgrade = (req.method() == http::Method::CONNECT).then(|| hyper::upgrade::on(&mut req));
        let handled = proxy::handle(&svc_edge, &svc_state, req.map(ClientBody::H2));
        let shutdown = svc_shutdown.clone();
        async move {
            // HTTP/2 encodes fields itself: a cache hit's, encoded for HTTP/1, go back into the map.
            let mut resp = handled.answer().await.map(proxy::body::encoded_into_map)?;
            if let (Some(upgrade), Some(t)) = (upgrade, resp.body_mut().take_tunnel()) {
                tokio::spawn(async move {
                    if let Ok(stream) = upgrade.await {
                        tunnel::run(TokioIo::new(stream), t, shutdown).await;
                    }
                });
            }
            Ok::<_, proxy::CloseSilently>(resp)
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_header_list_size(max_head as u32)
        .max_concurrent_streams(limits.max_h2_streams);
    // The frames of one poll of the connection go to the socket in one write (coalesce).
    let (io, handle) = coalesce::coalesced(Prefixed { prefix: read.freeze(), io });
    let conn = coalesce::Flushing::new(builder.serve_connection(TokioIo::new(io), svc), handle);
    // HTTP/2 drains by itself: GOAWAY, the streams it has taken run to their end.
    let close =
        |c: Pin<&mut coalesce::Flushing<_, _>>| hyper::server::conn::http2::Connection::graceful_shutdown(c.conn());
    let drain_and_close = move |c: Pin<&mut _>| {
        close(c);
        true
    };
    supervise(conn, &state, peer, (first_request, idle), shutdown, drain_and_close, close).await;
}

/// Drives a client connection and closes it: when it never sends a first request within
/// `first_request`, and when it has been idle for `idle` (`close`). When the gateway drains,
/// `on_drain` is called (true: that closes the connection gracefully by itself); until then,
/// the watchdog goes on, with idleness cut to [`DRAIN_IDLE`](crate::proxy::conn::DRAIN_IDLE).
/// Timers per connection, not per request: the watchdog wakes at the earliest moment the
/// connection could expire and looks at its state.
async fn supervise<F: Future>(
    conn: F,
    state: &ConnState,
    peer: SocketAddr,
    (first_request, idle): (Duration, Duration),
    mut shutdown: watch::Receiver<bool>,
    mut on_drain: impl FnMut(Pin<&mut F>) -> bool,
    mut close: impl FnMut(Pin<&mut F>),
) where
    F::Output: std::fmt::Debug,
{
    let mut conn = std::pin::pin!(conn);
    let watchdog = tokio::time::sleep(first_request.min(idle));
    tokio::pin!(watchdog);
    let (mut closing, mut draining) = (false, false);
    loop {
        tokio::select! {
            biased;
            out = conn.as_mut() => {
                tracing::debug!(%peer, outcome = ?out, "client connection ended");
                return;
            }
            _ = shutdown.changed(), if !draining && !closing => {
                draining = true;
                state.drain();
                closing = on_drain(conn.as_mut());
                // The watchdog looks again now, with the drain's shorter idleness.
                watchdog.as_mut().reset(Instant::now());
            }
            _ = &mut watchdog, if !closing => {
                let now = Instant::now();
                match state.deadline(first_request, idle) {
                    Some(deadline) if deadline <= now => {
                        if !state.has_requests() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A client whose bytes arrive one read at a time, in the pieces given.
    struct Pieces(Vec<&'static [u8]>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if !self.0.is_empty() {
                let piece = self.0.remove(0);
                buf.put_slice(piece);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_h2_preface_is_recognised_however_it_is_split() {
        let wait = Duration::from_secs(1);
        for split in 1..H2_PREFACE.len() {
            let (a, b) = H2_PREFACE.split_at(split);
            let mut first = bytes::BytesMut::new();
            let mut client = Pieces(vec![a, b, b"\x00\x00\x00\x04"]);
            assert_eq!(opens_with_h2_preface(&mut client, &mut first, wait).await, Some(true), "split at {split}");
            assert!(first.starts_with(H2_PREFACE), "what was read is kept for the server");
        }
        // A request line that begins like the preface is HTTP/1, told after the first byte
        // that differs; one that ends (the client closes) partway is nothing.
        let mut first = bytes::BytesMut::new();
        let mut client = Pieces(vec![b"P", b"OST / HTTP/1.1\r\n"]);
        assert_eq!(opens_with_h2_preface(&mut client, &mut first, wait).await, Some(false));
        assert_eq!(&first[..], b"POST / HTTP/1.1\r\n");
        let mut client = Pieces(vec![b"PRI * HT"]);
        assert_eq!(opens_with_h2_preface(&mut client, &mut bytes::BytesMut::new(), wait).await, None);
    }
}
