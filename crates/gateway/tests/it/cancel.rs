//! Cancellation in every phase of a request, both ways a client abandons one: an HTTP/2
//! client that resets the stream (hyper's client sends RST_STREAM when the response future
//! or body is dropped; the connection stays open) and an HTTP/1.1 client that closes its
//! connection. The phases: waiting for admission, waiting for a cache fill, connecting to
//! an origin, uploading the request body, waiting for the response head, streaming the
//! response body.
//!
//! Each test first sees its requests in the phase (the per-phase counts of /status.json),
//! cancels them, and then checks that the cancellation was counted in that phase and that
//! nothing is left behind: no request in flight in any phase, nobody waiting for
//! admission, no try at the origins, every origin available with nothing in flight; and
//! that the site serves requests of every priority again.

use crate::common::*;
use bytes::Bytes;
use holdfast_gateway::Gateway;
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How the client abandons its request.
#[derive(Debug, Clone, Copy)]
enum How {
    /// HTTP/2: the stream is reset, the connection stays.
    Reset,
    /// HTTP/1.1: the connection is closed.
    Hangup,
}

/// Long enough for any wait in these tests; a test that needs it has failed.
const PATIENCE: Duration = Duration::from_secs(20);

fn site(origin: SocketAddr, extra: &str) -> String {
    config(&[("shop", &["shop.test"], origin)], extra)
}

type UploadBody = StreamBody<tokio_stream::Receiver<Result<Frame<Bytes>, Infallible>>>;
type UploadSender = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// Requests in flight that the test abandons together.
struct Pending {
    /// HTTP/2: one connection, a task per stream (aborting it drops the response future,
    /// which resets the stream); the sender keeps the connection open meanwhile.
    h2: Option<(hyper::client::conn::http2::SendRequest<UploadBody>, Vec<JoinHandle<()>>)>,
    /// HTTP/1.1: a connection per request (dropping it closes it).
    h1: Vec<TcpStream>,
    /// Upload bodies still open (dropped only after the cancellation, so that they never
    /// end by themselves).
    uploads: Vec<UploadSender>,
}

impl Pending {
    async fn open(how: How, gw: &Gateway) -> Pending {
        let h2 = match how {
            How::Reset => {
                let tcp = TcpStream::connect(http_addr(gw)).await.unwrap();
                let (tx, conn) = hyper::client::conn::http2::handshake(executor(), TokioIo::new(tcp)).await.unwrap();
                tokio::spawn(conn);
                Some((tx, Vec::new()))
            }
            How::Hangup => None,
        };
        Pending { h2, h1: Vec::new(), uploads: Vec::new() }
    }

    /// Sends a request; `upload`: a POST whose body sends `upload` bytes of a larger
    /// declared length, then waits.
    async fn send(&mut self, gw: &Gateway, method: &str, path: &str, upload: Option<usize>) {
        match &mut self.h2 {
            Some((tx, tasks)) => {
                let (body_tx, body_rx) = tokio::sync::mpsc::channel(4);
                // An upload's body stays open; any other ends at once (END_STREAM).
                if let Some(n) = upload {
                    body_tx.send(Ok(Frame::data(Bytes::from(vec![b'u'; n])))).await.unwrap();
                    self.uploads.push(body_tx);
                }
                let req = Request::builder()
                    .method(method)
                    .uri(format!("http://shop.test{path}"))
                    .body(StreamBody::new(tokio_stream::Receiver(body_rx)))
                    .unwrap();
                tx.ready().await.unwrap();
                let resp = tx.send_request(req);
                tasks.push(tokio::spawn(async move {
                    // Held until aborted: a response that comes is read to its end.
                    if let Ok(r) = resp.await {
                        let _ = r.into_body().collect().await;
                    }
                }));
            }
            None => {
                let mut s = TcpStream::connect(http_addr(gw)).await.unwrap();
                let head = match upload {
                    Some(n) => format!(
                        "{method} {path} HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {}\r\n\r\n{}",
                        n * 100,
                        "u".repeat(n)
                    ),
                    None => format!("{method} {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n"),
                };
                s.write_all(head.as_bytes()).await.unwrap();
                self.h1.push(s);
            }
        }
    }

    /// Abandons every request: the streams are reset, the connections closed. What is
    /// returned (the HTTP/2 connection, the upload bodies) must be kept until the test
    /// ends: an upload body that ended would finish the upload instead of cancelling it.
    fn cancel(self) -> (Option<hyper::client::conn::http2::SendRequest<UploadBody>>, Vec<UploadSender>) {
        let mut keep = None;
        if let Some((tx, tasks)) = self.h2 {
            for t in tasks {
                t.abort();
            }
            keep = Some(tx);
        }
        drop(self.h1);
        (keep, self.uploads)
    }
}

