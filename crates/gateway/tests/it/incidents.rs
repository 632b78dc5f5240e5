//! Incidents named from real failures and floods through real sockets: shop origins with
//! injected faults, shoppers on keep-alive connections, a LOIC-style flood from many
//! loopback addresses. Each must be named with the right kind within 10 s of the fault,
//! and none of the wrong ones; then shown on the status page (no internals), told to a
//! webhook receiver (signed), reported, and kept across a restart.

use crate::common::*;
use bytes::Bytes;
use holdfast_gateway::Gateway;
use holdfast_shop::{Fault, Shop, ShopConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// The time every kind must be named in, from the fault.
pub(crate) const VERDICT: Duration = Duration::from_secs(10);

pub(crate) struct World {
    pub(crate) gw: Gateway,
    west: Vec<Arc<Shop>>,
}

/// shop-de: eu-west (two origins), then eu-central (one). `extra` goes into the config.
pub(crate) async fn world(extra: &str, capacity: Option<u32>) -> World {
    let mut west = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let mut cfg = ShopConfig::new("shop-de", "de", "eu-west");
        cfg.capacity = capacity;
        let (a, s) = holdfast_shop::spawn(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        addrs.push(format!("\"{a}\""));
        west.push(s);
    }
    let (c, _central) =
        holdfast_shop::spawn(ShopConfig::new("shop-de", "de", "eu-central"), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let text = format!(
        r#"[listen]
http = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
status = "127.0.0.1:0"
[log]
access = false
[timeouts]
connect = "300ms"
origin_response = "4s"
[incidents]
resolve_after = "2s"
{extra}
[[datacenter]]
name = "eu-west"
[[datacenter]]
name = "eu-central"
[[site]]
name = "shop-de"
hosts = ["shop.de", "shop.test"]
language = "de"
  [site.health]
  interval = "200ms"
  timeout = "150ms"
  [site.cache]
  enabled = false
  [site.failover]
  slow_start = "1s"
  [[site.pool]]
  datacenter = "eu-west"
  origins = [{}]
  [[site.pool]]
  datacenter = "eu-central"
  origins = ["{c}"]
"#,
        addrs.join(", ")
    );
    World { gw: gateway(&text).await, west }
}

impl World {
    fn set_west(&self, f: Fault) {
        for s in &self.west {
            s.faults.set(f);
        }
    }
}

/// Shoppers from the gateway's own host (never judged by the shield) on keep-alive
/// connections, each a request every `think`, until `stop` (or 120 s). Returns their
/// answered-request counts.
pub(crate) fn shoppers(addr: SocketAddr, n: usize, think: Duration, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    (0..n)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut ok = 0;
                let mut sender = None;
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    if sender.is_none() {
                        let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else { continue };
                        let Ok((s, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await else {
                            continue;
                        };
                        tokio::spawn(conn);
                        sender = Some(s);
                    }
                    let Some(s) = sender.as_mut() else { continue };
                    n += 1;
                    let req = http::Request::get(format!("/p/{}?s={i}&n={n}", n % 12 + 1))
                        .header("host", "shop.de")
                        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
                        .header("accept", "text/html")
                        .header("cookie", "cart=1")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    match s.send_request(req).await {
                        Ok(resp) => {
                            ok += u64::from(resp.status().is_success());
                            let _ = resp.into_body().collect().await;
                        }
                        Err(_) => sender = None,
                    }
                    tokio::time::sleep(think).await;
                }
                ok
            })
        })
        .collect()
}

pub(crate) async fn incidents(gw: &Gateway) -> Vec<Value> {
    let (_, _, body) = get(gw.admin_addr.unwrap(), "admin", "/incidents.json").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    v["incidents"].as_array().unwrap().clone()
}

