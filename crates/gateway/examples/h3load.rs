//! A small HTTP/3 load generator for bench/h2.sh (Debian's h2load has no QUIC): `-c`
//! connections, each with `-m` requests in flight, GETs of one URL for `-D` seconds (and at
//! most `-n` requests), over quinn and h3, the crates holdfast serves HTTP/3 with. Prints
//! lines in h2load's format, so the bench reads both alike:
//! `finished in …, N req/s, …` and `requests: N total, N started, N done, N succeeded, N failed, …`.
//!
//! Usage: h3load [-c 32] [-m 10] [-D 10] [-n 10000000] --ca CA.pem --sni NAME https://ADDR:PORT/PATH

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench tool: a bad argument ends it

use bytes::Buf;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    conns: usize,
    streams: usize,
    duration: Duration,
    max: u64,
    ca: String,
    sni: String,
    addr: SocketAddr,
    path: String,
}

fn args() -> Args {
    let mut a = Args {
        conns: 32,
        streams: 10,
        duration: Duration::from_secs(10),
        max: 10_000_000,
        ca: String::new(),
        sni: "localhost".into(),
        addr: "127.0.0.1:443".parse().unwrap(),
        path: "/".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "-c" => a.conns = value().parse().unwrap(),
            "-m" => a.streams = value().parse().unwrap(),
            "-D" => a.duration = Duration::from_secs_f64(value().parse().unwrap()),
            "-n" => a.max = value().parse().unwrap(),
            "--ca" => a.ca = value(),
            "--sni" => a.sni = value(),
            url => {
                let rest = url.strip_prefix("https://").unwrap_or_else(|| panic!("an https:// URL, not {url}"));
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                a.addr = host.parse().unwrap_or_else(|e| panic!("{host}: {e} (an address:port)"));
                a.path = format!("/{path}");
            }
        }
    }
    assert!(a.conns > 0 && a.streams > 0 && a.duration <= Duration::from_secs(600), "bounded runs only");
    a
}

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

fn client_config(ca: &str) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("{ca}: {e}"));
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap()))
}

/// One connection: `streams` request loops until the deadline or the count is reached.
async fn connection(a: Arc<Args>, cfg: quinn::ClientConfig, counts: Arc<Counts>, deadline: Instant) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(cfg);
    let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(10), endpoint.connect(a.addr, &a.sni).unwrap()).await
    else {
        counts.failed.fetch_add(1, Relaxed);
        return;
    };
    let Ok((mut driver, send)) = h3::client::new(h3_quinn::Connection::new(conn)).await else { return };
    let driving = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let uri: http::Uri = format!("https://{}{}", a.sni, a.path).parse().unwrap();
    let mut loops = Vec::new();
    for _ in 0..a.streams {
        let (mut send, counts, uri, a) = (send.clone(), counts.clone(), uri.clone(), a.clone());
        loops.push(tokio::spawn(async move {
            while Instant::now() < deadline && counts.started.fetch_add(1, Relaxed) < a.max {
                let ok = async {
                    let mut s = send.send_request(http::Request::get(uri.clone()).body(()).ok()?).await.ok()?;
                    s.finish().await.ok()?;
                    let resp = s.recv_response().await.ok()?;
                    let mut n = 0;
                    while let Some(chunk) = s.recv_data().await.ok()? {
                        n += chunk.remaining() as u64;
                    }
                    Some((resp.status().is_success(), n))
                }
                .await;
                match ok {
                    Some((true, n)) => {
                        counts.succeeded.fetch_add(1, Relaxed);
                        counts.bytes.fetch_add(n, Relaxed);
                    }
                    _ => {
                        counts.failed.fetch_add(1, Relaxed);
                    }
                }
            }
        }));
    }
    for l in loops {
        let _ = l.await;
    }
    drop(send);
    driving.abort();
    endpoint.close(0u32.into(), b"");
}

fn main() {
    let a = Arc::new(args());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let counts = Arc::new(Counts::default());
    let began = Instant::now();
    rt.block_on(async {
        let cfg = client_config(&a.ca);
        let deadline = began + a.duration;
        let tasks: Vec<_> =
            (0..a.conns).map(|_| tokio::spawn(connection(a.clone(), cfg.clone(), counts.clone(), deadline))).collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let secs = began.elapsed().as_secs_f64();
    let (ok, failed) = (counts.succeeded.load(Relaxed), counts.failed.load(Relaxed));
    let done = ok + failed;
    println!(
        "finished in {secs:.2}s, {:.2} req/s, {:.2}MB/s",
        done as f64 / secs,
        counts.bytes.load(Relaxed) as f64 / secs / 1e6
    );
    println!("requests: {done} total, {done} started, {done} done, {ok} succeeded, {failed} failed, {failed} errored, 0 timeout");
}
