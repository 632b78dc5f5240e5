//! A byte stream from a client split into requests exactly as holdfast's server reads it
//! (`listen::h1`): a head, then its body as its framing says, then the next head, until the
//! stream ends, a request is refused, or a request ends the connection (`Connection:
//! close`, HTTP/1.0 without keep-alive). The fuzz targets and the differential tests judge
//! holdfast by this split; the server and it share every function they call.

use crate::request::{parse_request, BodyFraming, RequestHead};
use crate::Chunked;
use bytes::{Bytes, BytesMut};

/// One request read whole.
#[derive(Debug)]
pub struct Request {
    /// Its head.
    pub head: RequestHead,
    /// Its body, de-chunked.
    pub body: Bytes,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// After a whole request, at the end of the bytes (or nothing at all).
    Clean,
    /// In the middle of a head or a body.
    Incomplete,
    /// A request that ends the connection; bytes after it are never read.
    Closed,
    /// A request refused (400, 405, 431, 505: the connection closes).
    Refused,
}

/// Splits `pieces` (the stream as it arrived, in any cut) into requests.
pub fn split(pieces: &[&[u8]], max_head: usize, max_headers: usize) -> (Vec<Request>, End) {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = pieces.iter();
    let mut more = |buf: &mut BytesMut| match rest.next() {
        Some(p) => {
            buf.extend_from_slice(p);
            true
        }
        None => false,
    };
    loop {
        let head = loop {
            match parse_request(&mut buf, max_head, max_headers) {
                Ok(Some(h)) => break h,
                Ok(None) if more(&mut buf) => {}
                Ok(None) => {
                    let blank = buf.iter().all(|b| *b == b'\r' || *b == b'\n');
                    return (out, if blank { End::Clean } else { End::Incomplete });
                }
                Err(_) => return (out, End::Refused),
            }
        };
        let mut body = BytesMut::new();
        match head.framing {
            None => return (out, End::Refused),
            Some(BodyFraming::Length(n)) => {
                while (buf.len() as u64) < n {
                    if !more(&mut buf) {
                        return (out, End::Incomplete);
                    }
                }
                body = buf.split_to(n as usize);
            }
            Some(BodyFraming::Chunked) => {
                let mut c = Chunked::new();
                while !c.is_done() {
                    match c.decode(&mut buf) {
                        Ok(Some(d)) => body.extend_from_slice(&d),
                        Ok(None) if c.is_done() => {}
                        Ok(None) if more(&mut buf) => {}
                        Ok(None) => return (out, End::Incomplete),
                        Err(_) => return (out, End::Refused),
                    }
                }
            }
        }
        let keep_alive = head.keep_alive;
        out.push(Request { head, body: body.freeze() });
        if !keep_alive {
            return (out, End::Closed);
        }
    }
}