/// A small stream over an mpsc receiver, for request bodies sent piece by piece.
mod tokio_stream {
    pub(crate) struct Receiver<T>(pub tokio::sync::mpsc::Receiver<T>);
    impl<T> futures_core::Stream for Receiver<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not a number: {v}"))
}

async fn in_phase(gw: &Gateway, phase: &str) -> i64 {
    num(&status_json(gw).await["requests"]["by_phase"][phase])
}

async fn cancelled_in(gw: &Gateway, phase: &str) -> i64 {
    num(&status_json(gw).await["requests"]["cancelled"][phase])
}

/// What is left behind, as (what, value) pairs that must all be zero or "available".
fn leftovers(st: &Value) -> Vec<String> {
    let mut left = Vec::new();
    if num(&st["requests"]["in_flight"]) != 0 {
        left.push(format!("requests in flight: {}", st["requests"]["by_phase"]));
    }
    for (name, load) in st["shield"]["sites"].as_object().unwrap() {
        for key in ["in_flight", "waiting"] {
            if num(&load[key]) != 0 {
                left.push(format!("site {name} {key}: {}", load[key]));
            }
        }
    }
    for site in st["sites"].as_array().unwrap() {
        for pool in site["pools"].as_array().unwrap() {
            for o in pool["origins"].as_array().unwrap() {
                if num(&o["in_flight"]) != 0 || o["state"] != "available" {
                    left.push(format!("origin {}: in flight {}, {}", o["address"], o["in_flight"], o["state"]));
                }
            }
        }
    }
    left
}

/// Waits until nothing is left behind; fails with what is.
async fn settles(gw: &Gateway) {
    let settled = eventually(PATIENCE, || async { leftovers(&status_json(gw).await).is_empty() }).await;
    assert!(settled, "left behind after the cancellation: {:?}", leftovers(&status_json(gw).await));
}

/// The site serves requests of every priority: a checkout (critical), a client of a prefix
/// it has seen (known), and one from a prefix it has never seen (new). While admission is
/// still calming down after an overload a new client may be shed (503 with Retry-After);
/// it must be served within the calm time.
async fn serves_every_priority(gw: &Gateway, path: &str) {
    let addr = http_addr(gw);
    let ok = |r: Option<(u16, http::HeaderMap, String)>| r.is_some_and(|r| r.0 == 200);
    assert!(ok(get_from(Ipv4Addr::new(127, 0, 0, 1), addr, "/checkout", &[]).await), "a checkout");
    assert!(ok(get_from(Ipv4Addr::new(127, 0, 0, 1), addr, path, &[]).await), "the gateway's own host");
    let mut n = 0u8;
    let served = eventually(PATIENCE, || {
        n = n.wrapping_add(1);
        let new = Ipv4Addr::new(127, 77, n, 1);
        async move {
            ok(get_from(new, addr, path, &[("user-agent", "Mozilla/5.0"), ("accept", "text/html")]).await)
                && ok(get_from(Ipv4Addr::new(127, 77, n, 2), addr, path, &[("user-agent", "Mozilla/5.0")]).await)
        }
    })
    .await;
    assert!(served, "new and returning clients are served again");
}

/// The common ending: the cancellations counted in `phase`, nothing left, the site serving.
async fn check_after(gw: &Gateway, phase: &str, cancelled: i64, path: &str) {
    let counted = eventually(PATIENCE, || async { cancelled_in(gw, phase).await >= cancelled }).await;
    assert!(counted, "{cancelled} cancelled in {phase}: {}", status_json(gw).await["requests"]);
    settles(gw).await;
    serves_every_priority(gw, path).await;
    settles(gw).await;
}

// ---- waiting for admission

