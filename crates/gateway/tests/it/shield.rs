//! The shield with real sockets: clients bound to many source addresses in 127.0.0.0/8,
//! real origins, the admin API.

use crate::common::*;
use bytes::Bytes;
use holdfast_gateway::challenge;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const BROWSER: &[(&str, &str)] = &[
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("accept-language", "de-DE,de;q=0.9"),
    ("accept-encoding", "gzip"),
];

/// Waits until the gateway counts `n` client connections open.
async fn open_connections_become(gw: &holdfast_gateway::Gateway, n: u64) -> bool {
    eventually(Duration::from_secs(5), || async { status_json(gw).await["open_connections"].as_u64() == Some(n) }).await
}

/// The kinds of the events in a /status.json.
fn event_kinds(status: &serde_json::Value) -> Vec<&str> {
    status["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

async fn metrics(gw: &holdfast_gateway::Gateway) -> String {
    get(gw.admin_addr.unwrap(), "admin", "/metrics").await.2
}

fn shop(origin: SocketAddr, shield: &str) -> String {
    config(&[("shop", &["shop.test"], origin)], shield)
}

/// Whether the gateway closes a connection from `src` without reading from it.
async fn refused(src: Ipv4Addr, dst: SocketAddr) -> bool {
    get_from(src, dst, "/", BROWSER).await.is_none()
}

#[tokio::test]
async fn connection_caps_per_address_and_prefix() {
    let origin = echo_origin("o").await;
    let gw = gateway(&shop(origin.addr, "[shield.connections]\nper_address = 2\nper_prefix = 3\n")).await;
    let addr = http_addr(&gw);
    let a = Ipv4Addr::new(127, 3, 1, 1);
    let _c1 = connect_from(a, addr).await.unwrap();
    let _c2 = connect_from(a, addr).await.unwrap();
    assert!(open_connections_become(&gw, 2).await);
    assert!(refused(a, addr).await, "a third connection from the same address is closed");
    // Another address of the same /24 gets the prefix's last slot, then the prefix is full.
    let (status, _, _) = get_from(Ipv4Addr::new(127, 3, 1, 2), addr, "/", BROWSER).await.unwrap();
    assert_eq!(status, 200);
    assert!(open_connections_become(&gw, 2).await, "its connection is closed and given back");
    let _c3 = connect_from(Ipv4Addr::new(127, 3, 1, 3), addr).await.unwrap();
    assert!(open_connections_become(&gw, 3).await);
    assert!(refused(Ipv4Addr::new(127, 3, 1, 4), addr).await, "the prefix is at its cap");
    // Other prefixes are not affected.
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 2, 1), addr, "/", BROWSER).await.unwrap().0, 200);
    let m = metrics(&gw).await;
    assert!(
        m.contains("holdfast_shield_actions_total{action=\"close\",reason=\"connections_per_address\",site=\"-\"} 1"),
        "{m}"
    );
    assert!(m.contains("reason=\"connections_per_prefix\""));
    gw.stop().await;
}

