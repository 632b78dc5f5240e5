//! The binary upgrade under load, end to end: `holdfast run --pid-file`, then ten
//! `holdfast upgrade --pid-file` in a row while clients keep going: HTTP/1.1 keep-alive and
//! a new connection per request, HTTP/2 over TLS, 1 MiB uploads, a 100 MiB download read
//! slowly across the upgrades, and a WebSocket echoing throughout. Every refused, reset and
//! failed request is counted, and each must be zero; the download must arrive whole; every
//! old process must drain and exit. It prints the time from the signal to the new process
//! serving, and the longest any client waited for an answer (bench/upgrade.sh runs it on a
//! release build for the figures). `UPGRADES` sets the number of upgrades (default 10).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIG: u64 = 100 << 20;

/// The binary under test: this build's, or `HOLDFAST_BIN` (bench/upgrade.sh gives a release
/// build, with these debug clients driving it).
fn bin() -> String {
    std::env::var("HOLDFAST_BIN").unwrap_or_else(|_| BIN.to_string())
}
const UPLOAD: usize = 1 << 20;

/// What the clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    failed: AtomicU64,
    /// HTTP/2 requests the server never processed: the connection went away (GOAWAY)
    /// between the client's check that it could send and the sending (hyper's `Canceled`),
    /// or the stream was opened after the server's last GOAWAY left (its id above the
    /// GOAWAY's last stream id, NO_ERROR). RFC 9113 §6.8 and §8.7 say such a request was
    /// not processed, and a client sends it again on a new connection, as this one does.
    unsent: AtomicU64,
    /// The longest wait for an answer, in microseconds.
    longest_us: AtomicU64,
    /// What failed, for the assertion's message.
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn ok(&self, began: Instant) {
        self.ok.fetch_add(1, Relaxed);
        self.longest_us.fetch_max(began.elapsed().as_micros() as u64, Relaxed);
    }

    fn error(&self, who: &str, e: &(dyn std::error::Error + 'static)) {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut kind = None;
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                kind = Some(io.kind());
            }
            source = s.source();
        }
        let counter = match kind {
            Some(std::io::ErrorKind::ConnectionRefused) => &self.refused,
            Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => &self.reset,
            _ => &self.failed,
        };
        counter.fetch_add(1, Relaxed);
        self.errors.lock().unwrap().push(format!("{who}: {e:?}"));
    }

    fn wrong(&self, who: &str, what: String) {
        self.failed.fetch_add(1, Relaxed);
        self.errors.lock().unwrap().push(format!("{who}: {what}"));
    }
}

