//! An HTTP/3 request body: the DATA frames of a request stream (h3 over quinn), then its
//! trailers, held to the request's Content-Length (RFC 9114 §4.1.2: a body that does not
//! match it is malformed).

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The receiving half of an HTTP/3 request stream.
pub(crate) type RecvStream = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// What went wrong with an HTTP/3 request body.
#[derive(Debug)]
pub(crate) enum H3BodyError {
    /// The stream was reset, or the connection ended, before the body did.
    Gone(String),
    /// More or less than the Content-Length.
    Length { declared: u64, received: u64 },
}

impl std::fmt::Display for H3BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            H3BodyError::Gone(why) => write!(f, "HTTP/3 request body: {why}"),
            H3BodyError::Length { declared, received } => {
                write!(f, "HTTP/3 request body: {received} bytes against a Content-Length of {declared}")
            }
        }
    }
}
impl std::error::Error for H3BodyError {}

enum Phase {
    Data,
    Trailers,
    Done,
}

/// A request's body as its HTTP/3 stream delivers it.
pub(crate) struct RequestBody {
    stream: RecvStream,
    declared: Option<u64>,
    received: u64,
    phase: Phase,
    /// A frame read ahead by [`RequestBody::ended_now`], given out first.
    peeked: Option<Result<Frame<Bytes>, H3BodyError>>,
}

impl RequestBody {
    /// `declared`: the request's Content-Length, if it has one.
    pub(crate) fn new(stream: RecvStream, declared: Option<u64>) -> RequestBody {
        let phase = if declared == Some(0) { Phase::Trailers } else { Phase::Data };
        RequestBody { stream, declared, received: 0, phase, peeked: None }
    }

    /// Whether the body is already over, with nothing in it, as far as what has arrived
    /// tells (one look, no waiting). HTTP/3 has no END_STREAM on HEADERS: a GET's end comes
    /// as the stream's FIN, nearly always in the same packet. A body known to be empty
    /// lets a request be retried on another origin. What the look reads is kept.
    pub(crate) fn ended_now(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut *self).poll_frame(&mut cx) {
            Poll::Ready(None) => true,
            Poll::Ready(Some(frame)) => {
                self.peeked = Some(frame);
                false
            }
            Poll::Pending => false,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = H3BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, H3BodyError>>> {
        let this = &mut *self;
        if let Some(frame) = this.peeked.take() {
            return Poll::Ready(Some(frame));
        }
        loop {
            match this.phase {
                Phase::Data => match ready!(this.stream.poll_recv_data(cx)) {
                    Ok(Some(mut buf)) => {
                        let chunk = buf.copy_to_bytes(buf.remaining());
                        this.received += chunk.len() as u64;
                        if let Some(declared) = this.declared.filter(|&d| this.received > d) {
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(H3BodyError::Length { declared, received: this.received })));
                        }
                        if !chunk.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(chunk))));
                        }
                    }
                    Ok(None) => {
                        if let Some(declared) = this.declared.filter(|&d| this.received != d) {
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(H3BodyError::Length { declared, received: this.received })));
                        }
                        this.phase = Phase::Trailers;
                    }
                    Err(e) => {
                        this.phase = Phase::Done;
                        return Poll::Ready(Some(Err(H3BodyError::Gone(e.to_string()))));
                    }
                },
                Phase::Trailers => {
                    let got = ready!(this.stream.poll_recv_trailers(cx));
                    this.phase = Phase::Done;
                    return Poll::Ready(match got {
                        Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                        Ok(None) => None,
                        Err(e) => Some(Err(H3BodyError::Gone(e.to_string()))),
                    });
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.peeked.is_none() && matches!(self.phase, Phase::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(d) => SizeHint::with_exact(d.saturating_sub(self.received)),
            None => SizeHint::default(),
        }
    }
}
