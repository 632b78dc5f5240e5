//! Listeners: accepting client connections (with a total cap), TLS with SNI and ALPN,
//! serving HTTP/1.1 and HTTP/2 on each connection through hyper, closing idle connections,
//! and draining on shutdown.

pub mod proxy_protocol;
pub mod tls;

use crate::gateway::Shared;
use crate::proxy::{self, framing};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
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
    pub guard: Arc<framing::GuardState>,
    born: Instant,
    seq: AtomicU64,
    in_flight: AtomicU32,
    /// Milliseconds after `born` when the last request finished.
    last_done_ms: AtomicU64,
}

impl ConnState {
    fn new(peer: SocketAddr, https: bool, sni: Option<String>, guard: Arc<framing::GuardState>) -> ConnState {
        ConnState {
            peer,
            client: crate::proxy::headers::ClientAddr::new(peer.ip()),
            https,
            sni,
            guard,
            born: Instant::now(),
            seq: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            last_done_ms: AtomicU64::new(0),
        }
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
        serve_http(&shared, tcp, peer, false, None, false, shutdown).await;
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
    serve_http(&shared, stream, peer, true, sni, h2, shutdown).await;
    drop(open);
}

async fn serve_http<IO>(
    shared: &Arc<Shared>,
    io: IO,
    peer: SocketAddr,
    https: bool,
    sni: Option<String>,
    h2_only: bool,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (limits, timeouts) = {
        let snap = shared.snapshot.load();
        (snap.file.limits.clone(), snap.file.timeouts.clone())
    };
    let guard_state = Arc::new(framing::GuardState::default());
    let max_head = limits.max_header_bytes.get().min(u32::MAX as u64) as usize;
    let scanner = if h2_only {
        framing::Scanner::off(guard_state.clone())
    } else {
        framing::Scanner::new(guard_state.clone(), max_head, limits.max_headers)
    };
    let io = TokioIo::new(framing::FramingGuard::new(io, scanner));
    let state = Arc::new(ConnState::new(peer, https, sni, guard_state));

    let svc_shared = shared.clone();
    let svc_state = state.clone();
    let svc = service_fn(move |req| proxy::handle(svc_shared.clone(), svc_state.clone(), req));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    if h2_only {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.client_header.get())
        .max_buf_size(max_head)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(max_head as u32)
        .max_concurrent_streams(limits.max_h2_streams);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);

    // hyper's header timer covers HTTP/1.1 heads and, between requests, idle HTTP/1.1
    // connections; it only starts once hyper-util has seen the first bytes (to tell HTTP/1
    // from HTTP/2). This watchdog covers the rest: a connection that never sends a first
    // request, and idle connections of either protocol.
    let idle = timeouts.idle_keepalive.get();
    let first_request = timeouts.client_header.get();
    let watchdog = tokio::time::sleep(first_request.min(idle));
    tokio::pin!(watchdog);
    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut watchdog, if !closing => {
                let now = Instant::now();
                match state.deadline(first_request, idle) {
                    Some(deadline) if deadline <= now => {
                        if state.seq.load(Relaxed) == 0 {
                            return; // never sent a request: nothing to finish, just close
                        }
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Some(deadline) => watchdog.as_mut().reset(deadline),
                    None => watchdog.as_mut().reset(now + idle),
                }
            }
        }
    }
}
