//! Limits and timeouts: header size (431), body size (413), streaming with bounded memory,
//! origin response timeout (504), client header timeout, idle keep-alive.

use crate::common::*;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn oversized_headers_get_431() {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "[limits]\nmax_header_bytes = 8192\n")).await;
    let big = "a".repeat(10_000);
    let req = format!("GET / HTTP/1.1\r\nHost: shop.de\r\nX-Big: {big}\r\n\r\n");
    let (text, closed) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(closed);
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!("GET / HTTP/1.1\r\nHost: shop.de\r\n{many}\r\n");
    let (text, _) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "more than max_headers (100): {text}");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oversized_bodies_get_413_declared_or_streamed() {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "[limits]\nmax_body_bytes = 1000\n")).await;
    let req = "POST /up HTTP/1.1\r\nHost: shop.de\r\nContent-Length: 5000\r\n\r\n";
    let (text, _) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "declared too large: origin not called");

    let chunk = "x".repeat(600);
    let req = format!("POST /up HTTP/1.1\r\nHost: shop.de\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
    let (text, _) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    let req = format!("POST /up HTTP/1.1\r\nHost: shop.de\r\nContent-Length: 600\r\nConnection: close\r\n\r\n{chunk}");
    let (text, _) = raw(http_addr(&gw), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("body-bytes: 600"), "{text}");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

#[tokio::test]
async fn large_bodies_stream_both_ways_with_bounded_memory() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "[limits]\nmax_body_bytes = 0\n")).await;
    let before = rss_bytes();

    // Download: the origin streams 256 MiB.
    let tcp = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("/big/{SIZE}"))
        .header("host", "shop.de")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let mut body = tx.send_request(req).await.unwrap().into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(got, SIZE);

    // Upload: 256 MiB, chunked, to the echo origin which counts it.
    let mut s = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: shop.de\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'y'; 256 * 1024];
    let head = format!("{:x}\r\n", chunk.len());
    for _ in 0..(SIZE / chunk.len() as u64) {
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&chunk).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let (text, _) = read_all(&mut s, Duration::from_secs(30)).await;
    assert!(text.contains(&format!("body-bytes: {SIZE}")), "{text}");

    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 * 1024 * 1024, "512 MiB passed through; memory grew by {} MiB", grown >> 20);
}

#[tokio::test]
async fn hanging_origin_gets_the_maintenance_page_after_the_response_timeout() {
    // A black hole: accepts TCP, never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let gw = gateway(&config(&[("s", &["shop.de"], addr)], "[timeouts]\norigin_response = \"300ms\"\n")).await;
    let (status, _, body) = get(http_addr(&gw), "shop.de", "/").await;
    assert_eq!(status, 503);
    assert!(body.contains("lang=\"de\""));
}

#[tokio::test]
async fn slow_client_header_is_cut_off() {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "[timeouts]\nclient_header = \"300ms\"\n")).await;
    let mut s = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: sh").await.unwrap();
    let (_, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "a request head that never completes must not hold the connection");
    // A connection that never sends anything is closed too.
    let mut s = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    let (_, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(closed);
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed() {
    let origin = echo_origin("o").await;
    let extra = "[timeouts]\nclient_header = \"10s\"\nidle_keepalive = \"300ms\"\n";
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], extra)).await;
    let mut s = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: shop.de\r\n\r\n").await.unwrap();
    let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "idle connection closed after idle_keepalive");
}

#[tokio::test]
async fn slow_response_in_flight_is_not_cut_by_idle_timeout() {
    let origin = echo_origin("o").await;
    let extra = "[timeouts]\nidle_keepalive = \"200ms\"\n";
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], extra)).await;
    let (status, _, _) = get(http_addr(&gw), "shop.de", "/slow/700").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_origin_answering_before_the_upload_ends_is_heard() {
    // The origin reads the head, answers 413 at once and never reads the body.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tokio::io::AsyncReadExt::read(&mut s, &mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                if head.starts_with(b"POST") {
                    let _ = s.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!").await;
                } else {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await; // holds the socket, reads nothing
            });
        }
    });
    let extra = "[limits]\nmax_body_bytes = 0\n[timeouts]\norigin_response = \"20s\"\n";
    let gw = gateway(&config(&[("s", &["shop.de"], origin)], extra)).await;
    let mut s = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    let size = 256 * 1024 * 1024; // more than the socket buffers between the three of us hold
    s.write_all(format!("POST /upload HTTP/1.1\r\nHost: shop.de\r\nContent-Length: {size}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let upload = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..size / chunk.len() {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut text = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&text).contains("big!") {
            match tokio::io::AsyncReadExt::read(&mut rd, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    upload.abort();
    let text = String::from_utf8_lossy(&text);
    assert!(read.is_ok(), "the origin's early answer must reach the client, not wait for the upload: {text}");
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}
