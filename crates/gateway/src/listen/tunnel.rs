//! Copying a tunnel's bytes (WebSocket and other upgrades) both ways between the client
//! and the origin that agreed, until either side closes; then one log line.
//!
//! - Half-closes are passed on (tokio's `copy_bidirectional`): a side that ends its
//!   sending has the other side's write shut, and the other way runs on until it ends too.
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

/// Copies `client` and the tunnel's origin both ways until one of them closes, the tunnel
/// has been quiet for its idle time, or a shutdown's drain time is over.
pub(crate) async fn run<C>(client: C, tunnel: Box<Tunnel>, mut shutdown: watch::Receiver<bool>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let Tunnel { origin, from_origin, idle, drain, site, origin_name, guard } = *tunnel;
    let last = Arc::new(AtomicU64::new(crate::clock::now_ms()));
    let mut up = Watched { io: client, last: last.clone(), read: 0 };
    let origin = super::Prefixed { prefix: from_origin.freeze(), io: origin };
    let mut down = Watched { io: origin, last: last.clone(), read: 0 };
    let idle_ms = idle.as_millis().max(1) as u64;
    let mut drain_at = (*shutdown.borrow()).then(|| Instant::now() + drain);
    let ended = {
        let copy = tokio::io::copy_bidirectional(&mut up, &mut down);
        tokio::pin!(copy);
        let quiet = tokio::time::sleep(idle);
        tokio::pin!(quiet);
        loop {
            let drain_sleep = async {
                match drain_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut copy => break if r.is_ok() { Ended::Closed } else { Ended::Reset },
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
        bytes_from_client = up.read,
        bytes_from_origin = down.read,
        ended = ?ended,
    );
    drop(guard);
}

/// A side of a tunnel: counts what is read from it, and notes when bytes last moved.
struct Watched<S> {
    io: S,
    last: Arc<AtomicU64>,
    read: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read += n as u64;
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
