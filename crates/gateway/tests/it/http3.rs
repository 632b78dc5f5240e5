//! HTTP/3 over QUIC (`[listen] quic`) with a real HTTP/3 client (h3 and h3-quinn over
//! quinn): GET, POST with a body, a cached hit, a failover, reset streams, Alt-Svc on the
//! https responses, and the shield on QUIC: caps per address, and Retry during a flood.

use crate::common::*;
use bytes::{Buf, Bytes};
use holdfast_gateway::Gateway;
use holdfast_shop::{Fault, ShopConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A certificate for `name`, written to a temporary directory; the roots that trust it.
fn cert(name: &str) -> (String, rustls::RootCertStore) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("holdfast-h3-{}-{n}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    std::fs::write(dir.join("c.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("c.key"), ck.key_pair.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let d = dir.display();
    (format!("tls = {{ cert = \"{d}/c.crt\", key = \"{d}/c.key\" }}\n"), roots)
}

/// `text` with https and QUIC listeners, and the site `site`'s certificate.
fn with_quic(text: &str, site: &str, tls: &str) -> String {
    text.replace("[listen]\n", "[listen]\nhttps = [\"127.0.0.1:0\"]\nquic = [\"127.0.0.1:0\"]\n")
        .replace(&format!("name = \"{site}\"\n"), &format!("name = \"{site}\"\n{tls}"))
}

/// An HTTP/3 client connection.
struct H3 {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

/// Connects over QUIC from `src` to `addr` with `sni`, verifying against `roots`.
async fn h3_connect(src: IpAddr, addr: SocketAddr, roots: &rustls::RootCertStore, sni: &str) -> Result<H3, String> {
    h3_connect_within(src, addr, roots, sni, Duration::from_secs(10)).await
}

/// As [`h3_connect`], giving up on the handshake after `wait`.
async fn h3_connect_within(
    src: IpAddr,
    addr: SocketAddr,
    roots: &rustls::RootCertStore,
    sni: &str,
    wait: Duration,
) -> Result<H3, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(src, 0)).map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connecting = endpoint.connect(addr, sni).map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(wait, connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut driver, send) =
        h3::client::new(h3_quinn::Connection::new(conn.clone())).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(H3 { send, conn, _endpoint: endpoint })
}

type Stream = h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

impl H3 {
    /// Sends a request's head (and `body`, then the end of the stream).
    async fn start(&mut self, method: &str, uri: &str, headers: &[(&str, &str)], body: Option<Bytes>) -> Stream {
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut stream = self.send.send_request(req.body(()).unwrap()).await.unwrap();
        if let Some(b) = body {
            stream.send_data(b).await.unwrap();
        }
        stream.finish().await.unwrap();
        stream
    }

    /// A whole exchange: status, fields, body.
    async fn fetch(&mut self, method: &str, uri: &str, body: Option<Bytes>) -> (u16, http::HeaderMap, Vec<u8>) {
        self.fetch_with(method, uri, &[], body).await
    }

