//! Request bodies of HTTP/1.x clients, and the read side of the connection they come from.
//!
//! One [`Inbound`] per connection holds the client's stream and what was read from it and
//! not used yet. The connection reads request heads from it, and while a request is being
//! served it keeps reading a little ahead to notice the client going away
//! ([`Inbound::poll_gone`]), so that a request whose client hung up is cancelled at once
//! instead of holding an admission slot or an origin. The request's [`RequestBody`]
//! decodes from the same buffer (Content-Length, or chunked decoded strictly). Both run in
//! the connection's task, so the lock is never contended; it is there because the body
//! travels inside the request's future, which must be `Send`.

use crate::codec::Chunked;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use tokio::io::AsyncRead;

/// Room made in the read buffer before each read.
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// How far the connection reads ahead while a request is served, to see the client leave.
/// Beyond this a client that keeps sending (a large upload not read yet, pipelined
/// requests) is not read until the request path wants its bytes.
const READ_AHEAD: usize = 64 * 1024;

/// The client's side of one HTTP/1.x connection.
pub(crate) struct Inbound {
    reader: Mutex<Reader>,
    /// Set by the body when it is first read with `Expect: 100-continue` unanswered.
    pub(crate) want_continue: AtomicBool,
    /// The connection's task, woken when the body asks for `100 Continue`.
    pub(crate) waker: Mutex<Option<Waker>>,
}

/// The stream, what was read from it and not used yet, and where the current body stands.
pub(crate) struct Reader {
    io: Box<dyn AsyncRead + Send + Sync + Unpin>,
    pub(crate) buf: BytesMut,
    /// What is left of the current request's body.
    body: Framing,
    /// The client closed its side, or a read failed: nothing more will come.
    closed: bool,
    /// A body broke its framing: the stream is out of step, the connection must close.
    broken: bool,
    /// Which request's body `body` is (a body kept past its request must not read the next).
    seq: u64,
}

/// How the rest of a request body is delimited.
#[derive(Debug)]
pub(crate) enum Framing {
    /// Bytes left (0: the body is complete, or there is none).
    Length(u64),
    Chunked(Chunked),
}

impl From<holdfast_http1::request::BodyFraming> for Framing {
    fn from(f: holdfast_http1::request::BodyFraming) -> Framing {
        match f {
            holdfast_http1::request::BodyFraming::Length(n) => Framing::Length(n),
            holdfast_http1::request::BodyFraming::Chunked => Framing::Chunked(Chunked::new()),
        }
    }
}

impl Inbound {
    pub(crate) fn new(io: Box<dyn AsyncRead + Send + Sync + Unpin>, read: BytesMut) -> Inbound {
        let mut buf = read;
        buf.reserve(READ_CHUNK.saturating_sub(buf.len()));
        Inbound {
            reader: Mutex::new(Reader { io, buf, body: Framing::Length(0), closed: false, broken: false, seq: 0 }),
            want_continue: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// The reader. A poisoned lock (a panic while it was held) is taken over as it is: the
    /// buffer is consistent between any two statements that touch it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the client has gone away (closed its side, or the connection failed), reading
    /// ahead what it sends meanwhile (up to [`READ_AHEAD`]). Registers for a wake-up when
    /// it cannot tell yet. As nginx does, a client that closes its side while its request
    /// is served has abandoned the request.
    pub(crate) fn poll_gone(&self, cx: &mut Context<'_>) -> bool {
        let mut r = self.lock();
        loop {
            if r.closed {
                return true;
            }
            if r.buf.len() >= READ_AHEAD {
                return false;
            }
            match r.poll_fill(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return true,
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return false,
            }
        }
    }
}

impl Reader {
    /// Reads more into the buffer; Ok(0) at the end of the stream (then `closed` is set,
    /// as it is on an error).
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Ok(0));
        }
        let r = ready!(crate::codec::io::poll_fill(&mut *self.io, &mut self.buf, READ_CHUNK, cx));
        if !matches!(r, Ok(n) if n > 0) {
            self.closed = true;
        }
        Poll::Ready(r)
    }

    /// A new request's body starts with this framing; returns its sequence number.
    pub(crate) fn start_body(&mut self, framing: Framing) -> u64 {
        self.body = framing;
        self.seq += 1;
        self.seq
    }

    fn body_complete(&self) -> bool {
        match &self.body {
            Framing::Length(n) => *n == 0,
            Framing::Chunked(c) => c.is_done(),
        }
    }

    /// Whether the stream is in step for the next request head: what is left of the last
    /// body is skipped if it is already in the buffer. Nothing more is read for it (a body
    /// the request path did not want is not waited for: the connection closes instead).
    pub(crate) fn skip_body(&mut self) -> bool {
        if self.broken {
            return false;
        }
        let in_step = match &mut self.body {
            Framing::Length(n) if *n <= self.buf.len() as u64 => {
                self.buf.advance(*n as usize);
                true
            }
            Framing::Length(_) => false,
            Framing::Chunked(state) => loop {
                match state.decode(&mut self.buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break state.is_done(),
                    Err(_) => break false,
                }
            },
        };
        if in_step {
            self.body = Framing::Length(0);
        }
        in_step
    }

    /// Drops what is buffered (lingering close).
    pub(crate) fn discard(&mut self) {
        self.buf.clear();
    }
}

