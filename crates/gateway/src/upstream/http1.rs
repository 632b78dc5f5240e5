//! HTTP/1.1 to origins, driven from the request's own task: [`Conn::send`] writes a request
//! and reads the response head; the body is an [`OriginBody`] that reads the socket itself
//! as the client's side asks for it.
//!
//! Written by hand instead of using hyper's client because of what hyper's client costs a
//! proxy: it runs every origin connection as a task of its own and hands each request, its
//! response and every body chunk over channels to it, so one proxied request woke three
//! tasks and was the larger part of holdfast's CPU per request (measured with callgrind:
//! 15k instructions per request in the connection task alone). Here the request's task
//! writes, reads and parses (with httparse, the parser hyper uses) and the client's
//! connection reads the body straight from the origin's socket.
//!
//! What it follows (RFC 9112): the request goes out with its Content-Length, or chunked
//! when its length is unknown; interim 1xx responses are skipped; the response body is
//! delimited as §6.3 says (none for HEAD, 1xx, 204 and 304; chunked when
//! Transfer-Encoding ends in chunked, then Content-Length is ignored and the connection
//! not reused; Content-Length, where differing values are an error; else until close). A
//! connection is reused only after a complete response that did not ask to close, with
//! nothing left over. When the origin answers before the request body is sent (an early
//! 413, say), the upload stops and the answer is read; that connection is not reused.

use super::stream::OriginStream;
use super::ErrorKind;
use crate::body::{self as client_body, ReqBody};
use crate::codec::io::unwritten;
use crate::codec::{self, Chunked};
use crate::telemetry::{Phase, RequestPhase};
use bytes::{Bytes, BytesMut};
use holdfast_http1::response::{parse_response, ResponseFraming, ResponseHead};
use http::header;
#[cfg(test)]
use http::Request;
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Largest response head accepted (status line and header fields).
const MAX_HEAD: usize = 64 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// One keep-alive connection to an origin.
#[derive(Debug)]
pub(crate) struct Conn {
    io: OriginStream,
    /// Bytes read from the origin and not yet used.
    buf: BytesMut,
    /// Where request heads are encoded; kept for the connection's next request.
    head: Vec<u8>,
    /// The current request's deadline. One timer for the connection's life, moved later
    /// for each request: that costs no timer-wheel work, where a timer per request costs
    /// an insertion and a removal.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The longest the origin may pause while it sends a body (`timeouts.origin_response`,
    /// as nginx's `proxy_read_timeout`), and since when the body has been waiting for the
    /// origin (None: not waiting; time the client takes to read does not count).
    read_idle: std::time::Duration,
    waiting_since: Option<tokio::time::Instant>,
}

/// A request on its way to an origin: the head (origin-form target, headers prepared;
/// borrowed, so that a retry needs no copy), the body (which comes back if nothing was
/// sent), and `forwarding`: header lines that replace the request's own forwarding fields
/// (empty: none, the request's are sent as they are).
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) head: &'a http::request::Parts,
    pub(crate) body: ReqBody,
    pub(crate) forwarding: &'a Bytes,
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Nothing was written (the connection was found closed): the body comes back whole
    /// (the head was only borrowed).
    NotSent { kind: ErrorKind, body: ReqBody },
    /// The request was (at least partly) written, or its body failed; no response.
    Failed(ErrorKind),
}

