//! HTTP/3 on one QUIC connection (h3 over quinn): each request stream goes down the same
//! request path as HTTP/1 and HTTP/2 ([`proxy::handle`]), and its response is written back
//! as it streams, at the pace the client reads (QUIC's flow control per stream: a slow
//! reader slows only itself). On drain: GOAWAY, the requests taken run to their end, then
//! the connection closes (H3_NO_ERROR).
//!
//! Cancellation: a request's task owns its stream; when the client resets it, the next
//! read of the body or write of the response fails and the task ends there, dropping the
//! request's future and guards (its record logs it as cancelled). h3 gives no signal of a
//! reset before that read or write, so a request waiting for its origin learns of the reset
//! when the answer is written. When the connection goes, every request on it is cancelled
//! at once.

use crate::body::{h3::RequestBody, ClientBody};
use crate::proxy::{self, conn::ConnState, Edge};
use bytes::Bytes;
use http::{header, Response, Version};
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::watch;

/// HTTP/3's "no error" (RFC 9114 §8.1): a graceful close.
const H3_NO_ERROR: u32 = 0x100;

type Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;
type SendStream = h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;

/// Serves HTTP/3 on `conn` until it closes, or until the gateway drains and its requests
/// have ended.
pub(super) async fn serve(
    edge: Arc<Edge>,
    state: Arc<ConnState>,
    conn: quinn::Connection,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_head = edge.snapshot.load().file.limits.max_header_bytes.get();
    let mut builder = h3::server::builder();
    builder.max_field_section_size(max_head);
    let mut h3: Conn = match builder.build(h3_quinn::Connection::new(conn.clone())).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(peer = %state.peer, error = %e, "HTTP/3 connection not set up");
            return;
        }
    };
    let mut requests = tokio::task::JoinSet::new();
    let mut draining = *shutdown.borrow();
    if draining {
        let _ = h3.shutdown(0).await;
    }
    loop {
        if draining && requests.is_empty() {
            break;
        }
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    edge.telemetry.metrics.quic.stream();
                    requests.spawn(request(edge.clone(), state.clone(), conn.clone(), resolver));
                }
                Ok(None) => break,
                Err(e) => {
                    // The connection is gone (closed by the client, timed out, broken): no
                    // answer can reach it, so its requests are cancelled where they stand.
                    tracing::debug!(peer = %state.peer, error = %e, "HTTP/3 connection ended");
                    requests.abort_all();
                    break;
                }
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
            _ = shutdown.changed(), if !draining => {
                draining = true;
                state.drain();
                let _ = h3.shutdown(0).await;
            }
        }
    }
    // The connection ended or drained: requests still running end with it, or finish if
    // their streams still can.
    while requests.join_next().await.is_some() {}
    // A CONNECTION_CLOSE discards stream data the client has not yet acknowledged (RFC 9000
    // §10.2): the last responses get a moment to arrive, or for the client, told by GOAWAY
    // that nothing more is taken, to close first.
    let _ = tokio::time::timeout(crate::proxy::conn::DRAIN_IDLE, conn.closed()).await;
    conn.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"");
}

/// One request stream: its head, the request path, the response written back.
async fn request(
    edge: Arc<Edge>,
    state: Arc<ConnState>,
    conn: quinn::Connection,
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
) {
    // A stream whose head does not come within `client_header` is given up, as a TCP
    // connection's would be.
    let wait = edge.snapshot.load().file.timeouts.client_header.get();
    let (mut req, stream) = match tokio::time::timeout(wait, resolver.resolve_request()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(peer = %state.peer, error = %e, "HTTP/3 request head refused");
            return;
        }
        Err(_) => {
            edge.telemetry.metrics.reject("client_header_timeout");
            return;
        }
    };
    *req.version_mut() = Version::HTTP_3;
    let head = req.method() == http::Method::HEAD;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (mut send, recv) = stream.split();
    let mut body = RequestBody::new(recv, declared);
    let body = if body.ended_now() { ClientBody::Empty } else { ClientBody::H3(Box::new(body)) };
    let req = req.map(|()| body);
    let resp = match proxy::handle(&edge, &state, req).answer().await {
        Ok(resp) => proxy::body::encoded_into_map(resp),
        Err(proxy::CloseSilently) => {
            // The shield's "close": no answer, and the connection goes.
            conn.close(quinn::VarInt::from_u32(H3_REQUEST_REJECTED), b"");
            return;
        }
    };
    respond(&mut send, resp, head).await;
}

/// HTTP/3's H3_REQUEST_REJECTED (RFC 9114 §8.1).
const H3_REQUEST_REJECTED: u32 = 0x10b;

/// Writes `resp` on the stream: the head, then the body frame by frame as it comes, then
/// the trailers or the end of the stream. A failed write (the client reset the stream, or
/// went away) ends it there.
async fn respond(send: &mut SendStream, resp: Response<crate::proxy::body::RespBody>, head: bool) {
    let (mut parts, body) = resp.into_parts();
    // Connection-specific fields have no place in HTTP/3 (RFC 9114 §4.2).
    for name in [header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE] {
        parts.headers.remove(name);
    }
    parts.headers.remove("keep-alive");
    parts.headers.remove("proxy-connection");
    if send.send_response(Response::from_parts(parts, ())).await.is_err() {
        return;
    }
    let mut body = std::pin::pin!(body);
    while let Some(frame) = if head { None } else { body.frame().await } {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => {
                    if !data.is_empty() && send.send_data(data).await.is_err() {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = send.send_trailers(trailers).await;
                        return;
                    }
                }
            },
            Err(e) => {
                // The origin's body broke off: the client must not take it as whole.
                tracing::debug!(error = %e, "response body failed; HTTP/3 stream reset");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            }
        }
    }
    let _ = send.finish().await;
}