/// A request body read from the client connection as the request path polls it.
pub(crate) struct RequestBody {
    inbound: Arc<Inbound>,
    /// The sequence number [`Reader::start_body`] gave it.
    seq: u64,
    /// `Expect: 100-continue` not yet answered.
    expects_continue: bool,
}

impl RequestBody {
    /// The body of the request whose head was just read (its framing given to the reader
    /// as number `seq`).
    pub(crate) fn new(inbound: Arc<Inbound>, seq: u64, expects_continue: bool) -> RequestBody {
        RequestBody { inbound, seq, expects_continue }
    }
}

/// The client's body broke its framing, or the client went away before the body ended.
#[derive(Debug)]
pub(crate) enum ClientBodyError {
    /// The connection ended (closed, or a read failed) before the body did.
    Closed,
    /// The body broke its framing.
    Malformed(&'static str),
}

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            ClientBodyError::Closed => f.write_str("client request body: connection closed before the body ended"),
            ClientBodyError::Malformed(why) => write!(f, "client request body: {why}"),
        }
    }
}
impl std::error::Error for ClientBodyError {}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.expects_continue {
            this.expects_continue = false;
            this.inbound.want_continue.store(true, Relaxed);
            if let Some(w) = this.inbound.waker.lock().ok().and_then(|mut w| w.take()) {
                w.wake();
            }
        }
        let mut r = this.inbound.lock();
        if r.seq != this.seq {
            return Poll::Ready(Some(Err(ClientBodyError::Malformed("read after its request ended"))));
        }
        loop {
            if r.body_complete() {
                return Poll::Ready(None);
            }
            if r.broken {
                return Poll::Ready(Some(Err(ClientBodyError::Malformed("framing broken earlier"))));
            }
            if r.buf.is_empty() {
                match ready!(r.poll_fill(cx)) {
                    Ok(0) | Err(_) => return Poll::Ready(Some(Err(ClientBodyError::Closed))),
                    Ok(_) => {}
                }
            }
            let r = &mut *r;
            match &mut r.body {
                Framing::Length(left) => {
                    let n = (*left).min(r.buf.len() as u64) as usize;
                    *left -= n as u64;
                    return Poll::Ready(Some(Ok(Frame::data(r.buf.split_to(n).freeze()))));
                }
                Framing::Chunked(state) => match state.decode(&mut r.buf) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) => {} // needs more, or done (seen at the top of the loop)
                    Err(why) => {
                        r.broken = true;
                        return Poll::Ready(Some(Err(ClientBodyError::Malformed(why))));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let r = self.inbound.lock();
        r.seq != self.seq || r.body_complete()
    }

    fn size_hint(&self) -> SizeHint {
        match self.inbound.lock().body {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Chunked(_) => SizeHint::default(),
        }
    }
}
