//! Differential checks, as HTTP Garden does them: for any byte stream, holdfast either
//! refuses it or splits it into requests (method, target, header fields, body boundaries)
//! exactly as a strict reference does, hyper's HTTP/1 server; and what holdfast sends on to
//! an origin parses there (hyper again) into exactly the requests holdfast judged, never
//! one more. Responses get the same check the other way: a response stream split by
//! holdfast as hyper's client splits it.
//!
//! The streams: mutated valid requests and every known smuggling trick (CL/TE variants,
//! obs-fold, bare CR and LF, chunk extensions, oversized and negative sizes, NUL and
//! obs-text in names and values, duplicate Host, absolute-form targets). `PROPTEST_CASES`
//! sets how many (CI: the default below; a long run: 100000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::{Bytes, BytesMut};
use holdfast_http1::encode::{encode_request_head, BodyLen};
use holdfast_http1::fields::remove_hop_by_hop;
use holdfast_http1::response::{parse_response, ResponseFraming};
use holdfast_http1::split::{split, End};
use http_body_util::{BodyExt, Empty, Full};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as both sides see it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    target: String,
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// A runtime whose clock is paused: it jumps to the next timer whenever every task waits,
/// so a peer that waits for bytes that never come costs no real time.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// The requests hyper's server reads from `stream` (the client then half-closes).
async fn hyper_reads(stream: &[u8]) -> Vec<Seen> {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = {
        let seen = seen.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                if let Ok(body) = body {
                    seen.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        target: parts.uri.to_string(),
                        fields: parts.headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
                        body,
                    });
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new()))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .max_headers(100)
        .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
    let server = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
    });
    let _ = client.write_all(stream).await;
    let _ = client.shutdown().await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut sink)).await;
    let _ = server.await;
    let out = seen.lock().unwrap().clone();
    out
}

fn seen_of(r: &holdfast_http1::split::Request) -> Seen {
    Seen {
        method: r.head.method.to_string(),
        target: r.head.uri.to_string(),
        fields: r.head.headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
        body: r.body.to_vec(),
    }
}

/// What holdfast would send an origin for the requests it read: hop-by-hop fields
/// removed, the head encoded by the gateway's encoder, the body with its length.
fn to_origin(reqs: &[holdfast_http1::split::Request]) -> (Vec<u8>, Vec<Seen>) {
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for r in reqs {
        let mut b = http::Request::builder().method(r.head.method.clone()).uri(r.head.uri.clone());
        for (n, v) in &r.head.headers {
            b = b.header(n, v);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        remove_hop_by_hop(&mut parts.headers);
        let len = if r.body.is_empty() { BodyLen::Empty } else { BodyLen::Known(r.body.len() as u64) };
        let chunked = encode_request_head(&parts, len, b"", &mut out);
        assert!(!chunked);
        out.extend_from_slice(&r.body);
        let target = holdfast_http1::encode::origin_form(&parts.uri).into_owned();
        expected.push(Seen { method: parts.method.to_string(), target, fields: Vec::new(), body: r.body.to_vec() });
    }
    (out, expected)
}

// --- Generators ------------------------------------------------------------------------

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => prop::sample::select(vec!["GET", "GET", "POST", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PROPFIND"]),
        1 => prop::sample::select(vec!["get", "CONNECT", "G ET", "GET\0", ""]),
    ]
}

fn target() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => prop::sample::select(vec!["/", "/p/1", "/a?b=c&d", "http://shop.test/x", "http://other.test:8080/y?z", "//x", "/%00"]),
        1 => prop::sample::select(vec!["*", "/a b", "/\x7f", "/\u{e9}", "/checkout#frag", ""]),
    ]
}

fn version() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => prop::sample::select(vec!["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]),
        1 => prop::sample::select(vec!["HTTP/1.2", "HTTP/2.0", "http/1.1", "HTTP/1.1 ", "HTTP/1"]),
    ]
}

/// Header lines besides framing: the ordinary, and now and then a trick.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => prop::sample::select(vec![
            "Host: shop.test", "Host: shop.test", "Host: other.test", "User-Agent: x", "Accept: */*", "X: \u{80}\u{ff}",
            "Connection: keep-alive", "Expect: 100-continue", "Cookie: a=b", "Content-Type: text/plain", "X:", "Host:",
        ]).prop_map(String::from),
        1 => prop::sample::select(vec![
            "Connection: close", "X-Folded: a\r\n b", "X: a\rb", "X: a\nb", "X\0: v", "X: v\0", "Bad Name: v", ":x: v",
            "Host: a\r\nHost: b",
        ]).prop_map(String::from),
    ]
}