#[tokio::test]
async fn new_connections_per_second_per_address() {
    let origin = echo_origin("o").await;
    let gw = gateway(&shop(origin.addr, "[shield.connections]\nnew_per_second = { rate = 0.1, burst = 3 }\n")).await;
    let addr = http_addr(&gw);
    let a = Ipv4Addr::new(127, 3, 3, 1);
    for _ in 0..3 {
        assert_eq!(get_from(a, addr, "/", BROWSER).await.unwrap().0, 200);
    }
    assert!(refused(a, addr).await, "the fourth new connection in a burst of three");
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 3, 2), addr, "/", BROWSER).await.unwrap().0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn static_and_dynamic_block_lists() {
    let origin = echo_origin("o").await;
    let gw = gateway(&shop(origin.addr, "[shield]\nblock = [\"127.3.4.0/24\"]\n")).await;
    let addr = http_addr(&gw);
    assert!(refused(Ipv4Addr::new(127, 3, 4, 9), addr).await);
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "a blocked client never reaches an origin");
    let other = Ipv4Addr::new(127, 3, 5, 9);
    assert_eq!(get_from(other, addr, "/", BROWSER).await.unwrap().0, 200);
    // Block through the admin API, then lift it.
    let admin = gw.admin_addr.unwrap();
    let post = |path: &str| Request::post(path).header("host", "admin").body(Full::new(Bytes::new())).unwrap();
    let (s, _, body) = send(admin, post("/admin/block?prefix=127.3.5.0%2F24&for=10m")).await;
    assert_eq!(s, 200, "{body}");
    assert!(refused(other, addr).await);
    let st = status_json(&gw).await;
    assert_eq!(st["shield"]["blocked"][0]["prefix"], "127.3.5.0/24");
    assert!(st["shield"]["blocked"][0]["remaining_seconds"].as_u64().unwrap() > 500);
    assert_eq!(send(admin, post("/admin/block?prefix=nonsense")).await.0, 400);
    assert_eq!(send(admin, post("/admin/block?prefix=127.3.6.0/24&for=soon")).await.0, 400);
    assert_eq!(
        send(admin, post("/admin/block?prefix=127.3.6.0/24&for=9999999999y")).await.0,
        200,
        "capped, not a panic"
    );
    assert_eq!(send(admin, post("/admin/unblock?prefix=127.3.5.0/24")).await.0, 200);
    assert_eq!(get_from(other, addr, "/", BROWSER).await.unwrap().0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn rate_limits_per_address_prefix_and_class_with_their_actions() {
    let origin = echo_origin("o").await;
    let shield = "[shield.rate]\nper_address = { rate = 0.1, burst = 5 }\nper_prefix = { rate = 0.1, burst = 8 }\n\
        [[shield.rate.class]]\nname = \"search\"\npaths = [\"/search\"]\nper_address = { rate = 0.1, burst = 2 }\naction = \"close\"\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let addr = http_addr(&gw);
    let a = Ipv4Addr::new(127, 3, 6, 1);
    for _ in 0..5 {
        assert_eq!(get_from(a, addr, "/", BROWSER).await.unwrap().0, 200);
    }
    let (status, headers, body) = get_from(a, addr, "/", BROWSER).await.unwrap();
    assert_eq!(status, 429);
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(body.contains("Zu viele Anfragen"), "the site's language: {body}");
    // The prefix allows 8 in all: 3 more from another address of it, then 429.
    let b = Ipv4Addr::new(127, 3, 6, 2);
    for _ in 0..3 {
        assert_eq!(get_from(b, addr, "/", BROWSER).await.unwrap().0, 200);
    }
    assert_eq!(get_from(b, addr, "/", BROWSER).await.unwrap().0, 429);
    // The search class: two, then the connection is closed without an answer.
    let c = Ipv4Addr::new(127, 3, 7, 1);
    assert_eq!(get_from(c, addr, "/search?q=a", BROWSER).await.unwrap().0, 200);
    assert_eq!(get_from(c, addr, "/search?q=b", BROWSER).await.unwrap().0, 200);
    assert!(get_from(c, addr, "/search?q=c", BROWSER).await.is_none());
    assert_eq!(get_from(c, addr, "/searching", BROWSER).await.unwrap().0, 200, "not the class");
    let m = metrics(&gw).await;
    assert!(m.contains("action=\"reject\",reason=\"rate_address\",site=\"shop\"} 1"), "{m}");
    assert!(m.contains("action=\"reject\",reason=\"rate_prefix\",site=\"shop\"} 1"));
    assert!(m.contains("action=\"close\",reason=\"rate_class\",site=\"shop\"} 1"));
    assert_eq!(origin.hits.load(Ordering::SeqCst), 11);
    let st = status_json(&gw).await;
    let top: Vec<String> = st["shield"]["top_offenders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["prefix"].as_str().unwrap().to_string())
        .collect();
    assert!(top.contains(&"127.3.6.0/24".to_string()), "{top:?}");
    gw.stop().await;
}

/// LOIC's request: a new connection, `GET /path` with a random suffix, a Host header and
/// (so that the test need not wait for a timeout) `Connection: close`.
async fn loic(src: Ipv4Addr, dst: SocketAddr, i: u32) -> Option<String> {
    let mut s = connect_from(src, dst).await.ok()?;
    let suffix: String = (0..6).map(|k| (b'A' + ((i * 7 + k * 13) % 26) as u8) as char).collect();
    let req = format!("GET /checkout{suffix} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let (text, _) = read_all(&mut s, Duration::from_secs(2)).await;
    Some(text)
}

/// Runs `n` LOIC requests, 40 at a time, from the addresses `src(i)` gives; returns the
/// answers (empty when the connection was closed without one).
pub(crate) async fn flood(n: u32, dst: SocketAddr, src: impl Fn(u32) -> Ipv4Addr) -> Vec<String> {
    let mut out = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(40) {
        let tasks: Vec<_> = batch.iter().map(|&i| tokio::spawn(loic(src(i), dst, i))).collect();
        for t in tasks {
            out.push(t.await.ok().flatten().unwrap_or_default());
        }
    }
    out
}

#[tokio::test]
async fn a_thin_flood_is_recognised_and_its_prefixes_blocked_while_shoppers_are_served() {
    let origin = echo_origin("o").await;
    let shield = "[shield.signatures]\nflood_rate = 20\nmin_requests = 8\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let addr = http_addr(&gw);
    // 240 requests from 60 addresses in four /24s: four requests per address, so no
    // per-address limit could see it.
    let answers = flood(240, addr, |i| Ipv4Addr::new(127, 3, 10 + (i % 4) as u8, 1 + (i % 60) as u8)).await;
    let answered = answers.iter().filter(|t| t.starts_with("HTTP/1.1 200")).count();
    let reached = origin.hits.load(Ordering::SeqCst);
    assert!(reached < 60, "{reached} of 240 flood requests reached the origin");
    assert_eq!(answered, reached);
    // The flood's start is announced by the shield's next tick (every 250 ms).
    let mut st = status_json(&gw).await;
    for _ in 0..20 {
        if event_kinds(&st).contains(&"flood_started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        st = status_json(&gw).await;
    }
    assert_eq!(st["shield"]["flood"]["active"], true);
    let blocked: Vec<&str> =
        st["shield"]["blocked"].as_array().unwrap().iter().map(|b| b["prefix"].as_str().unwrap()).collect();
    assert_eq!(blocked.len(), 4, "{blocked:?}");
    assert!(st["shield"]["blocked"][0]["reason"].as_str().unwrap().contains("without User-Agent"));
    let events = event_kinds(&st);
    assert!(events.contains(&"flood_started") && events.contains(&"prefix_blocked"), "{events:?}");
    // Blocked prefixes are closed on accept; a shopper elsewhere is served.
    assert!(refused(Ipv4Addr::new(127, 3, 10, 200), addr).await);
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 20, 1), addr, "/", BROWSER).await.unwrap().0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn dry_run_reports_and_blocks_nothing() {
    let origin = echo_origin("o").await;
    let shield = "[shield]\nmode = \"dry-run\"\nblock = [\"127.3.31.0/24\"]\n[shield.signatures]\nflood_rate = 20\n[shield.rate]\nper_address = { rate = 0.1, burst = 2 }\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let addr = http_addr(&gw);
    flood(120, addr, |i| Ipv4Addr::new(127, 3, 30, 1 + (i % 30) as u8)).await;
    assert_eq!(origin.hits.load(Ordering::SeqCst), 120, "everything passes");
    let st = status_json(&gw).await;
    assert!(st["shield"]["blocked"].as_array().unwrap().is_empty());
    let m = metrics(&gw).await;
    assert!(m.contains("action=\"report\",reason=\"flood_signature\""), "{m}");
    assert!(m.contains("action=\"dry_run_reject\",reason=\"rate_address\""));
    assert_eq!(
        get_from(Ipv4Addr::new(127, 3, 31, 1), addr, "/", BROWSER).await.unwrap().0,
        200,
        "a blocked prefix is served"
    );
    let m = metrics(&gw).await;
    assert!(m.contains("action=\"dry_run_close\",reason=\"blocklist\",site=\"-\"} 1"), "{m}");
    gw.stop().await;
}

/// Solves the challenge in `page` as its script would and returns the verify URL.
fn answer(page: &str) -> String {
    let token = page.split("solve(\"").nth(1).unwrap().split('"').next().unwrap();
    let nonce = challenge::solve(token).unwrap();
    format!("{}?t={token}&n={nonce}&r=%2Fp%2F3", challenge::VERIFY_PATH)
}

#[tokio::test]
async fn the_challenge_earns_a_clearance_bound_to_the_prefix() {
    let origin = echo_origin("o").await;
    let shield = "[shield]\nallow = [\"127.3.99.0/24\"]\n[shield.challenge]\nmode = \"on\"\ndifficulty = 8\nexempt_paths = [\"/api/\"]\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let addr = http_addr(&gw);
    let me = Ipv4Addr::new(127, 3, 40, 1);
    let (status, headers, page) = get_from(me, addr, "/p/3", BROWSER).await.unwrap();
    assert_eq!(status, 403);
    assert_eq!(headers["holdfast-mitigated"], "challenge");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(page.contains("Wir prüfen Ihren Browser"));
    assert_eq!(origin.hits.load(Ordering::SeqCst), 0);
    // A wrong answer gets a new challenge; the right one a cookie and the way back.
    let (s, _, _) =
        get_from(me, addr, &format!("{}?t=1.8.00.00&n=1&r=%2F", challenge::VERIFY_PATH), BROWSER).await.unwrap();
    assert_eq!(s, 403);
    let (s, h, _) = get_from(me, addr, &answer(&page), BROWSER).await.unwrap();
    assert_eq!(s, 303);
    assert_eq!(h["location"], "/p/3");
    let set = h["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("holdfast_clearance=") && set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let mut with_cookie: Vec<(&str, &str)> = BROWSER.to_vec();
    with_cookie.push(("cookie", &cookie));
    assert_eq!(get_from(me, addr, "/p/3", &with_cookie).await.unwrap().0, 200);
    // The same cookie from another prefix is no clearance.
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 41, 1), addr, "/p/3", &with_cookie).await.unwrap().0, 403);
    // Exempt paths and allowed networks are never challenged.
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 42, 1), addr, "/api/orders", BROWSER).await.unwrap().0, 200);
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 99, 7), addr, "/p/3", BROWSER).await.unwrap().0, 200);
    let m = metrics(&gw).await;
    assert!(m.contains("action=\"pass\",reason=\"challenge_solved\",site=\"shop\"} 1"), "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn suspicious_requests_are_challenged_during_a_flood_and_browsers_are_not() {
    let origin = echo_origin("o").await;
    // Signatures off: only the flood detector and the challenge act here.
    let shield = "[shield.signatures]\nenabled = false\nflood_rate = 10\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let addr = http_addr(&gw);
    flood(80, addr, |i| Ipv4Addr::new(127, 3, 50, 1 + i as u8)).await;
    let text = loic(Ipv4Addr::new(127, 3, 51, 1), addr, 99).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 403") && text.contains("holdfast-mitigated: challenge"), "{text}");
    // A browser's first request during the flood: not suspicious, served.
    let (s, h, _) = get_from(Ipv4Addr::new(127, 3, 52, 1), addr, "/", BROWSER).await.unwrap();
    assert_eq!(s, 200);
    assert!(h["set-cookie"].to_str().unwrap().starts_with("holdfast_visitor="), "a visitor cookie on first visit");
    gw.stop().await;
}

