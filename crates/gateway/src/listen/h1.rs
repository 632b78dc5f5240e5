//! HTTP/1.x from clients: reading request heads and bodies, writing responses, keep-alive,
//! pipelining, `Expect: 100-continue`, and the framing rules that keep smuggled requests out.
//!
//! Written by hand instead of using hyper's server for two reasons, both measured:
//! - hyper's HTTP/1 dispatcher was the larger part of what holdfast spent per proxied
//!   request (callgrind: ~9.6k of 28.6k instructions, with its per-request header timer);
//! - hyper cannot refuse ambiguous framing: with both Content-Length and Transfer-Encoding
//!   it follows RFC 9112 §6.3 (drops Content-Length, decodes chunked) and the request it
//!   hands over no longer shows that anything was wrong, so holdfast had to parse every
//!   head a second time in a stream wrapper to find them.
//!
//! Heads are parsed with httparse (the parser hyper uses) in its default, strict
//! configuration. A request whose framing is ambiguous is answered 400 and the connection
//! closed, and it never reaches an origin ([`BadFraming`]): both Content-Length and
//! Transfer-Encoding; Content-Length values that are not plain digits or that differ;
//! Transfer-Encoding other than exactly one `chunked` (obfuscations such as `xchunked`,
//! `chunked, identity`, a vertical tab, a repeated field); Transfer-Encoding in HTTP/1.0.
//! Chunked request bodies are decoded strictly (CRLF line ends, bounded size lines and
//! trailers). Responses carry Content-Length when the body's length is known, else they go
//! chunked (HTTP/1.1) or until close (HTTP/1.0); none for HEAD, 1xx, 204 and 304.
//! HTTP/2 stays hyper's (`listen::serve_http`).

use super::ConnState;
use crate::gateway::Shared;
use crate::proxy::{self, body::ClientBody};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Most header fields httparse is given room for (`limits.max_headers` is capped here).
const MAX_HEADERS: usize = 256;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Largest chunk-size line and trailer section accepted in a chunked request body.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the connection is held to (from the configuration when it opened).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_head: usize,
    pub max_headers: usize,
    pub client_header: Duration,
}

/// Marks a request whose framing is ambiguous (see the module documentation): the request
/// path answers it 400 and the connection is closed after that answer.
#[derive(Debug, Clone, Copy)]
pub struct BadFraming;

/// The client's side of the connection being read: the stream and what was read from it
/// and not used yet.
struct Reader {
    io: Box<dyn AsyncRead + Send + Sync + Unpin>,
    buf: BytesMut,
}

impl Reader {
    /// Reads more into the buffer; Ok(0) at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let spare = self.buf.spare_capacity_mut();
        let mut rb = ReadBuf::uninit(spare);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        Poll::Ready(Ok(n))
    }
}

/// Where a request body hands the reader back when it ends or is dropped, and how it asks
/// for `100 Continue`. One per connection.
#[derive(Default)]
struct Home {
    parked: Mutex<Option<(Reader, Framing)>>,
    want_continue: AtomicBool,
    /// The connection's task, woken when the body asks for `100 Continue`.
    waker: Mutex<Option<Waker>>,
}

impl Home {
    fn park(&self, reader: Reader, left: Framing) {
        if let Ok(mut p) = self.parked.lock() {
            *p = Some((reader, left));
        }
    }

    fn take(&self) -> Option<(Reader, Framing)> {
        self.parked.lock().ok()?.take()
    }
}

#[derive(Debug)]
enum Framing {
    /// Bytes left (0: the body is complete).
    Length(u64),
    Chunked(Chunked),
}