/// Waits (up to `limit`) for an incident of `kind`; returns it and how long it took.
pub(crate) async fn named(gw: &Gateway, kind: &str, limit: Duration) -> Option<(Value, Duration)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(i) = incidents(gw).await.into_iter().find(|i| i["kind"] == kind) {
            return Some((i, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

pub(crate) fn kinds(list: &[Value]) -> Vec<String> {
    list.iter().map(|i| i["kind"].as_str().unwrap().to_string()).collect()
}

async fn status_get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    // The page asked for by one of the site's hosts speaks its language by default.
    let mut req = http::Request::get(path).header("host", "shop.de");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (s, _, body) = send(gw.status_addr.unwrap(), req.body(Full::new(Bytes::new())).unwrap()).await;
    (s, body)
}

/// What the public page and API must never show: origin or client addresses, prefixes,
/// admin paths.
fn assert_no_internals(text: &str, gw: &Gateway) {
    for secret in
        ["127.0.0.1", "127.3.", "/admin", "/status.json", "/metrics", &gw.admin_addr.unwrap().port().to_string()]
    {
        assert!(!text.contains(secret), "the status page shows {secret:?}: {text}");
    }
}

async fn black_holed_or_refused(fault: Fault, mode: &str) {
    let w = world("", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let shop = shoppers(http_addr(&w.gw), 4, Duration::from_millis(50), &stop);
    // Traffic for a few seconds, then eu-west fails.
    assert!(
        eventually(Duration::from_secs(10), || async {
            status_json(&w.gw).await["requests"]["in_flight"].as_i64().is_some()
        })
        .await
    );
    tokio::task::yield_now().await;
    let fault_at = Instant::now();
    w.set_west(fault);
    let (i, took) = named(&w.gw, "datacenter_failure", VERDICT).await.expect("named within 10 s");
    println!("datacenter_failure ({mode}) named {took:?} after the fault");
    assert!(fault_at.elapsed() >= took);
    assert_eq!(i["datacenters"], serde_json::json!(["eu-west"]));
    assert_eq!(i["sites"], serde_json::json!(["shop-de"]));
    assert_eq!(i["facts"]["mode"], mode, "{i}");
    // Where the traffic went shows as it goes there.
    let moved = eventually(VERDICT, || async {
        incidents(&w.gw).await[0]["facts"]["moved_to"] == serde_json::json!(["eu-central"])
    })
    .await;
    assert!(moved, "{:?}", incidents(&w.gw).await);
    assert_eq!(i["status"], "open");
    assert!(i["summary"].as_str().unwrap().contains("eu-west"), "{i}");
    assert!(!i["evidence"].as_array().unwrap().is_empty());
    for field in ["id", "started_at", "resolved_at", "confidence", "related", "updates", "impact"] {
        assert!(i.get(field).is_some(), "{field} in {i}");
    }
    assert_eq!(kinds(&incidents(&w.gw).await), vec!["datacenter_failure"], "and nothing else");

    // The status page says so, in the site's language, with nothing internal.
    let (s, html) = status_get(&w.gw, "/", &[]).await;
    assert_eq!(s, 200);
    assert!(html.contains("lang=\"de\"") && html.contains("Ersatz-Rechenzentrum"), "{html}");
    assert!(html.contains("Ausfall des Rechenzentrums eu-west"), "{html}");
    assert_no_internals(&html, &w.gw);
    let (_, fr) = status_get(&w.gw, "/?lang=fr", &[]).await;
    assert!(fr.contains("lang=\"fr\"") && fr.contains("Panne du centre de données eu-west"), "{fr}");
    let (_, it) = status_get(&w.gw, "/", &[("accept-language", "it-CH, it;q=0.9, en;q=0.5")]).await;
    assert!(it.contains("lang=\"it\"") && it.contains("Guasto del data center eu-west"), "{it}");
    let (_, feed) = status_get(&w.gw, "/history.atom", &[]).await;
    assert!(feed.contains("<feed") && feed.contains("urn:holdfast:incident:datacenter-failure-eu-west-"), "{feed}");
    assert_no_internals(&feed, &w.gw);
    let (_, summary) = status_get(&w.gw, "/api/v2/summary.json", &[]).await;
    assert_no_internals(&summary, &w.gw);
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["components"][0]["name"], "shop-de");
    assert_eq!(summary["components"][0]["status"], "degraded_performance");
    assert_eq!(summary["incidents"][0]["holdfast"]["kind"], "datacenter_failure");
    assert!(["minor", "major", "critical"].contains(&summary["status"]["indicator"].as_str().unwrap()), "{summary}");

    // The report.
    let id = i["id"].as_str().unwrap();
    let (s, _, report) = get(w.gw.admin_addr.unwrap(), "admin", &format!("/incidents/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(report.matches("<svg").count(), 3, "requests, data centers, shield");

    // It heals: the incident resolves, the page is calm again.
    w.set_west(Fault::None);
    let resolved = eventually(Duration::from_secs(20), || async {
        incidents(&w.gw).await.iter().all(|i| i["status"] == "resolved")
    })
    .await;
    assert!(resolved, "{:?}", incidents(&w.gw).await);
    stop.store(true, Ordering::SeqCst);
    let served: u64 = futures_sum(shop).await;
    assert!(served > 50, "shoppers were served throughout: {served}");
}

pub(crate) async fn futures_sum(tasks: Vec<JoinHandle<u64>>) -> u64 {
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    n
}

#[tokio::test]
async fn a_black_holed_data_center_is_named_as_such() {
    black_holed_or_refused(Fault::Blackhole, "blackhole").await;
}

#[tokio::test]
async fn a_refused_data_center_is_named_as_such() {
    black_holed_or_refused(Fault::Refused, "refused").await;
}

/// A LOIC request: no User-Agent, a new connection, a cache-busting target.
async fn loic(src: Ipv4Addr, dst: SocketAddr, i: u32) {
    let Ok(mut s) = connect_from(src, dst).await else { return };
    let req = format!("GET /p/1?{i:08x} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_ok() {
        let _ = read_all(&mut s, Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_thin_flood_from_many_addresses_is_named_a_flood_and_shoppers_are_served() {
    let w = world("[shield.signatures]\nflood_rate = 20\n", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let shop = shoppers(http_addr(&w.gw), 3, Duration::from_millis(50), &stop);
    let started = Instant::now();
    // 2,000 addresses in 64 prefixes, a request or two each: no per-address limit sees it.
    let sent = Arc::new(AtomicU64::new(0));
    let flood = loic_flood(http_addr(&w.gw), &stop, 4, &sent);
    let (i, took) = named(&w.gw, "flood", VERDICT).await.expect("a flood, named within 10 s");
    println!("flood named {took:?} after it began ({} requests sent)", sent.load(Ordering::SeqCst));
    assert!(started.elapsed() >= took);
    assert!(i["facts"]["sources"].as_u64().unwrap() > 0, "{i}");
    stop.store(true, Ordering::SeqCst);
    let _ = flood.await;
    let all = incidents(&w.gw).await;
    for wrong in ["datacenter_failure", "flash_crowd", "origin_failure"] {
        assert!(!kinds(&all).contains(&wrong.to_string()), "{wrong}: {all:?}");
    }
    let i = incidents(&w.gw).await.into_iter().find(|i| i["kind"] == "flood").unwrap();
    assert!(i["impact"]["flood_blocked"].as_u64().unwrap() > 0, "{i}");
    let (_, summary) = status_get(&w.gw, "/api/v2/summary.json", &[]).await;
    assert_no_internals(&summary, &w.gw);
    let served = futures_sum(shop).await;
    assert!(served > 20, "shoppers were served during the flood: {served}");
}

#[tokio::test]
async fn ten_times_the_shoppers_is_a_flash_crowd_not_an_attack() {
    let w = world("surge_min_rps = 5\n", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let addr = http_addr(&w.gw);
    // Two shoppers (about 20 requests a second) until the engine knows the usual rate ...
    let mut shop = shoppers(addr, 2, Duration::from_millis(100), &stop);
    let known = eventually(Duration::from_secs(30), || async {
        status_json(&w.gw).await["incidents"]["usual"]["shop-de"]["established"] == true
    })
    .await;
    assert!(known, "{}", status_json(&w.gw).await["incidents"]);
    // ... then twenty.
    let surge_at = Instant::now();
    shop.extend(shoppers(addr, 18, Duration::from_millis(100), &stop));
    let (i, took) = named(&w.gw, "flash_crowd", VERDICT).await.expect("a flash crowd, named within 10 s");
    println!("flash_crowd named {took:?} after the surge began");
    assert!(surge_at.elapsed() >= took);
    assert!(i["summary"].as_str().unwrap().contains("not an attack"), "{i}");
    stop.store(true, Ordering::SeqCst);
    futures_sum(shop).await;
    assert!(!kinds(&incidents(&w.gw).await).contains(&"flood".to_string()));
}

/// Slowloris: 120 connections from 60 addresses, each sending a request head a line at a
/// time and never finishing it. No request ever arrives, yet it is an attack: named a
/// flood, with its signature, within 10 s; shoppers are served meanwhile.
#[tokio::test]
async fn slowloris_is_named_a_flood() {
    let w = world("", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let shop = shoppers(http_addr(&w.gw), 3, Duration::from_millis(50), &stop);
    let addr = http_addr(&w.gw);
    let started = Instant::now();
    let attackers: Vec<_> = (0..120u32)
        .map(|k| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let src = Ipv4Addr::new(127, 50, (k % 60) as u8, 1);
                let Ok(mut s) = connect_from(src, addr).await else { return };
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n").await;
                // A header line every half second, for at most 20 s.
                for n in 0..40 {
                    if stop.load(Ordering::SeqCst) || s.write_all(format!("X-a{n}: b\r\n").as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        })
        .collect();
    let (i, took) = named(&w.gw, "flood", VERDICT).await.expect("slowloris, named a flood within 10 s");
    println!("slowloris named {took:?} after it began");
    assert!(started.elapsed() >= took);
    assert!(i["facts"]["signature"].as_str().is_some_and(|s| s.contains("slowloris")), "{i}");
    assert!(i["facts"]["sources"].as_u64().is_some_and(|n| (50..=70).contains(&n)), "{i}");
    stop.store(true, Ordering::SeqCst);
    for a in attackers {
        let _ = a.await;
    }
    assert!(futures_sum(shop).await > 20, "shoppers were served");
    let all = kinds(&incidents(&w.gw).await);
    assert_eq!(all, vec!["flood"], "nothing else");
}

/// Runs a LOIC flood from 2,000 addresses (in 64 prefixes), each sending `rounds`
/// requests, until `stop`; counts what it sent in `sent`.
fn loic_flood(addr: SocketAddr, stop: &Arc<AtomicBool>, rounds: u32, sent: &Arc<AtomicU64>) -> JoinHandle<()> {
    let (stop, sent) = (stop.clone(), sent.clone());
    tokio::spawn(async move {
        for round in 0..rounds {
            for batch in (0..2000u32).collect::<Vec<_>>().chunks(50) {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let tasks: Vec<_> = batch
                    .iter()
                    .map(|&k| {
                        let src = Ipv4Addr::new(127, 40 + (k % 64) as u8, (k / 64) as u8, 1 + round as u8);
                        tokio::spawn(loic(src, addr, k + round * 2000))
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
                sent.fetch_add(batch.len() as u64, Ordering::SeqCst);
            }
        }
    })
}

/// December 2010: eu-west's network fails during a flood. Both are named, apart and linked:
/// the data-center failure as the cause of the errors, the flood as absorbed.
#[tokio::test]
async fn a_datacenter_failure_during_a_flood_is_named_as_both() {
    let w = world("[shield.signatures]\nflood_rate = 20\n", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let shop = shoppers(http_addr(&w.gw), 3, Duration::from_millis(50), &stop);
    let flood = loic_flood(http_addr(&w.gw), &stop, 20, &Arc::new(AtomicU64::new(0)));
    assert!(named(&w.gw, "flood", VERDICT).await.is_some(), "the flood");
    w.set_west(Fault::Blackhole);
    let (dcf, took) = named(&w.gw, "datacenter_failure", VERDICT).await.expect("and the data-center failure");
    println!("datacenter_failure during a flood named {took:?} after the fault");
    assert_eq!(dcf["facts"]["mode"], "blackhole");
    let linked = eventually(VERDICT, || async {
        let all = incidents(&w.gw).await;
        let flood = all.iter().find(|i| i["kind"] == "flood").cloned().unwrap_or_default();
        let dcf = all.iter().find(|i| i["kind"] == "datacenter_failure").cloned().unwrap_or_default();
        flood["related"].as_array().is_some_and(|r| r.contains(&dcf["id"]))
            && dcf["related"].as_array().is_some_and(|r| r.contains(&flood["id"]))
            && dcf["summary"].as_str().is_some_and(|s| s.contains("not from the flood"))
    })
    .await;
    assert!(linked, "{:#?}", incidents(&w.gw).await);
    stop.store(true, Ordering::SeqCst);
    let _ = flood.await;
    futures_sum(shop).await;
    let all = kinds(&incidents(&w.gw).await);
    assert!(!all.contains(&"flash_crowd".to_string()) && !all.contains(&"origin_failure".to_string()), "{all:?}");
}

/// Shoppers beyond what the origins can serve: an overload (the origins queue and answer
/// 503), not a failure and not an attack.
#[tokio::test]
async fn a_rush_beyond_the_origins_capacity_is_an_overload() {
    // Each eu-west origin serves 10 requests a second; forty shoppers want far more.
    let w = world("", Some(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let shop = shoppers(http_addr(&w.gw), 40, Duration::from_millis(20), &stop);
    let Some((i, took)) = named(&w.gw, "overload", VERDICT).await else {
        let st = status_json(&w.gw).await;
        panic!(
            "no overload within 10 s: {} {} {:?}",
            st["shield"]["sites"],
            st["incidents"],
            kinds(&incidents(&w.gw).await)
        );
    };
    println!("overload named {took:?} after the rush began");
    assert!(started.elapsed() >= took);
    assert!(i["facts"]["reason"].as_str().is_some(), "{i}");
    stop.store(true, Ordering::SeqCst);
    futures_sum(shop).await;
    let list = incidents(&w.gw).await;
    let all = kinds(&list);
    for wrong in ["flood", "datacenter_failure"] {
        assert!(!all.contains(&wrong.to_string()), "{list:#?}");
    }
}

/// One origin of a pool of two restarts (refuses for a few seconds): at most a minor
/// origin failure, never a data-center failure.
#[tokio::test]
async fn one_origin_restarting_is_at_most_a_minor_origin_failure() {
    let w = world("", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let shop = shoppers(http_addr(&w.gw), 4, Duration::from_millis(50), &stop);
    w.west[0].faults.set(Fault::Refused);
    let (i, _) = named(&w.gw, "origin_failure", VERDICT).await.expect("an origin failure");
    assert_eq!(i["severity"], "minor", "{i}");
    assert_eq!(i["datacenters"], serde_json::json!(["eu-west"]));
    w.west[0].faults.set(Fault::None);
    let resolved = eventually(Duration::from_secs(20), || async {
        incidents(&w.gw).await.iter().all(|i| i["status"] == "resolved")
    })
    .await;
    assert!(resolved);
    stop.store(true, Ordering::SeqCst);
    futures_sum(shop).await;
    assert_eq!(kinds(&incidents(&w.gw).await), vec!["origin_failure"], "nothing else");
}

/// A webhook receiver: records what it is sent; answers 503 to the first `fail` posts.
struct Receiver {
    addr: SocketAddr,
    got: Arc<std::sync::Mutex<Vec<(http::HeaderMap, Value)>>>,
    /// The bodies as they came, byte for byte.
    raw: Arc<std::sync::Mutex<Vec<Bytes>>>,
}

async fn receiver(fail: usize) -> Receiver {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<std::sync::Mutex<Vec<(http::HeaderMap, Value)>>> = Default::default();
    let raw: Arc<std::sync::Mutex<Vec<Bytes>>> = Default::default();
    let seen = Arc::new(AtomicU64::new(0));
    let (g, r) = (got.clone(), raw.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (g, r, seen) = (g.clone(), r.clone(), seen.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (g, r, seen) = (g.clone(), r.clone(), seen.clone());
                    async move {
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let n = seen.fetch_add(1, Ordering::SeqCst) as usize;
                        let status = if n < fail {
                            503
                        } else {
                            g.lock().unwrap().push((headers, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                            r.lock().unwrap().push(body);
                            200
                        };
                        let mut r = http::Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    Receiver { addr, got, raw }
}

/// HMAC-SHA256 of `body` under `secret`, as the receiver checks it (from RFC 2104, with
/// SHA-256 from ring).
fn hmac_sha256(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[tokio::test]
async fn webhooks_are_told_signed_and_the_history_survives_a_restart() {
    let json_hook = receiver(1).await; // its first delivery fails: retried
    let am = receiver(0).await;
    let dir = std::env::temp_dir().join(format!("holdfast-incidents-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let extra = format!(
        "state_dir = {:?}\n[[incidents.webhook]]\nurl = \"http://{}/hook\"\nformat = \"json\"\nsecret = \"s3cret\"\n\
         [[incidents.webhook]]\nurl = \"http://{}/api/v2/alerts\"\nformat = \"alertmanager\"\n",
        dir.display().to_string(),
        json_hook.addr,
        am.addr
    );
    let w = world(&extra, None).await;
    w.set_west(Fault::Refused);
    let (i, _) = named(&w.gw, "datacenter_failure", VERDICT).await.expect("named");
    let id = i["id"].as_str().unwrap().to_string();
    w.set_west(Fault::None);
    let told = eventually(Duration::from_secs(30), || async {
        let got = json_hook.got.lock().unwrap();
        got.iter().any(|(_, b)| b["event"] == "opened") && got.iter().any(|(_, b)| b["event"] == "resolved")
    })
    .await;
    assert!(told, "{:?}", json_hook.got.lock().unwrap().iter().map(|(_, b)| b["event"].clone()).collect::<Vec<_>>());
    {
        let got = json_hook.got.lock().unwrap();
        let (headers, body) = &got[0];
        assert_eq!(body["incident"]["id"], id.as_str());
        let raw = json_hook.raw.lock().unwrap()[0].clone();
        let signature = headers["x-holdfast-signature"].to_str().unwrap();
        assert_eq!(signature, hmac_sha256(b"s3cret", &raw), "the signature is over the bytes sent");
        assert_ne!(signature, hmac_sha256(b"wrong", &raw));
    }
    let alerts = eventually(Duration::from_secs(30), || async {
        am.got.lock().unwrap().iter().any(|(_, b)| b["status"] == "resolved")
    })
    .await;
    assert!(alerts);
    {
        let got = am.got.lock().unwrap();
        let (_, first) = &got[0];
        assert_eq!(first["version"], "4");
        assert_eq!(first["status"], "firing");
        assert_eq!(first["alerts"][0]["labels"]["kind"], "datacenter_failure");
        assert!(first["alerts"][0]["startsAt"].as_str().unwrap().ends_with('Z'));
    }
    // A restart on the same state directory keeps the history.
    w.gw.stop().await;
    let w = world(&extra, None).await;
    let kept = incidents(&w.gw).await;
    assert!(kept.iter().any(|i| i["id"] == id.as_str() && i["status"] == "resolved"), "{kept:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fleet of two points of presence (docs/fleet.md): a data center unreachable from one of
/// them only is that point's own problem; unreachable from both, it is confirmed by both,
/// and every instance's `/incidents.json` and status page say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_confirms_a_failure_seen_from_every_point_of_presence() {
    let redis = crate::redis::Redis::start();
    let fleet = |pop: &str| format!("[fleet]\nredis = \"{}\"\ninstance = \"{pop}\"\n", redis.url());
    let a = world(&fleet("pop-a"), None).await;
    let b = world(&fleet("pop-b"), None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut shop = shoppers(http_addr(&a.gw), 3, Duration::from_millis(50), &stop);
    shop.extend(shoppers(http_addr(&b.gw), 3, Duration::from_millis(50), &stop));
    let dcf = |all: Vec<Value>| all.into_iter().find(|i| i["kind"] == "datacenter_failure");
    // From pop-a only (its path to eu-west, say): pop-a's own problem, on both pages.
    a.set_west(Fault::Blackhole);
    let only_a = eventually(VERDICT + Duration::from_secs(3), || async {
        let (ia, ib) = (dcf(incidents(&a.gw).await), dcf(incidents(&b.gw).await));
        [ia, ib].iter().all(|i| {
            i.as_ref().is_some_and(|i| {
                i["points_of_presence"] == serde_json::json!(["pop-a"])
                    && i["summary"].as_str().is_some_and(|s| s.contains("from pop-a only"))
            })
        })
    })
    .await;
    assert!(only_a, "{:#?}\n{:#?}", incidents(&a.gw).await, incidents(&b.gw).await);
    // From pop-b too: confirmed by both.
    b.set_west(Fault::Blackhole);
    let both = eventually(VERDICT + Duration::from_secs(3), || async {
        dcf(incidents(&b.gw).await).is_some_and(|i| {
            i["points_of_presence"] == serde_json::json!(["pop-a", "pop-b"])
                && i["seen_from"] == "2 of 2"
                && i["summary"].as_str().is_some_and(|s| s.contains("Seen from 2 of 2 points of presence"))
        })
    })
    .await;
    assert!(both, "{:#?}", incidents(&b.gw).await);
    let said = eventually(Duration::from_secs(5), || async {
        status_get(&a.gw, "/", &[]).await.1.contains("Bestätigt von 2 von 2 Standorten (pop-a, pop-b)")
    })
    .await;
    assert!(said, "the status page says who saw it: {}", status_get(&a.gw, "/", &[]).await.1);
    stop.store(true, Ordering::SeqCst);
    futures_sum(shop).await;
}