/// Framing fields and a body: none; a Content-Length and (mostly) as many bytes; chunked;
/// or one of the framing tricks with some body.
fn framing_and_body() -> impl Strategy<Value = (Vec<String>, Vec<u8>)> {
    let letters = || prop::collection::vec(b'a'..=b'z', 0..14);
    prop_oneof![
        4 => Just((Vec::new(), Vec::new())),
        3 => (letters(), prop_oneof![8 => Just(0i8), 1 => Just(1i8), 1 => Just(-1i8)]).prop_map(|(body, off)| {
            let n = (body.len() as i64 + i64::from(off)).max(0);
            (vec![format!("Content-Length: {n}")], body)
        }),
        3 => (chunked_body(), prop::sample::select(vec!["Transfer-Encoding: chunked", "Transfer-Encoding: chunked", "Transfer-Encoding:  chunked ", "Transfer-Encoding: CHUNKED"]))
            .prop_map(|(body, te)| (vec![te.to_string()], body)),
        2 => (
            prop::collection::vec(prop::sample::select(vec![
                "Content-Length: 5", "Content-Length: +5", "Content-Length: 5, 5", "Content-Length: 5, 6", "Content-Length:  5 ",
                "Content-Length: -1", "Content-Length: 0x5", "Content-Length: 99999999999999999999", "Content-Length: 5\0",
                "Content-Length : 5", "Transfer-Encoding: chunked", "Transfer-Encoding: xchunked",
                "Transfer-Encoding: chunked, identity", "Transfer-Encoding: identity, chunked", "Transfer-Encoding:\x0bchunked",
                "Transfer-Encoding : chunked", "Transfer-Encoding:\tchunked", "Transfer-Encoding: chunked\r\n Transfer-Encoding: x",
            ]), 1..3),
            prop_oneof![letters(), chunked_body()],
        )
            .prop_map(|(f, body)| (f.into_iter().map(String::from).collect(), body)),
    ]
}

/// A chunked body, well formed or with one of the tricks.
fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    let sizes = prop::collection::vec(0usize..12, 0..4);
    let ext = prop::sample::select(vec!["", "", "", ";a=b", "; a=b", ";a=\"q\"", " ;x", ";\0"]);
    let last = prop_oneof![
        6 => Just("0\r\n\r\n"),
        1 => prop::sample::select(vec!["0\r\nX-T: v\r\n\r\n", "0\n\n", "0\r\n", "000\r\n\r\n", "0;e\r\n\r\n", "0\r\nGET / HTTP/1.1\r\n\r\n", "0\r\n x: v\r\n\r\n", "0\r\nX: a\rb\r\n\r\n"]),
    ];
    let bad = prop_oneof![
        6 => Just(""),
        1 => prop::sample::select(vec!["-1\r\n", "fffffffffffffffff\r\n", "1\r\nab\r\n", "2\rab\r\n", " 2\r\nab\r\n", "2 \r\nab\r\n", "0x2\r\nab\r\n"]),
    ];
    (sizes, ext, bad, last).prop_map(|(sizes, ext, bad, last)| {
        let mut out = Vec::new();
        for n in sizes.into_iter().filter(|n| *n > 0) {
            out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
            out.extend(std::iter::repeat_n(b'c', n));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(bad.as_bytes());
        out.extend_from_slice(last.as_bytes());
        out
    })
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    (method(), target(), version(), prop::collection::vec(field(), 0..4), framing_and_body(), prop::bool::weighted(0.9))
        .prop_map(|(m, t, v, mut fields, (framing, body), crlf)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            fields.splice(0..0, framing);
            let mut head = format!("{m} {t} {v}{eol}");
            for f in fields {
                head.push_str(&f);
                head.push_str(eol);
            }
            head.push_str(eol);
            let mut out = head.into_bytes();
            out.extend_from_slice(&body);
            out
        })
}

/// A stream: one to three requests, sometimes with one byte changed, added or removed.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(request(), 1..4), any::<u16>(), any::<u8>(), 0u8..12).prop_map(|(reqs, at, byte, op)| {
        let mut s: Vec<u8> = reqs.concat();
        if !s.is_empty() {
            let i = usize::from(at) % s.len();
            match op {
                0 => s[i] = byte,
                1 => s.insert(i, byte),
                2 => {
                    s.remove(i);
                }
                _ => {}
            }
        }
        s
    })
}

