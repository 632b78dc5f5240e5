//! What goes back to the client: [`RespBody`], an origin's body, a body on its way into the
//! cache (read from its fill, [`super::fill`]), or a page of our own. It counts the bytes,
//! and when it is dropped (sent, or abandoned by the client) the request's record ends with
//! it. A cache hit's header fields may come with it already encoded ([`Encoded`]).

use super::record::Record;
use crate::body::BoxError;
use crate::compress::Encoder;
use crate::upstream::http1::{Conn, OriginBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

enum Source {
    /// An origin's body; it holds the origin connection, handed back to its pool once the
    /// body has been read to its end.
    Origin(OriginBody),
    /// An origin's body compressed as it streams (`compress`); the encoder is gone once
    /// the coded stream has ended.
    Coded(OriginBody, Option<Box<Encoder>>),
    /// A body the cache is filling from the origin, read at the client's pace.
    Fill(crate::cache::filling::Reader),
    Full(Option<Bytes>),
}

/// A response body to the client.
pub(crate) struct RespBody {
    source: Source,
    record: Option<Box<Record>>,
    /// Header fields already encoded, before those of the response's header map.
    encoded: Option<Encoded>,
    /// The origin agreed to switch protocols: the tunnel the connection copies once this
    /// (empty) response has gone out.
    tunnel: Option<Box<super::tunnel::Tunnel>>,
}

/// Header fields of a response already encoded as HTTP/1 field lines (`name: value\r\n`
/// ...): a cache hit's stored fields, shared by every hit of the variant, and its own (Age,
/// Cache-Status). They are never framing or connection fields. The HTTP/1 writer writes
/// them as they are; HTTP/2 takes them back into the header map ([`Encoded::into_headers`]).
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub(crate) stored: Bytes,
    pub(crate) own: Bytes,
    /// Whether they carry a Date.
    pub(crate) has_date: bool,
}

impl Encoded {
    /// The fields, appended to `headers`. Lines that are not a valid field (none are: they
    /// were encoded from a header map) are left out.
    pub(crate) fn into_headers(self, headers: &mut http::HeaderMap) {
        for lines in [&self.stored, &self.own] {
            for line in lines.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
                let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
                if let (Ok(name), Ok(value)) =
                    (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value))
                {
                    headers.append(name, value);
                }
            }
        }
    }
}

impl RespBody {
    /// An origin's body, compressed as it streams by `encoder` if there is one.
    pub(crate) fn origin(body: OriginBody, encoder: Option<Encoder>) -> RespBody {
        let source = match encoder {
            Some(e) => Source::Coded(body, Some(Box::new(e))),
            None => Source::Origin(body),
        };
        RespBody { source, record: None, encoded: None, tunnel: None }
    }

    pub(crate) fn full(bytes: impl Into<Bytes>) -> RespBody {
        let b: Bytes = bytes.into();
        RespBody {
            source: Source::Full(if b.is_empty() { None } else { Some(b) }),
            record: None,
            encoded: None,
            tunnel: None,
        }
    }

    /// Header fields that go with it, already encoded.
    pub(crate) fn with_encoded(mut self, encoded: Encoded) -> RespBody {
        self.encoded = Some(encoded);
        self
    }

    /// The response opens a tunnel ([`super::tunnel`]).
    pub(crate) fn with_tunnel(mut self, tunnel: Box<super::tunnel::Tunnel>) -> RespBody {
        self.tunnel = Some(tunnel);
        self
    }

    /// The tunnel, taken by the connection that sends the response.
    pub(crate) fn take_tunnel(&mut self) -> Option<Box<super::tunnel::Tunnel>> {
        self.tunnel.take()
    }

    /// Its encoded header fields, taken to be written (or moved into a header map).
    pub(crate) fn take_encoded(&mut self) -> Option<Encoded> {
        self.encoded.take()
    }

    /// The origin connection once the body has been read to its end and it may carry
    /// another request (for callers without a request record, which otherwise hands it back).
    pub(crate) fn take_finished_conn(&mut self) -> Option<Conn> {
        match &mut self.source {
            Source::Origin(body) | Source::Coded(body, _) => body.take_reusable(),
            Source::Fill(_) | Source::Full(_) => None,
        }
    }

    /// A body the cache is filling ([`super::fill`]).
    pub(crate) fn filled(reader: crate::cache::filling::Reader) -> RespBody {
        RespBody { source: Source::Fill(reader), record: None, encoded: None, tunnel: None }
    }

    /// Attaches the request's record; the request ends when this body is dropped.
    pub(crate) fn attach(&mut self, record: Box<Record>) {
        self.record = Some(record);
    }

    fn count(&mut self, n: usize) {
        if let Some(r) = self.record.as_mut() {
            r.bytes += n as u64;
        }
    }
}

/// The response with its encoded fields (if any) moved into its header map.
pub(crate) fn encoded_into_map(mut resp: http::Response<RespBody>) -> http::Response<RespBody> {
    if let Some(encoded) = resp.body_mut().take_encoded() {
        encoded.into_headers(resp.headers_mut());
    }
    resp
}

impl Drop for RespBody {
    fn drop(&mut self) {
        let complete = self.is_end_stream();
        if let Some(mut record) = self.record.take() {
            record.body_complete = complete;
            record.reusable = self.take_finished_conn();
            drop(record); // the request ends here: counted and logged, its connection pooled
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.source {
            Source::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Source::Origin(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Source::Coded(body, encoder) => crate::compress::poll_coded(body, encoder, cx),
            Source::Fill(reader) => reader.poll_chunk(cx).map(|c| {
                c.map(|r| r.map(Frame::data).map_err(|why| BoxError::from(format!("origin response body: {why}"))))
            }),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                let n = d.len();
                this.count(n);
            }
        }
        if let Poll::Ready(Some(Err(_))) = &polled {
            if let Some(r) = this.record.as_mut() {
                r.origin_body_error = true;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Full(b) => b.is_none(),
            Source::Origin(body) => body.is_end_stream(),
            Source::Coded(_, encoder) => encoder.is_none(),
            Source::Fill(reader) => reader.is_end(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Source::Origin(body) => body.size_hint(),
            Source::Coded(..) => SizeHint::default(),
            Source::Fill(reader) => reader.remaining().map_or_else(SizeHint::default, SizeHint::with_exact),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_fields_go_back_into_a_header_map_as_they_were() {
        let encoded = Encoded {
            stored: Bytes::from_static(b"etag: \"a\"\r\nx-two: 1\r\nx-two: 2\r\n"),
            own: Bytes::from_static(b"age: 7\r\ncache-status: holdfast; hit; ttl=3\r\n"),
            has_date: false,
        };
        let mut h = http::HeaderMap::new();
        encoded.into_headers(&mut h);
        assert_eq!(h["etag"], "\"a\"");
        assert_eq!(h.get_all("x-two").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(h["age"], "7");
        assert_eq!(h["cache-status"], "holdfast; hit; ttl=3");
        assert_eq!(h.len(), 5);
    }
}
