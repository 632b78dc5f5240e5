//! Request bodies of HTTP/1.x clients: read from the connection as the request path polls
//! them (Content-Length, or chunked decoded strictly), and handed back to the connection
//! when they end or are dropped.

use super::READ_CHUNK;
use crate::framing::Chunked;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{ready, Context, Poll, Waker};
use tokio::io::AsyncRead;

/// The client's side of the connection being read: the stream and what was read from it
/// and not used yet.
pub(super) struct Reader {
    pub(super) io: Box<dyn AsyncRead + Send + Sync + Unpin>,
    pub(super) buf: BytesMut,
}

impl Reader {
    /// Reads more into the buffer; Ok(0) at the end of the stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        crate::util::poll_fill(&mut *self.io, &mut self.buf, READ_CHUNK, cx)
    }
}

/// Where a request body hands the reader back when it ends or is dropped, and how it asks
/// for `100 Continue`. One per connection.
#[derive(Default)]
pub(super) struct Home {
    parked: Mutex<Option<(Reader, Framing)>>,
    pub(super) want_continue: AtomicBool,
    /// The connection's task, woken when the body asks for `100 Continue`.
    pub(super) waker: Mutex<Option<Waker>>,
}

impl Home {
    fn park(&self, reader: Reader, left: Framing) {
        if let Ok(mut p) = self.parked.lock() {
            *p = Some((reader, left));
        }
    }

    pub(super) fn take(&self) -> Option<(Reader, Framing)> {
        self.parked.lock().ok()?.take()
    }
}

#[derive(Debug)]
pub(super) enum Framing {
    /// Bytes left (0: the body is complete).
    Length(u64),
    Chunked(Chunked),
}

/// A request body read from the client connection as the request path polls it.
pub struct RequestBody {
    pub(super) reader: Option<Reader>,
    pub(super) framing: Framing,
    pub(super) home: std::sync::Arc<Home>,
    /// `Expect: 100-continue` not yet answered.
    pub(super) expects_continue: bool,
}

/// The client's body broke its framing or the connection ended before the body did.
#[derive(Debug)]
pub struct ClientBodyError(&'static str);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "client request body: {}", self.0)
    }
}
impl std::error::Error for ClientBodyError {}

impl RequestBody {
    fn is_complete(&self) -> bool {
        matches!(&self.framing, Framing::Length(0)) || matches!(&self.framing, Framing::Chunked(c) if c.is_done())
    }

    fn finish(&mut self) {
        if let Some(r) = self.reader.take() {
            self.home.park(r, Framing::Length(0));
        }
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        self.reader = None; // not parked: the connection closes after the response
        Poll::Ready(Some(Err(ClientBodyError(why))))
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            let left = std::mem::replace(&mut self.framing, Framing::Length(0));
            self.home.park(r, left);
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.expects_continue {
            this.expects_continue = false;
            this.home.want_continue.store(true, Relaxed);
            if let Some(w) = this.home.waker.lock().ok().and_then(|mut w| w.take()) {
                w.wake();
            }
        }
        loop {
            if this.is_complete() {
                this.finish();
                return Poll::Ready(None);
            }
            let Some(reader) = this.reader.as_mut() else { return Poll::Ready(None) };
            if reader.buf.is_empty() {
                match ready!(reader.poll_fill(cx)) {
                    Ok(0) => return this.fail("connection closed before the body ended"),
                    Ok(_) => {}
                    Err(_) => return this.fail("read failed"),
                }
            }
            let Some(reader) = this.reader.as_mut() else { return Poll::Ready(None) };
            match &mut this.framing {
                Framing::Length(left) => {
                    let n = (*left).min(reader.buf.len() as u64) as usize;
                    *left -= n as u64;
                    let data = reader.buf.split_to(n).freeze();
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(state) => match state.decode(&mut reader.buf) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) => {} // needs more, or Done (seen at the top of the loop)
                    Err(why) => return this.fail(why),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_complete()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Chunked(_) => SizeHint::default(),
        }
    }
}

/// Whether what is left of an unread request body is already in the buffer (then it is
/// skipped and the connection can carry the next request). Nothing more is read for it.
pub(super) fn drained(r: &mut Reader, left: Framing) -> bool {
    match left {
        Framing::Length(n) if n <= r.buf.len() as u64 => {
            r.buf.advance(n as usize);
            true
        }
        Framing::Length(_) => false,
        Framing::Chunked(mut state) => loop {
            match state.decode(&mut r.buf) {
                Ok(Some(_)) => {}
                Ok(None) => break state.is_done(),
                Err(_) => break false,
            }
        },
    }
}