// --- The checks ------------------------------------------------------------------------

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), failure_persistence: None, ..ProptestConfig::default() })]

    /// holdfast refuses, or reads what hyper reads; never a request hyper would not read.
    #[test]
    fn requests_are_split_as_hyper_splits_them(s in stream(), cut in 1usize..40) {
        let (mine, end) = split(&[&s], 16 * 1024, 100);
        // The same stream cut anywhere: the same requests.
        let pieces: Vec<&[u8]> = s.chunks(cut).collect();
        let (again, end_again) = split(&pieces, 16 * 1024, 100);
        prop_assert_eq!(end, end_again);
        prop_assert_eq!(mine.iter().map(seen_of).collect::<Vec<_>>(), again.iter().map(seen_of).collect::<Vec<_>>());
        let theirs = runtime().block_on(hyper_reads(&s));
        let mine: Vec<Seen> = mine.iter().map(seen_of).collect();
        prop_assert!(mine.len() <= theirs.len(), "holdfast read {} requests, hyper {}: {:?}\n{:?}", mine.len(), theirs.len(), String::from_utf8_lossy(&s), theirs);
        for (a, b) in mine.iter().zip(&theirs) {
            prop_assert_eq!(a, b, "stream {:?}", String::from_utf8_lossy(&s));
        }
        if end == End::Clean || end == End::Closed {
            // Whole requests that holdfast read to the end: hyper reads no more of them.
            prop_assert_eq!(mine.len(), theirs.len(), "stream {:?}", String::from_utf8_lossy(&s));
        }
    }

    /// What holdfast sends on parses at the origin into exactly the requests it judged.
    #[test]
    fn the_origin_reads_exactly_what_holdfast_judged(s in stream()) {
        let (mine, _) = split(&[&s], 16 * 1024, 100);
        let (wire, expected) = to_origin(&mine);
        let at_origin = runtime().block_on(hyper_reads(&wire));
        prop_assert_eq!(at_origin.len(), expected.len(), "{:?}", String::from_utf8_lossy(&wire));
        for (a, e) in at_origin.iter().zip(&expected) {
            prop_assert_eq!(&a.method, &e.method);
            prop_assert_eq!(&a.target, &e.target);
            prop_assert_eq!(&a.body, &e.body);
        }
    }
}

// --- Responses -------------------------------------------------------------------------

/// A response as both sides see it.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// The responses holdfast's origin client reads when the origin sends `parts[i]` once it
/// has request i (holdfast sends the next request only after a whole response, and reuses a
/// connection only when nothing is left over: a response split in two goes no further).
fn my_responses(parts: &[Vec<u8>]) -> Vec<Answer> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if !buf.is_empty() {
            break; // bytes nobody asked for: the connection is not reused
        }
        buf.extend_from_slice(part);
        let last = i + 1 == parts.len();
        holdfast_http1::response::skip_interim(&mut buf);
        let Ok(Some(head)) = parse_response(&mut buf) else { break };
        let no_body = head.status.is_informational() || head.status == 204 || head.status == 304;
        let body = match head.framing {
            _ if no_body => Vec::new(),
            ResponseFraming::Length(n) if (buf.len() as u64) >= n => buf.split_to(n as usize).to_vec(),
            ResponseFraming::Length(_) => break,
            ResponseFraming::Chunked => {
                let mut c = holdfast_http1::Chunked::new();
                let mut body = Vec::new();
                loop {
                    match c.decode(&mut buf) {
                        Ok(Some(d)) => body.extend_from_slice(&d),
                        Ok(None) if c.is_done() => break,
                        _ => return out,
                    }
                }
                body
            }
            // Until the origin closes, which it does after the last part only.
            ResponseFraming::UntilClose if last => buf.split().to_vec(),
            ResponseFraming::UntilClose => break,
        };
        out.push(Answer { status: head.status.as_u16(), body });
        if !head.keep_alive {
            break;
        }
    }
    out
}

