//! The byte stream to an origin: plain TCP, or TLS over it ([`OriginStream`]), and opening
//! one ([`open`]): TCP connect, then the TLS handshake, both within the connect timeout.
//! A TLS failure on the stream, during the handshake or after it (a TLS 1.3 origin refuses
//! a client certificate with an alert only after the client's side of the handshake has
//! ended), is noted on the origin's [`TlsNotes`] as it passes, so whichever read or write
//! meets it, the incident engine learns why.

use super::tls::{OriginTls, TlsFailure, TlsNotes};
use super::ErrorKind;
use crate::codec::io::SendTcp;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's stream.
#[derive(Debug)]
pub(crate) enum OriginStream {
    Plain(SendTcp),
    /// Boxed: rustls's connection state is large, and most origins are plain.
    Tls(Box<tokio_rustls::client::TlsStream<SendTcp>>, Arc<TlsNotes>),
}

impl OriginStream {
    /// Readiness of the socket underneath (for TLS: records, which may carry no data).
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            OriginStream::Plain(s) => s.0.poll_read_ready(cx),
            OriginStream::Tls(s, _) => s.get_ref().0 .0.poll_read_ready(cx),
        }
    }

    fn note<T>(&self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let (OriginStream::Tls(_, notes), Poll::Ready(Err(e))) = (self, &r) {
            if let Some(f) = TlsFailure::of(e) {
                notes.failed(f);
            }
        }
        r
    }
}

impl AsyncRead for OriginStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match this {
            OriginStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            OriginStream::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        this.note(r)
    }
}

impl AsyncWrite for OriginStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match this {
            OriginStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            OriginStream::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        this.note(r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match this {
            OriginStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            OriginStream::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.note(r)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// TLS keeps what it could not write yet in its own buffer: a request is flushed before
    /// its answer is awaited.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match this {
            OriginStream::Plain(_) => Poll::Ready(Ok(())),
            OriginStream::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        this.note(r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            OriginStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            OriginStream::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens a stream to `addr` within `timeout`: TCP, then TLS when `tls` is given (the
/// handshake counted on `notes`, a failure noted there and returned as
/// [`ErrorKind::Tls`]).
pub(crate) async fn open(
    addr: SocketAddr,
    tls: Option<&OriginTls>,
    notes: &Arc<TlsNotes>,
    timeout: Duration,
) -> Result<OriginStream, ErrorKind> {
    let deadline = tokio::time::Instant::now() + timeout;
    let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(ErrorKind::of_connect(Some(&e))),
        Err(_) => return Err(ErrorKind::ConnectTimeout),
    };
    let _ = tcp.set_nodelay(true);
    let tcp = SendTcp(tcp);
    let Some(tls) = tls else { return Ok(OriginStream::Plain(tcp)) };
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    match tokio::time::timeout_at(deadline, connector.connect(tls.server_name.clone(), tcp)).await {
        Ok(Ok(s)) => {
            notes.handshakes.fetch_add(1, Relaxed);
            if s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                notes.resumed.fetch_add(1, Relaxed);
            }
            Ok(OriginStream::Tls(Box::new(s), notes.clone()))
        }
        Ok(Err(e)) => match TlsFailure::of(&e) {
            Some(f) => {
                notes.failed(f);
                Err(ErrorKind::Tls)
            }
            // Not TLS's words: the connection itself broke during the handshake.
            None => Err(ErrorKind::Reset),
        },
        Err(_) => Err(ErrorKind::ConnectTimeout),
    }
}
