//! Origin keep-alive: a request that races the origin's close of an idle connection, and
//! the idle time an origin announces (`Keep-Alive: timeout=N`).

use crate::common::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted origin saw: (connection number, request number on it, method and path).
type Seen = Arc<Mutex<Vec<(usize, usize, String)>>>;

/// An origin that answers `200 ok` (with `extra` header lines), except once: the first
/// request for a path starting `/race` that comes as the second or later on its connection
/// gets no answer, and its connection is closed, as an origin closing an idle connection
/// just as the request arrives would.
async fn racing_origin(extra: &'static str) -> (SocketAddr, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let trap = Arc::new(std::sync::atomic::AtomicBool::new(true));
        for n in 1.. {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(serve(s, n, log.clone(), trap.clone(), extra));
        }
    });
    (addr, seen)
}

async fn serve(mut s: TcpStream, conn: usize, log: Seen, trap: Arc<std::sync::atomic::AtomicBool>, extra: &str) {
    let mut buf = Vec::new();
    for nth in 1.. {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !read_more(&mut s, &mut buf).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let line = head.lines().next().unwrap_or("").rsplit_once(' ').map(|(l, _)| l.to_string()).unwrap_or_default();
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        while buf.len() < head_end + len {
            if !read_more(&mut s, &mut buf).await {
                return;
            }
        }
        buf.drain(..head_end + len);
        log.lock().unwrap().push((conn, nth, line.clone()));
        let path = line.split(' ').nth(1).unwrap_or("");
        if nth >= 2 && path.starts_with("/race") && trap.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return; // closed, unanswered
        }
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{extra}\r\nok");
        if s.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads what the socket has into `buf`; false once it is closed.
async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn seen_of(seen: &Seen, what: &str) -> Vec<(usize, usize)> {
    seen.lock().unwrap().iter().filter(|(_, _, l)| l == what).map(|&(c, n, _)| (c, n)).collect()
}

#[tokio::test]
async fn a_get_the_origin_closes_unanswered_on_a_reused_connection_is_sent_again_on_a_new_one() {
    let (origin, seen) = racing_origin("").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], origin)], "")).await;
    let (status, _, body) = get(http_addr(&gw), "shop.de", "/first").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // The second request goes on the first's connection, which the origin closes under it.
    let (status, _, body) = get(http_addr(&gw), "shop.de", "/race").await;
    assert_eq!((status, body.as_str()), (200, "ok"), "the shopper sees the answer, not an error page");
    assert_eq!(seen_of(&seen, "GET /race"), [(1, 2), (2, 1)], "on the reused connection, then a new one");
    let v = status_json(&gw).await;
    let o = &v["sites"][0]["pools"][0]["origins"][0];
    assert_eq!(o["resent_after_close"], 1, "{o}");
    assert_eq!(o["errors"], 0, "the race is no fault of the origin's: {o}");
}

#[tokio::test]
async fn a_post_the_origin_closes_unanswered_is_never_sent_twice() {
    let (origin, seen) = racing_origin("").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], origin)], "")).await;
    assert_eq!(get(http_addr(&gw), "shop.de", "/first").await.0, 200);
    let order = Request::post("/race-checkout")
        .header("host", "shop.de")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"basket=1")))
        .unwrap();
    let (status, _, _) = send(http_addr(&gw), order).await;
    assert!(status >= 500, "no answer came: an error page, {status}");
    assert_eq!(seen_of(&seen, "POST /race-checkout"), [(1, 2)], "the order reached the origin once, and only once");
    let v = status_json(&gw).await;
    assert_eq!(v["sites"][0]["pools"][0]["origins"][0]["resent_after_close"], 0);
}

#[tokio::test]
async fn an_origin_announced_keep_alive_timeout_is_kept_to() {
    // Node.js and Apache say `Keep-Alive: timeout=5`: a connection that has been idle that
    // long (less a second) is not used again. timeout=1 leaves no time at all.
    let (origin, seen) = racing_origin("keep-alive: timeout=1\r\n").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], origin)], "")).await;
    for _ in 0..3 {
        assert_eq!(get(http_addr(&gw), "shop.de", "/a").await.0, 200);
    }
    assert_eq!(seen_of(&seen, "GET /a"), [(1, 1), (2, 1), (3, 1)], "a new connection each time");

    // A longer one leaves the connection in use.
    let (origin, seen) = racing_origin("Keep-Alive: timeout=30, max=100\r\n").await;
    let gw = gateway(&config(&[("shop-de", &["shop.de"], origin)], "")).await;
    for _ in 0..3 {
        assert_eq!(get(http_addr(&gw), "shop.de", "/a").await.0, 200);
    }
    assert_eq!(seen_of(&seen, "GET /a"), [(1, 1), (1, 2), (1, 3)], "one connection, reused");
}