/// The responses hyper's client reads when the origin sends `parts[i]` once it has
/// request i, and closes after the last.
async fn hyper_responses(parts: &[Vec<u8>]) -> Vec<Answer> {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    let n = parts.len();
    let parts = parts.to_vec();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for part in parts {
            // Wait for a request head.
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::time::timeout(Duration::from_secs(1), server.read(&mut buf)).await {
                    Ok(Ok(k)) if k > 0 => seen.extend_from_slice(&buf[..k]),
                    _ => return,
                }
            }
            let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
            seen.drain(..end);
            if server.write_all(&part).await.is_err() {
                return;
            }
        }
        let _ = server.shutdown().await;
        let mut sink = [0u8; 4096];
        while let Ok(Ok(k)) = tokio::time::timeout(Duration::from_secs(1), server.read(&mut sink)).await {
            if k == 0 {
                break;
            }
        }
    });
    let Ok((mut tx, conn)) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(client)).await
    else {
        return Vec::new();
    };
    tokio::spawn(conn);
    let mut out = Vec::new();
    for _ in 0..n {
        let req = http::Request::get("/").header("host", "o").body(Full::new(Bytes::new())).unwrap();
        let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), tx.send_request(req)).await else { break };
        let status = resp.status().as_u16();
        let Ok(Ok(body)) = tokio::time::timeout(Duration::from_secs(2), resp.into_body().collect()).await else {
            break;
        };
        out.push(Answer { status, body: body.to_bytes().to_vec() });
    }
    out
}

fn response() -> impl Strategy<Value = Vec<u8>> {
    let status = prop::sample::select(vec![
        "200 OK",
        "200 OK",
        "404 Not Found",
        "503 Unavailable",
        "100 Continue",
        "204 No Content",
        "304 Not Modified",
        "999 X",
        "20 X",
        "200",
    ]);
    let fields = prop::collection::vec(
        prop::sample::select(vec![
            "Content-Length: 3",
            "Content-Length: 3",
            "Content-Length: 3, 3",
            "Content-Length: 3, 4",
            "Content-Length: +3",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: chunked, gzip",
            "Connection: close",
            "Connection: keep-alive",
            "X-Folded: a\r\n b",
            "X: a\rb",
            "Server: o",
            "Content-Type: text/html",
        ]),
        0..4,
    );
    let body = prop::sample::select(vec![
        "abc",
        "abc",
        "3\r\nabc\r\n0\r\n\r\n",
        "",
        "abcdef",
        "3\r\nabc\r\n",
        "1\r\na\r\n0\r\n\r\nGET",
    ]);
    (status, fields, body).prop_map(|(st, fields, body)| {
        let mut s = format!("HTTP/1.1 {st}\r\n");
        for f in fields {
            s.push_str(f);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.push_str(body);
        s.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), failure_persistence: None, ..ProptestConfig::default() })]

    /// holdfast never reads more responses than hyper's client from what an origin sends,
    /// and the ones it reads are the same: a response split in two cannot poison the pool.
    #[test]
    fn responses_are_split_as_hyper_splits_them(parts in prop::collection::vec(response(), 1..4)) {
        let mine = my_responses(&parts);
        let theirs = runtime().block_on(hyper_responses(&parts));
        let stream = parts.concat();
        prop_assert!(mine.len() <= theirs.len(), "holdfast {:?}, hyper {:?}: {:?}", mine, theirs, String::from_utf8_lossy(&stream));
        for (a, b) in mine.iter().zip(&theirs) {
            prop_assert_eq!(a, b, "stream {:?}", String::from_utf8_lossy(&stream));
        }
    }
}

/// The generated streams are worth checking: a good share is read by both sides (with
/// bodies, chunked and by length), and a good share is refused by holdfast, so neither
/// check above passes by having nothing to compare.
#[test]
fn the_streams_exercise_both_outcomes() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = stream();
    let rt = runtime();
    let (mut read, mut refused, mut chunked, mut with_body, mut hyper_more) = (0, 0, 0, 0, 0);
    let n = 2000;
    for _ in 0..n {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        let (mine, end) = split(&[&s], 16 * 1024, 100);
        let theirs = rt.block_on(hyper_reads(&s));
        read += usize::from(!mine.is_empty());
        refused += usize::from(end == End::Refused);
        chunked += mine.iter().filter(|r| r.head.headers.contains_key("transfer-encoding")).count().min(1);
        with_body += mine.iter().filter(|r| !r.body.is_empty()).count().min(1);
        hyper_more += usize::from(theirs.len() > mine.len());
    }
    println!(
        "{n} streams: {read} with requests read, {refused} refused, {chunked} with a chunked request, {with_body} with a body, {hyper_more} where hyper read more than holdfast"
    );
    assert!(read > n / 5 && refused > n / 10 && chunked > n / 50 && with_body > n / 20, "the generator is too narrow");
}
