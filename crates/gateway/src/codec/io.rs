//! Buffer I/O shared by both HTTP/1 sides (the client's, `listen::h1`, and the origins',
//! `upstream::http1`): reading into a buffer's spare room, and what is left of a vectored
//! write.

use bytes::BytesMut;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncRead;

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