    async fn fetch_with(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> (u16, http::HeaderMap, Vec<u8>) {
        let mut stream = self.start(method, uri, headers, body).await;
        let resp = stream.recv_response().await.unwrap();
        let mut out = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.unwrap() {
            while chunk.has_remaining() {
                let c = chunk.chunk();
                out.extend_from_slice(c);
                let n = c.len();
                chunk.advance(n);
            }
        }
        (resp.status().as_u16(), resp.headers().clone(), out)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A browser's fields (the shield challenges requests without them during a flood).
const BROWSER: &[(&str, &str)] = &[
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("accept-language", "de-DE,de;q=0.9"),
    ("accept-encoding", "gzip"),
];

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn h3_serves_get_and_post_and_https_responses_advertise_it() {
    let origin = echo_origin("o").await;
    let (tls, roots) = cert("shop.test");
    let gw = gateway(&with_quic(&config(&[("shop", &["shop.test"], origin.addr)], ""), "shop", &tls)).await;
    let quic = gw.quic_addrs[0];
    let mut c = h3_connect(LOCAL, quic, &roots, "shop.test").await.unwrap();
    let (status, headers, body) = c.fetch("GET", "https://shop.test/p/1?q=2", None).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(headers["x-origin"], "o");
    let body = text(&body);
    assert!(body.starts_with("GET /p/1?q=2\n"), "{body}");
    assert!(body.contains("host: shop.test\n"), "Host from :authority: {body}");
    assert!(body.contains("via: 3 holdfast\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    assert!(!headers.contains_key("connection") && !headers.contains_key("keep-alive"), "{headers:?}");
    // A POST with a body larger than a window: every byte reaches the origin.
    let upload = Bytes::from(vec![b'u'; 300 * 1024]);
    let (status, _, body) = c.fetch("POST", "https://shop.test/cart", Some(upload)).await;
    assert_eq!(status, 200);
    assert!(text(&body).contains("body-bytes: 307200\n"), "{}", text(&body));
    // A body that is not as long as its Content-Length never reaches the origin whole.
    let hits = origin.hits.load(Ordering::SeqCst);
    let mut s = c.start("POST", "https://shop.test/cart", &[("content-length", "10")], Some(Bytes::from("abc"))).await;
    let short = s.recv_response().await.map(|r| r.status().as_u16());
    assert!(short.is_err() || short.as_ref().is_ok_and(|s| *s >= 400), "{short:?}");
    let seen = origin.hits.load(Ordering::SeqCst) - hits;
    assert!(seen <= 1, "{seen}");
    // The https listener's answers say where HTTP/3 is.
    let tls_stream = crate::tls_h2::tls_connect(gw.https_addrs[0], &roots, "shop.test", &[b"http/1.1"]).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls_stream)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/").header("host", "shop.test").body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["alt-svc"], format!("h3=\":{}\"; ma=86400", quic.port()).as_str());
    // Plain HTTP does not advertise it.
    let (_, plain, _) = get(http_addr(&gw), "shop.test", "/").await;
    assert!(!plain.contains_key("alt-svc"));
    let st = status_json(&gw).await;
    assert_eq!(st["quic"]["listeners"][0], quic.to_string());
    assert_eq!(st["quic"]["connections_open"], 1, "{}", st["quic"]);
    assert!(st["quic"]["accepted"].as_u64().unwrap() >= 1 && st["quic"]["streams"].as_u64().unwrap() >= 3);
    let m = get(gw.admin_addr.unwrap(), "admin", "/metrics").await.2;
    assert!(m.contains("holdfast_quic_connections_total{outcome=\"accepted\"} 1"), "{m}");
    assert!(m.contains("holdfast_quic_connections_open 1"), "{m}");
    c.conn.close(0u32.into(), b"");
    assert!(
        eventually(Duration::from_secs(5), || async { status_json(&gw).await["quic"]["connections_open"] == 0 }).await
    );
    gw.stop().await;
}

/// Shops in two data centers, the first first.
async fn shops(tls: &str) -> (Gateway, Arc<holdfast_shop::Shop>) {
    let (w, west) = holdfast_shop::spawn(ShopConfig::new("shop-de", "de", "eu-west"), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (c, _central) =
        holdfast_shop::spawn(ShopConfig::new("shop-de", "de", "eu-central"), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let text = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[timeouts]\nconnect = \"300ms\"\n\
         [[datacenter]]\nname = \"eu-west\"\n[[datacenter]]\nname = \"eu-central\"\n\
         [[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\nhealth = {{ enabled = false }}\n\
         [[site.pool]]\ndatacenter = \"eu-west\"\norigins = [\"{w}\"]\n\
         [[site.pool]]\ndatacenter = \"eu-central\"\norigins = [\"{c}\"]\n"
    );
    (gateway(&with_quic(&text, "shop-de", tls)).await, west)
}

#[tokio::test]
async fn h3_gets_a_cached_hit_and_fails_over_when_a_data_center_refuses() {
    let (tls, roots) = cert("shop.de");
    let (gw, west) = shops(&tls).await;
    let mut c = h3_connect(LOCAL, gw.quic_addrs[0], &roots, "shop.de").await.unwrap();
    let (status, headers, _) = c.fetch("GET", "https://shop.de/", None).await;
    assert_eq!((status, &headers["x-datacenter"]), (200, &http::HeaderValue::from_static("eu-west")));
    let (status, headers, body) = c.fetch("GET", "https://shop.de/", None).await;
    assert_eq!(status, 200);
    let cache = headers.get("cache-status").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(cache.starts_with("holdfast; hit"), "the second is a hit: {cache}");
    assert!(text(&body).contains("shop-de"));
    // The first data center's shop is gone: a GET fails over to the next.
    west.faults.set(Fault::Refused);
    let (status, headers, body) = c.fetch("GET", "https://shop.de/p/3", None).await;
    assert_eq!(status, 200, "{headers:?} {}", text(&body));
    assert_eq!(headers["x-datacenter"], "eu-central");
    gw.stop().await;
}

#[tokio::test]
async fn a_reset_h3_stream_cancels_its_request_and_frees_the_origin() {
    let origin = echo_origin("o").await;
    let (tls, roots) = cert("shop.test");
    let gw = gateway(&with_quic(&config(&[("shop", &["shop.test"], origin.addr)], ""), "shop", &tls)).await;
    let mut c = h3_connect(LOCAL, gw.quic_addrs[0], &roots, "shop.test").await.unwrap();
    // A download of 1 GB, read a little, then given up (STOP_SENDING).
    let mut s = c.start("GET", "https://shop.test/big/1073741824", &[], None).await;
    assert_eq!(s.recv_response().await.unwrap().status(), 200);
    assert!(s.recv_data().await.unwrap().is_some());
    s.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
    drop(s);
    let freed = eventually(Duration::from_secs(10), || async {
        status_json(&gw).await["requests"]["in_flight"] == 0 && origin.open.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(freed, "the request ended, its origin connection closed: {}", status_json(&gw).await["requests"]);
    // An upload reset halfway: the request ends, nothing is left in flight.
    let upload = http::Request::post("https://shop.test/upload").header("content-length", "100000").body(()).unwrap();
    let mut s = c.send.send_request(upload).await.unwrap();
    s.send_data(Bytes::from(vec![b'x'; 1000])).await.unwrap();
    s.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
    drop(s);
    let settled =
        eventually(Duration::from_secs(10), || async { status_json(&gw).await["requests"]["in_flight"] == 0 }).await;
    assert!(settled, "{}", status_json(&gw).await["requests"]);
    // The connection still serves.
    assert_eq!(c.fetch("GET", "https://shop.test/", None).await.0, 200);
    // A client that goes away while its request waits for the origin: the request is
    // cancelled there, not left waiting for an answer nobody can take.
    let cancelled = |st: serde_json::Value| st["requests"]["cancelled"]["response_headers"].as_u64().unwrap_or(0);
    let before = cancelled(status_json(&gw).await);
    let _waiting = c.start("GET", "https://shop.test/slow/20000", &[], None).await;
    let at_origin = || async { status_json(&gw).await["requests"]["by_phase"]["response_headers"] == 1 };
    assert!(eventually(Duration::from_secs(5), at_origin).await, "the request waits for its origin");
    c.conn.close(0u32.into(), b"gone");
    let counted = eventually(Duration::from_secs(10), || async { cancelled(status_json(&gw).await) > before }).await;
    assert!(counted, "cancelled while waiting for its origin: {}", status_json(&gw).await["requests"]);
    assert_eq!(status_json(&gw).await["requests"]["in_flight"], 0);
    gw.stop().await;
}

#[tokio::test]
async fn quic_connections_are_capped_per_address_and_need_a_retry_during_a_flood() {
    let origin = echo_origin("o").await;
    let (tls, roots) = cert("shop.test");
    let shield = "[shield]\nallow = [\"192.0.2.1/32\"]\n[shield.connections]\nper_address = 3\n\
                  [shield.signatures]\nflood_rate = 20\nmin_requests = 8\n";
    let gw = gateway(&with_quic(&config(&[("shop", &["shop.test"], origin.addr)], shield), "shop", &tls)).await;
    let quic = gw.quic_addrs[0];
    // Five connections from one address: three are let in, two refused before a handshake.
    let src: IpAddr = Ipv4Addr::new(127, 44, 0, 1).into();
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..5 {
        match h3_connect(src, quic, &roots, "shop.test").await {
            Ok(c) => open.push(c),
            Err(_) => refused += 1,
        }
    }
    assert_eq!((open.len(), refused), (3, 2));
    assert_eq!(open[0].fetch("GET", "https://shop.test/", None).await.0, 200);
    let st = status_json(&gw).await;
    assert_eq!(st["quic"]["refused"], 2, "{}", st["quic"]);
    assert_eq!(st["quic"]["retried"], 0, "no Retry while there is no flood");
    // A flood (LOIC over TCP from many addresses) is recognised...
    crate::shield::flood(240, http_addr(&gw), |i| Ipv4Addr::new(127, 45, 10 + (i % 4) as u8, 1 + (i % 60) as u8)).await;
    let on =
        eventually(Duration::from_secs(5), || async { status_json(&gw).await["shield"]["flood"]["active"] == true })
            .await;
    assert!(on, "{}", status_json(&gw).await["shield"]["flood"]);
    // ...and from then on, a new QUIC client proves its address with a Retry before it
    // gets any state; a real client (this one) follows it and is served.
    let mut c = h3_connect(Ipv4Addr::new(127, 46, 0, 1).into(), quic, &roots, "shop.test").await.unwrap();
    assert_eq!(c.fetch_with("GET", "https://shop.test/", BROWSER, None).await.0, 200);
    let st = status_json(&gw).await;
    assert!(st["quic"]["retried"].as_u64().unwrap() >= 1, "{}", st["quic"]);
    gw.stop().await;
}

/// Reads a response whole: its status and body.
async fn finish(mut s: Stream) -> (u16, String) {
    let status = s.recv_response().await.unwrap().status().as_u16();
    let mut out = Vec::new();
    while let Some(mut chunk) = s.recv_data().await.unwrap() {
        let n = chunk.remaining();
        out.extend_from_slice(&chunk.copy_to_bytes(n));
    }
    (status, text(&out))
}

#[tokio::test]
async fn quic_listeners_follow_reloads_and_requests_in_flight_finish() {
    let origin = echo_origin("o").await;
    let (tls, roots) = cert("shop.test");
    let path = std::env::temp_dir().join(format!("holdfast-h3-reload-{}.toml", std::process::id()));
    let with = with_quic(&config(&[("shop", &["shop.test"], origin.addr)], ""), "shop", &tls);
    let without = with.replace("quic = [\"127.0.0.1:0\"]\n", "");
    std::fs::write(&path, &without).unwrap();
    let gw = Gateway::start(holdfast_gateway::config::load_file(&path).unwrap(), Some(path.clone())).await.unwrap();
    assert!(gw.quic_addrs.is_empty());
    // Added on reload: it serves, and the https answers now say so.
    std::fs::write(&path, &with).unwrap();
    let (status, body) = crate::lifecycle::admin_post(&gw, "/admin/reload", None).await;
    assert_eq!(status, 200, "{body}");
    let quic: SocketAddr = status_json(&gw).await["quic"]["listeners"][0].as_str().unwrap().parse().unwrap();
    let mut c = h3_connect(LOCAL, quic, &roots, "shop.test").await.unwrap();
    assert_eq!(c.fetch("GET", "https://shop.test/", None).await.0, 200);
    // A request in flight while the listener is removed: it finishes; new connections are
    // refused.
    let slow = c.start("GET", "https://shop.test/slow/400", &[], None).await;
    std::fs::write(&path, &without).unwrap();
    assert_eq!(crate::lifecycle::admin_post(&gw, "/admin/reload", None).await.0, 200);
    assert!(status_json(&gw).await["quic"]["listeners"].as_array().unwrap().is_empty());
    let refused = h3_connect_within(LOCAL, quic, &roots, "shop.test", Duration::from_secs(2)).await;
    assert!(refused.is_err(), "a removed listener takes no one");
    assert_eq!(finish(slow).await.0, 200, "the request in flight finished");
    // Back again, and a stop: the request in flight finishes within the drain.
    std::fs::write(&path, &with).unwrap();
    assert_eq!(crate::lifecycle::admin_post(&gw, "/admin/reload", None).await.0, 200);
    let quic: SocketAddr = status_json(&gw).await["quic"]["listeners"][0].as_str().unwrap().parse().unwrap();
    let mut c = h3_connect(LOCAL, quic, &roots, "shop.test").await.unwrap();
    let slow = c.start("GET", "https://shop.test/slow/400", &[], None).await;
    let waiting = || async { status_json(&gw).await["requests"]["by_phase"]["response_headers"] == 1 };
    assert!(eventually(Duration::from_secs(5), waiting).await, "the request waits for its origin");
    let stopping = tokio::spawn(gw.stop());
    let (status, body) = finish(slow).await;
    assert_eq!(status, 200, "{body}");
    stopping.await.unwrap();
    let _ = std::fs::remove_file(&path);
}