async fn admission(how: How) {
    let origin = echo_origin("o").await;
    // At most two requests at the origins at once; more wait, checkouts up to a minute.
    let extra = "[shield.admission]\nmax_in_flight = 2\nqueue_timeout = \"60s\"\n";
    let gw = gateway(&site(origin.addr, extra)).await;
    // Two checkouts hold both slots for three seconds.
    let addr = http_addr(&gw);
    let holders: Vec<_> = (0..2)
        .map(|i| {
            let req = Request::post(format!("/checkout/slow/3000?hold={i}")).header("host", "shop.test");
            tokio::spawn(send(addr, req.body(Full::new(Bytes::new())).unwrap()))
        })
        .collect();
    assert!(eventually(PATIENCE, || async { in_phase(&gw, "response_headers").await == 2 }).await);
    let mut pending = Pending::open(how, &gw).await;
    for i in 0..4 {
        pending.send(&gw, "POST", &format!("/checkout/slow/600?cancel={i}"), None).await;
    }
    let queued = eventually(PATIENCE, || async {
        let st = status_json(&gw).await;
        num(&st["requests"]["by_phase"]["admission"]) == 4 && num(&st["shield"]["sites"]["shop"]["waiting"]) == 4
    })
    .await;
    assert!(queued, "the four wait for a slot: {}", status_json(&gw).await);
    let _kept = pending.cancel();
    let counted = eventually(PATIENCE, || async { cancelled_in(&gw, "admission").await == 4 }).await;
    assert!(counted, "the four were cancelled while queued: {}", status_json(&gw).await["requests"]);
    assert_eq!(num(&status_json(&gw).await["shield"]["sites"]["shop"]["waiting"]), 0, "and left the queue");
    for h in holders {
        assert_eq!(h.await.unwrap().0, 200, "the checkouts holding the slots are not disturbed");
    }
    assert_eq!(origin.hits.load(Ordering::SeqCst), 2, "no cancelled checkout reached the origin");
    check_after(&gw, "admission", 4, "/").await;
}

#[tokio::test]
async fn reset_while_waiting_for_admission() {
    admission(How::Reset).await;
}

#[tokio::test]
async fn hangup_while_waiting_for_admission() {
    admission(How::Hangup).await;
}

// ---- waiting for a cache fill

async fn cache_fill(how: How) {
    let origin = echo_origin("o").await;
    let gw = gateway(&site(origin.addr, "")).await;
    // The leader fetches a slow miss; followers of the same page wait for it.
    let leader = tokio::spawn(get(http_addr(&gw), "shop.test", "/slow/2500"));
    assert!(eventually(PATIENCE, || async { in_phase(&gw, "response_headers").await == 1 }).await);
    let mut pending = Pending::open(how, &gw).await;
    for _ in 0..3 {
        pending.send(&gw, "GET", "/slow/2500", None).await;
    }
    assert!(eventually(PATIENCE, || async { in_phase(&gw, "cache_fill").await == 3 }).await);
    let _kept = pending.cancel();
    let (status, _, _) = leader.await.unwrap();
    assert_eq!(status, 200, "the leader is not disturbed by its followers leaving");
    check_after(&gw, "cache_fill", 3, "/").await;
}

#[tokio::test]
async fn reset_while_waiting_for_a_cache_fill() {
    cache_fill(How::Reset).await;
}

#[tokio::test]
async fn hangup_while_waiting_for_a_cache_fill() {
    cache_fill(How::Hangup).await;
}

/// The leader of a collapsed miss goes away: its followers must not wait for a fetch that
/// no longer happens (they look again at once, and one of them fetches).
async fn cache_leader_gone(how: How) {
    let origin = echo_origin("o").await;
    let gw = gateway(&site(origin.addr, "")).await;
    let mut leader = Pending::open(how, &gw).await;
    leader.send(&gw, "GET", "/slow/2000", None).await;
    assert!(eventually(PATIENCE, || async { in_phase(&gw, "response_headers").await == 1 }).await);
    let addr = http_addr(&gw);
    let follower = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let (status, headers, _) = get(addr, "shop.test", "/slow/2000").await;
        (status, headers, started.elapsed())
    });
    assert!(eventually(PATIENCE, || async { in_phase(&gw, "cache_fill").await == 1 }).await);
    let _kept = leader.cancel();
    let (status, _, took) = follower.await.unwrap();
    assert_eq!(status, 200);
    // It fetched itself (2 s at the origin) right after the leader left, instead of
    // waiting out the origin_response timeout (30 s) for a fill that never comes.
    assert!(took < Duration::from_secs(15), "the follower waited {took:?}");
    check_after(&gw, "response_headers", 1, "/").await;
}

#[tokio::test]
async fn reset_of_a_cache_fill_leader_releases_its_followers() {
    cache_leader_gone(How::Reset).await;
}

#[tokio::test]
async fn hangup_of_a_cache_fill_leader_releases_its_followers() {
    cache_leader_gone(How::Hangup).await;
}

// ---- connecting to an origin

