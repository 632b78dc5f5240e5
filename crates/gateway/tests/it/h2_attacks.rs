//! The HTTP/2 attacks, sent as raw frames (written here from RFC 9113 and RFC 7541, not by
//! an HTTP/2 library, so that nothing in the client smooths them over): rapid reset
//! (CVE-2023-44487), a CONTINUATION flood (CVE-2024-27316 and kin), an HPACK bomb, PING
//! and SETTINGS floods from a client that reads nothing, and a flood of streams with a
//! zero window. Each is held: bounded work and memory for the attacker's connection, and
//! other clients served meanwhile.

use crate::common::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `prefix`-bit prefix, its first byte or-ed with `high`.
fn hpack_int(mut v: usize, prefix: u8, high: u8) -> Vec<u8> {
    let max = (1usize << prefix) - 1;
    if v < max {
        return vec![high | v as u8];
    }
    let mut out = vec![high | max as u8];
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
    out
}

/// A string literal, not Huffman-coded.
fn hpack_str(s: &[u8]) -> Vec<u8> {
    let mut out = hpack_int(s.len(), 7, 0);
    out.extend_from_slice(s);
    out
}

/// GET `path` of shop.test: `:method GET`, `:scheme http` (static 2 and 6), `:path` and
/// `:authority` as literals without indexing of static names 4 and 1.
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    b.extend(hpack_int(4, 4, 0));
    b.extend(hpack_str(path.as_bytes()));
    b.extend(hpack_int(1, 4, 0));
    b.extend(hpack_str(b"shop.test"));
    b
}

/// A connection with prior knowledge: the preface and `settings` (pairs of id and value).
async fn open(addr: SocketAddr, settings: &[(u16, u32)]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut payload = Vec::new();
    for (id, v) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&v.to_be_bytes());
    }
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &payload));
    tcp.write_all(&hello).await.unwrap();
    tcp
}

/// What the server sent until it closed the connection (or `wait` passed): the frames
/// (type, flags, stream, payload).
async fn frames_until_closed(tcp: &mut TcpStream, wait: Duration) -> (Vec<(u8, u8, u32, Vec<u8>)>, bool) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (parse_frames(&buf), closed)
}

/// The whole frames in `buf` (type, flags, stream, payload).
fn parse_frames(buf: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while buf.len() >= at + 9 {
        let n = (usize::from(buf[at]) << 16) | (usize::from(buf[at + 1]) << 8) | usize::from(buf[at + 2]);
        if buf.len() < at + 9 + n {
            break;
        }
        let stream = u32::from_be_bytes([buf[at + 5], buf[at + 6], buf[at + 7], buf[at + 8]]) & 0x7fff_ffff;
        frames.push((buf[at + 3], buf[at + 4], stream, buf[at + 9..at + 9 + n].to_vec()));
        at += 9 + n;
    }
    frames
}

/// The error code of the server's GOAWAY, if it sent one.
fn goaway(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.0 == GOAWAY && f.3.len() >= 8)
        .map(|f| u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
}

async fn world(extra: &str) -> (Echo, holdfast_gateway::Gateway) {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("shop", &["shop.test"], origin.addr)], extra)).await;
    (origin, gw)
}

/// Another client is served, over HTTP/1.1.
async fn others_are_served(gw: &holdfast_gateway::Gateway) {
    assert_eq!(get(http_addr(gw), "shop.test", "/").await.0, 200);
}

#[tokio::test]
async fn the_raw_client_is_served_when_it_attacks_nothing() {
    // The frames and fields written here make a request the gateway serves: what the
    // attacks below are refused for is the attack, not the client.
    let (origin, gw) = world("").await;
    let mut tcp = open(http_addr(&gw), &[]).await;
    let mut hello = frame(SETTINGS, 0x1, 0, &[]);
    hello.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &get_block("/p/1")));
    hello.extend(frame(GOAWAY, 0, 0, &[0; 8]));
    tcp.write_all(&hello).await.unwrap();
    let (frames, _) = frames_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(frames.iter().any(|f| f.0 == HEADERS && f.2 == 1 && f.3.first() == Some(&0x88)), "a 200");
    assert!(frames.iter().any(|f| f.0 == DATA && f.2 == 1 && !f.3.is_empty()), "with its body");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1);
    gw.stop().await;
}

