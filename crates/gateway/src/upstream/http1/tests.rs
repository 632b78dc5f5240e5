//! The HTTP/1.1 origin client against scripted origins.

use super::*;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw origin: for each canned answer, reads one request head (and `Content-Length`
/// bytes of body) from the same connection, sends the answer; returns what it read.
async fn origin(answers: Vec<&'static [u8]>) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut seen = Vec::new();
        for answer in answers {
            let start = seen.len();
            let mut byte = [0u8; 1];
            while !seen[start..].ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).await.unwrap_or(0) == 0 {
                    return seen;
                }
                seen.push(byte[0]);
            }
            s.write_all(answer).await.unwrap();
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), s.read_to_end(&mut rest)).await;
        seen.extend(rest);
        seen
    });
    (addr, task)
}

async fn conn(addr: std::net::SocketAddr) -> Conn {
    Conn::new(OriginStream::Plain(crate::codec::io::SendTcp(tokio::net::TcpStream::connect(addr).await.unwrap())))
}

impl Conn {
    async fn send_req(self, req: Request<ReqBody>, fwd: &Bytes) -> Result<Response<OriginBody>, SendError> {
        let (head, body) = req.into_parts();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let phase = crate::telemetry::RequestPhase::uncounted();
        self.send(Outgoing { head: &head, body, forwarding: fwd, idempotent: false }, deadline, &phase).await
    }
}

fn get(path: &str) -> Request<ReqBody> {
    Request::get(path).header("host", "shop.de").body(ReqBody::empty()).unwrap()
}

async fn body_of(resp: &mut Response<OriginBody>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(frame) = resp.body_mut().frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            out.extend_from_slice(&d);
        }
    }
    out
}

#[tokio::test]
async fn content_length_then_reuse() {
    let (addr, seen) = origin(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\nx-a: 1\r\n\r\nhello",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
    ])
    .await;
    let fwd = Bytes::from_static(b"x-forwarded-for: 10.0.0.1\r\n");
    let req = Request::get("/a?b=1").header("host", "shop.de").header("x-forwarded-for", "6.6.6.6");
    let mut resp = conn(addr).await.send_req(req.body(ReqBody::empty()).unwrap(), &fwd).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("connection").is_none() && resp.headers().get("keep-alive").is_none());
    assert_eq!(resp.headers()["x-a"], "1");
    assert_eq!(body_of(&mut resp).await, b"hello");
    let mut again = resp.body_mut().take_reusable().expect("reusable after a complete body");
    assert!(again.is_reusable_idle());
    let resp = again.send_req(get("/second"), &Bytes::new()).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.body().is_end_stream());
    let seen = String::from_utf8(seen.await.unwrap()).unwrap();
    assert!(seen.starts_with("GET /a?b=1 HTTP/1.1\r\nhost: shop.de\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"), "{seen}");
    assert!(!seen.contains("6.6.6.6"), "the client's claim is replaced: {seen}");
    assert!(seen.contains("GET /second HTTP/1.1\r\n"));
}

#[tokio::test]
async fn chunked_with_extensions_and_trailers() {
    let (addr, _seen) = origin(vec![
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\ntrailer: x\r\n\r\n",
    ])
    .await;
    let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
    assert!(resp.headers().get("content-length").is_none(), "Transfer-Encoding wins");
    assert!(resp.headers().get("transfer-encoding").is_none(), "framing is redone downstream");
    assert_eq!(body_of(&mut resp).await, b"hello world");
    assert!(resp.body_mut().take_reusable().is_none(), "Content-Length with chunked: not reused");
}

#[tokio::test]
async fn until_close_and_http10() {
    let (addr, _seen) = origin(vec![b"HTTP/1.0 200 OK\r\nx: y\r\n\r\nall of it"]).await;
    let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
    assert_eq!(body_of(&mut resp).await, b"all of it");
    assert!(resp.body_mut().take_reusable().is_none());
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let (addr, _seen) =
        origin(vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"])
            .await;
    let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(body_of(&mut resp).await, b"ok");
}

#[tokio::test]
async fn bad_responses_are_protocol_errors() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ] {
        let (addr, _seen) = origin(vec![answer]).await;
        match conn(addr).await.send_req(get("/"), &Bytes::new()).await {
            Err(SendError::Failed(ErrorKind::Protocol)) => {}
            other => panic!("{:?}: {:?}", String::from_utf8_lossy(answer), other.map(|r| r.status())),
        }
    }
}

