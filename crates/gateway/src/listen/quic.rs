//! QUIC listeners (`[listen] quic`): UDP endpoints (quinn) that serve HTTP/3 ([`super::h3`])
//! with the https listeners' certificates; the shield's connection defence before a
//! handshake gets any state; address validation (Retry) while under attack; and the set of
//! endpoints, changed on reload like the TCP listeners ([`super::set`]).
//!
//! Before a connection attempt gets state (a handshake, a slot in the caps):
//! 1. While the shield sees a flood (here or in the fleet), in under-attack mode, or while
//!    more than [`RETRY_ABOVE`] handshakes are half open, an attempt from an address it has
//!    not proven gets a Retry (RFC 9000 §8.1.2): a stateless packet; only a client that
//!    really receives at its address comes back, with the token. A spoofed flood costs
//!    nothing but that packet, and cannot spend a real address's limits.
//! 2. The total connection cap (`limits.max_connections`, shared with TCP).
//! 3. The shield's `on_accept`, as for TCP: block lists, connections per address and per
//!    prefix, new connections (handshakes) per second per address.
//!
//! A binary upgrade does not carry QUIC connections: the new process binds its own sockets
//! beside the old ones (SO_REUSEPORT), and a connection whose packets the kernel steers to
//! the new socket is reset by it; its client connects again (a browser, at once, over QUIC
//! or TCP). TCP connections are never cut.

use super::{Front, OpenConn};
use crate::config::Listen;
use crate::proxy::conn::ConnState;
use crate::snapshot::Snapshot;
use crate::telemetry::quic::Outcome;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Half-open handshakes above which every new attempt must prove its address first (as
/// HAProxy's `tune.quic.retry-threshold`, 100 by default).
pub(crate) const RETRY_ABOVE: usize = 100;

/// Which `[listen] quic` entry an endpoint is: its address as configured, its place among
/// identical entries.
type Key = (SocketAddr, u16);

struct Entry {
    key: Key,
    local: SocketAddr,
    endpoint: quinn::Endpoint,
    stop: watch::Sender<bool>,
}

/// What a new `[listen]` asks of the QUIC endpoints: sockets to serve, entries to stop.
pub(crate) struct Plan {
    start: Vec<(Key, UdpSocket)>,
    stop: Vec<Key>,
}

/// The QUIC endpoints open now.
pub(crate) struct QuicListeners {
    entries: Mutex<Vec<Entry>>,
    front: Arc<Front>,
    shutdown: watch::Receiver<bool>,
    /// Handshakes begun and not yet ended, over every endpoint.
    half_open: Arc<AtomicUsize>,
}

fn wanted(listen: &Listen) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    for a in &listen.quic {
        let a = *a.get_ref();
        let nth = keys.iter().filter(|k| k.0 == a).count() as u16;
        keys.push((a, nth));
    }
    keys
}

impl QuicListeners {
    pub(crate) fn new(front: Arc<Front>, shutdown: watch::Receiver<bool>) -> QuicListeners {
        QuicListeners { entries: Mutex::new(Vec::new()), front, shutdown, half_open: Arc::new(AtomicUsize::new(0)) }
    }

    /// Binds the UDP sockets `listen` adds, and names the entries it drops. Nothing serves
    /// until [`QuicListeners::commit`]; on an error, the sockets bound here are closed.
    pub(crate) fn plan(&self, listen: &Listen) -> Result<Plan, String> {
        let wanted = wanted(listen);
        let entries = self.entries.lock().map_err(|_| "quic listeners: lock poisoned".to_string())?;
        let stop = entries.iter().filter(|e| !wanted.contains(&e.key)).map(|e| e.key).collect();
        let mut start = Vec::new();
        for key in wanted.into_iter().filter(|k| !entries.iter().any(|e| e.key == *k)) {
            start.push((key, bind(key.0)?));
        }
        Ok(Plan { start, stop })
    }

    /// Stops the endpoints the plan drops (their connections go on to their end), starts
    /// the new ones, and gives every endpoint `snap`'s certificates and limits.
    pub(crate) fn commit(&self, plan: Plan, snap: &Snapshot) -> Result<(), String> {
        let Ok(mut entries) = self.entries.lock() else { return Err("quic listeners: lock poisoned".into()) };
        entries.retain(|e| {
            let keep = !plan.stop.contains(&e.key);
            if !keep {
                stop_accepting(e);
                tracing::info!(addr = %e.local, "quic listener stopped");
            }
            keep
        });
        let config = server_config(snap);
        for e in entries.iter() {
            e.endpoint.set_server_config(config.clone());
        }
        for (key, socket) in plan.start {
            let local = socket.local_addr().map_err(|e| format!("quic listener {}: {e}", key.0))?;
            let endpoint = quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                config.clone(),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(|e| format!("cannot serve QUIC on {local}: {e}"))?;
            let (stop, stopping) = watch::channel(false);
            tokio::spawn(accept(
                self.front.clone(),
                endpoint.clone(),
                self.half_open.clone(),
                stopping,
                self.shutdown.clone(),
            ));
            tracing::info!(addr = %local, "listening (QUIC, HTTP/3)");
            entries.push(Entry { key, local, endpoint, stop });
        }
        let ports: Vec<u16> = entries.iter().map(|e| e.local.port()).collect();
        self.front.edge.alt_svc.store(alt_svc(&ports).map(Arc::new));
        Ok(())
    }

