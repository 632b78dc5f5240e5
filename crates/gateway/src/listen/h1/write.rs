//! Writing responses to HTTP/1.x clients: the head (with this hop's framing and
//! connection fields), the body as Content-Length, chunked or until close, and the small
//! pages for heads that cannot be served.

use crate::body::h1::Inbound;
use crate::codec;
use crate::proxy::body::RespBody;
use crate::telemetry::Telemetry;
use http::header;
use http::{Response, StatusCode, Version};
use http_body::Body;
use std::future::poll_fn;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::time::Sleep;

/// A first piece of body up to this size is copied behind the head, so that the two go to
/// the socket as one piece, by `send(2)` ([`SendTcp`](crate::codec::io::SendTcp)). Measured
/// on loopback TCP (a 200-byte head, 300k writes): for a 2 KiB body, copy and send 4.87 µs
/// of CPU against 5.35 µs for a writev of the two; at 4 to 8 KiB the copy still wins by 0.1
/// to 0.3 µs, at 16 KiB it no longer does.
const COPY_INTO_HEAD: usize = 4 * 1024;

/// Answers a head that cannot be served (a small page, then the connection closes).
pub(super) async fn refuse<W: AsyncWrite + Unpin>(telemetry: &Telemetry, wr: &mut Sender<W>, status: StatusCode) {
    telemetry.metrics.reject(match status {
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
    let _ = wr.write_all(&[head.as_bytes(), page.as_bytes()]).await;
    let _ = wr.flush().await;
}

/// Writes a response; Ok(true) when the connection can carry another request.
pub(super) async fn write_response<W: AsyncWrite + Unpin>(
    wr: &mut Sender<W>,
    out: &mut Vec<u8>,
    resp: Response<RespBody>,
    head_request: bool,
    version: Version,
    keep_alive: bool,
    inbound: &Inbound,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let no_body = head_request || !codec::status_has_body(status);
    let length = if no_body { None } else { body.size_hint().exact() };
    let chunked = !no_body && length.is_none() && version == Version::HTTP_11;
    let mut close = !keep_alive || (!no_body && length.is_none() && !chunked);

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_date = false;
    // A cache hit's fields, encoded when stored (never framing or connection fields).
    if let Some(encoded) = body.take_encoded() {
        out.extend_from_slice(&encoded.stored);
        out.extend_from_slice(&encoded.own);
        has_date = encoded.has_date;
    }
    for (name, value) in &parts.headers {
        // Framing and the connection's fate are this hop's to say; a response that asks to
        // close (our own pages may) is closed after.
        if name == header::CONNECTION {
            close |= value.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            continue;
        }
        if name == header::TRANSFER_ENCODING {
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
        out.extend_from_slice(codec::itoa(n, &mut [0; 20]));
        out.extend_from_slice(b"\r\n");
    } else if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        // The connection is the tunnel's now, whatever was to become of it.
        close = false;
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");

    if no_body {
        wr.write_all(&[out.as_slice()]).await?;
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
            // While the origin is slow to send, a client that goes away is seen at once: the
            // body (and the origin connection it holds) is dropped instead of waiting.
            poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
                Poll::Pending if inbound.poll_gone(cx) => Poll::Ready(Some(Err(gone()))),
                polled => polled,
            })
            .await
        } else {
            match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    wr.write_all(&[out.as_slice()]).await?;
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
                    return Ok(false); // more than its length said: not sent, and the connection closes
                }
                let end = body.is_end_stream();
                if chunked {
                    let line = codec::chunk_size_line(data.len(), &mut size_line);
                    let tail: &[u8] = if end { b"\r\n0\r\n\r\n" } else { b"\r\n" };
                    wr.write_all(&[head, line, &data, tail]).await?;
                } else if !head_sent && data.len() <= COPY_INTO_HEAD {
                    // Head and body in one piece: one send(2) instead of a writev(2) of two.
                    out.extend_from_slice(&data);
                    wr.write_all(&[out.as_slice()]).await?;
                } else {
                    wr.write_all(&[head, &data]).await?;
                }
                head_sent = true;
                if end {
                    break;
                }
                // Out now, not when the next piece comes: a TLS writer may still hold records
                // the socket did not take when it was full.
                wr.flush().await?;
            }
            Some(Err(e)) if e.is::<ClientGone>() => return Err(io::ErrorKind::ConnectionAborted.into()),
            Some(Err(_)) => return Ok(false), // cut short: the client must see it
            None => {
                if length.is_some_and(|n| sent != n) {
                    return Ok(false); // shorter than its length said: the client sees it short
                }
                let tail: &[u8] = if chunked { b"0\r\n\r\n" } else { b"" };
                wr.write_all(&[head, tail]).await?;
                break;
            }
        }
    }
    wr.flush().await?;
    drop(body);
    Ok(!close)
}

/// The client went away while its response was under way.
#[derive(Debug)]
struct ClientGone;

impl std::fmt::Display for ClientGone {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the client went away")
    }
}
impl std::error::Error for ClientGone {}

fn gone() -> crate::body::BoxError {
    Box::new(ClientGone)
}

/// The client's side of the connection, written with a send timeout: a client that takes
/// none of its response for `stall` is cut off (nginx's `send_timeout`, HAProxy's `timeout
/// client`), so a reader that never reads (a slow-read attack) cannot hold a connection
/// and its origin response for ever. The timer exists only while a write waits.
pub(super) struct Sender<W> {
    pub(super) io: W,
    pub(super) stall: Duration,
}

impl<W: AsyncWrite + Unpin> Sender<W> {
    /// Writes all of `parts`, vectored.
    pub(super) async fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut done = 0;
        while done < total {
            let mut timer = None;
            let n = poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); 4];
                let k = crate::codec::io::unwritten(parts, done, &mut slices);
                match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]) {
                    Poll::Pending => stalled(&mut timer, self.stall, cx),
                    written => written,
                }
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> io::Result<()> {
        let mut timer = None;
        poll_fn(|cx| match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending => stalled(&mut timer, self.stall, cx).map_ok(|_| ()),
            flushed => flushed,
        })
        .await
    }
}

/// A write that waits: Pending until `stall` has passed since the wait began, then an error.
fn stalled(timer: &mut Option<Pin<Box<Sleep>>>, stall: Duration, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
    match t.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
        Poll::Pending => Poll::Pending,
    }
}

/// The Date field (RFC 9110 §6.6.1) for responses that have none, formatted once a second.
pub(super) mod date {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: Cell<(u64, [u8; 29])> = const { Cell::new((0, [0; 29])) };
    }

    pub(crate) fn now() -> [u8; 29] {
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