impl Conn {
    pub(crate) fn new(io: OriginStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            head: Vec::with_capacity(512),
            timer: None,
            read_idle: std::time::Duration::from_secs(30),
            waiting_since: None,
        }
    }

    /// Whether an idle connection still looks usable: the origin has neither closed it nor
    /// sent anything since its last response. Costs no system call unless the event loop
    /// saw the socket become readable.
    pub(crate) fn is_reusable_idle(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: an EOF, stray bytes, a stale readiness, or (TLS) records with no data
            // (session tickets); look without waiting: only "nothing yet" leaves it usable.
            Poll::Ready(Ok(())) => matches!(self.poll_fill(&mut cx), Poll::Pending) && self.buf.is_empty(),
        }
    }

    /// Sends a request and reads the response head, all before `deadline` (else
    /// [`ErrorKind::ResponseTimeout`]), marking the request's phase as it goes (uploading,
    /// then waiting for the head). The response's body owns the connection; take it back
    /// with [`OriginBody::take_reusable`] once the body has ended.
    pub(crate) async fn send(
        mut self,
        msg: Outgoing<'_>,
        deadline: tokio::time::Instant,
        phase: &RequestPhase,
    ) -> Result<Response<OriginBody>, SendError> {
        let Outgoing { head, body, forwarding } = msg;
        let streams = body.buffered_bytes().is_none() && !body.is_end_stream();
        phase.enter(if streams { Phase::Upload } else { Phase::ResponseHeaders });
        match &mut self.timer {
            Some(t) => t.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.read_idle = deadline.saturating_duration_since(tokio::time::Instant::now());
        let head_request = head.method == Method::HEAD;
        // An upgrade (WebSocket): the request carries Upgrade only when the client asked.
        let upgrade = head.headers.contains_key(header::UPGRADE);
        let (parts, mut head) = (head, std::mem::take(&mut self.head));
        head.clear();
        let chunked = encode_head(parts, &body, forwarding, &mut head);
        // The head, and a buffered body (its length is known) in the same write. While
        // nothing is written, the body can come back to go out on another connection.
        let buffered = body.buffered_bytes().cloned().unwrap_or_default();
        let total = head.len() + buffered.len();
        let mut written = 0;
        while written < total {
            let r = poll_fn(|cx| {
                let mut bufs = [IoSlice::new(&[]); 2];
                let k = unwritten(&[&head, &buffered], written, &mut bufs);
                match Pin::new(&mut self.io).poll_write_vectored(cx, &bufs[..k]) {
                    Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
                    polled => polled,
                }
            })
            .await;
            match r {
                Ok(n) if n > 0 => written += n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(SendError::Failed(ErrorKind::ResponseTimeout))
                }
                _ if written == 0 => return Err(SendError::NotSent { kind: ErrorKind::Reset, body }),
                _ => return Err(SendError::Failed(ErrorKind::Reset)),
            }
        }
        self.head = head;
        let mut reusable = true;
        if streams {
            reusable = self.upload(body, chunked).await?;
            phase.enter(Phase::ResponseHeaders);
        } else {
            self.flush().await.map_err(|e| SendError::Failed(io_error_kind(&e)))?;
        }
        self.read_response(head_request, reusable, upgrade).await
    }

    /// Streams a request body; Ok(false) when the origin answered before it was all sent
    /// (the connection is then not reused).
    async fn upload(&mut self, mut body: ReqBody, chunked: bool) -> Result<bool, SendError> {
        loop {
            // The next piece of the body, unless the origin has started to answer.
            let next = poll_fn(|cx| {
                if self.answer_started(cx) {
                    return Poll::Ready(None);
                }
                match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Pending if self.expired(cx) => Poll::Ready(Some(Some(Err(timed_out().into())))),
                    polled => polled.map(Some),
                }
            })
            .await;
            let frame = match next {
                None => return Ok(false), // an early answer
                Some(Some(Err(e))) if is_timeout(&*e) => return Err(SendError::Failed(ErrorKind::ResponseTimeout)),
                Some(None) => break,
                Some(Some(Ok(frame))) => frame,
                Some(Some(Err(e))) => return Err(SendError::Failed(body_error_kind(&*e))),
            };
            let Ok(data) = frame.into_data() else { continue }; // request trailers are not forwarded
            if data.is_empty() {
                continue;
            }
            let done = if chunked {
                let mut size = [0u8; 20];
                self.write_parts(&[codec::chunk_size_line(data.len(), &mut size), &data, b"\r\n"]).await
            } else {
                self.write_parts(&[&data]).await
            };
            match done {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => return Err(SendError::Failed(io_error_kind(&e))),
            }
        }
        if chunked {
            match self.write_parts(&[b"0\r\n\r\n"]).await {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => return Err(SendError::Failed(io_error_kind(&e))),
            }
        }
        Ok(true)
    }

    /// Pushes out what the stream still holds (TLS buffers records it could not write;
    /// plain TCP holds nothing), before the deadline.
    async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            polled => polled,
        })
        .await
    }

    /// Writes all of `parts`; Ok(false) if the origin started to answer while the write
    /// waited (its window full), in which case the rest is not sent.
    async fn write_parts(&mut self, parts: &[&[u8]]) -> io::Result<bool> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut done = 0;
        while done < total {
            let n = poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); 3];
                let k = unwritten(parts, done, &mut slices);
                match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]) {
                    Poll::Pending if self.answer_started(cx) => Poll::Ready(Ok(None)),
                    Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(r) => Poll::Ready(r.map(Some)),
                }
            })
            .await?;
            match n {
                None => return Ok(false),
                Some(0) => return Err(io::ErrorKind::WriteZero.into()),
                Some(n) => done += n,
            }
        }
        // What TLS could not write yet goes now: a body that pauses must not sit unsent.
        let flushed = poll_fn(|cx| match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending if self.answer_started(cx) => Poll::Ready(Ok(false)),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => Poll::Ready(r.map(|()| true)),
        });
        flushed.await
    }

    /// Whether the current request's deadline has passed (registers for the wake-up if not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().is_some_and(|t| std::future::Future::poll(t.as_mut(), cx).is_ready())
    }

    /// While a body is read and nothing is buffered: whether the origin has now sent nothing
    /// for `read_idle`. The wait starts when a read first finds nothing (a client that reads
    /// slowly makes holdfast read slowly, and that is not the origin's pause); the timer is
    /// moved once per wait, not on every read.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let now = tokio::time::Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        let due = since + self.read_idle;
        if due <= now {
            return true;
        }
        if let Some(t) = self.timer.as_mut() {
            if t.deadline() != due {
                t.as_mut().reset(due);
            }
        }
        self.expired(cx)
    }

    /// Whether the origin has begun its answer (or closed) while the request is still being
    /// written: what it sent is kept in the buffer for the response. Interim responses
    /// (`100 Continue` to a forwarded `Expect`, `103 Early Hints`) are not an answer: they
    /// are dropped and the upload goes on.
    fn answer_started(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.skip_interim() {
                return true;
            }
            if self.io.poll_read_ready(cx).is_pending() {
                return false;
            }
            // Readiness may be left over from an earlier read: look (Pending clears it).
            match self.poll_fill(cx) {
                Poll::Pending => return false,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return true,
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// Drops complete interim responses at the front of the buffer; whether what is left
    /// begins something else (a final response, or bytes that are no response at all).
    fn skip_interim(&mut self) -> bool {
        holdfast_http1::response::skip_interim(&mut self.buf)
    }

    /// Reads more from the origin into the buffer; Ok(0) at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        crate::codec::io::poll_fill(&mut self.io, &mut self.buf, READ_CHUNK, cx)
    }

    /// `upgrade`: the request asked to switch protocols, so a `101` ends the exchange and
    /// the connection becomes the tunnel's ([`OriginBody::into_upgraded`]).
    async fn read_response(
        mut self,
        head_request: bool,
        reusable: bool,
        upgrade: bool,
    ) -> Result<Response<OriginBody>, SendError> {
        loop {
            // (`holdfast_http1::response`; a head that breaks HTTP/1.1 is a protocol error.)
            match parse_response(&mut self.buf).map_err(|_| SendError::Failed(ErrorKind::Protocol))? {
                Some(head) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                    // Switching protocols without being asked to is a protocol error.
                    if !upgrade {
                        return Err(SendError::Failed(ErrorKind::Protocol));
                    }
                    let mut resp = self.into_response(head, true, false);
                    resp.body_mut().upgraded = true;
                    return Ok(resp);
                }
                // 100 Continue, 103 Early Hints: interim, skipped.
                Some(head) if head.status.is_informational() => {}
                Some(head) => return Ok(self.into_response(head, head_request, reusable)),
                None => {
                    if self.buf.len() >= MAX_HEAD {
                        return Err(SendError::Failed(ErrorKind::Protocol));
                    }
                    let filled = poll_fn(|cx| match self.poll_fill(cx) {
                        Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
                        polled => polled,
                    });
                    match filled.await {
                        Ok(0) if self.buf.is_empty() => return Err(SendError::Failed(ErrorKind::Reset)),
                        Ok(0) => return Err(SendError::Failed(ErrorKind::Protocol)),
                        Ok(_) => {}
                        Err(e) => return Err(SendError::Failed(io_error_kind(&e))),
                    }
                }
            }
        }
    }

    fn into_response(mut self, head: ResponseHead, head_request: bool, reusable: bool) -> Response<OriginBody> {
        self.waiting_since = None;
        let ResponseHead { status, version, mut headers, framing, keep_alive } = head;
        // (204 and 304 have no body whatever their fields say: the parser's framing says so.)
        let framing = if head_request { Framing::Length(0) } else { Framing::from(framing) };
        if !matches!(framing, Framing::Length(_)) && headers.contains_key(header::CONTENT_LENGTH) {
            headers.remove(header::CONTENT_LENGTH); // RFC 9112 §6.3: Transfer-Encoding wins
        }
        let reusable = reusable && keep_alive && !matches!(framing, Framing::UntilClose);
        let mut body = OriginBody { conn: Some(self), framing, reusable, done: false, upgraded: false };
        body.check_done();
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.version_mut() = version;
        *resp.headers_mut() = headers;
        resp
    }
}

