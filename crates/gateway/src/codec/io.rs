//! Buffer I/O shared by both HTTP/1 sides (the client's, `listen::h1`, and the origins',
//! `upstream::http1`): reading into a buffer's spare room, and what is left of a vectored
//! write; and [`SendTcp`], the TCP stream under every TLS session and every plain
//! connection, the clients' and the origins'.

use bytes::BytesMut;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream whose writes of one piece go by `send(2)`, not `writev(2)`.
///
/// rustls hands its records to the socket with `write_vectored` even when there is one of
/// them (so every HTTP/1 response over TLS, and every request to a TLS origin, was a
/// `writev`), and a request to an origin without a body is one piece too. `writev` takes
/// the VFS's way into the kernel (file lookup with its position lock, the iovec copied in
/// and checked); `send` goes to the socket. Measured on loopback TCP, a million writes of
/// 160 bytes from one thread: 4.13 µs of CPU per `writev`, 3.85 µs per `send`
/// (docs/architecture.md).
#[derive(Debug)]
pub(crate) struct SendTcp(pub(crate) TcpStream);

impl AsyncRead for SendTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let tcp = Pin::new(&mut self.get_mut().0);
        match bufs {
            [one] => tcp.poll_write(cx, one),
            _ => tcp.poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Reads from `io` into the spare room of `buf` (making room for `chunk` bytes first when
/// less than a quarter of that is left), without zeroing it; Ok(0) at the end of the
/// stream. tokio-util's `poll_read_buf` does the read and keeps it sound: it checks that
/// the reader did not swap the buffer it was given.
pub(crate) fn poll_fill<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut BytesMut,
    chunk: usize,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// The parts of a vectored write still to go after the first `done` bytes, as IoSlices in
/// `out` (at most its length of them); returns how many.
pub(crate) fn unwritten<'a>(parts: &[&'a [u8]], mut done: usize, out: &mut [IoSlice<'a>]) -> usize {
    let mut k = 0;
    for p in parts {
        if done >= p.len() {
            done -= p.len();
            continue;
        }
        if k == out.len() {
            break;
        }
        out[k] = IoSlice::new(&p[done..]);
        done = 0;
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One piece or many, a vectored write through `SendTcp` delivers what it says it wrote,
    /// in order.
    #[tokio::test]
    async fn send_tcp_writes_one_piece_or_many_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tcp = SendTcp(TcpStream::connect(addr).await.unwrap());
        let (mut peer, _) = listener.accept().await.unwrap();
        let writes: [&[&[u8]]; 3] =
            [&[b"GET / HTTP/1.1\r\n\r\n"], &[b"head ", b"and ", b"body"], &[b"", b"after empty"]];
        let mut expected = Vec::new();
        for parts in writes {
            let mut done = 0;
            let total: usize = parts.iter().map(|p| p.len()).sum();
            while done < total {
                let mut slices = [IoSlice::new(&[]); 3];
                let k = unwritten(parts, done, &mut slices);
                done +=
                    std::future::poll_fn(|cx| Pin::new(&mut tcp).poll_write_vectored(cx, &slices[..k])).await.unwrap();
            }
            parts.iter().for_each(|p| expected.extend_from_slice(p));
        }
        tcp.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, expected);
    }
}
