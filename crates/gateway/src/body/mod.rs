//! Request bodies, below everything that does I/O on connections: they stream, nothing is
//! buffered whole unless a retry needs it.
//! - [`ClientBody`]: a request body as the client's connection delivers it (HTTP/1.x decoded
//!   from the connection's reader, [`h1`]; HTTP/2 from hyper; HTTP/3 from h3, [`h3`]).
//! - [`ReqBody`]: the client's body on its way to an origin, cut off at
//!   `limits.max_body_bytes` and held to the shield's minimum upload rate.
//! - [`Fault`]: what a failed body says about its client, for the origin side to classify.

pub(crate) mod h1;
pub(crate) mod h3;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body exceeded the configured limit.
#[derive(Debug)]
pub(crate) struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("request body exceeds limits.max_body_bytes")
    }
}
impl std::error::Error for BodyTooLarge {}

/// The request body arrived slower than the shield's minimum upload rate (slow POST).
#[derive(Debug)]
pub(crate) struct UploadTooSlow;

impl std::fmt::Display for UploadTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("request body slower than shield.connections.min_upload_rate")
    }
}
impl std::error::Error for UploadTooSlow {}

/// What a failed request body says about its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Over `limits.max_body_bytes`.
    TooLarge,
    /// Slower than `shield.connections.min_upload_rate`.
    TooSlow,
    /// The client went away (closed, reset its stream) before the body ended.
    Gone,
    /// The body broke its framing.
    Malformed,
}

/// Classifies an error from a [`ReqBody`].
pub(crate) fn fault(e: &(dyn std::error::Error + 'static)) -> Fault {
    if e.is::<BodyTooLarge>() {
        Fault::TooLarge
    } else if e.is::<UploadTooSlow>() {
        Fault::TooSlow
    } else if let Some(e) = e.downcast_ref::<h1::ClientBodyError>() {
        match e {
            h1::ClientBodyError::Closed => Fault::Gone,
            h1::ClientBodyError::Malformed(_) => Fault::Malformed,
        }
    } else if let Some(e) = e.downcast_ref::<h3::H3BodyError>() {
        match e {
            h3::H3BodyError::Gone(_) => Fault::Gone,
            h3::H3BodyError::Length { .. } => Fault::Malformed,
        }
    } else {
        // HTTP/2 (hyper): the stream was reset or the connection ended; either way nothing
        // more comes and no answer can reach the client on that stream.
        Fault::Gone
    }
}

/// A request body as the client's connection delivers it.
pub(crate) enum ClientBody {
    Empty,
    H1(h1::RequestBody),
    H2(Incoming),
    H3(Box<h3::RequestBody>),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            ClientBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            ClientBody::H3(b) => Pin::new(b.as_mut()).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
            ClientBody::H3(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
            ClientBody::H3(b) => b.size_hint(),
        }
    }
}

impl std::fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            ClientBody::Empty => "ClientBody::Empty",
            ClientBody::H1(_) => "ClientBody::H1",
            ClientBody::H2(_) => "ClientBody::H2",
            ClientBody::H3(_) => "ClientBody::H3",
        })
    }
}

/// A minimum average upload rate: after `grace`, at least `rate` bytes per second since the
/// body began. The deadline moves with every byte; a body that falls behind it fails.
#[derive(Debug)]
struct Pace {
    rate: u64,
    grace: std::time::Duration,
    started: tokio::time::Instant,
    received: u64,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Pace {
    fn deadline(&self) -> tokio::time::Instant {
        let earned = std::time::Duration::from_secs_f64(self.received as f64 / self.rate as f64);
        crate::clock::later(crate::clock::later(self.started, self.grace), earned)
    }
}

/// A client's request body: forwarded as it arrives, with a size limit (0 = none) and a
/// minimum pace, after what was read of it ahead (`buffered`), or held whole once read
/// ahead to its end, so that it can be sent again.
#[derive(Debug)]
pub(crate) struct ReqBody {
    inner: Option<ClientBody>,
    remaining: u64,
    limited: bool,
    buffered: Option<Bytes>,
    /// Boxed: rare, and every request moves its body a few times.
    pace: Option<Box<Pace>>,
}

impl ReqBody {
    pub(crate) fn empty() -> ReqBody {
        ReqBody { inner: None, remaining: 0, limited: false, buffered: None, pace: None }
    }