/// Writes the request head into `out` (`holdfast_http1::encode`); whether the body goes
/// chunked (its length unknown).
fn encode_head(req: &http::request::Parts, body: &ReqBody, forwarding: &Bytes, out: &mut Vec<u8>) -> bool {
    use holdfast_http1::encode::BodyLen;
    let len = match body.size_hint().exact() {
        Some(0) if body.is_end_stream() => BodyLen::Empty,
        Some(n) => BodyLen::Known(n),
        None => BodyLen::Unknown,
    };
    holdfast_http1::encode::encode_request_head(req, len, forwarding, out)
}

fn timed_out() -> io::Error {
    io::ErrorKind::TimedOut.into()
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
}

/// A failed write or read: the deadline, TLS (an alert after the handshake: a client
/// certificate refused), or the connection.
fn io_error_kind(e: &io::Error) -> ErrorKind {
    if e.kind() == io::ErrorKind::TimedOut {
        ErrorKind::ResponseTimeout
    } else if super::tls::TlsFailure::of(e).is_some() {
        ErrorKind::Tls
    } else {
        ErrorKind::Reset
    }
}

pub(crate) fn body_error_kind(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    match client_body::fault(e) {
        client_body::Fault::TooLarge => ErrorKind::BodyTooLarge,
        client_body::Fault::TooSlow => ErrorKind::ClientTooSlow,
        client_body::Fault::Gone => ErrorKind::ClientGone,
        client_body::Fault::Malformed => ErrorKind::ClientBody,
    }
}