/// The file origin: `/files/big` (100 MiB, streamed) and `/files/upload` (counts a body).
async fn file_origin() -> SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let big = req.uri().path() == "/files/big";
                    let body: http_body_util::combinators::BoxBody<Bytes, hyper::Error> = if big {
                        let chunk = Bytes::from(vec![b'x'; 64 << 10]);
                        let chunks = (BIG / chunk.len() as u64) as usize;
                        let frames = futures_util::stream::iter(
                            std::iter::repeat_n(chunk, chunks)
                                .map(|c| Ok::<_, hyper::Error>(http_body::Frame::data(c))),
                        );
                        BodyExt::boxed(http_body_util::StreamBody::new(frames))
                    } else {
                        let got = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
                        Full::new(Bytes::from(format!("got {got}"))).map_err(|never| match never {}).boxed()
                    };
                    let mut resp = http::Response::new(body);
                    resp.headers_mut().insert("cache-control", http::HeaderValue::from_static("no-store"));
                    if big {
                        resp.headers_mut().insert("content-length", http::HeaderValue::from(BIG));
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// A self-signed certificate for shop.de in a directory of the test's; the roots that
/// trust it.
fn certificate() -> (std::path::PathBuf, rustls::RootCertStore) {
    let dir = temp("upgrade-certs");
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["shop.de".to_string()]).unwrap();
    std::fs::write(dir.join("shop.de.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("shop.de.key"), ck.key_pair.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    (dir, roots)
}

fn config(shop: SocketAddr, files: SocketAddr, certs: &std::path::Path) -> String {
    let d = certs.display();
    format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nhttps = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n\
         [timeouts]\ndrain = \"90s\"\n\
         [[datacenter]]\nname = \"eu\"\n\
         [[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\n\
         tls = {{ cert = \"{d}/shop.de.crt\", key = \"{d}/shop.de.key\" }}\n\
         [[site.pool]]\ndatacenter = \"eu\"\norigins = [\"{shop}\"]\n\
         [[site.route]]\npath_prefix = \"/files/\"\n[[site.route.pool]]\ndatacenter = \"eu\"\norigins = [\"{files}\"]\n"
    )
}

type Stop = Arc<AtomicBool>;

async fn keep_alive(http: SocketAddr, stop: Stop, tally: Arc<Tally>) {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut i = 0u32;
    while !stop.load(Relaxed) {
        i += 1;
        let req = http::Request::get(format!("http://{http}/p/{}", 1 + i % 12))
            .header("host", "shop.de")
            .body(Empty::new())
            .unwrap();
        let began = Instant::now();
        match client.request(req).await {
            Ok(resp) if resp.status() == 200 => match resp.into_body().collect().await {
                Ok(_) => tally.ok(began),
                Err(e) => tally.error("keep-alive body", &e),
            },
            Ok(resp) => tally.wrong("keep-alive", format!("status {}", resp.status())),
            Err(e) => tally.error("keep-alive", &e),
        }
    }
}

async fn new_connections(http: SocketAddr, stop: Stop, tally: Arc<Tally>) {
    while !stop.load(Relaxed) {
        let began = Instant::now();
        let attempt = async {
            let mut tcp = tokio::net::TcpStream::connect(http).await?;
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n").await?;
            let mut out = Vec::new();
            tcp.read_to_end(&mut out).await?;
            std::io::Result::Ok(out)
        };
        match attempt.await {
            Ok(out) if out.starts_with(b"HTTP/1.1 200") => tally.ok(began),
            Ok(out) => tally.wrong("new connection", String::from_utf8_lossy(&out[..out.len().min(80)]).into()),
            Err(e) => tally.error("new connection", &e),
        }
    }
}

async fn h2_over_tls(https: SocketAddr, roots: rustls::RootCertStore, stop: Stop, tally: Arc<Tally>) {
    let mut tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    'connections: while !stop.load(Relaxed) {
        let began = Instant::now();
        let connected = async {
            let tcp = tokio::net::TcpStream::connect(https).await?;
            let name = rustls_pki_types::ServerName::try_from("shop.de").unwrap();
            let stream = connector.connect(name, tcp).await?;
            hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            .map_err(std::io::Error::other)
        };
        let (mut sender, conn) = match connected.await {
            Ok(c) => c,
            Err(e) => {
                tally.error("h2 connect", &e);
                continue;
            }
        };
        tokio::spawn(conn);
        let mut i = 0u32;
        while !stop.load(Relaxed) {
            // A connection going away (GOAWAY) takes no new stream: a new connection does.
            if sender.ready().await.is_err() {
                continue 'connections;
            }
            i += 1;
            let req =
                http::Request::get(format!("https://shop.de/c/{}", ["books", "toys", "christmas"][i as usize % 3]))
                    .body(Empty::<Bytes>::new())
                    .unwrap();
            let began = if i == 1 { began } else { Instant::now() };
            match sender.send_request(req).await {
                Ok(resp) if resp.status() == 200 => match resp.into_body().collect().await {
                    Ok(_) => tally.ok(began),
                    Err(e) => tally.error("h2 body", &e),
                },
                Ok(resp) => tally.wrong("h2", format!("status {}", resp.status())),
                Err(e) if e.is_canceled() || refused_by_goaway(&e) => {
                    tally.unsent.fetch_add(1, Relaxed);
                    continue 'connections;
                }
                Err(e) => tally.error("h2", &e),
            }
        }
    }
}

