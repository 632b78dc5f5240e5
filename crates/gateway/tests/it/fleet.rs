//! The fleet (docs/fleet.md), against real `redis-server` processes: one limit enforced by
//! three points of presence, blocks that spread, cookies accepted fleet-wide across a key
//! rotation, Redis killed, frozen and restarted under each `on_redis_down` mode, a Sentinel
//! failover, a three-master Redis Cluster, and the fleet's incidents merged.

use crate::common::*;
use crate::redis::{self, Redis};
use bytes::Bytes;
use holdfast_gateway::Gateway;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

const BROWSER: &[(&str, &str)] = &[
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("accept-language", "de-DE,de;q=0.9"),
    ("accept-encoding", "gzip"),
];

/// A shop behind a gateway of the fleet on `redis` (a TOML value), named `instance`.
/// `fleet` goes into `[fleet]`; `extra` after it.
fn shop(origin: SocketAddr, redis: &str, instance: &str, fleet: &str, extra: &str) -> String {
    let extra = format!(
        "[log]\naccess = false\n[fleet]\nredis = {redis}\ninstance = \"{instance}\"\nsync_interval = \"100ms\"\n{fleet}\n{extra}"
    );
    config(&[("shop", &["shop.test"], origin)], &extra)
}

async fn metric(gw: &Gateway, name: &str) -> Option<f64> {
    let text = get(gw.admin_addr.unwrap(), "admin", "/metrics").await.2;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until every gateway syncs and sees `n` live instances.
async fn fleet_of(gws: &[&Gateway], n: usize) {
    for gw in gws {
        let ok = eventually(Duration::from_secs(15), || async {
            metric(gw, "holdfast_fleet_redis_up").await == Some(1.0)
                && metric(gw, "holdfast_fleet_instances").await == Some(n as f64)
        })
        .await;
        assert!(ok, "the fleet did not form: {:?}", status_json(gw).await["shield"]["fleet"]);
    }
}

async fn limits_mode(gw: &Gateway) -> String {
    status_json(gw).await["shield"]["fleet"]["limits"].as_str().unwrap_or_default().to_string()
}

/// What paced requests got.
#[derive(Debug, Default, Clone, Copy)]
struct Got {
    ok: u64,
    limited: u64,
    /// Refused, closed or timed out (never, but for `closed`).
    other: u64,
}

/// GETs at `rate` per second in all for `dur`, from one keep-alive connection per source
/// address, each paced on its own; bounded by `dur` and by the request count.
async fn paced(dst: SocketAddr, sources: Vec<Ipv4Addr>, rate: u32, dur: Duration) -> Got {
    let per = sources.len() as u32;
    let every = Duration::from_secs_f64(f64::from(per) / f64::from(rate));
    let max = u64::from(rate) * dur.as_secs().max(1) / u64::from(per) + 1;
    let tasks: Vec<_> = sources
        .into_iter()
        .map(|src| {
            tokio::spawn(async move {
                let mut got = Got::default();
                let deadline = Instant::now() + dur;
                let mut tick = tokio::time::interval(every);
                let mut sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> = None;
                for _ in 0..max {
                    tick.tick().await;
                    if Instant::now() >= deadline {
                        break;
                    }
                    if sender.is_none() {
                        let Ok(tcp) = connect_from(src, dst).await else {
                            got.other += 1;
                            continue;
                        };
                        let Ok((s, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await else {
                            got.other += 1;
                            continue;
                        };
                        tokio::spawn(conn);
                        sender = Some(s);
                    }
                    let Some(s) = sender.as_mut() else { continue };
                    let mut req = http::Request::get("/p").header("host", "shop.test");
                    for (k, v) in BROWSER {
                        req = req.header(*k, *v);
                    }
                    let req = req.body(Full::new(Bytes::new())).unwrap();
                    match tokio::time::timeout(Duration::from_secs(3), s.send_request(req)).await {
                        Ok(Ok(resp)) => {
                            match resp.status().as_u16() {
                                200 => got.ok += 1,
                                429 => got.limited += 1,
                                _ => got.other += 1,
                            }
                            let _ = resp.into_body().collect().await;
                        }
                        _ => {
                            got.other += 1;
                            sender = None;
                        }
                    }
                }
                got
            })
        })
        .collect();
    let mut all = Got::default();
    for t in tasks {
        let g = t.await.unwrap();
        all.ok += g.ok;
        all.limited += g.limited;
        all.other += g.other;
    }
    all
}

/// `n` addresses of 127.4.`net`.0/24.
fn addrs(net: u8, from: u8, n: u8) -> Vec<Ipv4Addr> {
    (from..from + n).map(|i| Ipv4Addr::new(127, 4, net, i)).collect()
}

const LIMIT: &str = "[shield.rate]\nper_prefix = { rate = 100, burst = 20 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_points_of_presence_enforce_one_prefix_limit_within_15_percent() {
    let redis = Redis::start();
    let origin = echo_origin("o").await;
    let url = format!("{:?}", redis.url());
    let mut gws = Vec::new();
    for pop in ["pop-a", "pop-b", "pop-c"] {
        gws.push(gateway(&shop(origin.addr, &url, pop, "", LIMIT)).await);
    }
    fleet_of(&gws.iter().collect::<Vec<_>>(), 3).await;
    let dur = Duration::from_secs(10);
    // 600 req/s from one /24 against a limit of 100 req/s: spread evenly over the three
    // (127.4.1.0/24), and unevenly, 480/60/60 (127.4.2.0/24), at the same time.
    let a = http_addr(&gws[0]);
    let (b, c) = (http_addr(&gws[1]), http_addr(&gws[2]));
    let runs = vec![
        tokio::spawn(paced(a, addrs(1, 1, 4), 200, dur)),
        tokio::spawn(paced(b, addrs(1, 11, 4), 200, dur)),
        tokio::spawn(paced(c, addrs(1, 21, 4), 200, dur)),
        tokio::spawn(paced(a, addrs(2, 1, 8), 480, dur)),
        tokio::spawn(paced(b, addrs(2, 11, 2), 60, dur)),
        tokio::spawn(paced(c, addrs(2, 21, 2), 60, dur)),
    ];
    let mut got = Vec::new();
    for r in runs {
        got.push(r.await.unwrap());
    }
    let total = |g: &[Got]| g.iter().map(|g| g.ok).sum::<u64>();
    let sent = |g: &[Got]| g.iter().map(|g| g.ok + g.limited + g.other).sum::<u64>();
    let (even, uneven) = (total(&got[..3]), total(&got[3..]));
    println!(
        "fleet limit 100 req/s for 10 s: even spread {even} of {} admitted, uneven {uneven} of {} ({got:?})",
        sent(&got[..3]),
        sent(&got[3..])
    );
    // 100 req/s for 10 s, and the burst of 20 once: 1,020; within 15%.
    for (what, n) in [("even", even), ("uneven", uneven)] {
        assert!((867..=1173).contains(&n), "{what} spread: {n} admitted, expected 1,020 ± 15%");
    }
    assert!(got.iter().all(|g| g.other == 0), "every request answered: {got:?}");
    for gw in gws {
        gw.stop().await;
    }
}

async fn blocked_here(gw: &Gateway, prefix: &str) -> bool {
    status_json(gw).await["shield"]["blocked"].as_array().is_some_and(|b| b.iter().any(|b| b["prefix"] == prefix))
}

fn post(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(path).header("host", "admin").body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_reaches_every_instance_and_those_that_join_late() {
    let redis = Redis::start();
    let origin = echo_origin("o").await;
    let url = format!("{:?}", redis.url());
    let a = gateway(&shop(origin.addr, &url, "pop-a", "", "")).await;
    let b = gateway(&shop(origin.addr, &url, "pop-b", "", "")).await;
    let c = gateway(&shop(origin.addr, &url, "pop-c", "", "")).await;
    fleet_of(&[&a, &b, &c], 3).await;
    let src = Ipv4Addr::new(127, 4, 9, 1);
    assert_eq!(get_from(src, http_addr(&b), "/", BROWSER).await.unwrap().0, 200);
    let mut times = Vec::new();
    for i in 0..5 {
        let prefix = format!("127.4.{}.0/24", 10 + i);
        let started = Instant::now();
        let (s, _, body) = send(a.admin_addr.unwrap(), post(&format!("/admin/block?prefix={prefix}&for=10m"))).await;
        assert_eq!(s, 200, "{body}");
        assert!(
            eventually(Duration::from_secs(5), || async {
                blocked_here(&b, &prefix).await && blocked_here(&c, &prefix).await
            })
            .await,
            "{prefix} blocked at pop-a did not reach pop-b and pop-c"
        );
        times.push(started.elapsed());
    }
    println!("a block reached the two other instances in {times:?}");
    let src = Ipv4Addr::new(127, 4, 10, 1);
    assert!(get_from(src, http_addr(&b), "/", BROWSER).await.is_none(), "blocked at pop-b too");
    // An instance that joins late reads the live blocks whole.
    let d = gateway(&shop(origin.addr, &url, "pop-d", "", "")).await;
    assert!(eventually(Duration::from_secs(5), || async { blocked_here(&d, "127.4.14.0/24").await }).await);
    // Lifting a block spreads too.
    assert_eq!(send(c.admin_addr.unwrap(), post("/admin/unblock?prefix=127.4.10.0/24")).await.0, 200);
    for gw in [&a, &b, &d] {
        assert!(eventually(Duration::from_secs(5), || async { !blocked_here(gw, "127.4.10.0/24").await }).await);
    }
    assert_eq!(get_from(src, http_addr(&a), "/", BROWSER).await.unwrap().0, 200);
    for gw in [a, b, c, d] {
        gw.stop().await;
    }
}

async fn key_of(gw: &Gateway) -> String {
    status_json(gw).await["shield"]["fleet"]["key"].as_str().unwrap_or_default().to_string()
}

/// Solves the challenge at `dst` for `src` and returns the clearance cookie.
async fn clearance(src: Ipv4Addr, dst: SocketAddr) -> String {
    let (status, _, page) = get_from(src, dst, "/p/1", BROWSER).await.unwrap();
    assert_eq!(status, 403, "challenged: {page}");
    let token = page.split("solve(\"").nth(1).and_then(|t| t.split('"').next()).expect("a token in the page");
    let nonce = holdfast_gateway::challenge::solve(token).unwrap();
    let path = format!("{}?t={token}&n={nonce}&r=%2Fp%2F1", holdfast_gateway::challenge::VERIFY_PATH);
    let (s, h, _) = get_from(src, dst, &path, BROWSER).await.unwrap();
    assert_eq!(s, 303);
    h["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clearance_from_one_instance_is_accepted_at_every_other_across_rotations() {
    let redis = Redis::start();
    let origin = echo_origin("o").await;
    let url = format!("{:?}", redis.url());
    let challenge = "[shield.challenge]\nmode = \"on\"\ndifficulty = 8\n";
    // Keys rotate every 2 s here (a day by default).
    let a = gateway(&shop(origin.addr, &url, "pop-a", "key_rotation = \"2s\"", challenge)).await;
    let b = gateway(&shop(origin.addr, &url, "pop-b", "key_rotation = \"2s\"", challenge)).await;
    fleet_of(&[&a, &b], 2).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (ka, kb) = (key_of(&a).await, key_of(&b).await);
            ka.starts_with('f') && ka == kb
        })
        .await,
        "both sign with the fleet's key"
    );
    let src = Ipv4Addr::new(127, 4, 20, 1);
    let cookie = clearance(src, http_addr(&a)).await;
    let first_key = key_of(&a).await;
    let mut with: Vec<(&str, &str)> = BROWSER.to_vec();
    with.push(("cookie", &cookie));
    assert_eq!(get_from(src, http_addr(&b), "/p/2", &with).await.unwrap().0, 200, "pop-a's clearance at pop-b");
    // After two rotations, the cookie signed with the first key is still accepted everywhere.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let k = key_of(&b).await;
            k != first_key && key_of(&a).await == k
        })
        .await
    );
    for gw in [&a, &b] {
        assert_eq!(get_from(src, http_addr(gw), "/p/3", &with).await.unwrap().0, 200, "accepted after rotation");
    }
    // A clearance issued at pop-b under the new key is good at pop-a at once.
    let src2 = Ipv4Addr::new(127, 4, 21, 1);
    let cookie2 = clearance(src2, http_addr(&b)).await;
    let mut with2: Vec<(&str, &str)> = BROWSER.to_vec();
    with2.push(("cookie", &cookie2));
    assert_eq!(get_from(src2, http_addr(&a), "/p/4", &with2).await.unwrap().0, 200);
    for gw in [a, b] {
        gw.stop().await;
    }
}