    /// Stops accepting on every endpoint and lets go of them: their connections drain with
    /// the gateway's, and each socket closes once its last connection has (quinn keeps an
    /// endpoint's socket while a connection uses it).
    pub(crate) fn close_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.drain(..).for_each(|e| stop_accepting(&e));
        }
        self.front.edge.alt_svc.store(None);
    }

    /// The addresses the endpoints are bound to, in config order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        let Ok(entries) = self.entries.lock() else { return Vec::new() };
        let mut found: Vec<(Key, SocketAddr)> = entries.iter().map(|e| (e.key, e.local)).collect();
        found.sort_by_key(|(k, _)| k.1);
        found.into_iter().map(|(_, a)| a).collect()
    }
}

fn stop_accepting(e: &Entry) {
    let _ = e.stop.send(true);
    e.endpoint.set_server_config(None);
}

/// `Alt-Svc` for the https responses: HTTP/3 on each QUIC port, for a day (RFC 7838).
fn alt_svc(ports: &[u16]) -> Option<http::HeaderValue> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return None;
    }
    let list: Vec<String> = ports.iter().map(|p| format!("h3=\":{p}\"; ma=86400")).collect();
    http::HeaderValue::try_from(list.join(", ")).ok()
}

/// quinn's server config for `snap`: its QUIC TLS, streams as many as HTTP/2 allows, the
/// idle timeout of keep-alive connections. None: no certificate (nothing is accepted).
fn server_config(snap: &Snapshot) -> Option<quinn::ServerConfig> {
    let tls = snap.quic_tls.clone()?;
    let mut cfg = quinn::ServerConfig::with_crypto(tls);
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(snap.file.limits.max_h2_streams));
    // HTTP/3's control stream and QPACK's two, and room for a peer's extensions.
    transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(8));
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(snap.file.timeouts.idle_keepalive.get()).ok());
    cfg.transport_config(Arc::new(transport));
    Some(cfg)
}

/// A UDP socket for QUIC. SO_REUSEPORT lets a new binary bind beside this one during an
/// upgrade (only a process of the same user can join it).
fn bind(addr: SocketAddr) -> Result<UdpSocket, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = || -> std::io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        Ok(socket.into())
    };
    open().map_err(|e| format!("cannot listen on {addr} (QUIC): {e}"))
}

/// Counts a handshake as half open until it ends.
struct HalfOpen(Arc<AtomicUsize>);

impl HalfOpen {
    fn new(n: &Arc<AtomicUsize>) -> HalfOpen {
        n.fetch_add(1, Relaxed);
        HalfOpen(n.clone())
    }
}

impl Drop for HalfOpen {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Takes connection attempts on `endpoint` until `accepting` says stop.
async fn accept(
    front: Arc<Front>,
    endpoint: quinn::Endpoint,
    half_open: Arc<AtomicUsize>,
    mut accepting: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            _ = accepting.changed() => return,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
        };
        let edge = &front.edge;
        let metrics = &edge.telemetry.metrics;
        let snap = edge.snapshot.load();
        let peer = incoming.remote_address();
        let prove = edge.shield.wants_address_proof(&snap.shield) || half_open.load(Relaxed) >= RETRY_ABOVE;
        if prove && !incoming.remote_address_validated() && incoming.may_retry() {
            if incoming.retry().is_ok() {
                metrics.quic.attempt(Outcome::Retried);
            }
            continue;
        }
        if front.open.load(Relaxed) >= snap.file.limits.max_connections {
            metrics.reject("max_connections");
            metrics.quic.attempt(Outcome::Refused);
            incoming.refuse();
            continue;
        }
        let mut open = OpenConn::new(front.clone());
        if open.admit(&snap.shield, peer.ip()).is_err() {
            metrics.quic.attempt(Outcome::Refused);
            incoming.refuse();
            continue;
        }
        let handshake = snap.file.timeouts.tls_handshake.get();
        drop(snap);
        let connecting = match incoming.accept() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "QUIC connection not accepted");
                metrics.quic.attempt(Outcome::Failed);
                continue;
            }
        };
        let half = HalfOpen::new(&half_open);
        tokio::spawn(connection(open, connecting, half, handshake, shutdown.clone()));
    }
}

/// One QUIC connection: its handshake (bounded by `timeouts.tls_handshake`), then HTTP/3.
async fn connection(
    open: OpenConn,
    connecting: quinn::Connecting,
    half: HalfOpen,
    handshake: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let front = open.0.clone();
    let metrics = &front.edge.telemetry.metrics;
    let conn = match tokio::time::timeout(handshake, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "QUIC handshake failed");
            metrics.reject("tls_handshake");
            metrics.quic.attempt(Outcome::Failed);
            return;
        }
        Err(_) => {
            metrics.reject("tls_handshake_timeout");
            metrics.quic.attempt(Outcome::Failed);
            return;
        }
    };
    drop(half);
    metrics.quic.attempt(Outcome::Accepted);
    let _counted = QuicOpen::new(&front);
    let sni = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name.map(|s| s.to_ascii_lowercase()));
    let state = Arc::new(ConnState::new(conn.remote_address(), true, sni));
    super::h3::serve(front.edge.clone(), state, conn, shutdown).await;
    drop(open);
}

/// Counts a QUIC connection as open (`holdfast_quic_connections_open`) while it lives.
struct QuicOpen(Arc<Front>);

impl QuicOpen {
    fn new(front: &Arc<Front>) -> QuicOpen {
        front.edge.telemetry.metrics.quic.open(1);
        QuicOpen(front.clone())
    }
}

impl Drop for QuicOpen {
    fn drop(&mut self) {
        self.0.edge.telemetry.metrics.quic.open(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_svc_names_each_port_once() {
        assert_eq!(alt_svc(&[]), None);
        assert_eq!(alt_svc(&[8443]).unwrap(), "h3=\":8443\"; ma=86400");
        assert_eq!(alt_svc(&[9443, 8443, 9443]).unwrap(), "h3=\":8443\"; ma=86400, h3=\":9443\"; ma=86400");
    }
}