/// A stream the server's GOAWAY (NO_ERROR) left unprocessed.
fn refused_by_goaway(e: &hyper::Error) -> bool {
    use std::error::Error;
    e.source()
        .and_then(|s| s.downcast_ref::<h2::Error>())
        .is_some_and(|h| h.is_go_away() && h.is_remote() && h.reason() == Some(h2::Reason::NO_ERROR))
}

async fn uploads(http: SocketAddr, stop: Stop, tally: Arc<Tally>) {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let body = Bytes::from(vec![b'u'; UPLOAD]);
    while !stop.load(Relaxed) {
        let req = http::Request::post(format!("http://{http}/files/upload"))
            .header("host", "shop.de")
            .body(Full::new(body.clone()))
            .unwrap();
        let began = Instant::now();
        match client.request(req).await {
            Ok(resp) => match resp.into_body().collect().await.map(|b| b.to_bytes()) {
                Ok(b) if b == format!("got {UPLOAD}") => tally.ok(began),
                Ok(b) => tally.wrong("upload", String::from_utf8_lossy(&b).into()),
                Err(e) => tally.error("upload body", &e),
            },
            Err(e) => tally.error("upload", &e),
        }
    }
}

/// Reads the 100 MiB at about 25 MiB/s, so that it spans the upgrades; returns the bytes.
async fn download(http: SocketAddr, tally: Arc<Tally>) -> u64 {
    let attempt = async {
        let mut tcp = tokio::net::TcpStream::connect(http).await?;
        tcp.write_all(b"GET /files/big HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n").await?;
        let (mut total, mut head_done, mut buf) = (0u64, false, vec![0u8; 64 << 10]);
        let mut head = Vec::new();
        loop {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                return std::io::Result::Ok(total);
            }
            if head_done {
                total += n as u64;
            } else {
                head.extend_from_slice(&buf[..n]);
                if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..at]));
                    total = (head.len() - at - 4) as u64;
                    head_done = true;
                }
            }
            tokio::time::sleep(Duration::from_micros(2500)).await;
        }
    };
    match attempt.await {
        Ok(n) => n,
        Err(e) => {
            tally.error("download", &e);
            0
        }
    }
}

