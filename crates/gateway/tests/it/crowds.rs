//! A botnet that looks like shoppers is a flood, and only a flood; a newsletter's crowd,
//! every landing with a query of its own, is a flash crowd and never a flood (issue 21,
//! part 2). Real sockets: the shop origins of `incidents`, browser-like clients bound to
//! source addresses in 127.0.0.0/8 (judged by the shield), keeping their cookies and
//! connections.

use crate::common::*;
use crate::incidents::{futures_sum, incidents, kinds, named, shoppers, world, VERDICT};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const WORDS: &[&str] = &["zug", "bär", "atlas", "stern", "kerze", "mütze", "schal", "buch", "lampe", "tasse"];

/// One browser-like client from `src`: a real browser's headers, the cookies it is given,
/// one keep-alive connection.
struct Client {
    tx: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    src: Ipv4Addr,
    dst: SocketAddr,
    cookies: Vec<String>,
}

impl Client {
    fn new(src: Ipv4Addr, dst: SocketAddr) -> Client {
        Client { tx: None, src, dst, cookies: Vec::new() }
    }

    async fn get(&mut self, path: &str) -> u16 {
        if self.tx.is_none() {
            let Ok(tcp) = connect_from(self.src, self.dst).await else { return 0 };
            let Ok((tx, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await else { return 0 };
            tokio::spawn(conn);
            self.tx = Some(tx);
        }
        let Some(tx) = self.tx.as_mut() else { return 0 };
        let mut req = http::Request::get(path)
            .header("host", "shop.de")
            .header(
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
            )
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("accept-language", "de-DE,de;q=0.9")
            .header("accept-encoding", "gzip, br");
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookies.join("; "));
        }
        let Ok(resp) = tx.send_request(req.body(Full::new(Bytes::new())).unwrap()).await else {
            self.tx = None;
            return 0;
        };
        for c in resp.headers().get_all("set-cookie") {
            if let Some(pair) = c.to_str().ok().and_then(|c| c.split(';').next()) {
                let name = pair.split('=').next().unwrap_or("").to_string();
                self.cookies.retain(|k| !k.starts_with(&format!("{name}=")));
                self.cookies.push(pair.to_string());
            }
        }
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        status
    }
}

/// A residential-proxy botnet: `n` sources spread four to a /24, browser headers, cookies
/// and connections kept, each searching for random words (uncacheable) every `every`.
fn botnet(
    dst: SocketAddr,
    n: u32,
    every: Duration,
    stop: &Arc<AtomicBool>,
    sent: &Arc<AtomicU64>,
) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|k| {
            let (stop, sent) = (stop.clone(), sent.clone());
            tokio::spawn(async move {
                let src = Ipv4Addr::new(127, 60 + (k / 4 / 250) as u8, (k / 4 % 250) as u8, (k % 4 + 1) as u8);
                let mut c = Client::new(src, dst);
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut i = u64::from(k) * 7919;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let (a, b) = (WORDS[(i >> 33) as usize % WORDS.len()], (i >> 40) % 100_000);
                    c.get(&format!("/search?q={a}+{b}")).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(every).await;
                }
            })
        })
        .collect()
}

/// A newsletter's readers: each lands on the home page with a query of its own
/// (`utm_…`), loads its style sheet, then browses products. From their own addresses.
fn newsletter_readers(
    dst: SocketAddr,
    n: u32,
    think: Duration,
    stop: &Arc<AtomicBool>,
    sent: &Arc<AtomicU64>,
) -> Vec<JoinHandle<u64>> {
    (0..n)
        .map(|k| {
            let (stop, sent) = (stop.clone(), sent.clone());
            tokio::spawn(async move {
                let src = Ipv4Addr::new(127, 62, (k % 250) as u8, 1);
                let mut c = Client::new(src, dst);
                let mut ok = 0;
                let mut round = 0u64;
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let path = match round % 4 {
                        0 => format!("/?utm_source=newsletter&utm_campaign=advent&utm_id={k}x{round}"),
                        1 => "/static/shop.css".to_string(),
                        2 => format!("/p/{}", (u64::from(k) + round) % 12 + 1),
                        _ => "/c/spielzeug".to_string(),
                    };
                    ok += u64::from(c.get(&path).await == 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    round += 1;
                    tokio::time::sleep(think).await;
                }
                ok
            })
        })
        .collect()
}

