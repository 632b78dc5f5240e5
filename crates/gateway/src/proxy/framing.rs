//! Request-smuggling defence for HTTP/1.1 client connections.
//!
//! Written by hand because hyper gives no way to do it: when a request carries both
//! Content-Length and Transfer-Encoding, hyper follows RFC 9112 §6.3 (drops Content-Length,
//! decodes chunked, closes afterwards) and the parsed request no longer shows that anything
//! was wrong. holdfast must instead answer 400, close, and never forward such a request, so
//! [`FramingGuard`] wraps the client connection's byte stream, finds each request head
//! (using httparse, the parser hyper uses, and following body framing to find the next
//! head), and records the first request whose framing is ambiguous:
//! - both Content-Length and Transfer-Encoding;
//! - Content-Length values that are not plain digits, or that disagree;
//! - Transfer-Encoding other than exactly one `chunked` (obfuscations such as
//!   `xchunked`, `chunked, identity`, a vertical tab, or a repeated header);
//! - Transfer-Encoding on an HTTP/1.0 request.
//!
//! The request path asks [`GuardState::is_rejected`] with the request's sequence number.
//! The guard only ever flags; framing itself stays hyper's. After a flagged request (or
//! anything it cannot follow, such as an HTTP/2 preface) it stops scanning.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Header fields a head may have for the guard to follow it (hyper answers 431 above
/// `limits.max_headers` anyway).
const MAX_HEADERS: usize = 256;

/// Shared between the guard (writer) and the request path (reader) of one connection.
#[derive(Debug, Default)]
pub struct GuardState {
    /// 1-based sequence number of the first request with bad framing; 0 = none.
    rejected: AtomicU64,
}

impl GuardState {
    /// Whether the `seq`-th request (1-based) on this connection has bad framing.
    pub fn is_rejected(&self, seq: u64) -> bool {
        let r = self.rejected.load(Relaxed);
        r != 0 && seq >= r
    }
}

#[derive(Debug)]
enum Chunk {
    Size { value: u64, digits: u8, ext: bool },
    Data(u64),
    DataEnd,
    Trailer { line: usize },
}

#[derive(Debug)]
enum Scan {
    /// Waiting for (more of) a request head; holds the partial head.
    Head(Vec<u8>),
    Body(u64),
    Chunked(Chunk),
    Off,
}

/// Scans request heads as bytes are read. `max_head` bounds the buffered partial head.
#[derive(Debug)]
pub struct Scanner {
    scan: Scan,
    seq: u64,
    max_head: usize,
    max_headers: usize,
    state: Arc<GuardState>,
}

impl Scanner {
    pub fn new(state: Arc<GuardState>, max_head: usize, max_headers: usize) -> Scanner {
        Scanner { scan: Scan::Head(Vec::new()), seq: 0, max_head, max_headers, state }
    }

    /// A scanner that does nothing (HTTP/2 connections).
    pub fn off(state: Arc<GuardState>) -> Scanner {
        Scanner { scan: Scan::Off, seq: 0, max_head: 0, max_headers: 0, state }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.scan {
                Scan::Off => return,
                Scan::Body(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.scan = Scan::Head(Vec::new());
                    }
                }
                Scan::Chunked(_) => data = self.feed_chunked(data),
                Scan::Head(buf) => {
                    if buf.is_empty() {
                        // Common case: the whole head is in this read; parse it in place.
                        match self.parse_head(data) {
                            Some(used) => data = &data[used..],
                            None => {
                                if let Scan::Head(buf) = &mut self.scan {
                                    buf.extend_from_slice(data);
                                }
                                return;
                            }
                        }
                    } else {
                        let old = buf.len();
                        buf.extend_from_slice(data);
                        let joined = std::mem::take(buf);
                        match self.parse_head(&joined) {
                            Some(used) => data = &data[used.saturating_sub(old).min(data.len())..],
                            None => {
                                if let Scan::Head(buf) = &mut self.scan {
                                    *buf = joined;
                                }
                                return;
                            }
                        }
                    }
                    if let Scan::Head(buf) = &self.scan {
                        if buf.len() > self.max_head {
                            self.scan = Scan::Off;
                        }
                    }
                }
            }
        }
    }

    /// Parses a head at the start of `data`. Returns bytes consumed when complete (and
    /// moves to the body state), None when more is needed (state stays Head).
    fn parse_head(&mut self, data: &[u8]) -> Option<usize> {
        // RFC 9112 §2.2: empty lines before the request line are ignored, as hyper does.
        let skip = data.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
        let rest = &data[skip..];
        if rest.is_empty() {
            return Some(skip);
        }
        // Uninitialised stack space: no allocation or zeroing per request head.
        let mut storage = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let headers = &mut storage[..self.max_headers.min(MAX_HEADERS)];
        let mut req = httparse::Request::new(&mut []);
        let used = match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, rest, headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if data.len() > self.max_head {
                    self.scan = Scan::Off;
                    return Some(data.len());
                }
                return None;
            }
            Err(_) => {
                // hyper rejects it too (400); flag it anyway and follow nothing after it.
                self.seq += 1;
                let _ = self.state.rejected.compare_exchange(0, self.seq, Relaxed, Relaxed);
                self.scan = Scan::Off;
                return Some(data.len());
            }
        };
        self.seq += 1;
        match framing(&req) {
            Ok(Framing::None) => self.scan = Scan::Head(Vec::new()),
            Ok(Framing::Length(0)) => self.scan = Scan::Head(Vec::new()),
            Ok(Framing::Length(n)) => self.scan = Scan::Body(n),
            Ok(Framing::Chunked) => self.scan = Scan::Chunked(Chunk::Size { value: 0, digits: 0, ext: false }),
            Err(()) => {
                let _ = self.state.rejected.compare_exchange(0, self.seq, Relaxed, Relaxed);
                self.scan = Scan::Off;
            }
        }
        if matches!(req.method, Some("CONNECT")) || has_upgrade(&req) {
            // What follows may not be HTTP/1.1 at all.
            self.scan = Scan::Off;
        }
        Some(skip + used)
    }

    fn feed_chunked<'a>(&mut self, mut data: &'a [u8]) -> &'a [u8] {
        while let Scan::Chunked(chunk) = &mut self.scan {
            let Some((&b, rest)) = data.split_first() else { return data };
            match chunk {
                Chunk::Data(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        *chunk = Chunk::DataEnd;
                    }
                    continue;
                }
                Chunk::Size { value, digits, ext } => match b {
                    b'\n' if *digits == 0 => self.scan = Scan::Off,
                    b'\n' if *value == 0 => *chunk = Chunk::Trailer { line: 0 },
                    b'\n' => *chunk = Chunk::Data(*value),
                    b'\r' => {}
                    _ if *ext => {}
                    b';' | b' ' | b'\t' => *ext = true,
                    _ => match (b as char).to_digit(16) {
                        Some(d) if *digits < 16 => {
                            *value = *value * 16 + u64::from(d);
                            *digits += 1;
                        }
                        _ => self.scan = Scan::Off,
                    },
                },
                Chunk::DataEnd => match b {
                    b'\r' => {}
                    b'\n' => *chunk = Chunk::Size { value: 0, digits: 0, ext: false },
                    _ => self.scan = Scan::Off,
                },
                Chunk::Trailer { line } => match b {
                    b'\n' if *line == 0 => self.scan = Scan::Head(Vec::new()),
                    b'\n' => *line = 0,
                    b'\r' => {}
                    _ => *line += 1,
                },
            }
            data = rest;
        }
        data
    }
}