#[tokio::test]
async fn saturated_origins_shed_by_priority() {
    let origin = echo_origin("o").await;
    let shield = "[shield.admission]\norigin_latency = \"100ms\"\npriority_paths = [\"/checkout\", \"/slow\"]\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let addr = http_addr(&gw);
    // A returning customer: a visitor cookie from before the surge.
    let (_, h, _) = get_from(Ipv4Addr::new(127, 3, 60, 1), addr, "/", BROWSER).await.unwrap();
    let visitor = h["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await; // cookie times have one-second resolution
                                                           // The origin slows down (every answer takes 300 ms) under a steady load of requests
                                                           // that are never shed: shedding starts and climbs until low priority is all shed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4u8)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                for _ in 0..40 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    get_from(Ipv4Addr::new(127, 3, 61, 1 + i), addr, "/slow/300", BROWSER).await;
                }
            })
        })
        .collect();
    let shedding = eventually(Duration::from_secs(8), || async {
        status_json(&gw).await["shield"]["sites"]["shop"]["shed_level"].as_f64().is_some_and(|l| l >= 1.0)
    })
    .await;
    assert!(shedding);
    // A new client's page: shed, 503 with Retry-After in the site's language.
    let (s, h, body) = get_from(Ipv4Addr::new(127, 3, 62, 1), addr, "/c/toys", BROWSER).await.unwrap();
    assert_eq!(s, 503, "{body}");
    assert_eq!(h["retry-after"], "5");
    assert!(body.contains("sehr viel los"));
    // Checkout and the returning customer are admitted.
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 62, 2), addr, "/checkout", BROWSER).await.unwrap().0, 200);
    let mut returning: Vec<(&str, &str)> = BROWSER.to_vec();
    returning.push(("cookie", &visitor));
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 62, 3), addr, "/c/toys", &returning).await.unwrap().0, 200);
    let st = status_json(&gw).await;
    assert!(st["shield"]["sites"]["shop"]["shed_total"].as_u64().unwrap() >= 1);
    let events = event_kinds(&st);
    assert!(events.contains(&"shedding_started"), "{events:?}");
    stop.store(true, Ordering::SeqCst);
    for l in load {
        let _ = l.await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_upload_is_cut_off() {
    let origin = echo_origin("o").await;
    let shield = "[shield.connections]\nmin_upload_rate = 1000\nupload_grace = \"500ms\"\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let addr = http_addr(&gw);
    let mut s = connect_from(Ipv4Addr::new(127, 3, 70, 1), addr).await.unwrap();
    s.write_all(b"POST /cart HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100000\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    for _ in 0..40 {
        if s.write_all(b"a").await.is_err() {
            break;
        }
        let (text, closed) = read_all(&mut s, Duration::from_millis(100)).await;
        answer.push_str(&text);
        if closed || !answer.is_empty() {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A quick upload of the same size passes.
    let req =
        Request::post("/cart").header("host", "shop.test").body(Full::new(Bytes::from(vec![b'a'; 100_000]))).unwrap();
    let (status, _, body) = send(addr, req).await;
    assert_eq!(status, 200);
    assert!(body.contains("body-bytes: 100000"));
    gw.stop().await;
}

#[tokio::test]
async fn proxy_protocol_and_forwarded_names_the_client_for_the_shield() {
    let origin = echo_origin("o").await;
    let extra = "[proxy]\ntrusted_proxies = [\"127.3.80.1/32\"]\nproxy_protocol = true\n[shield]\nblock = [\"198.51.100.0/24\"]\n\
        [shield.rate]\nper_address = { rate = 0.1, burst = 2 }\n";
    let gw = gateway(&shop(origin.addr, extra)).await;
    let addr = http_addr(&gw);
    let proxy = Ipv4Addr::new(127, 3, 80, 1);
    let through = |client: &'static str| async move {
        let mut s = connect_from(proxy, addr).await.unwrap();
        let header = proxy_v2_header(client.parse().unwrap(), addr);
        s.write_all(&header).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: t\r\nAccept: */*\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        read_all(&mut s, Duration::from_secs(2)).await.0
    };
    let text = through("203.0.113.7:4000").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("x-forwarded-for: 203.0.113.7"), "the origin sees the real client: {text}");
    assert_eq!(through("198.51.100.5:1").await, "", "the named client is blocked");
    // Rate limits count the named client, not the proxy.
    assert!(through("203.0.113.7:4001").await.starts_with("HTTP/1.1 200"));
    assert!(through("203.0.113.7:4002").await.starts_with("HTTP/1.1 429"));
    assert!(through("203.0.113.8:4000").await.starts_with("HTTP/1.1 200"));
    // A trusted proxy that does not send the header is refused; others are served directly.
    let (text, _) = {
        let mut s = connect_from(proxy, addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n").await.unwrap();
        read_all(&mut s, Duration::from_secs(2)).await
    };
    assert_eq!(text, "");
    assert_eq!(get_from(Ipv4Addr::new(127, 3, 81, 1), addr, "/", BROWSER).await.unwrap().0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn blocks_and_limits_outlive_a_reload_and_new_limits_apply() {
    let origin = echo_origin("o").await;
    let path = std::env::temp_dir().join(format!("holdfast-shield-reload-{}.toml", std::process::id()));
    let v1 = shop(origin.addr, "[shield.rate]\nper_address = { rate = 0.1, burst = 3 }\n");
    std::fs::write(&path, &v1).unwrap();
    let gw = holdfast_gateway::Gateway::start(holdfast_gateway::config::load_file(&path).unwrap(), Some(path.clone()))
        .await
        .unwrap();
    let addr = http_addr(&gw);
    let admin = gw.admin_addr.unwrap();
    let post = |p: &str| Request::post(p).header("host", "admin").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(admin, post("/admin/block?prefix=127.3.90.0/24")).await.0, 200);
    let limited = Ipv4Addr::new(127, 3, 91, 1);
    for _ in 0..3 {
        assert_eq!(get_from(limited, addr, "/", BROWSER).await.unwrap().0, 200);
    }
    assert_eq!(get_from(limited, addr, "/", BROWSER).await.unwrap().0, 429);
    // A new config with a tighter limit for everyone else.
    std::fs::write(&path, shop(origin.addr, "[shield.rate]\nper_address = { rate = 0.1, burst = 1 }\n")).unwrap();
    assert_eq!(send(admin, post("/admin/reload")).await.0, 200);
    assert!(refused(Ipv4Addr::new(127, 3, 90, 5), addr).await, "the dynamic block survived the reload");
    assert_eq!(get_from(limited, addr, "/", BROWSER).await.unwrap().0, 429, "so did the address's cell");
    let fresh = Ipv4Addr::new(127, 3, 92, 1);
    assert_eq!(get_from(fresh, addr, "/", BROWSER).await.unwrap().0, 200);
    assert_eq!(get_from(fresh, addr, "/", BROWSER).await.unwrap().0, 429, "the new burst of one applies");
    gw.stop().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn over_http2_a_closed_stream_leaves_the_connection_serving() {
    let origin = echo_origin("o").await;
    let shield = "[[shield.rate.class]]\nname = \"search\"\npaths = [\"/search\"]\nper_address = { rate = 0.1, burst = 1 }\naction = \"close\"\n";
    let gw = gateway(&shop(origin.addr, shield)).await;
    let tcp = connect_from(Ipv4Addr::new(127, 3, 95, 1), http_addr(&gw)).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http2::handshake(executor(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut get = |path: &str| {
        let mut req = Request::get(format!("http://shop.test{path}"));
        for (k, v) in BROWSER {
            req = req.header(*k, *v);
        }
        tx.send_request(req.body(Full::new(Bytes::new())).unwrap())
    };
    assert_eq!(get("/search?q=1").await.unwrap().status(), 200);
    assert!(get("/search?q=2").await.is_err(), "the stream over the limit is reset");
    assert_eq!(get("/p/1").await.unwrap().status(), 200, "the connection still serves");
    gw.stop().await;
}