/// Requests from a new prefix at `gw` for 3 s at 200 req/s, each answered in time.
async fn burst_at(gw: &Gateway, net: u8) -> Got {
    let got = paced(http_addr(gw), addrs(net, 1, 4), 200, Duration::from_secs(3)).await;
    println!("{net}: {got:?}");
    got
}

/// Kills, freezes and restarts Redis under a fleet of two with `mode`; returns what a new
/// prefix got at one instance with Redis gone (limit 100 req/s, burst 20, for 3 s).
async fn redis_down(mode: &str, net: u8) -> (Got, Got) {
    let mut redis = Redis::start();
    let origin = echo_origin("o").await;
    let url = format!("{:?}", redis.url());
    let fleet = format!("on_redis_down = \"{mode}\"");
    let a = gateway(&shop(origin.addr, &url, "pop-a", &fleet, LIMIT)).await;
    let b = gateway(&shop(origin.addr, &url, "pop-b", &fleet, LIMIT)).await;
    fleet_of(&[&a, &b], 2).await;
    assert_eq!(limits_mode(&a).await, "shared");

    // Gone.
    redis.kill();
    assert!(
        eventually(Duration::from_secs(10), || async { metric(&a, "holdfast_fleet_redis_up").await == Some(0.0) })
            .await
    );
    assert_eq!(limits_mode(&a).await, mode);
    let events = status_json(&a).await["events"].to_string();
    assert!(events.contains("fleet_redis_down"), "{events}");
    let gone = burst_at(&a, net).await;
    // A block made while Redis is gone reaches the other instance once it is back.
    assert_eq!(send(a.admin_addr.unwrap(), post("/admin/block?prefix=127.4.99.0/24&for=10m")).await.0, 200);

    // Back (empty): both resync, and the block made meanwhile spreads.
    redis.restart();
    fleet_of(&[&a, &b], 2).await;
    assert_eq!(limits_mode(&a).await, "shared");
    assert!(eventually(Duration::from_secs(5), || async { blocked_here(&b, "127.4.99.0/24").await }).await);

    // Frozen: requests go on being answered; thawed, the fleet is back.
    redis.freeze();
    assert!(
        eventually(Duration::from_secs(10), || async { metric(&a, "holdfast_fleet_redis_up").await == Some(0.0) })
            .await
    );
    let frozen = burst_at(&a, net + 1).await;
    redis.thaw();
    fleet_of(&[&a, &b], 2).await;
    for gw in [a, b] {
        gw.stop().await;
    }
    (gone, frozen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_or_frozen_in_local_mode_each_enforces_its_share() {
    let (gone, frozen) = redis_down("local", 30).await;
    // limit ÷ 2 live instances: 50 req/s (+ the burst of 20 ÷ 2) for 3 s ≈ 160.
    for got in [gone, frozen] {
        assert_eq!(got.other, 0, "no request stalls or fails: {got:?}");
        assert!((120..=200).contains(&got.ok), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_or_frozen_in_open_mode_each_enforces_the_whole_limit() {
    let (gone, frozen) = redis_down("open", 40).await;
    // The whole limit here: 100 req/s (+ 20) for 3 s ≈ 320.
    for got in [gone, frozen] {
        assert_eq!(got.other, 0, "{got:?}");
        assert!((260..=380).contains(&got.ok), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_or_frozen_in_closed_mode_refuses_what_shared_limits_cover() {
    let (gone, frozen) = redis_down("closed", 50).await;
    for got in [gone, frozen] {
        assert_eq!((got.ok, got.other), (0, 0), "refused with a 429, never stalled: {got:?}");
        assert!(got.limited > 500);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdfast_starts_before_redis_and_joins_when_it_comes() {
    // A port with nothing on it yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let origin = echo_origin("o").await;
    let url = format!("\"redis://127.0.0.1:{port}/0\"");
    let a = gateway(&shop(origin.addr, &url, "pop-a", "", LIMIT)).await;
    assert_eq!(get_from(Ipv4Addr::new(127, 4, 60, 1), http_addr(&a), "/", BROWSER).await.unwrap().0, 200);
    assert!(
        eventually(Duration::from_secs(5), || async { metric(&a, "holdfast_fleet_redis_up").await == Some(0.0) }).await
    );
    assert!(key_of(&a).await.starts_with('l'), "a local key until the fleet's is known");
    let says = eventually(Duration::from_secs(5), || async {
        status_json(&a).await["events"].to_string().contains("this instance's own key")
    })
    .await;
    assert!(says, "and it says so: {}", status_json(&a).await["events"]);
    let redis = tokio::task::spawn_blocking(move || {
        let mut r = Redis::start();
        // The same port: restart there.
        r.port = port;
        r.restart();
        r
    })
    .await
    .unwrap();
    fleet_of(&[&a], 1).await;
    assert!(eventually(Duration::from_secs(5), || async { key_of(&a).await.starts_with('f') }).await);
    drop(redis);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed() {
    let (master, replica, sentinels) = tokio::task::spawn_blocking(|| {
        let master = Redis::start();
        let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let port = replica.port;
        assert!(redis::poll(Duration::from_secs(10), || redis::command(port, "INFO replication")
            .is_some_and(|i| i.contains("master_link_status:up"))));
        let sentinels: Vec<Redis> = (0..3).map(|_| Redis::sentinel("shop", master.port, 2)).collect();
        (master, replica, sentinels)
    })
    .await
    .unwrap();
    let list: Vec<String> = sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
    let url = format!("\"redis+sentinel://{}/shop\"", list.join(","));
    let origin = echo_origin("o").await;
    let a = gateway(&shop(origin.addr, &url, "pop-a", "", "")).await;
    let b = gateway(&shop(origin.addr, &url, "pop-b", "", "")).await;
    fleet_of(&[&a, &b], 2).await;
    // The master dies; the Sentinels promote the replica; the fleet follows.
    let mut master = master;
    master.kill();
    let rport = replica.port;
    let promoted = tokio::task::spawn_blocking(move || {
        redis::poll(Duration::from_secs(30), || {
            redis::command(rport, "INFO replication").is_some_and(|i| i.contains("role:master"))
        })
    })
    .await
    .unwrap();
    assert!(promoted, "the Sentinels did not promote the replica");
    fleet_of(&[&a, &b], 2).await;
    assert_eq!(send(a.admin_addr.unwrap(), post("/admin/block?prefix=127.4.70.0/24&for=10m")).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || async { blocked_here(&b, "127.4.70.0/24").await }).await);
    assert!(redis::command(rport, "HGETALL hf:{holdfast}:inst").is_some_and(|r| r.contains("pop-a")));
    for gw in [a, b] {
        gw.stop().await;
    }
    drop((replica, sentinels));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_master_cluster_works_without_crossslot_errors() {
    let nodes = tokio::task::spawn_blocking(|| redis::cluster(3)).await.unwrap();
    let list: Vec<String> = nodes.iter().map(|n| format!("\"redis://127.0.0.1:{}\"", n.port)).collect();
    let url = format!("[{}]", list.join(", "));
    let origin = echo_origin("o").await;
    let a = gateway(&shop(origin.addr, &url, "pop-a", "", LIMIT)).await;
    let b = gateway(&shop(origin.addr, &url, "pop-b", "", LIMIT)).await;
    fleet_of(&[&a, &b], 2).await;
    assert_eq!(send(a.admin_addr.unwrap(), post("/admin/block?prefix=127.4.80.0/24&for=10m")).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || async { blocked_here(&b, "127.4.80.0/24").await }).await);
    // Shared limits work through the cluster: 2 × 150 req/s against 100 req/s.
    let runs = [
        tokio::spawn(paced(http_addr(&a), addrs(81, 1, 3), 150, Duration::from_secs(4))),
        tokio::spawn(paced(http_addr(&b), addrs(81, 11, 3), 150, Duration::from_secs(4))),
    ];
    let mut ok = 0;
    for r in runs {
        ok += r.await.unwrap().ok;
    }
    println!("cluster: {ok} admitted of 1,200 at 100 req/s for 4 s");
    assert!((357..=483).contains(&ok), "{ok}: expected 420 ± 15%");
    let syncs = get(a.admin_addr.unwrap(), "admin", "/metrics").await.2;
    assert!(!syncs.contains("holdfast_fleet_syncs_total{reason=\"error\"}"), "a sync failed (CROSSSLOT?): {syncs}");
    for gw in [a, b] {
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_an_acl_user() {
    let (redis, tls) = tokio::task::spawn_blocking(Redis::start_tls_acl).await.unwrap();
    // A private certificate: `#insecure` skips its check (redis-rs's URL fragment).
    let url = format!("\"rediss://holdfast:s3cret@127.0.0.1:{tls}/0#insecure\"");
    let origin = echo_origin("o").await;
    let a = gateway(&shop(origin.addr, &url, "pop-a", "", "")).await;
    let b = gateway(&shop(origin.addr, &url, "pop-b", "", "")).await;
    fleet_of(&[&a, &b], 2).await;
    assert_eq!(send(a.admin_addr.unwrap(), post("/admin/block?prefix=127.4.90.0/24&for=10m")).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || async { blocked_here(&b, "127.4.90.0/24").await }).await);
    // A wrong password: the instance runs on, alone, and says so.
    let bad = format!("\"rediss://holdfast:wrong@127.0.0.1:{tls}/0#insecure\"");
    let c = gateway(&shop(origin.addr, &bad, "pop-c", "", "")).await;
    assert!(
        eventually(Duration::from_secs(5), || async { metric(&c, "holdfast_fleet_redis_up").await == Some(0.0) }).await
    );
    assert_eq!(get_from(Ipv4Addr::new(127, 4, 91, 1), http_addr(&c), "/", BROWSER).await.unwrap().0, 200);
    for gw in [a, b, c] {
        gw.stop().await;
    }
    drop(redis);
}

/// LOIC's request from `src`: a new connection, `GET /checkout` with a random suffix, a
/// Host header only; the answer as text (empty when closed without one).
async fn loic(src: Ipv4Addr, dst: SocketAddr, i: u32) -> String {
    let Ok(mut s) = connect_from(src, dst).await else { return String::new() };
    let req = format!("GET /checkout{i:06} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n");
    if tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes()).await.is_err() {
        return String::new();
    }
    read_all(&mut s, Duration::from_secs(2)).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_one_point_of_presence_puts_the_fleet_in_the_flood_state() {
    let redis = Redis::start();
    let origin = echo_origin("o").await;
    let url = format!("{:?}", redis.url());
    // Signatures off: only the flood detector and the challenge act here.
    let shield = "[shield.signatures]\nenabled = false\nflood_rate = 10\n";
    let a = gateway(&shop(origin.addr, &url, "pop-a", "", shield)).await;
    let b = gateway(&shop(origin.addr, &url, "pop-b", "", shield)).await;
    fleet_of(&[&a, &b], 2).await;
    // Before: a LOIC request at pop-b is served (no flood anywhere).
    assert!(loic(Ipv4Addr::new(127, 4, 101, 1), http_addr(&b), 0).await.starts_with("HTTP/1.1 200"));
    // A flood at pop-a only.
    for batch in 0..4u32 {
        let tasks: Vec<_> = (0..20u32)
            .map(|i| tokio::spawn(loic(Ipv4Addr::new(127, 4, 100, (batch * 20 + i + 1) as u8), http_addr(&a), i)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
    assert_eq!(status_json(&a).await["shield"]["flood"]["active"], true, "pop-a sees the flood");
    let b_knows = eventually(Duration::from_secs(5), || async {
        status_json(&b).await["shield"]["fleet"]["fleet_flood"] == true
    })
    .await;
    assert!(b_knows, "pop-b is told: {}", status_json(&b).await["shield"]);
    assert_eq!(status_json(&b).await["shield"]["flood"]["active"], false, "pop-b saw no flood itself");
    // So challenge "auto" tightens at pop-b too: LOIC there is challenged, a browser served.
    let text = loic(Ipv4Addr::new(127, 4, 102, 1), http_addr(&b), 1).await;
    assert!(text.starts_with("HTTP/1.1 403") && text.contains("holdfast-mitigated: challenge"), "{text}");
    assert_eq!(get_from(Ipv4Addr::new(127, 4, 103, 1), http_addr(&b), "/", BROWSER).await.unwrap().0, 200);
    for gw in [a, b] {
        gw.stop().await;
    }
}