    pub(crate) fn new(inner: ClientBody, limit: u64) -> ReqBody {
        if inner.is_end_stream() {
            return ReqBody::empty();
        }
        ReqBody { inner: Some(inner), remaining: limit, limited: limit > 0, buffered: None, pace: None }
    }

    /// Requires at least `rate` bytes per second on average after `grace` (rate 0: off).
    pub(crate) fn with_min_rate(mut self, rate: u64, grace: std::time::Duration) -> ReqBody {
        if rate > 0 && self.inner.is_some() {
            let started = tokio::time::Instant::now();
            let timer = Box::pin(tokio::time::sleep_until(crate::clock::later(started, grace)));
            self.pace = Some(Box::new(Pace { rate, grace, started, received: 0, timer }));
        }
        self
    }

    pub(crate) fn buffered(bytes: Bytes) -> ReqBody {
        ReqBody { inner: None, remaining: 0, limited: false, buffered: Some(bytes), pace: None }
    }

    /// The whole body, when it is buffered (not streaming).
    pub(crate) fn buffered_bytes(&self) -> Option<&Bytes> {
        match self.inner {
            None => self.buffered.as_ref(),
            Some(_) => None,
        }
    }

    /// A copy to send again, when the body is empty or buffered (not streaming).
    pub(crate) fn replay(&self) -> Option<ReqBody> {
        match (&self.inner, &self.buffered) {
            (None, b) => Some(ReqBody { inner: None, remaining: 0, limited: false, buffered: b.clone(), pace: None }),
            (Some(_), _) => None,
        }
    }

    /// Whether the body is still to come from the client (not empty, not read ahead whole).
    pub(crate) fn is_streaming(&self) -> bool {
        self.inner.is_some()
    }

    /// Reads ahead until the body ends, passes `max` bytes, or `wait` has passed. One that
    /// ended is held whole (it goes with its length and can be sent again); of any other,
    /// what was read goes first and the rest streams after it. A failure of the body (too
    /// large, too slow for the minimum pace, its client gone, malformed) is returned.
    pub(crate) async fn read_ahead(mut self, max: usize, wait: std::time::Duration) -> Result<ReqBody, BoxError> {
        use http_body_util::BodyExt;
        if self.inner.is_none() {
            return Ok(self);
        }
        let mut buf = bytes::BytesMut::new();
        let read = async {
            while buf.len() <= max {
                match self.frame().await {
                    None => return Ok(true),
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            buf.extend_from_slice(d);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                }
            }
            Ok(false)
        };
        let ended = tokio::time::timeout(wait, read).await;
        match ended {
            Ok(Err(e)) => Err(e),
            Ok(Ok(true)) => Ok(ReqBody::buffered(buf.freeze())),
            Ok(Ok(false)) | Err(_) => {
                self.buffered = (!buf.is_empty()).then(|| buf.freeze());
                Ok(self)
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(b) = this.buffered.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Some(pace) = this.pace.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    pace.received += frame.data_ref().map_or(0, |d| d.len() as u64);
                    let deadline = pace.deadline();
                    pace.timer.as_mut().reset(deadline);
                }
                Poll::Pending if pace.timer.as_mut().poll(cx).is_ready() => {
                    this.inner = None;
                    return Poll::Ready(Some(Err(Box::new(UploadTooSlow))));
                }
                _ => {}
            }
        }
        match ready!(polled) {
            Some(Ok(frame)) => {
                if let (true, Some(data)) = (this.limited, frame.data_ref()) {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.buffered.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.buffered, &self.inner) {
            (Some(b), None) => SizeHint::with_exact(b.len() as u64),
            // What was read of it, and the rest to come.
            (Some(b), Some(i)) => {
                let rest = i.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + b.len() as u64);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + b.len() as u64);
                }
                hint
            }
            (None, Some(i)) => i.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}