enum Framing {
    None,
    Length(u64),
    Chunked,
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

fn framing(req: &httparse::Request) -> Result<Framing, ()> {
    let mut te = 0usize;
    let mut te_chunked = false;
    let mut cl: Option<u64> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te += 1;
            te_chunked = trim_ows(h.value).eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // A list ("5, 5") is tolerated by some parsers; we accept only plain digits.
            let v = trim_ows(h.value);
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n: u64 = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).ok_or(())?;
            if cl.is_some_and(|prev| prev != n) {
                return Err(());
            }
            cl = Some(n);
        }
    }
    match (te, cl) {
        (0, None) => Ok(Framing::None),
        (0, Some(n)) => Ok(Framing::Length(n)),
        (1, None) if te_chunked && req.version == Some(1) => Ok(Framing::Chunked),
        _ => Err(()),
    }
}

fn has_upgrade(req: &httparse::Request) -> bool {
    req.headers.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade"))
}

/// The client connection's byte stream with a [`Scanner`] watching what is read.
pub struct FramingGuard<IO> {
    io: IO,
    scanner: Scanner,
}

impl<IO> FramingGuard<IO> {
    pub fn new(io: IO, scanner: Scanner) -> Self {
        FramingGuard { io, scanner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FramingGuard<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if !matches!(this.scanner.scan, Scan::Off) {
                this.scanner.feed(&buf.filled()[before..]);
            }
        }
        res
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FramingGuard<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_rejected(input: &[u8], split: usize) -> u64 {
        let state = Arc::new(GuardState::default());
        let mut s = Scanner::new(state.clone(), 64 * 1024, 100);
        let split = split.min(input.len());
        s.feed(&input[..split]);
        s.feed(&input[split..]);
        state.rejected.load(Relaxed)
    }

    fn check_all_splits(input: &[u8], want: u64) {
        for split in 0..=input.len() {
            assert_eq!(first_rejected(input, split), want, "split at {split}: {}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn clean_pipelines_pass() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /last HTTP/1.1\r\nHost: a\r\n\r\n";
        check_all_splits(input, 0);
    }

    #[test]
    fn smuggling_shapes_are_flagged_at_their_sequence_number() {
        let bad: &[&[u8]] = &[
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            b"Content-Length: 4\r\nContent-Length: 5\r\n",
            b"Content-Length: +4\r\n",
            b"Content-Length: 4, 4\r\n",
            b"Transfer-Encoding: xchunked\r\n",
            b"Transfer-Encoding: chunked, identity\r\n",
            b"Transfer-Encoding: \x0bchunked\r\n",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: gzip, chunked\r\n",
        ];
        for extra in bad {
            let mut input = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nPOST /bad HTTP/1.1\r\nHost: a\r\n".to_vec();
            input.extend_from_slice(extra);
            input.extend_from_slice(b"\r\n0\r\n\r\n");
            check_all_splits(&input, 2);
        }
        check_all_splits(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1);
    }

    #[test]
    fn smuggled_head_inside_a_body_is_not_a_request() {
        // The body of the first request looks like a bad request head; it must not be read as one.
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut input = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(body);
        check_all_splits(&input, 0);
    }
}
