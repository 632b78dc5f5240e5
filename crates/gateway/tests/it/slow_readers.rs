//! A slow reader slows only itself: the fill of the cache reads the origin at the origin's
//! pace, apart from the client that asked, and every client reads the stored object at its
//! own pace (issue 21, part 3). Real sockets: an origin of cacheable pages, HTTP/2 clients
//! whose streams have a window of 0 and never read, HTTP/1.1 clients that never read.

use super::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const PAGE: usize = 800 * 1024;
const PATIENCE: Duration = Duration::from_secs(20);

type OriginBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An origin of cacheable pages (max-age=60): `/page...` is 800 KB at once; `/trickle...`
/// is 200 KB in ten pieces 30 ms apart. Counts the requests per target.
async fn page_origin() -> (SocketAddr, Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> = Default::default();
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let path = req.uri().path().to_string();
                    let target = req.uri().path_and_query().map_or(path.clone(), |pq| pq.to_string());
                    *h.lock().unwrap().entry(target).or_default() += 1;
                    async move {
                        let body: OriginBody = if path.starts_with("/trickle") {
                            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
                            tokio::spawn(async move {
                                for _ in 0..10 {
                                    tokio::time::sleep(Duration::from_millis(30)).await;
                                    let piece = Bytes::from(vec![b't'; 20 * 1024]);
                                    if tx.send(Ok(Frame::data(piece))).await.is_err() {
                                        return;
                                    }
                                }
                            });
                            StreamBody::new(tokio_stream(rx)).boxed()
                        } else {
                            Full::new(Bytes::from(vec![b'p'; PAGE])).boxed()
                        };
                        let mut resp = Response::new(body);
                        resp.headers_mut().insert("cache-control", "max-age=60".parse().unwrap());
                        resp.headers_mut().insert("content-type", "text/html".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    (addr, hits)
}

/// An HTTP/2 connection whose streams have a window of 0: the gateway can send them no
/// body at all, and nothing here ever reads one.
async fn zero_window_h2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (tx, conn) = hyper::client::conn::http2::Builder::new(executor())
        .initial_stream_window_size(0)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx
}

/// Opens a stream for `path` and keeps its response unread (the task holds it).
async fn open_unread(
    tx: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
) -> tokio::task::JoinHandle<()> {
    tx.ready().await.unwrap();
    let req = Request::get(format!("http://shop.test{path}")).body(Full::new(Bytes::new())).unwrap();
    let resp = tx.send_request(req);
    tokio::spawn(async move {
        if let Ok(r) = resp.await {
            // Never read: held until the test ends.
            let _keep = r;
            std::future::pending::<()>().await;
        }
    })
}

fn hits(h: &std::sync::Mutex<std::collections::HashMap<String, usize>>, path: &str) -> usize {
    h.lock().unwrap().get(path).copied().unwrap_or(0)
}

async fn shoppers(gw: SocketAddr, path: &'static str, n: usize) -> Vec<(u16, String, usize)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        tasks.push(tokio::spawn(async move {
            let (status, headers, body) = get(gw, "shop.test", path).await;
            let cs = headers.get("cache-status").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (status, cs, body.len())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn one_http2_stream_with_a_zero_window_delays_no_other_client_of_the_page() {
    let (origin, origin_hits) = page_origin().await;
    let gw = gateway(&config(&[("shop", &["shop.test"], origin)], "")).await;
    let addr = http_addr(&gw);
    let mut slow = zero_window_h2(addr).await;
    let _held = open_unread(&mut slow, "/page").await;
    assert!(
        wait_until(PATIENCE, || hits(&origin_hits, "/page") == 1).await,
        "the slow stream's request reached the origin"
    );
    // Twenty shoppers want the same page while the slow stream leads its fill. Before, they
    // waited behind it until their own timeout; now the fill went on at the origin's pace.
    let served = tokio::time::timeout(PATIENCE, shoppers(addr, "/page", 20)).await.expect("shoppers served");
    for (status, cache_status, len) in &served {
        assert_eq!(*status, 200);
        assert_eq!(*len, PAGE, "the whole page");
        assert!(cache_status.contains("hit"), "from the cache: {cache_status}");
    }
    assert_eq!(hits(&origin_hits, "/page"), 1, "one fill, at the origin's pace");
    let status = status_json(&gw).await;
    let site = &status["sites"][0];
    assert_eq!(site["cache"]["filling_bytes"], 0, "nothing is held for a fill that ended: {site}");
    assert!(site["cache"]["bytes"].as_u64().unwrap() >= PAGE as u64);
}

#[tokio::test]
async fn a_flood_of_zero_window_streams_leaves_shoppers_served_from_the_cache() {
    let (origin, origin_hits) = page_origin().await;
    let gw = gateway(&config(&[("shop", &["shop.test"], origin)], "")).await;
    let addr = http_addr(&gw);
    // Four connections, each with streams for pages nobody else has asked for yet (each
    // leads the fill of its page) and for the page the shoppers want.
    let mut held = Vec::new();
    let mut conns = Vec::new();
    for c in 0..4 {
        let mut tx = zero_window_h2(addr).await;
        for s in 0..8 {
            held.push(open_unread(&mut tx, &format!("/page?c={c}&s={s}")).await);
        }
        held.push(open_unread(&mut tx, "/page").await);
        conns.push(tx);
    }
    let total = || origin_hits.lock().unwrap().values().sum::<usize>();
    assert!(wait_until(PATIENCE, || total() >= 33).await, "every distinct page was asked of the origin");
    let served = tokio::time::timeout(PATIENCE, shoppers(addr, "/page", 30)).await.expect("shoppers served");
    assert!(served.iter().all(|(s, cs, len)| *s == 200 && *len == PAGE && cs.contains("hit")), "{served:?}");
    assert_eq!(hits(&origin_hits, "/page"), 1);
    // The attacker's fills ended (stored): nothing is held for them but the store itself,
    // and the store is bounded by its size.
    assert!(
        eventually(PATIENCE, || async { status_json(&gw).await["sites"][0]["cache"]["filling_bytes"] == 0 }).await,
        "fills end at the origin's pace"
    );
}

#[tokio::test]
async fn a_fill_others_wait_for_goes_on_when_its_client_leaves() {
    let (origin, origin_hits) = page_origin().await;
    let gw = gateway(&config(&[("shop", &["shop.test"], origin)], "")).await;
    let addr = http_addr(&gw);
    // The first client asks for a page that trickles in, and hangs up once its head came.
    let mut leader = TcpStream::connect(addr).await.unwrap();
    leader.write_all(b"GET /trickle HTTP/1.1\r\nHost: shop.test\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut leader, &mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // A follower collapsed behind that fill.
    let follower = tokio::spawn(async move { get(addr, "shop.test", "/trickle").await });
    drop(leader);
    let (status, headers, body) = tokio::time::timeout(PATIENCE, follower).await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.len(), 200 * 1024);
    assert!(headers["cache-status"].to_str().unwrap().contains("hit"), "{headers:?}");
    assert_eq!(hits(&origin_hits, "/trickle"), 1, "the fill was not cancelled with its client");
}

#[tokio::test]
async fn an_http1_client_that_never_reads_delays_nobody() {
    let (origin, origin_hits) = page_origin().await;
    let gw = gateway(&config(&[("shop", &["shop.test"], origin)], "")).await;
    let addr = http_addr(&gw);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(b"GET /page HTTP/1.1\r\nHost: shop.test\r\n\r\n").await.unwrap();
    assert!(wait_until(PATIENCE, || hits(&origin_hits, "/page") == 1).await);
    let served = tokio::time::timeout(PATIENCE, shoppers(addr, "/page", 20)).await.expect("shoppers served");
    assert!(served.iter().all(|(s, cs, len)| *s == 200 && *len == PAGE && cs.contains("hit")), "{served:?}");
    assert_eq!(hits(&origin_hits, "/page"), 1);
    drop(slow);
}
