//! Write coalescing for HTTP/2 client connections: what the `h2` crate writes during one
//! poll of its connection reaches the socket in one write, after the poll.
//!
//! `h2` flushes its frame buffer whenever a DATA frame larger than 256 bytes is queued (it
//! chains the payload instead of copying it, and must write the chain before the next frame).
//! With many streams on a connection that is one `writev` per response, and one TLS record
//! each over TLS. Counted with `strace -c` on `h2load -n 40000 -c32 -m10` against an nginx
//! origin: holdfast wrote 1.00 times per request to its clients, HAProxy 0.22 (it writes
//! its output buffer once per event-loop turn); each write on loopback wakes the reader.
//!
//! [`coalesced`] splits a stream into an [`Io`] for hyper, whose writes land in a buffer
//! and whose flush is deferred, and a [`Flushing`] future around the connection that writes
//! the buffer out each time the connection has been polled. Backpressure holds: past
//! [`CAP`] buffered bytes a write waits for the socket. An idle connection keeps no buffer:
//! once sent, the buffer goes back to its thread's spare slot, where the next connection
//! polled on that thread takes it (callgrind on h2c, `h2load -c32 -m10`: a buffer allocated
//! per poll at 16 KiB and grown by doubling to the poll's 20-30 KiB was 1,650 instructions
//! per request in `realloc`'s copying alone, 3% of all).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes buffered before a write waits for the socket to take some.
const CAP: usize = 64 * 1024;

thread_local! {
    /// A sent buffer, kept for the next connection polled on this thread: one per thread,
    /// since a poll sends its buffer before the next connection's poll begins (one held
    /// back by a full socket stays with its connection).
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The stream and what is written to it but not yet sent. One task uses both halves (the
/// connection's), so the lock is never contended; it is there because hyper wants `Send`.
struct Shared<IO> {
    io: IO,
    out: Vec<u8>,
    /// Of `out`, the bytes already sent (a partial write).
    sent: usize,
    /// A write error met after the poll, given to hyper at its next read, write or flush.
    failed: Option<io::Error>,
}

impl<IO: AsyncWrite + Unpin> Shared<IO> {
    /// Writes all that is buffered, then flushes the stream (TLS: its records).
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        // All sent: an idle connection holds no buffer; its thread keeps it for the next.
        if self.out.capacity() > 0 {
            let mut out = std::mem::take(&mut self.out);
            out.clear();
            SPARE.with(|spare| spare.set(out));
        }
        self.sent = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Room for more bytes, making some by writing when the buffer is full. Pending: the
    /// socket takes nothing now (it wakes the task when it does).
    fn room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        if self.out.len() - self.sent >= CAP {
            if let Poll::Ready(Err(e)) = self.drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        let pending = self.out.len() - self.sent;
        if pending >= CAP {
            return Poll::Pending;
        }
        if self.sent > 0 {
            // Rare: the socket took part of the buffer and writes come before the rest.
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        if self.out.capacity() == 0 {
            // The first write of a poll: the thread's spare, or room for all a poll may
            // write, not a Vec's doubling from 8 bytes (each step a copy).
            self.out = SPARE.with(|spare| spare.take());
            if self.out.capacity() < CAP {
                self.out.reserve_exact(CAP);
            }
        }
        Poll::Ready(Ok(CAP - pending))
    }
}

/// Splits `io` into the stream hyper serves and the handle [`Flushing`] writes out with.
pub(super) fn coalesced<IO>(io: IO) -> (Io<IO>, Handle<IO>) {
    let shared = Arc::new(Mutex::new(Shared { io, out: Vec::new(), sent: 0, failed: None }));
    (Io(shared.clone()), Handle(shared))
}

fn lock<IO>(shared: &Mutex<Shared<IO>>) -> MutexGuard<'_, Shared<IO>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stream as hyper sees it: reads pass through, writes are buffered, a flush waits
/// for [`Flushing`].
pub(super) struct Io<IO>(Arc<Mutex<Shared<IO>>>);

/// The other half, for [`Flushing`].
pub(super) struct Handle<IO>(Arc<Mutex<Shared<IO>>>);

impl<IO: AsyncRead + Unpin> AsyncRead for Io<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        if let Some(e) = s.failed.take() {
            return Poll::Ready(Err(e)); // a broken socket ends the connection, whatever hyper does next
        }
        Pin::new(&mut s.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Io<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.0);
        let room = ready!(s.room(cx))?;
        let n = room.min(buf.len());
        s.out.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.0);
        let mut room = ready!(s.room(cx))?;
        let mut n = 0;
        for buf in bufs {
            let take = room.min(buf.len());
            s.out.extend_from_slice(&buf[..take]);
            (n, room) = (n + take, room - take);
            if room == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true // slices are copied into the buffer: as cheap as one
    }

    /// Deferred: [`Flushing`] writes the buffer once the connection's poll is over.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        match lock(&self.0).failed.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// The connection is closing: everything goes out first.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.0);
        if let Some(e) = s.failed.take() {
            return Poll::Ready(Err(e));
        }
        ready!(s.drain(cx))?;
        Pin::new(&mut s.io).poll_shutdown(cx)
    }
}