#[tokio::test]
async fn rapid_reset_is_cut_off_and_costs_the_origin_little() {
    let (origin, gw) = world("").await;
    let mut tcp = open(http_addr(&gw), &[]).await;
    // 10,000 streams, each opened and at once reset (CANCEL), as fast as they go.
    let mut sent = 0;
    let mut burst = Vec::new();
    for i in 0..10_000u32 {
        let id = 2 * i + 1;
        burst.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &get_block("/slow/50")));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        if burst.len() > 32 * 1024 {
            if tcp.write_all(&burst).await.is_err() {
                break;
            }
            sent += 1;
            burst.clear();
        }
    }
    let (frames, closed) = frames_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "the connection is closed");
    assert_eq!(goaway(&frames), Some(0xb), "GOAWAY ENHANCE_YOUR_CALM ({sent} bursts sent)");
    let hits = origin.hits.load(Ordering::SeqCst);
    assert!(hits < 500, "{hits} of 10,000 reset requests reached the origin");
    others_are_served(&gw).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_continuation_flood_is_refused_within_the_header_limit() {
    let (origin, gw) = world("[limits]\nmax_header_bytes = \"16KiB\"\n").await;
    let mut tcp = open(http_addr(&gw), &[]).await;
    // A HEADERS that never ends: CONTINUATION after CONTINUATION of fields, 64 MiB in all
    // if the server kept reading.
    let mut block = get_block("/");
    block.extend(hpack_int(0, 4, 0));
    block.extend(hpack_str(b"x-pad"));
    block.extend(hpack_str(&[b'a'; 100]));
    let mut written = 0usize;
    let mut failed = tcp.write_all(&frame(HEADERS, 0, 1, &block)).await.is_err();
    let mut piece = Vec::new();
    for _ in 0..150 {
        piece.extend(hpack_int(0, 4, 0));
        piece.extend(hpack_str(b"x-pad"));
        piece.extend(hpack_str(&[b'b'; 100]));
    }
    let cont = frame(CONTINUATION, 0, 1, &piece);
    while !failed && written < 64 << 20 {
        match tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&cont)).await {
            Ok(Ok(())) => written += cont.len(),
            _ => failed = true,
        }
    }
    assert!(written < 16 << 20, "the server stopped taking the flood: {written} bytes written");
    let (frames, closed) = frames_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed || goaway(&frames).is_some(), "the connection is refused");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "nothing reached the origin");
    others_are_served(&gw).await;
    gw.stop().await;
}

#[tokio::test]
async fn an_hpack_bomb_is_refused_before_it_is_decoded_whole() {
    let (origin, gw) = world("[limits]\nmax_header_bytes = \"16KiB\"\n").await;
    let mut tcp = open(http_addr(&gw), &[]).await;
    // One 4,000-byte field put into the dynamic table (a literal with incremental indexing),
    // then named by index (one byte: dynamic index 62) 4,000 times: 16 MB once decoded,
    // from a header block of about 8 KB.
    let mut block = get_block("/");
    block.extend(hpack_int(0, 6, 0x40));
    block.extend(hpack_str(b"x-bomb"));
    block.extend(hpack_str(&[b'z'; 4000]));
    block.extend(std::iter::repeat_n(0x80 | 62u8, 4000));
    tcp.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &block)).await.unwrap();
    let (frames, _) = frames_until_closed(&mut tcp, Duration::from_secs(3)).await;
    let answered_ok = frames.iter().any(|f| f.0 == HEADERS && f.2 == 1 && f.3.first() == Some(&0x88));
    assert!(!answered_ok, "never served as a request");
    let refused = frames.iter().any(|f| (f.0 == RST_STREAM && f.2 == 1) || f.0 == GOAWAY || f.0 == HEADERS);
    assert!(refused, "refused (431, RST_STREAM or GOAWAY): {:?}", frames.iter().map(|f| f.0).collect::<Vec<_>>());
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "nothing reached the origin");
    others_are_served(&gw).await;
    gw.stop().await;
}

