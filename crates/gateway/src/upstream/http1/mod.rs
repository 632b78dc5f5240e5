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

mod body;
use body::Framing;
pub(crate) use body::{OriginBody, OriginBodyError};

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
    /// How long the origin said it keeps an idle connection (`Keep-Alive: timeout=N` on
    /// its last response, as Apache and Node.js send it); None: it did not say.
    keep_alive_timeout: Option<std::time::Duration>,
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
    /// The request may go twice (`retry::idempotent`): if a reused connection closes on it
    /// unanswered, the pool sends it again on a new one.
    pub(crate) idempotent: bool,
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Nothing was written (the connection was found closed): the body comes back whole
    /// (the head was only borrowed).
    NotSent { kind: ErrorKind, body: ReqBody },
    /// The request was (at least partly) written, or its body failed; no response.
    Failed(ErrorKind),
    /// The request was (at least partly) written, and the origin closed the connection
    /// (its end of stream, or a reset) before a byte of an answer. On a reused connection
    /// that is the keep-alive race (RFC 9112 §9.3.1): the origin was closing it, idle, as
    /// the request went out. A reset as far as the origin's health is concerned.
    Unanswered,
}

impl SendError {
    /// What kind of failure it was, for the origin's health and the metrics.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            SendError::NotSent { kind, .. } | SendError::Failed(kind) => *kind,
            SendError::Unanswered => ErrorKind::Reset,
        }
    }
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
            keep_alive_timeout: None,
        }
    }

    /// How long this connection may sit idle and still be used: `max_idle_age`, or less
    /// when the origin said it closes idle connections sooner (a second short of its word,
    /// so that a request does not race its close).
    pub(crate) fn idle_limit(&self, max_idle_age: std::time::Duration) -> std::time::Duration {
        const MARGIN: std::time::Duration = std::time::Duration::from_secs(1);
        self.keep_alive_timeout.map_or(max_idle_age, |t| max_idle_age.min(t.saturating_sub(MARGIN)))
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
        let Outgoing { head, body, forwarding, .. } = msg;
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
                Err(e) if is_closed(&e) => return Err(SendError::Unanswered),
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
                        Ok(0) if self.buf.is_empty() => return Err(SendError::Unanswered),
                        Ok(0) => return Err(SendError::Failed(ErrorKind::Protocol)),
                        Ok(_) => {}
                        Err(e) if self.buf.is_empty() && is_closed(&e) => return Err(SendError::Unanswered),
                        Err(e) => return Err(SendError::Failed(io_error_kind(&e))),
                    }
                }
            }
        }
    }

    fn into_response(mut self, head: ResponseHead, head_request: bool, reusable: bool) -> Response<OriginBody> {
        self.waiting_since = None;
        let ResponseHead { status, version, mut headers, framing, keep_alive, keep_alive_timeout } = head;
        // (204 and 304 have no body whatever their fields say: the parser's framing says so.)
        let framing = if head_request { Framing::Length(0) } else { Framing::from(framing) };
        if !matches!(framing, Framing::Length(_)) && headers.contains_key(header::CONTENT_LENGTH) {
            headers.remove(header::CONTENT_LENGTH); // RFC 9112 §6.3: Transfer-Encoding wins
        }
        let reusable = reusable && keep_alive && !matches!(framing, Framing::UntilClose);
        self.keep_alive_timeout = keep_alive_timeout.map(std::time::Duration::from_secs);
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

/// The origin closed the connection: reset, gone, or (TLS) its end of stream without a
/// close_notify.
fn is_closed(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(e.kind(), K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof)
        && super::tls::TlsFailure::of(e).is_none()
}

pub(crate) fn body_error_kind(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    match client_body::fault(e) {
        client_body::Fault::TooLarge => ErrorKind::BodyTooLarge,
        client_body::Fault::TooSlow => ErrorKind::ClientTooSlow,
        client_body::Fault::Gone => ErrorKind::ClientGone,
        client_body::Fault::Malformed => ErrorKind::ClientBody,
    }
}

#[cfg(test)]
mod tests;