/// A WebSocket that sends a message and waits for its echo, over and over; returns how
/// many came back.
async fn websocket(http: SocketAddr, stop: Stop, tally: Arc<Tally>) -> u64 {
    let tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://shop.de/live/socket", tcp).await.unwrap();
    let mut echoed = 0;
    while !stop.load(Relaxed) {
        let began = Instant::now();
        let msg = format!("stock {echoed}");
        if let Err(e) = ws.send(tokio_tungstenite::tungstenite::Message::text(msg.clone())).await {
            tally.error("websocket send", &e);
            return echoed;
        }
        match ws.next().await {
            Some(Ok(m)) if m.to_text().ok() == Some(&msg) => {
                echoed += 1;
                tally.ok(began);
            }
            other => {
                tally.wrong("websocket", format!("{other:?}"));
                return echoed;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = ws.close(None).await;
    echoed
}

fn gone(pid: u32) -> bool {
    // A process that exited is gone, or a zombie whose parent (an old gateway) is gone too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Kills whichever process the pid file names when the test ends, however it ends (the
/// processes after the first are not the test's children, and a failed assertion must not
/// leave one running).
struct KillNamed(std::path::PathBuf);

impl Drop for KillNamed {
    fn drop(&mut self) {
        if let Some(pid) = pid_in(&self.0) {
            let _ = std::process::Command::new("kill").args(["-s", "KILL", &pid.to_string()]).status();
        }
    }
}

fn pid_in(file: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_upgrades_under_mixed_traffic_refuse_reset_and_fail_nothing() {
    let upgrades: usize = std::env::var("UPGRADES").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    let (shop, _shop) =
        holdfast_shop::spawn(holdfast_shop::ShopConfig::new("shop-de", "de", "eu"), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let files = file_origin().await;
    let (certs, roots) = certificate();
    let cfg = temp("upgrade.toml");
    std::fs::write(&cfg, config(shop, files, &certs)).unwrap();
    let pid_file = temp("upgrade.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "--workers", "2", "--config"]).arg(&cfg).arg("--pid-file").arg(&pid_file);
    let first = Proc::spawn(cmd);
    let _kill_last = KillNamed(pid_file.clone());
    let http = first.bound("listening");
    let https = wait_for(|| {
        let lines = first.lines(|v| v["message"] == "listening" && v["tls"] == true);
        lines.first().and_then(|v| v["addr"].as_str()?.parse::<SocketAddr>().ok())
    });
    let mut pids = vec![wait_for(|| pid_in(&pid_file))];

    let (stop, tally) = (Stop::default(), Arc::new(Tally::default()));
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(tokio::spawn(keep_alive(http, stop.clone(), tally.clone())));
    }
    clients.push(tokio::spawn(new_connections(http, stop.clone(), tally.clone())));
    clients.push(tokio::spawn(h2_over_tls(https, roots, stop.clone(), tally.clone())));
    clients.push(tokio::spawn(uploads(http, stop.clone(), tally.clone())));
    let downloading = tokio::spawn(download(http, tally.clone()));
    let socket = tokio::spawn(websocket(http, stop.clone(), tally.clone()));
    let progress = |tally: &Tally, past: u64| {
        let t = tally.ok.load(Relaxed);
        (t >= past + 50).then_some(t)
    };
    let mut seen = 0;
    seen = poll(|| progress(&tally, seen)).await;

    let mut times = Vec::new();
    for n in 0..upgrades {
        let out = tokio::task::spawn_blocking({
            let pid_file = pid_file.clone();
            move || std::process::Command::new(bin()).arg("upgrade").arg("--pid-file").arg(&pid_file).output().unwrap()
        })
        .await
        .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "upgrade {n}: {said}{}", String::from_utf8_lossy(&out.stderr));
        let ms: u64 = said.split("serving after ").nth(1).and_then(|s| s.split(' ').next()?.parse().ok()).unwrap();
        times.push(ms);
        let new = pid_in(&pid_file).unwrap();
        assert!(!pids.contains(&new), "upgrade {n}: the pid file names a new process");
        pids.push(new);
        // Clients are served by the new process before the next upgrade.
        seen = poll(|| progress(&tally, seen)).await;
    }
    stop.store(true, Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let echoed = socket.await.unwrap();
    let downloaded = downloading.await.unwrap();

    let errors = tally.errors.lock().unwrap().clone();
    let (refused, reset, failed) = (tally.refused.load(Relaxed), tally.reset.load(Relaxed), tally.failed.load(Relaxed));
    times.sort_unstable();
    eprintln!(
        "upgrades: {upgrades}; answers: {}; refused {refused}, reset {reset}, failed {failed}, unsent and sent again {}; websocket echoes: {echoed}; \
         download: {downloaded} bytes; signal to serving: min {} ms, median {} ms, max {} ms; longest wait for an answer: {:.1} ms",
        tally.ok.load(Relaxed),
        tally.unsent.load(Relaxed),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        tally.longest_us.load(Relaxed) as f64 / 1000.0,
    );
    assert_eq!((refused, reset, failed), (0, 0, 0), "{errors:#?}");
    assert_eq!(downloaded, BIG, "the download completes across the upgrades");
    assert!(echoed > 0);

    // Every old process drains and exits; the last one serves until told to stop.
    let last = *pids.last().unwrap();
    poll(|| pids[..pids.len() - 1].iter().all(|p| gone(*p)).then_some(())).await;
    assert!(!gone(last));
    let _ = std::process::Command::new("kill").args(["-s", "TERM", &last.to_string()]).status();
    poll(|| gone(last).then_some(())).await;
    assert!(!pid_file.exists(), "the last process removes its pid file when it stops");
    drop(first);
    let _ = std::fs::remove_dir_all(&certs);
    let _ = std::fs::remove_file(&cfg);
}

/// Polls `f` until it gives a value (60 s at most).
async fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request over a new connection; the whole response text.
fn raw(addr: SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// What a browser sends (the shield gives visitor cookies to browsers, not to bare clients).
const BROWSER: &str = "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\nAccept-Language: de-DE,de;q=0.9\r\n";

fn upgrade(pid_file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(BIN).arg("upgrade").arg("--pid-file").arg(pid_file).output().unwrap()
}

#[test]
fn a_failed_upgrade_leaves_the_old_process_serving_and_a_good_one_carries_blocks_and_keys() {
    let (_shop, shop) = shop_process("eu", &[]);
    let cfg = temp("carry.toml");
    // The shield at its defaults but for the allow list, which by default exempts loopback
    // (and so gives it no visitor cookie).
    let site_config = |shop| format!("{}[shield]\nallow = [\"192.0.2.1/32\"]\n", site_config(shop));
    std::fs::write(&cfg, site_config(shop)).unwrap();
    let pid_file = temp("carry.pid");
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["run", "--workers", "1", "--config"]).arg(&cfg).arg("--pid-file").arg(&pid_file);
    let first = Proc::spawn(cmd);
    let _kill_last = KillNamed(pid_file.clone());
    let (http, admin) = (first.bound("listening"), first.bound("admin listening"));
    let old = wait_for(|| pid_in(&pid_file));

    // A visitor cookie, signed with this process's own random key, and a block.
    let page = raw(http, &format!("GET / HTTP/1.1\r\nHost: shop.de\r\n{BROWSER}Connection: close\r\n\r\n"));
    let cookie = page
        .lines()
        .find_map(|l| l.to_ascii_lowercase().starts_with("set-cookie: holdfast_visitor=").then(|| l[12..].to_string()))
        .and_then(|c| c.split(';').next().map(str::to_string))
        .unwrap_or_else(|| panic!("a visitor cookie: {page}"));
    let blocked = raw(admin, "POST /admin/block?prefix=10.9.0.0/16&for=1h HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(blocked.starts_with("HTTP/1.1 200"), "{blocked}");

    // A config that does not load: the upgrade fails and says why; the old process serves on.
    std::fs::write(&cfg, format!("{}bogus = 1\n", site_config(shop))).unwrap();
    let out = upgrade(&pid_file);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("unknown field `bogus`") && said.contains("carry.toml:"), "{said}");
    assert_eq!(pid_in(&pid_file), Some(old));
    assert!(http_get(http, "shop.de", "/healthz").unwrap().starts_with("HTTP/1.1 200"));

    // Mended: the new process serves on the same sockets, with the block and the key.
    std::fs::write(&cfg, site_config(shop)).unwrap();
    let out = upgrade(&pid_file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new = pid_in(&pid_file).unwrap();
    assert_ne!(new, old);
    let s = wait_for(|| status(admin).filter(|s| s["pid"] == new));
    assert!(s["shield"]["blocked"].to_string().contains("10.9.0.0/16"), "{}", s["shield"]);
    let again = raw(
        http,
        &format!("GET / HTTP/1.1\r\nHost: shop.de\r\n{BROWSER}Cookie: {cookie}\r\nConnection: close\r\n\r\n"),
    );
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    assert!(!again.to_ascii_lowercase().contains("set-cookie: holdfast_visitor"), "the cookie is still valid: {again}");
    wait_for(|| gone(old).then_some(()));
    let _ = std::fs::remove_file(&cfg);
}