/// Floods `unit` frames on a connection that reads nothing back, up to 256 MiB: true when
/// the server stopped taking them (a write waited a second), as it must once its answers
/// fill the socket.
async fn flood_is_held(addr: SocketAddr, unit: Vec<u8>) -> bool {
    let mut tcp = open(addr, &[]).await;
    let batch: Vec<u8> = unit.iter().copied().cycle().take(unit.len() * 4096).collect();
    let mut written = 0usize;
    while written < 256 << 20 {
        match tokio::time::timeout(Duration::from_secs(1), tcp.write_all(&batch)).await {
            Ok(Ok(())) => written += batch.len(),
            Ok(Err(_)) => return true, // closed by the server
            Err(_) => return true,     // held: the server reads no more than it can answer
        }
    }
    false
}

#[tokio::test]
async fn ping_and_settings_floods_from_a_client_that_reads_nothing_are_held() {
    let (_origin, gw) = world("").await;
    let addr = http_addr(&gw);
    assert!(flood_is_held(addr, frame(PING, 0, 0, &[7; 8])).await, "PING flood");
    others_are_served(&gw).await;
    // SETTINGS, each to be acknowledged: SETTINGS_ENABLE_PUSH = 0.
    assert!(flood_is_held(addr, frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0])).await, "SETTINGS flood");
    others_are_served(&gw).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_flood_with_a_zero_window_is_held_to_the_stream_cap() {
    let (origin, gw) = world("[limits]\nmax_h2_streams = 16\n").await;
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may send no byte of any body.
    let mut tcp = open(http_addr(&gw), &[(4, 0)]).await;
    // The server's SETTINGS (sent first thing) acknowledged, so its cap is in force.
    let mut burst = frame(SETTINGS, 0x1, 0, &[]);
    for i in 0..200u32 {
        burst.extend(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, &get_block("/big/10485760")));
    }
    tcp.write_all(&burst).await.unwrap();
    let (frames, _) = frames_until_closed(&mut tcp, Duration::from_secs(3)).await;
    let refused = frames.iter().filter(|f| f.0 == RST_STREAM).count();
    let data = frames.iter().filter(|f| f.0 == DATA && !f.3.is_empty()).count();
    assert_eq!(data, 0, "no body byte past a zero window");
    assert!(refused >= 200 - 16, "streams above the cap are refused: {refused} RST_STREAM");
    let reached = origin.hits.load(Ordering::SeqCst);
    assert!(reached <= 16, "at most the cap reached the origin: {reached}");
    others_are_served(&gw).await;
    drop(tcp);
    gw.stop().await;
}

/// A POST of shop.test with this Content-Length (`:method POST`, static 3; `content-length`
/// a literal of static name 28).
fn post_block(path: &str, content_length: usize) -> Vec<u8> {
    let mut b = get_block(path);
    b[0] = 0x83;
    b.extend(hpack_int(28, 4, 0));
    b.extend(hpack_str(content_length.to_string().as_bytes()));
    b
}