/// An origin whose connects hang: a listener that never accepts, its accept queue full
/// (the kernel then drops further SYNs, as a black-holed network does).
async fn hanging_origin() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    // Fill the accept queue: the connects that complete are kept; one that hangs shows it
    // is full.
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    (addr, listener, held)
}

async fn connecting(how: How) {
    let (addr, _listener, _held) = hanging_origin().await;
    let extra = "[timeouts]\nconnect = \"30s\"\norigin_response = \"60s\"\n";
    let gw = gateway(&site(addr, extra)).await;
    let mut pending = Pending::open(how, &gw).await;
    for i in 0..3 {
        pending.send(&gw, "GET", &format!("/connect/{i}"), None).await;
    }
    assert!(eventually(PATIENCE, || async { in_phase(&gw, "connect").await == 3 }).await);
    let _kept = pending.cancel();
    let counted = eventually(PATIENCE, || async { cancelled_in(&gw, "connect").await >= 3 }).await;
    assert!(counted, "{}", status_json(&gw).await["requests"]);
    // The origin itself never answers, so the site is checked for what was left only.
    settles(&gw).await;
    assert_eq!(
        status_json(&gw).await["sites"][0]["pools"][0]["origins"][0]["errors"],
        0,
        "a cancelled connect is not the origin's failure"
    );
}

#[tokio::test]
async fn reset_while_connecting_to_an_origin() {
    connecting(How::Reset).await;
}

#[tokio::test]
async fn hangup_while_connecting_to_an_origin() {
    connecting(How::Hangup).await;
}

// ---- waiting for the response head

async fn response_headers(how: How) {
    let origin = echo_origin("o").await;
    let gw = gateway(&site(origin.addr, "")).await;
    let mut pending = Pending::open(how, &gw).await;
    // POSTs: not collapsed by the cache, so each waits for the origin itself.
    for i in 0..5 {
        pending.send(&gw, "POST", &format!("/slow/30000?n={i}"), None).await;
    }
    let at_origin = eventually(PATIENCE, || async {
        let st = status_json(&gw).await;
        num(&st["requests"]["by_phase"]["response_headers"]) == 5
            && num(&st["sites"][0]["pools"][0]["origins"][0]["in_flight"]) == 5
    })
    .await;
    assert!(at_origin, "{}", status_json(&gw).await);
    let _kept = pending.cancel();
    check_after(&gw, "response_headers", 5, "/").await;
}

#[tokio::test]
async fn reset_while_waiting_for_the_response_head() {
    response_headers(How::Reset).await;
}

#[tokio::test]
async fn hangup_while_waiting_for_the_response_head() {
    response_headers(How::Hangup).await;
}

// ---- streaming the response body

async fn response_body(how: How) {
    let origin = echo_origin("o").await;
    let gw = gateway(&site(origin.addr, "")).await;
    let addr = http_addr(&gw);
    let mut open = Vec::new();
    let mut h2 = None;
    for _ in 0..3 {
        // The head and a first chunk arrive; the rest never does.
        match how {
            How::Reset => {
                let tx = match &mut h2 {
                    Some(tx) => tx,
                    None => {
                        let tcp = TcpStream::connect(addr).await.unwrap();
                        let (tx, conn) =
                            hyper::client::conn::http2::handshake(executor(), TokioIo::new(tcp)).await.unwrap();
                        tokio::spawn(conn);
                        h2.insert(tx)
                    }
                };
                let req = Request::get("http://shop.test/drip").body(Full::new(Bytes::new())).unwrap();
                let resp = tx.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let mut body = resp.into_body();
                let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
                assert_eq!(&first[..], b"first chunk\n");
                open.push(Box::new(body) as Box<dyn Send>);
            }
            How::Hangup => {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(b"GET /drip HTTP/1.1\r\nHost: shop.test\r\n\r\n").await.unwrap();
                let mut seen = Vec::new();
                while !String::from_utf8_lossy(&seen).contains("first chunk") {
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
                    seen.extend_from_slice(&buf[..n]);
                }
                assert!(seen.starts_with(b"HTTP/1.1 200"));
                open.push(Box::new(s));
            }
        }
    }
    assert_eq!(in_phase(&gw, "response_body").await, 3);
    drop(open); // the bodies dropped (HTTP/2: RST_STREAM) or the connections closed
    check_after(&gw, "response_body", 3, "/").await;
    drop(h2);
}

#[tokio::test]
async fn reset_while_streaming_the_response_body() {
    response_body(How::Reset).await;
}

