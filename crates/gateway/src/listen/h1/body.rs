//! Request bodies of HTTP/1.x clients: read from the connection as the request path polls
//! them (Content-Length, or chunked decoded strictly), and handed back to the connection
//! when they end or are dropped.

use super::READ_CHUNK;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{ready, Context, Poll, Waker};
use tokio::io::AsyncRead;

/// Largest chunk-size line and trailer section accepted in a chunked request body.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;

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

#[derive(Debug)]
pub(super) enum Chunked {
    /// A chunk-size line: the value so far, its digits, the line's length, whether
    /// whitespace followed the size (then only more of it, `;` or the CR may come), whether
    /// an extension has begun, and whether the CR was seen.
    Size {
        value: u64,
        digits: u8,
        line: usize,
        ws: bool,
        ext: bool,
        cr: bool,
    },
    Data(u64),
    /// The CRLF after chunk data (`cr`: the CR was seen).
    DataEnd {
        cr: bool,
    },
    /// The trailer section: bytes of it so far, of its current line, and whether a CR was seen.
    Trailers {
        total: usize,
        line: usize,
        cr: bool,
    },
    Done,
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
        matches!(self.framing, Framing::Length(0) | Framing::Chunked(Chunked::Done))
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
                Framing::Chunked(state) => match decode_chunked(state, &mut reader.buf) {
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

/// Advances a strict chunked decoder over `buf`, consuming what it uses: Some(data), or
/// None when it needs more bytes or reached the end (state Done).
pub(super) fn decode_chunked(state: &mut Chunked, buf: &mut BytesMut) -> Result<Option<Bytes>, &'static str> {
    while !buf.is_empty() {
        match state {
            Chunked::Done => return Ok(None),
            Chunked::Data(left) => {
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                let data = buf.split_to(n).freeze();
                if *left == 0 {
                    *state = Chunked::DataEnd { cr: false };
                }
                return Ok(Some(data));
            }
            Chunked::Size { value, digits, line, ws, ext, cr } => {
                let b = buf[0];
                buf.advance(1);
                *line += 1;
                if *line > MAX_CHUNK_LINE {
                    return Err("chunk-size line too long");
                }
                match b {
                    b'\n' if *cr && *digits > 0 => {
                        *state = if *value == 0 {
                            Chunked::Trailers { total: 0, line: 0, cr: false }
                        } else {
                            Chunked::Data(*value)
                        };
                    }
                    _ if *cr => return Err("bare CR in chunk-size line"),
                    b'\r' => *cr = true,
                    b'\n' => return Err("chunk-size line not ended by CRLF"),
                    // Extensions (RFC 9112 §7.1.1) are ignored; no control bytes in them.
                    _ if *ext => {
                        if b < 0x20 && b != b'\t' || b == 0x7f {
                            return Err("control byte in chunk extension");
                        }
                    }
                    b';' if *digits > 0 => *ext = true,
                    b' ' | b'\t' if *digits > 0 => *ws = true, // BWS before ';' or CRLF
                    _ if *ws => return Err("bad chunk size"),
                    _ => {
                        let d = (b as char).to_digit(16).ok_or("bad chunk size")?;
                        if *digits >= 15 {
                            return Err("chunk size too large");
                        }
                        *value = (*value << 4) | u64::from(d);
                        *digits += 1;
                    }
                }
            }
            Chunked::DataEnd { cr } => {
                let b = buf[0];
                buf.advance(1);
                match (b, *cr) {
                    (b'\r', false) => *cr = true,
                    (b'\n', true) => {
                        *state = Chunked::Size { value: 0, digits: 0, line: 0, ws: false, ext: false, cr: false }
                    }
                    _ => return Err("no CRLF after chunk data"),
                }
            }
            Chunked::Trailers { total, line, cr } => {
                let b = buf[0];
                buf.advance(1);
                *total += 1;
                if *total > MAX_TRAILERS {
                    return Err("trailer section too large");
                }
                match b {
                    b'\n' if !*cr => return Err("trailer line not ended by CRLF"),
                    b'\n' if *line == 0 => *state = Chunked::Done,
                    b'\n' => (*line, *cr) = (0, false),
                    _ if *cr => return Err("bare CR in trailer section"),
                    b'\r' => *cr = true,
                    _ => *line += 1,
                }
            }
        }
    }
    Ok(None)
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
            match decode_chunked(&mut state, &mut r.buf) {
                Ok(Some(_)) => {}
                Ok(None) => break matches!(state, Chunked::Done),
                Err(_) => break false,
            }
        },
    }
}
