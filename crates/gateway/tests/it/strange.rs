//! Slow and strange peers: a client that reads its response a byte at a time while others
//! are served; an origin that sends its head a byte at a time, or never finishes its body;
//! a `100-continue` that the origin never answers; request heads at exactly the limits and
//! one byte over.

use crate::common::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that answers every connection with `answer`, written `step` bytes at a time
/// with a pause between (or whole), then holds the connection open if `hold`.
async fn scripted_origin(answer: &'static [u8], step: usize, hold: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await; // the request head
                for piece in answer.chunks(step.max(1)) {
                    if s.write_all(piece).await.is_err() {
                        return;
                    }
                    if step < answer.len() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                if hold {
                    // Keep it open, say nothing more (bounded: the test ends first).
                    let _ = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await;
                }
            });
        }
    });
    addr
}

fn shop(origin: SocketAddr, extra: &str) -> String {
    config(&[("s", &["shop.test"], origin)], &format!("[log]\naccess = false\n{extra}"))
}

async fn in_flight_is_zero(gw: &holdfast_gateway::Gateway) -> bool {
    eventually(Duration::from_secs(10), || async { status_json(gw).await["requests"]["in_flight"].as_i64() == Some(0) })
        .await
}

#[tokio::test]
async fn a_client_reading_a_byte_at_a_time_does_not_hold_up_the_others() {
    let origin = echo_origin("o").await;
    let gw = gateway(&shop(origin.addr, "")).await;
    let addr = http_addr(&gw);
    // The slow reader: a small receive buffer, a large response, one byte read at a time.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut slow = sock.connect(addr).await.unwrap();
    slow.write_all(b"GET /big/4000000 HTTP/1.1\r\nHost: shop.test\r\n\r\n").await.unwrap();
    let mut one = [0u8; 1];
    slow.read_exact(&mut one).await.unwrap();
    // Meanwhile, others are served, each whole.
    for i in 0..20 {
        let (status, _, body) = get(addr, "shop.test", &format!("/p/{i}")).await;
        assert_eq!(status, 200);
        assert!(body.contains(&format!("/p/{i}")));
        let _ = slow.read(&mut one).await; // the slow one reads a byte now and then
    }
    drop(slow);
    assert!(in_flight_is_zero(&gw).await, "the slow reader's request ended when it left");
    gw.stop().await;
}

#[tokio::test]
async fn an_origin_sending_its_head_a_byte_at_a_time_is_read_whole() {
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: yes\r\nContent-Length: 5\r\n\r\nhello";
    let origin = scripted_origin(answer, 1, false).await;
    let gw = gateway(&shop(origin, "")).await;
    let (status, headers, body) = get(http_addr(&gw), "shop.test", "/").await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    assert_eq!(headers["x-slow"], "yes");
    gw.stop().await;
}

#[tokio::test]
async fn an_origin_that_never_finishes_its_body_is_cut_off_and_nothing_leaks() {
    // Content-Length 100, 5 bytes sent, then silence.
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello";
    let origin = scripted_origin(answer, answer.len(), true).await;
    let gw = gateway(&shop(origin, "[timeouts]\norigin_response = \"1s\"\n")).await;
    let mut s = TcpStream::connect(http_addr(&gw)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n").await.unwrap();
    let (text, closed) = read_all(&mut s, Duration::from_secs(20)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "the client's connection is closed: the body can never be complete");
    assert!(!text.ends_with("\r\n0\r\n\r\n"), "never a clean end for a body cut short");
    assert!(in_flight_is_zero(&gw).await);
    gw.stop().await;
}

#[tokio::test]
async fn a_100_continue_the_origin_never_answers_ends_in_504() {
    // The origin reads the head and answers nothing.
    let origin = scripted_origin(b"", 1, true).await;
    let gw = gateway(&shop(origin, "[timeouts]\norigin_response = \"1s\"\n")).await;
    let mut s = TcpStream::connect(http_addr(&gw)).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: shop.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    if first.starts_with("HTTP/1.1 100") {
        // holdfast asked for the body: send it.
        s.write_all(b"hello").await.unwrap();
    }
    let (rest, _) = read_all(&mut s, Duration::from_secs(10)).await;
    let text = format!("{first}{rest}");
    let last = text.rsplit("HTTP/1.1 ").next().unwrap_or_default();
    assert!(last.starts_with("504") || last.starts_with("503"), "a gateway timeout page: {text}");
    assert!(in_flight_is_zero(&gw).await);
    gw.stop().await;
}

/// A GET whose head is exactly `size` bytes with `fields` header fields (Host included).
fn head_of(size: usize, fields: usize) -> String {
    let mut head = String::from("GET / HTTP/1.1\r\nHost: shop.test\r\n");
    for i in 1..fields.saturating_sub(1) {
        head.push_str(&format!("X-F{i}: v\r\n"));
    }
    let fixed = head.len() + "X-Pad: \r\n\r\n".len();
    assert!(size >= fixed, "{size} < {fixed}");
    head.push_str(&format!("X-Pad: {}\r\n\r\n", "p".repeat(size - fixed)));
    assert_eq!(head.len(), size);
    head
}

#[tokio::test]
async fn heads_at_exactly_the_limits_pass_and_one_byte_or_field_over_gets_431() {
    let origin = echo_origin("o").await;
    let gw = gateway(&shop(origin.addr, "[limits]\nmax_header_bytes = 8192\nmax_headers = 20\n")).await;
    let addr = http_addr(&gw);
    let ask = |head: String| async move {
        let (text, _) = raw(addr, head.as_bytes(), Duration::from_secs(2)).await;
        text.split(' ').nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(ask(head_of(8192, 20)).await, "200", "exactly 8192 bytes and 20 fields");
    let forwarded = origin.hits.load(Ordering::SeqCst);
    assert!(forwarded >= 1);
    assert_eq!(ask(head_of(8193, 20)).await, "431", "one byte over");
    assert_eq!(ask(head_of(8192, 21)).await, "431", "one field over");
    assert_eq!(origin.hits.load(Ordering::SeqCst), forwarded, "a refused head never reaches the origin");
    gw.stop().await;
}