#[tokio::test]
async fn truncated_bodies_fail_and_are_not_reused() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"[..],
        // Chunked framing broken: no CRLF after the data.
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabXY",
    ] {
        let (addr, _seen) = origin(vec![answer]).await;
        let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
        let mut failed = false;
        while let Some(frame) = resp.body_mut().frame().await {
            failed |= frame.is_err();
        }
        assert!(failed, "{:?}", String::from_utf8_lossy(answer));
        assert!(resp.body_mut().take_reusable().is_none());
    }
}

#[tokio::test]
async fn head_and_no_content_have_no_body() {
    let (addr, _seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"]).await;
    let req = Request::head("/").header("host", "shop.de").body(ReqBody::empty()).unwrap();
    let mut resp = conn(addr).await.send_req(req, &Bytes::new()).await.unwrap();
    assert!(resp.body().is_end_stream());
    assert_eq!(resp.headers()["content-length"], "1000");
    assert!(resp.body_mut().take_reusable().is_some());
}

#[tokio::test]
async fn buffered_body_goes_with_its_length() {
    let (addr, seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let req = Request::post("/checkout").header("host", "shop.de");
    let req = req.body(ReqBody::buffered(Bytes::from_static(b"a=1"))).unwrap();
    assert_eq!(conn(addr).await.send_req(req, &Bytes::new()).await.unwrap().status(), 200);
    let seen = String::from_utf8(seen.await.unwrap()).unwrap();
    assert!(seen.contains("content-length: 3\r\n\r\na=1"), "{seen}");
    // An empty POST says so.
    let (addr, seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let req = Request::post("/x").header("host", "shop.de").body(ReqBody::empty()).unwrap();
    conn(addr).await.send_req(req, &Bytes::new()).await.unwrap();
    assert!(String::from_utf8(seen.await.unwrap()).unwrap().contains("content-length: 0\r\n"));
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_origin_is_not_reused() {
    let (addr, seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
    let mut idle = resp.body_mut().take_reusable().unwrap();
    seen.await.unwrap(); // the origin closes its end
                         // Seen once its FIN has arrived and the event loop has noticed.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while idle.is_reusable_idle() && tokio::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert!(!idle.is_reusable_idle());
}

#[tokio::test]
async fn nothing_written_gives_the_body_back() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = conn(l.local_addr().unwrap()).await;
    let _origin = l.accept().await.unwrap();
    c.io.shutdown().await.unwrap(); // this end can no longer write: the first write fails
    let req = Request::post("/again").header("host", "shop.de");
    let req = req.body(ReqBody::buffered(Bytes::from_static(b"a=1"))).unwrap();
    match c.send_req(req, &Bytes::new()).await {
        Err(SendError::NotSent { body, .. }) => {
            assert_eq!(body.buffered_bytes().map(|b| &b[..]), Some(&b"a=1"[..]), "the body comes back whole")
        }
        other => panic!("{:?}", other.map(|r| r.status())),
    }
}

/// An origin that reads one request head and then closes (`reset`: with an RST), unanswered.
async fn closes_unanswered(reset: bool) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") && s.read(&mut byte).await.unwrap_or(0) == 1 {
            seen.push(byte[0]);
        }
        if reset {
            // SO_LINGER 0: the close is a reset (RST), not a FIN.
            #[allow(deprecated)]
            s.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn an_origin_that_closes_unanswered_is_told_apart() {
    // Its end of stream, and a reset: either way not a byte of answer (the keep-alive race
    // on a reused connection, which the pool may send again).
    for reset in [false, true] {
        match conn(closes_unanswered(reset).await).await.send_req(get("/"), &Bytes::new()).await {
            Err(SendError::Unanswered) => {}
            other => panic!("reset {reset}: {:?}", other.map(|r| r.status())),
        }
    }
    // Half an answer, then the end: a protocol error, never "unanswered".
    let (addr, _seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-len"]).await;
    match conn(addr).await.send_req(get("/"), &Bytes::new()).await {
        Err(SendError::Failed(ErrorKind::Protocol)) => {}
        other => panic!("{:?}", other.map(|r| r.status())),
    }
}

#[tokio::test]
async fn an_announced_keep_alive_timeout_bounds_the_idle_reuse() {
    let (addr, _seen) =
        origin(vec![b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=5, max=100\r\ncontent-length: 0\r\n\r\n"]).await;
    let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
    let idle = resp.body_mut().take_reusable().unwrap();
    let secs = std::time::Duration::from_secs;
    assert_eq!(idle.idle_limit(secs(60)), secs(4), "a second short of the origin's word");
    assert_eq!(idle.idle_limit(secs(2)), secs(2), "never past origin_idle");
    let (addr, _seen) = origin(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let mut resp = conn(addr).await.send_req(get("/"), &Bytes::new()).await.unwrap();
    assert_eq!(resp.body_mut().take_reusable().unwrap().idle_limit(secs(60)), secs(60), "unsaid: origin_idle");
}