#[derive(Debug)]
enum Framing {
    /// Bytes left.
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

impl From<ResponseFraming> for Framing {
    fn from(f: ResponseFraming) -> Framing {
        match f {
            ResponseFraming::Length(n) => Framing::Length(n),
            ResponseFraming::Chunked => Framing::Chunked(Chunked::new()),
            ResponseFraming::UntilClose => Framing::UntilClose,
        }
    }
}

/// The response body, read from the origin's socket as it is polled.
#[derive(Debug)]
pub(crate) struct OriginBody {
    conn: Option<Conn>,
    framing: Framing,
    /// The connection may carry another request once this body has ended.
    reusable: bool,
    done: bool,
    /// A `101`: the connection now speaks the protocol switched to.
    upgraded: bool,
}

/// The origin's body ended before its framing said it would, or broke its framing.
#[derive(Debug)]
pub(crate) struct OriginBodyError(&'static str);

impl std::fmt::Display for OriginBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "origin response body: {}", self.0)
    }
}
impl std::error::Error for OriginBodyError {}

impl OriginBodyError {
    /// What went wrong, in words.
    pub(crate) fn reason(&self) -> &'static str {
        self.0
    }
}

impl OriginBody {
    /// After a `101`: the connection, and what the origin already sent in the new protocol.
    pub(crate) fn into_upgraded(mut self) -> Option<(OriginStream, BytesMut)> {
        match self.conn.take() {
            Some(c) if self.upgraded => Some((c.io, c.buf)),
            _ => None,
        }
    }

    /// The connection, once the body was read to its end and the connection may be reused.
    pub(crate) fn take_reusable(&mut self) -> Option<Conn> {
        match &self.conn {
            Some(c) if self.done && self.reusable && c.buf.is_empty() => self.conn.take(),
            _ => None,
        }
    }