#[tokio::test]
async fn hangup_while_streaming_the_response_body() {
    response_body(How::Hangup).await;
}

// ---- uploading the request body

async fn upload(how: How) {
    let origin = echo_origin("o").await;
    let gw = gateway(&site(origin.addr, "[shield.connections]\nmin_upload_rate = 0\n")).await;
    let mut pending = Pending::open(how, &gw).await;
    for i in 0..3 {
        pending.send(&gw, "POST", &format!("/upload/{i}"), Some(10_000)).await;
    }
    let uploading = eventually(PATIENCE, || async { in_phase(&gw, "upload").await == 3 }).await;
    assert!(uploading, "{}", status_json(&gw).await["requests"]);
    let _kept = pending.cancel();
    check_after(&gw, "upload", 3, "/").await;
}

#[tokio::test]
async fn reset_while_uploading_the_request_body() {
    upload(How::Reset).await;
}

#[tokio::test]
async fn hangup_while_uploading_the_request_body() {
    upload(How::Hangup).await;
}

// ---- the probe of an ejected origin

/// The state of the origin at `addr` in /status.json.
async fn origin_state(gw: &Gateway, addr: SocketAddr) -> String {
    let st = status_json(gw).await;
    let origins = st["sites"][0]["pools"][0]["origins"].as_array().unwrap().clone();
    let o = origins.iter().find(|o| o["address"] == addr.to_string()).unwrap();
    o["state"].as_str().unwrap().to_string()
}

/// An origin ejected after errors gets a single probe request when its ejection ends. A
/// probe whose client goes away must free the probe slot: else the origin stays out of
/// rotation for good.
async fn probe(how: How) {
    use holdfast_shop::{Fault, ShopConfig};
    let mut shops = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let cfg = ShopConfig::new("shop", "de", "dc1");
        let (a, s) = holdfast_shop::spawn(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        addrs.push(a);
        shops.push(s);
    }
    let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[[datacenter]]\nname = \"dc1\"\n\
         [[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\nlanguage = \"de\"\nhealth = {{ enabled = false }}\n\
         cache = {{ enabled = false }}\noutlier = {{ consecutive_errors = 2, base_ejection = \"500ms\" }}\n\
         [[site.pool]]\ndatacenter = \"dc1\"\norigins = [{}]\n",
        list.join(", ")
    );
    let gw = gateway(&text).await;
    let bad = addrs[0];
    // The first origin refuses: two errors eject it (its requests are retried elsewhere).
    shops[0].faults.set(Fault::Refused);
    let mut n = 0;
    let ejected = eventually(PATIENCE, || {
        n += 1;
        let gw = &gw;
        async move {
            let (status, _, _) = get(http_addr(gw), "shop.test", &format!("/?n={n}")).await;
            assert_eq!(status, 200, "served by the others meanwhile");
            origin_state(gw, bad).await == "ejected"
        }
    })
    .await;
    assert!(ejected);
    // Its ejection ends; it now black-holes requests. The next request is its probe.
    shops[0].faults.set(Fault::Blackhole);
    assert!(eventually(PATIENCE, || async { origin_state(&gw, bad).await == "probe" }).await);
    let mut pending = Pending::open(how, &gw).await;
    pending.send(&gw, "GET", "/probe", None).await;
    let probing = eventually(PATIENCE, || async {
        in_phase(&gw, "response_headers").await == 1 && origin_state(&gw, bad).await == "ejected"
    })
    .await;
    assert!(probing, "the probe is in flight: {}", status_json(&gw).await);
    let _kept = pending.cancel();
    assert!(eventually(PATIENCE, || async { cancelled_in(&gw, "response_headers").await == 1 }).await);
    // The slot is free: the origin may be probed again, and once healthy it returns.
    assert!(
        eventually(PATIENCE, || async { origin_state(&gw, bad).await == "probe" }).await,
        "stuck: {}",
        origin_state(&gw, bad).await
    );
    shops[0].faults.set(Fault::None);
    let returned = eventually(PATIENCE, || async {
        let _ = get(http_addr(&gw), "shop.test", "/").await;
        origin_state(&gw, bad).await == "available"
    })
    .await;
    assert!(returned, "the healthy origin's probe succeeds and it returns");
    settles(&gw).await;
}

#[tokio::test]
async fn reset_of_a_probe_request_frees_the_probe() {
    probe(How::Reset).await;
}

#[tokio::test]
async fn hangup_of_a_probe_request_frees_the_probe() {
    probe(How::Hangup).await;
}