/// A connection future whose buffered writes are sent each time it has been polled.
pub(super) struct Flushing<F, IO> {
    conn: Pin<Box<F>>,
    handle: Handle<IO>,
}

impl<F, IO> Flushing<F, IO> {
    pub(super) fn new(conn: F, handle: Handle<IO>) -> Self {
        Flushing { conn: Box::pin(conn), handle }
    }

    /// The connection itself (to shut it down gracefully).
    pub(super) fn conn(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.get_mut().conn.as_mut()
    }
}

impl<F: Future, IO: AsyncWrite + Unpin> Future for Flushing<F, IO> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let out = this.conn.as_mut().poll(cx);
        let mut s = lock(&this.handle.0);
        // Pending: the socket is full and wakes the task when it takes more.
        if let Poll::Ready(Err(e)) = s.drain(cx) {
            if out.is_pending() {
                // hyper learns of it at its next read, write or flush, in the poll asked for here.
                s.failed = Some(e);
                cx.waker().wake_by_ref();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    /// A socket that counts its writes, takes at most `accept` bytes in all (then is full),
    /// or fails every write.
    #[derive(Default)]
    struct Socket {
        writes: usize,
        flushes: usize,
        data: Vec<u8>,
        accept: Option<usize>,
        broken: bool,
    }

    impl AsyncRead for Socket {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let me = self.get_mut();
            if me.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let n = match me.accept {
                Some(0) => return Poll::Pending,
                Some(left) => left.min(buf.len()),
                None => buf.len(),
            };
            if let Some(left) = me.accept.as_mut() {
                *left -= n;
            }
            me.writes += 1;
            me.data.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write(io: &mut Io<Socket>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(io).poll_write(cx, bytes)
    }

    fn socket<R>(handle: &Handle<Socket>, f: impl FnOnce(&mut Socket) -> R) -> R {
        f(&mut lock(&handle.0).io)
    }

    #[tokio::test]
    async fn the_writes_and_flushes_of_one_poll_are_one_write_after_it() {
        let (mut io, handle) = coalesced(Socket::default());
        let mut polls = 0;
        let conn = poll_fn(move |cx| {
            polls += 1;
            for frame in [&b"HEADERS"[..], b"DATA", b"HEADERS", b"DATA"] {
                assert!(matches!(write(&mut io, cx, frame), Poll::Ready(Ok(n)) if n == frame.len()));
                // h2 flushes before each chained frame: nothing reaches the socket yet.
                assert!(matches!(Pin::new(&mut io).poll_flush(cx), Poll::Ready(Ok(()))));
            }
            if polls == 2 {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        let mut flushing = Flushing::new(conn, Handle(handle.0.clone()));
        poll_fn(|cx| {
            let out = Pin::new(&mut flushing).poll(cx);
            // After each poll of the connection, its bytes went out in one write.
            assert_eq!(socket(&handle, |s| s.writes), if out.is_ready() { 2 } else { 1 });
            out
        })
        .await;
        socket(&handle, |s| {
            assert_eq!(s.data, b"HEADERSDATAHEADERSDATA".repeat(2));
            assert_eq!(s.flushes, 2, "the stream is flushed once per poll (TLS sends its records)");
        });
        assert!(lock(&handle.0).out.capacity() == 0, "an idle connection keeps no buffer");
    }

    #[test]
    fn a_full_socket_holds_writes_back_past_the_cap() {
        let (mut io, handle) = coalesced(Socket { accept: Some(10), ..Socket::default() });
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let big = vec![7u8; CAP + 100];
        // The buffer takes up to CAP, then asks the socket, which takes 10 bytes and is full.
        assert!(matches!(write(&mut io, &mut cx, &big), Poll::Ready(Ok(n)) if n == CAP));
        assert!(matches!(write(&mut io, &mut cx, &big[CAP..]), Poll::Ready(Ok(10))));
        assert!(write(&mut io, &mut cx, &big[CAP + 10..]).is_pending(), "the buffer is full");
        assert_eq!(socket(&handle, |s| s.data.len()), 10);
        // The socket drains: writes go on, and every byte arrives once, in order.
        socket(&handle, |s| s.accept = None);
        assert!(matches!(write(&mut io, &mut cx, &big[CAP + 10..]), Poll::Ready(Ok(90))));
        assert!(lock(&handle.0).drain(&mut cx).is_ready());
        assert_eq!(socket(&handle, |s| s.data.clone()), big);
    }

    #[test]
    fn a_sent_buffer_serves_the_next_connection_polled_on_the_thread() {
        let (mut a, first) = coalesced(Socket::default());
        let (mut b, next) = coalesced(Socket::default());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(write(&mut a, &mut cx, b"one").is_ready());
        let buffer = lock(&first.0).out.as_ptr();
        assert!(lock(&first.0).drain(&mut cx).is_ready());
        assert_eq!(lock(&first.0).out.capacity(), 0, "the sent connection keeps no buffer");
        assert!(write(&mut b, &mut cx, b"two").is_ready());
        let s = lock(&next.0);
        assert_eq!(s.out.as_ptr(), buffer, "the next connection writes into the same buffer");
        assert_eq!((&s.out[..], s.out.capacity() >= CAP), (&b"two"[..], true));
        drop(s);
        assert_eq!(socket(&first, |s| s.data.clone()), b"one");
    }

    /// A connection that writes on its first poll (the socket is broken: Flushing's write
    /// fails after the poll, and wakes the task) and on its second does `next`, which must
    /// end in the error.
    async fn error_reaches(next: fn(&mut Io<Socket>, &mut Context<'_>) -> Poll<io::Result<()>>) -> io::ErrorKind {
        let (mut io, handle) = coalesced(Socket { broken: true, ..Socket::default() });
        let mut step = 0;
        let conn = poll_fn(move |cx| {
            step += 1;
            if step == 1 {
                assert!(write(&mut io, cx, b"GOAWAY").is_ready());
                return Poll::Pending;
            }
            match next(&mut io, cx) {
                Poll::Ready(Err(e)) => Poll::Ready(e.kind()),
                other => panic!("the error was lost: {other:?}"),
            }
        });
        Flushing::new(conn, handle).await
    }

    #[tokio::test]
    async fn a_write_error_after_the_poll_reaches_hyper_at_its_next_flush_or_read() {
        let flush = |io: &mut Io<Socket>, cx: &mut Context<'_>| Pin::new(io).poll_flush(cx);
        assert_eq!(error_reaches(flush).await, io::ErrorKind::BrokenPipe);
        // A connection that only reads next learns of it from the read.
        let read =
            |io: &mut Io<Socket>, cx: &mut Context<'_>| Pin::new(io).poll_read(cx, &mut ReadBuf::new(&mut [0u8; 8]));
        assert_eq!(error_reaches(read).await, io::ErrorKind::BrokenPipe);
    }
}