/// The shop with its usual traffic (two shoppers, about 20 requests a second) until the
/// incident engine knows that rate; the shoppers go on until `stop`.
async fn shop_with_its_usual_rate(stop: &Arc<AtomicBool>) -> (crate::incidents::World, Vec<JoinHandle<u64>>) {
    let w = world("surge_min_rps = 5\n", None).await;
    let shop = shoppers(http_addr(&w.gw), 2, Duration::from_millis(100), stop);
    let known = eventually(Duration::from_secs(30), || async {
        status_json(&w.gw).await["incidents"]["usual"]["shop-de"]["established"] == true
    })
    .await;
    assert!(known, "{}", status_json(&w.gw).await["incidents"]);
    (w, shop)
}

/// Waits until `counter` has grown by `more`, asserting meanwhile that no incident of
/// `kind` is named.
async fn never_named_while(w: &crate::incidents::World, kind: &str, counter: &AtomicU64, more: u64) {
    let until = counter.load(Ordering::Relaxed) + more;
    let grew = eventually(Duration::from_secs(30), || async {
        let list = incidents(&w.gw).await;
        assert!(!kinds(&list).iter().any(|k| k == kind), "{kind} named: {list:#?}");
        counter.load(Ordering::Relaxed) >= until
    })
    .await;
    assert!(grew, "the traffic went on");
}

#[tokio::test]
async fn a_residential_botnet_that_looks_like_shoppers_is_a_flood_and_no_crowd() {
    let stop = Arc::new(AtomicBool::new(false));
    let (w, shop) = shop_with_its_usual_rate(&stop).await;
    let addr = http_addr(&w.gw);
    // 400 sources, four to a /24, about 500 searches a second together.
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let bots = botnet(addr, 400, Duration::from_millis(800), &stop, &sent);
    let (i, took) = named(&w.gw, "flood", VERDICT).await.expect("the botnet, named a flood within 10 s");
    println!("residential botnet named a flood {took:?} after it began");
    assert!(started.elapsed() >= took);
    assert!(i["facts"]["sources"].as_u64().is_some_and(|n| n > 100), "{i}");
    // Its first requests (each a new connection without a cookie) gave it away first;
    // once the bots keep their cookies and connections, their browsing does, in words.
    let told = eventually(VERDICT, || async {
        incidents(&w.gw).await.iter().any(|i| {
            i["kind"] == "flood" && i["facts"]["signature"].as_str().is_some_and(|s| s.contains("no person browses so"))
        })
    })
    .await;
    assert!(told, "what told it apart, in words: {:#?}", incidents(&w.gw).await);
    // Another 3,000 of its searches: never a flash crowd, nothing said of shoppers surging.
    never_named_while(&w, "flash_crowd", &sent, 3000).await;
    stop.store(true, Ordering::SeqCst);
    for b in bots {
        let _ = b.await;
    }
    futures_sum(shop).await;
    let all = kinds(&incidents(&w.gw).await);
    assert!(!all.contains(&"flash_crowd".to_string()), "{all:?}");
}

#[tokio::test]
async fn a_newsletter_crowd_with_a_query_of_its_own_per_landing_is_a_flash_crowd_never_a_flood() {
    let stop = Arc::new(AtomicBool::new(false));
    let (w, shop) = shop_with_its_usual_rate(&stop).await;
    let addr = http_addr(&w.gw);
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let readers = newsletter_readers(addr, 60, Duration::from_millis(100), &stop, &sent);
    let (i, took) = named(&w.gw, "flash_crowd", VERDICT).await.expect("the newsletter's crowd, named within 10 s");
    println!("newsletter crowd named {took:?} after it began");
    assert!(started.elapsed() >= took);
    let evidence = i["evidence"].to_string();
    assert!(evidence.contains("origin requests per shopper request"), "{i}");
    // Another 3,000 of their requests: never a flood.
    never_named_while(&w, "flood", &sent, 3000).await;
    stop.store(true, Ordering::SeqCst);
    let served = futures_sum(readers).await;
    futures_sum(shop).await;
    assert!(served > 100, "{served}");
    let all = kinds(&incidents(&w.gw).await);
    assert!(!all.contains(&"flood".to_string()), "{all:?}");
}
