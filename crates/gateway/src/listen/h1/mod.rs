//! HTTP/1.x from clients: reading request heads and bodies, writing responses, keep-alive,
//! pipelining, `Expect: 100-continue`, and the framing rules that keep smuggled requests out.
//!
//! Written by hand instead of using hyper's server for two reasons, both measured:
//! - hyper's HTTP/1 dispatcher was the largest single part of what holdfast spent per proxied
//!   request (callgrind: ~9.6k of 28.6k instructions, with its per-request header timer);
//! - hyper cannot refuse ambiguous framing: with both Content-Length and Transfer-Encoding
//!   it follows RFC 9112 §6.3 (drops Content-Length, decodes chunked) and the request it
//!   hands over no longer shows that anything was wrong, so holdfast had to parse every
//!   head a second time in a stream wrapper to find them.
//!
//! Heads are parsed with httparse (the parser hyper uses) in its default, strict
//! configuration. A request whose framing is ambiguous is answered 400 and the connection
//! closed, and it never reaches an origin ([`crate::codec::BadFraming`]): both Content-Length and
//! Transfer-Encoding; Content-Length values that are not plain digits or that differ;
//! Transfer-Encoding other than exactly one `chunked` (obfuscations such as `xchunked`,
//! `chunked, identity`, a vertical tab, a repeated field); Transfer-Encoding in HTTP/1.0.
//! Chunked request bodies are decoded strictly (CRLF line ends, bounded size lines and
//! trailers). Responses carry Content-Length when the body's length is known, else they go
//! chunked (HTTP/1.1) or until close (HTTP/1.0); none for HEAD, 1xx, 204 and 304.
//! HTTP/2 stays hyper's (`listen::serve_http`).

mod write;

use super::ConnState;
use crate::body::ClientBody;
use crate::proxy;
use crate::proxy::{Edge, Handled};
use crate::shield::slow::SlowClients;
use bytes::BytesMut;
use http::{Method, Request, StatusCode};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the connection is held to (from the configuration when it opened).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) max_head: usize,
    pub(crate) max_headers: usize,
    pub(crate) client_header: Duration,
    /// How long a client may take none of its response (`timeouts.idle_keepalive`).
    pub(crate) send_timeout: Duration,
}

use crate::body::h1::{Framing, Inbound, RequestBody};
use crate::codec::BadFraming;
use holdfast_http1::request::{parse_request, BodyFraming, RequestHead};
#[cfg(test)]
use write::date;
use write::{refuse, write_response, Sender};

/// How waiting for a request head ended without one.
enum NoHead {
    /// The client closed, or the connection is closing: nothing to answer.
    Closed,
    /// Answer this status and close.
    Refuse(StatusCode),
}

/// Reads the next request head. While the connection is idle (nothing of a head read yet)
/// the connection's watchdog keeps time; a head that has begun must complete within
/// `client_header`. A head that does not arrive whole in one read is counted as a slow
/// client while it is read, and when it is cut off (slowloris, for the incident engine).
async fn read_head(
    inbound: &Inbound,
    state: &ConnState,
    s: &Settings,
    slow: &SlowClients,
) -> Result<RequestHead, NoHead> {
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut partial = None;
    poll_fn(|cx| {
        let mut r = inbound.lock();
        loop {
            if let Some(head) = parse_request(&mut r.buf, s.max_head, s.max_headers).map_err(NoHead::Refuse)? {
                return Poll::Ready(Ok(head));
            }
            if r.buf.len() >= s.max_head {
                return Poll::Ready(Err(NoHead::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)));
            }
            match r.poll_fill(cx) {
                Poll::Ready(Ok(n)) if n > 0 => continue,
                Poll::Ready(_) => return Poll::Ready(Err(NoHead::Closed)),
                Poll::Pending => break,
            }
        }
        if r.buf.is_empty() {
            return if state.is_closing() { Poll::Ready(Err(NoHead::Closed)) } else { Poll::Pending };
        }
        let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(s.client_header)));
        if partial.is_none() {
            partial = Some(slow.head_begun(state.peer.ip()));
        }
        t.as_mut().poll(cx).map(|()| {
            slow.head_cut(state.peer.ip());
            Err(NoHead::Closed)
        })
    })
    .await
}