/// Reads frames until one on `stream` that ends it for the client (RST_STREAM, or HEADERS:
/// an answer); returns it.
async fn first_answer(tcp: &mut TcpStream, stream: u32) -> (u8, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let answer =
                parse_frames(&buf).into_iter().find(|f| f.2 == stream && (f.0 == RST_STREAM || f.0 == HEADERS));
            if let Some((kind, _, _, payload)) = answer {
                return (kind, payload);
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return (0, Vec::new()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    found.expect("an answer to the stream within 10 s")
}

/// A body longer or shorter than its Content-Length makes the request malformed (RFC 9113
/// §8.1.1): an intermediary must not forward it, and resets the stream with PROTOCOL_ERROR.
/// The DATA comes in a write of its own, once the gateway has the head and is taking the
/// body, so an origin that answered heads at once would have answered before it (h2spec's
/// 8.1.2.6 failed that way while a POST's small body streamed to its origin).
#[tokio::test]
async fn a_body_that_does_not_match_its_content_length_is_never_forwarded() {
    let (origin, gw) = world("").await;
    for (declared, body) in [(1, &b"test"[..]), (10, &b"test"[..])] {
        let mut tcp = open(http_addr(&gw), &[]).await;
        let mut hello = frame(SETTINGS, 0x1, 0, &[]);
        hello.extend(frame(HEADERS, END_HEADERS, 1, &post_block("/order", declared)));
        tcp.write_all(&hello).await.unwrap();
        let uploading = eventually(Duration::from_secs(10), || async {
            status_json(&gw).await["requests"]["by_phase"]["upload"].as_i64() == Some(1)
        })
        .await;
        assert!(uploading, "the gateway is taking the body");
        tcp.write_all(&frame(DATA, END_STREAM, 1, body)).await.unwrap();
        let (kind, payload) = first_answer(&mut tcp, 1).await;
        assert_eq!(kind, RST_STREAM, "Content-Length {declared}, {} bytes sent: the stream is reset", body.len());
        assert_eq!(payload, 1u32.to_be_bytes(), "with PROTOCOL_ERROR");
        assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "nothing of it reached the origin");
        let ended = eventually(Duration::from_secs(10), || async {
            status_json(&gw).await["requests"]["by_phase"]["upload"].as_i64() == Some(0)
        })
        .await;
        assert!(ended, "the request has ended");
    }
    // The same request with its body as declared is served.
    let mut tcp = open(http_addr(&gw), &[]).await;
    let mut hello = frame(SETTINGS, 0x1, 0, &[]);
    hello.extend(frame(HEADERS, END_HEADERS, 1, &post_block("/order", 4)));
    hello.extend(frame(DATA, END_STREAM, 1, b"test"));
    tcp.write_all(&hello).await.unwrap();
    let (kind, payload) = first_answer(&mut tcp, 1).await;
    assert_eq!((kind, payload.first()), (HEADERS, Some(&0x88)), "a 200");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1);
    drop(tcp); // (an open connection would hold the gateway's drain)
    gw.stop().await;
}

/// A request whose HEADERS leave the stream open is answered once its body has come (up to
/// `retry.buffer_body_bytes`), not before: a client that resets the stream instead gets no
/// answer, the origin never sees it, and a frame after the reset is the stream error
/// STREAM_CLOSED (RFC 9113 §5.1; h2spec's 5.1 "closed" cases raced on it over TLS).
#[tokio::test]
async fn a_request_reset_before_its_body_came_reaches_no_origin() {
    let (origin, gw) = world("").await;
    let mut tcp = open(http_addr(&gw), &[]).await;
    let mut hello = frame(SETTINGS, 0x1, 0, &[]);
    hello.extend(frame(HEADERS, END_HEADERS, 1, &get_block("/p/1")));
    tcp.write_all(&hello).await.unwrap();
    let waiting = eventually(Duration::from_secs(10), || async {
        status_json(&gw).await["requests"]["by_phase"]["upload"].as_i64() == Some(1)
    })
    .await;
    assert!(waiting, "the gateway waits for the body");
    let mut then = frame(RST_STREAM, 0, 1, &8u32.to_be_bytes());
    then.extend(frame(DATA, END_STREAM, 1, b"test"));
    tcp.write_all(&then).await.unwrap();
    let (kind, payload) = first_answer(&mut tcp, 1).await;
    assert_eq!((kind, payload), (RST_STREAM, 5u32.to_be_bytes().to_vec()), "STREAM_CLOSED, and no answer");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0);
    drop(tcp);
    gw.stop().await;
}