#[derive(Debug)]
enum Chunked {
    /// A chunk-size line: the value so far, its digits, the line's length, whether an
    /// extension has begun, and whether the CR was seen.
    Size {
        value: u64,
        digits: u8,
        line: usize,
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
    reader: Option<Reader>,
    framing: Framing,
    home: Arc<Home>,
    /// `Expect: 100-continue` not yet answered.
    expects_continue: bool,
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
fn decode_chunked(state: &mut Chunked, buf: &mut BytesMut) -> Result<Option<Bytes>, &'static str> {
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
            Chunked::Size { value, digits, line, ext, cr } => {
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
                    b' ' | b'\t' if *digits > 0 => *ext = true, // BWS before ';'
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
                    (b'\n', true) => *state = Chunked::Size { value: 0, digits: 0, line: 0, ext: false, cr: false },
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

/// A parsed request head and what the connection needs to know about it.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    /// None: ambiguous framing.
    framing: Option<Framing>,
    keep_alive: bool,
    expects_continue: bool,
}

/// Parses a request head from the front of `buf` (consuming it); Ok(None) if incomplete,
/// Err(status) for a head that cannot be served at all.
fn parse_head(buf: &mut BytesMut, max_head: usize, max_headers: usize) -> Result<Option<Head>, StatusCode> {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let skip = buf.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
    buf.advance(skip);
    if buf.is_empty() {
        return Ok(None);
    }
    // Slots left uninitialised: httparse writes those it fills (nothing cleared per head).
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let slots = &mut slots[..max_headers.clamp(1, MAX_HEADERS)];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(httparse::Error::Version) => return Err(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    if len > max_head {
        return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let bad = || StatusCode::BAD_REQUEST;
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes()).map_err(|_| bad())?;
    if method == Method::CONNECT {
        return Err(StatusCode::METHOD_NOT_ALLOWED); // a gateway, not a tunnel
    }
    let version = if req.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or_default();
    let path_range = path.as_ptr() as usize - base..path.as_ptr() as usize - base + path.len();
    // Names, and where the values lie, before the head is split off as shared bytes; the
    // framing fields on the way (one pass).
    let mut fields = Vec::with_capacity(req.headers.len());
    let (mut te, mut te_chunked, mut length, mut framing_ok) = (0usize, false, None::<u64>, true);
    let (mut close, mut keep_alive_token, mut expects_continue) = (false, false, false);
    for h in req.headers.iter() {
        let name = crate::proxy::headers::field_name(h.name.as_bytes()).map_err(|_| bad())?;
        let v = h.value;
        if name == header::TRANSFER_ENCODING {
            te += 1;
            te_chunked = v.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name == header::CONTENT_LENGTH {
            // Plain digits only: no sign, no list ("5, 5"), which some parsers accept.
            match parse_length(v) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => framing_ok = false,
            }
        } else if name == header::CONNECTION {
            for token in v.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == header::EXPECT {
            expects_continue = v.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        let start = v.as_ptr() as usize - base;
        fields.push((name, start..start + v.len()));
    }
    let framing = match (te, length) {
        _ if !framing_ok => None,
        (0, None) => Some(Framing::Length(0)),
        (0, Some(n)) => Some(Framing::Length(n)),
        (1, None) if te_chunked && version == Version::HTTP_11 => {
            Some(Framing::Chunked(Chunked::Size { value: 0, digits: 0, line: 0, ext: false, cr: false }))
        }
        _ => None,
    };
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_range)).map_err(|_| bad())?;
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, range) in fields {
        // SAFETY: httparse accepted these bytes as a field value (HTAB, SP, VCHAR and
        // obs-text: no other control bytes, no DEL), all of which HeaderValue allows.
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(head.slice(range)) };
        headers.append(name, value);
    }
    let keep_alive = !close && (version == Version::HTTP_11 || keep_alive_token);
    Ok(Some(Head { method, uri, version, headers, framing, keep_alive, expects_continue }))
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// How waiting for a request head ended without one.
enum NoHead {
    /// The client closed, or the connection is closing: nothing to answer.
    Closed,
    /// Answer this status and close.
    Refuse(StatusCode),
}

/// Reads the next request head. While the connection is idle (nothing of a head read yet)
/// the connection's watchdog keeps time; a head that has begun must complete within
/// `client_header`.
async fn read_head(r: &mut Reader, state: &ConnState, s: &Settings) -> Result<Head, NoHead> {
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        if let Some(head) = parse_head(&mut r.buf, s.max_head, s.max_headers).map_err(NoHead::Refuse)? {
            return Ok(head);
        }
        if r.buf.len() >= s.max_head {
            return Err(NoHead::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        }
        let read = poll_fn(|cx| {
            if let Poll::Ready(r) = r.poll_fill(cx) {
                return Poll::Ready(r.ok().filter(|n| *n > 0));
            }
            if r.buf.is_empty() {
                return if state.is_closing() { Poll::Ready(None) } else { Poll::Pending };
            }
            let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(s.client_header)));
            t.as_mut().poll(cx).map(|()| None)
        })
        .await;
        if read.is_none() {
            return Err(NoHead::Closed);
        }
    }
}

