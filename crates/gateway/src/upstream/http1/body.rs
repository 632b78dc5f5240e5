//! The response body from an origin: read from the origin's socket as the client's side
//! polls it, delimited as RFC 9112 §6.3 says (a length, chunked, or until close), and the
//! connection given back for reuse only after a complete body with nothing left over.

use super::*;

#[derive(Debug)]
pub(super) enum Framing {
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
    pub(super) conn: Option<Conn>,
    pub(super) framing: Framing,
    /// The connection may carry another request once this body has ended.
    pub(super) reusable: bool,
    pub(super) done: bool,
    /// A `101`: the connection now speaks the protocol switched to.
    pub(super) upgraded: bool,
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

    pub(super) fn check_done(&mut self) {
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
