//! Copying a tunnel's bytes (WebSocket and other upgrades) both ways between the client
//! and the origin that agreed, until either side closes; then one log line.
//!
//! - Half-closes are passed on: a side that ends its sending has the other side's write
//!   shut, and the other way runs on until it ends too, for at most a second ([`FIN_WAIT`]).
//! - A tunnel with no byte either way for `timeouts.tunnel_idle` is closed. No request
//!   timeout applies: a tunnel is not a request (pingora#255 is what happens otherwise).
//! - On shutdown a tunnel runs on for `timeouts.drain`, then is closed.
//! - Dropping the future (the connection's task ends) closes both sides: the guard inside
//!   the [`Tunnel`] counts it closed.

use crate::body::h1::Inbound;
use crate::proxy::tunnel::Tunnel;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// How a tunnel ended, for its log line.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Closed,
    Reset,
    Idle,
    Drained,
}

/// How long one way of a tunnel stays open after the other way has ended (a half-close):
/// as HAProxy's `timeout client-fin`, a peer that never closes its side does not hold the
/// tunnel until `tunnel_idle`.
const FIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Copies `client` and the tunnel's origin both ways until both have closed (or one has
/// and the other lingers past [`FIN_WAIT`]), the tunnel has been quiet for its idle time,
/// or a shutdown's drain time is over.
pub(crate) async fn run<C>(client: C, tunnel: Box<Tunnel>, mut shutdown: watch::Receiver<bool>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let started = Instant::now();
    let Tunnel { origin, from_origin, idle, drain, site, origin_name, guard } = *tunnel;
    let last = Arc::new(AtomicU64::new(crate::clock::now_ms()));
    let (from_client, from_origin_bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let up = Watched { io: client, last: last.clone(), read: from_client.clone() };
    let origin = super::Prefixed { prefix: from_origin.freeze(), io: origin };
    let down = Watched { io: origin, last: last.clone(), read: from_origin_bytes.clone() };
    let (mut client_rd, mut client_wr) = tokio::io::split(up);
    let (mut origin_rd, mut origin_wr) = tokio::io::split(down);
    let idle_ms = idle.as_millis().max(1) as u64;
    let mut drain_at = (*shutdown.borrow()).then(|| Instant::now() + drain);
    let ended = {
        // Each way ends with the reader's end, passed on as a shutdown of the other side.
        let upstream = async {
            let r = tokio::io::copy(&mut client_rd, &mut origin_wr).await;
            let _ = origin_wr.shutdown().await;
            r
        };
        let downstream = async {
            let r = tokio::io::copy(&mut origin_rd, &mut client_wr).await;
            let _ = client_wr.shutdown().await;
            r
        };
        tokio::pin!(upstream, downstream);
        let (mut up_done, mut down_done) = (false, false);
        let quiet = tokio::time::sleep(idle);
        tokio::pin!(quiet);
        let fin = tokio::time::sleep(FIN_WAIT);
        tokio::pin!(fin);
        loop {
            let drain_sleep = async {
                match drain_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut upstream, if !up_done => {
                    up_done = true;
                    if r.is_err() { break Ended::Reset }
                    if down_done { break Ended::Closed }
                    fin.as_mut().reset(Instant::now() + FIN_WAIT);
                }
                r = &mut downstream, if !down_done => {
                    down_done = true;
                    if r.is_err() { break Ended::Reset }
                    if up_done { break Ended::Closed }
                    fin.as_mut().reset(Instant::now() + FIN_WAIT);
                }
                _ = &mut fin, if up_done || down_done => break Ended::Closed,
                _ = &mut quiet => {
                    let due = last.load(Relaxed) + idle_ms;
                    let now = crate::clock::now_ms();
                    if due <= now {
                        guard.closed_by(true);
                        break Ended::Idle;
                    }
                    quiet.as_mut().reset(Instant::now() + std::time::Duration::from_millis(due - now));
                }
                _ = drain_sleep => {
                    guard.closed_by(false);
                    break Ended::Drained;
                }
                changed = shutdown.changed(), if drain_at.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        drain_at = Some(Instant::now() + drain);
                    }
                }
            }
        }
    };
    tracing::info!(
        target: "access",
        kind = "tunnel",
        site = %site,
        origin = %origin_name,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        bytes_from_client = from_client.load(Relaxed),
        bytes_from_origin = from_origin_bytes.load(Relaxed),
        ended = ?ended,
    );
    drop(guard);
}

/// A side of a tunnel: counts what is read from it, and notes when bytes last moved.
struct Watched<S> {
    io: S,
    last: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Relaxed);
            self.last.store(crate::clock::now_ms(), Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An HTTP/1 client connection as one stream again once it is a tunnel: what its reader
/// already holds is read first.
pub(crate) struct H1Client<'a, W> {
    pub(crate) inbound: &'a Inbound,
    pub(crate) writer: &'a mut W,
}

impl<W: Unpin> AsyncRead for H1Client<'_, W> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut r = self.inbound.lock();
        if r.buf.is_empty() {
            match r.poll_fill(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = r.buf.len().min(buf.remaining());
        buf.put_slice(&r.buf[..n]);
        bytes::Buf::advance(&mut r.buf, n);
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for H1Client<'_, W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.writer).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.writer).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.writer).poll_shutdown(cx)
    }
}