/// Serves HTTP/1.x on `io` until the client or the gateway closes it.
pub async fn serve<IO>(shared: Arc<Shared>, state: Arc<ConnState>, io: IO, settings: Settings)
where
    IO: AsyncRead + AsyncWrite + Send + Sync + 'static,
{
    let (rd, mut wr) = tokio::io::split(io);
    let mut reader = Some(Reader { io: Box::new(rd), buf: BytesMut::with_capacity(READ_CHUNK) });
    let home = Arc::new(Home::default());
    let mut out = Vec::with_capacity(1024);
    loop {
        // The reader is here, or with the last request's body (parked when it ended).
        let mut r = match reader.take() {
            Some(r) => r,
            None => match home.take() {
                Some((mut r, left)) => {
                    if !drained(&mut r, left) {
                        break; // the body was not read to its end: the stream is out of step
                    }
                    r
                }
                None => break, // the body is still held somewhere
            },
        };
        let head = match read_head(&mut r, &state, &settings).await {
            Ok(head) => head,
            Err(NoHead::Closed) => break,
            Err(NoHead::Refuse(status)) => {
                refuse(&shared, &mut wr, status).await;
                break;
            }
        };
        let Head { method, uri, version, headers, framing, keep_alive, expects_continue } = head;
        let head_request = method == Method::HEAD;
        let bad_framing = framing.is_none();
        let body = match framing {
            Some(Framing::Length(0)) | None => {
                reader = Some(r);
                ClientBody::Empty
            }
            Some(framing) => {
                home.want_continue.store(false, Relaxed);
                ClientBody::H1(RequestBody { reader: Some(r), framing, home: home.clone(), expects_continue })
            }
        };
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        if bad_framing {
            req.extensions_mut().insert(BadFraming);
        }
        let handled = proxy::handle(shared.clone(), state.clone(), req);
        let resp = if expects_continue { with_continue(handled, &home, &mut wr).await } else { handled.await };
        let Ok(resp) = resp else { break }; // the shield's "close": no answer at all
        let keep_alive = keep_alive && !bad_framing && !state.is_closing();
        match write_response(&mut wr, &mut out, resp, head_request, version, keep_alive).await {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    let _ = wr.shutdown().await;
}

/// Whether what is left of an unread request body is already in the buffer (then it is
/// skipped and the connection can carry the next request). Nothing more is read for it.
fn drained(r: &mut Reader, left: Framing) -> bool {
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

/// Runs the request path; sends `100 Continue` once its body is first read.
async fn with_continue<F, W>(handled: F, home: &Home, wr: &mut W) -> F::Output
where
    F: Future,
    W: AsyncWrite + Unpin,
{
    let mut handled = pin!(handled);
    let mut written = 0;
    poll_fn(|cx| {
        if let Ok(mut w) = home.waker.lock() {
            *w = Some(cx.waker().clone());
        }
        if let Poll::Ready(out) = handled.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        while home.want_continue.load(Relaxed) && written < CONTINUE.len() {
            match Pin::new(&mut *wr).poll_write(cx, &CONTINUE[written..]) {
                Poll::Ready(Ok(n)) if n > 0 => written += n,
                // A failed write shows up again when the response is written.
                Poll::Ready(_) => written = CONTINUE.len(),
                Poll::Pending => break,
            }
            if written == CONTINUE.len() {
                let _ = Pin::new(&mut *wr).poll_flush(cx);
            }
        }
        Poll::Pending
    })
    .await
}

/// Answers a head that cannot be served (a small page, then the connection closes).
async fn refuse<W: AsyncWrite + Unpin>(shared: &Shared, wr: &mut W, status: StatusCode) {
    shared.metrics.reject(match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "header_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "connect",
        _ => "bad_request",
    });
    let page = crate::pages::no_site_page(status);
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        page.len()
    );
    let _ = write_all(wr, &[head.as_bytes(), page.as_bytes()]).await;
    let _ = wr.flush().await;
}

/// Writes a response; Ok(true) when the connection can carry another request.
async fn write_response<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut Vec<u8>,
    resp: Response<proxy::body::RespBody>,
    head_request: bool,
    version: Version,
    keep_alive: bool,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = if no_body { None } else { body.size_hint().exact() };
    let chunked = !no_body && length.is_none() && version == Version::HTTP_11;
    let close = !keep_alive || (!no_body && length.is_none() && !chunked) || asks_to_close(&parts.headers);

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_date = false;
    for (name, value) in &parts.headers {
        // Framing and the connection's fate are this hop's to say.
        if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            continue;
        }
        if name == header::CONTENT_LENGTH && (!no_body || status == StatusCode::NO_CONTENT || status.is_informational())
        {
            continue; // ours below; none at all on 1xx and 204 (RFC 9110 §8.6)
        }
        has_date |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&date::now());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa(n, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
    } else if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");

    if no_body {
        write_all(wr, &[out.as_slice()]).await?;
        wr.flush().await?;
        return Ok(!close);
    }
    // The head goes out with the first data (one write for a small response), or alone at
    // once if the body has nothing yet.
    let mut head_sent = false;
    let mut size_line = [0u8; 20];
    let mut sent = 0u64;
    loop {
        let frame = if head_sent {
            poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        } else {
            match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    write_all(wr, &[out.as_slice()]).await?;
                    wr.flush().await?;
                    head_sent = true;
                    continue;
                }
            }
        };
        let head: &[u8] = if head_sent { &[] } else { out.as_slice() };
        match frame {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue }; // trailers are not forwarded
                if data.is_empty() {
                    continue;
                }
                sent += data.len() as u64;
                if length.is_some_and(|n| sent > n) {
                    return Ok(false); // more than its length said: cut, the client sees it short
                }
                let end = body.is_end_stream();
                if chunked {
                    let line = chunk_size_line(data.len(), &mut size_line);
                    let tail: &[u8] = if end { b"\r\n0\r\n\r\n" } else { b"\r\n" };
                    write_all(wr, &[head, line, &data, tail]).await?;
                } else {
                    write_all(wr, &[head, &data]).await?;
                }
                head_sent = true;
                if end {
                    break;
                }
            }
            Some(Err(_)) => return Ok(false), // cut short: the client must see it
            None => {
                if length.is_some_and(|n| sent != n) {
                    return Ok(false); // shorter than its length said: the client sees it short
                }
                let tail: &[u8] = if chunked { b"0\r\n\r\n" } else { b"" };
                write_all(wr, &[head, tail]).await?;
                break;
            }
        }
    }
    wr.flush().await?;
    drop(body);
    Ok(!close)
}