    fn check_done(&mut self) {
        if matches!(self.framing, Framing::Length(0)) {
            self.done = true;
        }
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, OriginBodyError>>> {
        self.done = true;
        self.conn = None;
        Poll::Ready(Some(Err(OriginBodyError(why))))
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = OriginBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            if conn.buf.is_empty() {
                let filled = match conn.poll_fill(cx) {
                    Poll::Pending if conn.stalled(cx) => return this.fail("the origin stopped sending it"),
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                match filled {
                    Ok(0) => {
                        if matches!(this.framing, Framing::UntilClose) {
                            this.done = true;
                            this.conn = None;
                            return Poll::Ready(None);
                        }
                        return this.fail("closed before its end");
                    }
                    Ok(_) => conn.waiting_since = None,
                    Err(_) => return this.fail("read failed"),
                }
            }
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match &mut this.framing {
                Framing::UntilClose => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Length(left) => {
                    let n = (*left).min(conn.buf.len() as u64) as usize;
                    *left -= n as u64;
                    let data = conn.buf.split_to(n).freeze();
                    this.check_done();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(state) => match state.decode(&mut conn.buf) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) if state.is_done() => {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(why) => return this.fail(why),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A raw origin: for each canned answer, reads one request head (and `Content-Length`
    /// bytes of body) from the same connection, sends the answer; returns what it read.
    async fn origin(answers: Vec<&'static [u8]>) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                let start = seen.len();
                let mut byte = [0u8; 1];
                while !seen[start..].ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return seen;
                    }
                    seen.push(byte[0]);
                }
                s.write_all(answer).await.unwrap();
            }
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), s.read_to_end(&mut rest)).await;
            seen.extend(rest);
            seen
        });
        (addr, task)
    }

    async fn conn(addr: std::net::SocketAddr) -> Conn {
        Conn::new(OriginStream::Plain(tokio::net::TcpStream::connect(addr).await.unwrap()))
    }

    impl Conn {
        async fn send_req(self, req: Request<ReqBody>, fwd: &Bytes) -> Result<Response<OriginBody>, SendError> {
            let (head, body) = req.into_parts();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            let phase = crate::telemetry::RequestPhase::uncounted();
            self.send(Outgoing { head: &head, body, forwarding: fwd }, deadline, &phase).await
        }
    }

    fn get(path: &str) -> Request<ReqBody> {
        Request::get(path).header("host", "shop.de").body(ReqBody::empty()).unwrap()
    }

    async fn body_of(resp: &mut Response<OriginBody>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(frame) = resp.body_mut().frame().await {
            if let Ok(d) = frame.unwrap().into_data() {
                out.extend_from_slice(&d);
            }
        }
        out
    }

    #[tokio::test]
    async fn content_length_then_reuse() {
        let (addr, seen) = origin(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\nx-a: 1\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        ])
        .await;
        let fwd = Bytes::from_static(b"x-forwarded-for: 10.0.0.1\r\n");
        let req = Request::get("/a?b=1").header("host", "shop.de").header("x-forwarded-for", "6.6.6.6");
        let mut resp = conn(addr).await.send_req(req.body(ReqBody::empty()).unwrap(), &fwd).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("connection").is_none() && resp.headers().get("keep-alive").is_none());
        assert_eq!(resp.headers()["x-a"], "1");
        assert_eq!(body_of(&mut resp).await, b"hello");
        let mut again = resp.body_mut().take_reusable().expect("reusable after a complete body");
        assert!(again.is_reusable_idle());
        let resp = again.send_req(get("/second"), &Bytes::new()).await.unwrap();
        assert_eq!(resp.status(), 404);
        assert!(resp.body().is_end_stream());
        let seen = String::from_utf8(seen.await.unwrap()).unwrap();
        assert!(
            seen.starts_with("GET /a?b=1 HTTP/1.1\r\nhost: shop.de\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"),
            "{seen}"
        );
        assert!(!seen.contains("6.6.6.6"), "the client's claim is replaced: {seen}");
        assert!(seen.contains("GET /second HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn chunked_with_extensions_and_trailers() {
        let (addr, _seen) = origin(vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\ntrailer: x\r\n\r\n",
        ])
        .await;
        let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
        assert!(resp.headers().get("content-length").is_none(), "Transfer-Encoding wins");
        assert!(resp.headers().get("transfer-encoding").is_none(), "framing is redone downstream");
        assert_eq!(body_of(&mut resp).await, b"hello world");
        assert!(resp.body_mut().take_reusable().is_none(), "Content-Length with chunked: not reused");
    }

    #[tokio::test]
    async fn until_close_and_http10() {
        let (addr, _seen) = origin(vec![b"HTTP/1.0 200 OK\r\nx: y\r\n\r\nall of it"]).await;
        let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
        assert_eq!(body_of(&mut resp).await, b"all of it");
        assert!(resp.body_mut().take_reusable().is_none());
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        let (addr, _seen) =
            origin(vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"])
                .await;
        let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(body_of(&mut resp).await, b"ok");
    }

    #[tokio::test]
    async fn bad_responses_are_protocol_errors() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"NOT HTTP AT ALL\r\n\r\n",
        ] {
            let (addr, _seen) = origin(vec![answer]).await;
            match conn(addr).await.send_req(get("/"), &Bytes::new()).await {
                Err(SendError::Failed(ErrorKind::Protocol)) => {}
                other => panic!("{:?}: {:?}", String::from_utf8_lossy(answer), other.map(|r| r.status())),
            }
        }
    }

    #[tokio::test]
    async fn truncated_bodies_fail_and_are_not_reused() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"[..],
            // Chunked framing broken: no CRLF after the data.
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabXY",
        ] {
            let (addr, _seen) = origin(vec![answer]).await;
            let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
            let mut failed = false;
            while let Some(frame) = resp.body_mut().frame().await {
                failed |= frame.is_err();
            }
            assert!(failed, "{:?}", String::from_utf8_lossy(answer));
            assert!(resp.body_mut().take_reusable().is_none());
        }
    }

    #[tokio::test]
    async fn head_and_no_content_have_no_body() {
        let (addr, _seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"]).await;
        let req = Request::head("/").header("host", "shop.de").body(ReqBody::empty()).unwrap();
        let mut resp = conn(addr).await.send_req(req, &Bytes::new()).await.unwrap();
        assert!(resp.body().is_end_stream());
        assert_eq!(resp.headers()["content-length"], "1000");
        assert!(resp.body_mut().take_reusable().is_some());
    }

    #[tokio::test]
    async fn buffered_body_goes_with_its_length() {
        let (addr, seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
        let req = Request::post("/checkout").header("host", "shop.de");
        let req = req.body(ReqBody::buffered(Bytes::from_static(b"a=1"))).unwrap();
        assert_eq!(conn(addr).await.send_req(req, &Bytes::new()).await.unwrap().status(), 200);
        let seen = String::from_utf8(seen.await.unwrap()).unwrap();
        assert!(seen.contains("content-length: 3\r\n\r\na=1"), "{seen}");
        // An empty POST says so.
        let (addr, seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
        let req = Request::post("/x").header("host", "shop.de").body(ReqBody::empty()).unwrap();
        conn(addr).await.send_req(req, &Bytes::new()).await.unwrap();
        assert!(String::from_utf8(seen.await.unwrap()).unwrap().contains("content-length: 0\r\n"));
    }

    #[tokio::test]
    async fn an_idle_connection_closed_by_the_origin_is_not_reused() {
        let (addr, seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
        let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
        let mut idle = resp.body_mut().take_reusable().unwrap();
        seen.await.unwrap(); // the origin closes its end
                             // Seen once its FIN has arrived and the event loop has noticed.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while idle.is_reusable_idle() && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert!(!idle.is_reusable_idle());
    }

    #[tokio::test]
    async fn nothing_written_gives_the_body_back() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = conn(l.local_addr().unwrap()).await;
        let _origin = l.accept().await.unwrap();
        c.io.shutdown().await.unwrap(); // this end can no longer write: the first write fails
        let req = Request::post("/again").header("host", "shop.de");
        let req = req.body(ReqBody::buffered(Bytes::from_static(b"a=1"))).unwrap();
        match c.send_req(req, &Bytes::new()).await {
            Err(SendError::NotSent { body, .. }) => {
                assert_eq!(body.buffered_bytes().map(|b| &b[..]), Some(&b"a=1"[..]), "the body comes back whole")
            }
            other => panic!("{:?}", other.map(|r| r.status())),
        }
    }
}