/// Serves HTTP/1.x on `io` until the client or the gateway closes it.
/// `read`: what was already read from `io` (to tell HTTP/2 from HTTP/1).
pub(crate) async fn serve<IO>(
    edge: Arc<Edge>,
    state: Arc<ConnState>,
    io: IO,
    read: BytesMut,
    settings: Settings,
    shutdown: tokio::sync::watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Send + Sync + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let mut wr = Sender { io: wr, stall: settings.send_timeout };
    let inbound = Arc::new(Inbound::new(Box::new(rd), read));
    let mut out = Vec::with_capacity(1024);
    // Whether the connection closes while the client may still be sending (then it lingers).
    let linger_after = loop {
        // What is left of the last request's body is skipped if it is already here; else the
        // stream is out of step and the connection closes.
        if !inbound.lock().skip_body() {
            break true;
        }
        let head = match read_head(&inbound, &state, &settings, &edge.shield.slow).await {
            Ok(head) => head,
            Err(NoHead::Closed) => break false,
            Err(NoHead::Refuse(status)) => {
                refuse(&edge.telemetry, &mut wr, status).await;
                break true;
            }
        };
        let RequestHead { method, uri, version, headers, framing, keep_alive, expects_continue } = head;
        let head_request = method == Method::HEAD;
        let bad_framing = framing.is_none();
        let body = match framing {
            Some(BodyFraming::Length(0)) | None => ClientBody::Empty,
            Some(framing) => {
                inbound.want_continue.store(false, Relaxed);
                let seq = inbound.lock().start_body(Framing::from(framing));
                ClientBody::H1(RequestBody::new(inbound.clone(), seq, expects_continue))
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
        let resp = match proxy::handle(&edge, &state, req) {
            Handled::Now(resp) => resp,
            // The client leaving drops the request where it stands (its guards release what
            // it held, its record says where it was cancelled).
            Handled::Later(handled) => {
                let Some(resp) = serve_request(handled, &inbound, &mut wr.io, expects_continue).await else {
                    break false;
                };
                resp
            }
        };
        let Ok(mut resp) = resp else { break false }; // the shield's "close": no answer at all
                                                      // The origin agreed to switch protocols: once its 101 is out, the connection is a
                                                      // tunnel until either side closes.
        let tunnel = resp.body_mut().take_tunnel();
        let keep_alive = keep_alive && !bad_framing && state.keeps_alive();
        match write_response(&mut wr, &mut out, resp, head_request, version, keep_alive, &inbound).await {
            Ok(true) if tunnel.is_some() => {
                if let Some(t) = tunnel {
                    let client = super::tunnel::H1Client { inbound: &inbound, writer: &mut wr.io };
                    super::tunnel::run(client, t, shutdown).await;
                }
                break false;
            }
            Ok(true) => {}
            // After a refused request (bad framing), the rest of what the client sent is
            // still coming; after a normal close, nothing is.
            Ok(false) => break bad_framing,
            Err(_) => break false,
        }
    };
    let _ = tokio::time::timeout(settings.send_timeout, wr.io.shutdown()).await;
    if linger_after {
        linger(&inbound).await;
    }
}

/// After answering a request it will not follow (a refused head, ambiguous framing, a body
/// left unread), the client may still be sending. Closing at once would make the kernel
/// reset the connection, and the client could lose the answer before reading it. So, as
/// nginx's lingering close does, what arrives is read and dropped for a short while (the
/// write side is already shut): until the client closes, `LINGER_BYTES` or `LINGER_TIME`.
async fn linger(inbound: &Inbound) {
    const LINGER_BYTES: usize = 256 * 1024;
    const LINGER_TIME: Duration = Duration::from_secs(2);
    let mut total = 0;
    let discard = poll_fn(|cx| {
        let mut r = inbound.lock();
        loop {
            total += r.buf.len();
            r.discard();
            if total >= LINGER_BYTES {
                return Poll::Ready(());
            }
            match r.poll_fill(cx) {
                Poll::Ready(Ok(n)) if n > 0 => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}

/// Runs the request path until it answers, or None when the client goes away first (the
/// request is then dropped where it stands). Sends `100 Continue` once its body is first
/// read.
async fn serve_request<F, W>(handled: F, inbound: &Inbound, wr: &mut W, expects_continue: bool) -> Option<F::Output>
where
    F: Future,
    W: AsyncWrite + Unpin,
{
    let mut handled = pin!(handled);
    let mut written = if expects_continue { 0 } else { CONTINUE.len() };
    poll_fn(|cx| {
        if inbound.poll_gone(cx) {
            return Poll::Ready(None);
        }
        if written < CONTINUE.len() {
            if let Ok(mut w) = inbound.waker.lock() {
                *w = Some(cx.waker().clone());
            }
        }
        if let Poll::Ready(out) = handled.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        while inbound.want_continue.load(Relaxed) && written < CONTINUE.len() {
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

#[cfg(test)]
mod tests;