/// Whether a response says `Connection: close` (our own pages do, for example).
fn asks_to_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close")))
}

/// Writes all of `parts`, vectored.
async fn write_all<W: AsyncWrite + Unpin>(wr: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0;
    while done < total {
        let n = poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); 4];
            let (mut skip, mut k) = (done, 0);
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                if k < slices.len() {
                    slices[k] = IoSlice::new(&p[skip..]);
                    k += 1;
                }
                skip = 0;
            }
            Pin::new(&mut *wr).poll_write_vectored(cx, &slices[..k])
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// "{size:x}\r\n" for a chunk.
fn chunk_size_line(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len() - 2;
    buf[i..].copy_from_slice(b"\r\n");
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The Date field (RFC 9110 §6.6.1) for responses that have none, formatted once a second.
mod date {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: Cell<(u64, [u8; 29])> = const { Cell::new((0, [0; 29])) };
    }

    pub fn now() -> [u8; 29] {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (at, text) = CACHED.get();
        if at == secs {
            return text;
        }
        let mut text = [0u8; 29];
        let formatted = httpdate::fmt_http_date(now);
        if formatted.len() == text.len() {
            text.copy_from_slice(formatted.as_bytes());
        }
        CACHED.set((secs, text));
        text
    }
}

#[cfg(test)]
mod tests;
