//! The drill end to end on a small config: shops, shoppers from many source addresses,
//! failure injection and a LOIC flood, in direct mode (no gateway process), and the report.

use crate::scenario::Scenario;
use crate::{Mode, Options};
use std::time::Duration;

const CONFIG: &str = r#"
[listen]
http = ["127.0.0.1:8080"]
[[datacenter]]
name = "eu-west"
[[datacenter]]
name = "us-east"
[[site]]
name = "shop-de"
hosts = ["shop.de"]
language = "de"
  [[site.pool]]
  datacenter = "eu-west"
  origins = ["127.0.0.1:9101"]
  [[site.pool]]
  datacenter = "us-east"
  origins = ["127.0.0.1:9301"]
"#;

const SCENARIO: &str = r#"
name = "test"
description = "eu-west refuses half way; a small LOIC flood"
duration = "4s"
[shoppers]
count = 8
think = "50ms"
checkout_share = 1.0
[[event]]
at = "25%"
action = "flood"
kind = "loic"
sources = 50
rate = 200
[[event]]
at = "50%"
action = "fail"
datacenter = "eu-west"
mode = "refused"
"#;

fn options(dir: &std::path::Path) -> Options {
    Options {
        scenario: Scenario::parse("test", SCENARIO).unwrap(),
        config: CONFIG.parse().unwrap(),
        duration: Duration::from_secs(4),
        report_dir: dir.to_path_buf(),
        against_direct: true,
        exe: "/nonexistent/holdfast".into(),
        progress: false,
        fleet: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_run_measures_failure_flood_and_orders() {
    let dir = std::env::temp_dir().join(format!("holdfast-drill-test-{}", std::process::id()));
    let run = crate::run_mode(&options(&dir), Mode::Direct).await.unwrap();
    let all = &run.summary["all"];
    assert!(all.requests > 50, "shoppers sent requests: {all:?}");
    assert!(all.ok > 0);
    // After eu-west refuses (second 2), direct shoppers fail: what 2010 looked like.
    let late_failures: u32 = run.seconds.iter().skip(3).flat_map(|s| s.sites.values()).map(|s| s.failed).sum();
    assert!(late_failures > 0, "failures after the data center went away");
    assert!(all.by_datacenter.keys().all(|dc| dc == "eu-west"), "direct goes to the primary only");
    assert!(run.orders_placed > 0);
    assert_eq!(run.duplicate_orders, 0);
    // The LOIC flood really reached the (unprotected) origin, from the attacker range.
    assert!(run.flood_sent >= 100, "flood sent {}", run.flood_sent);
    assert!(run.flood_reached_origins > 0, "LOIC requests reached the origin directly");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn report_files_render_without_network_resources() {
    let dir = std::env::temp_dir().join(format!("holdfast-drill-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = crate::Report { scenario: "x".into(), description: "d".into(), duration_s: 1.0, runs: vec![] };
    crate::report::write(&report, &dir).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("http://") && !html.contains("https://"), "no network resources");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"], "x");
    let _ = std::fs::remove_dir_all(dir);
}

mod attackers {
    use crate::attackers::{run, Flood};
    use crate::measure::Recorder;
    use crate::scenario::FloodKind;
    use holdfast_shop::{spawn, ShopConfig};
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::sync::watch;

    /// Runs a flood of `kind` at a shop until `enough` holds of (flood requests the shop
    /// saw, connections the attackers hold open) or 20 s pass; returns those two and the
    /// attack requests sent.
    async fn flood(kind: FloodKind, enough: impl Fn(u64, u64) -> bool) -> (u64, u64, u64) {
        let (addr, shop) =
            spawn(ShopConfig::new("shop-de", "de", "eu-west"), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let _ = shop.stats.flood_sources.set(crate::topology::ATTACK_NET);
        let rec = Arc::new(Recorder::new(Instant::now()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let f = Flood { kind, sources: 20, rate: 100, host: "shop.de".into(), path: "/".into(), targets: vec![addr] };
        let task = tokio::spawn(run(f, rec.clone(), stop_rx));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !enough(shop.stats.flood_requests.load(Relaxed), rec.attack_open.load(Relaxed))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let open = rec.attack_open.load(Relaxed);
        let _ = stop_tx.send(true);
        let _ = task.await;
        (shop.stats.flood_requests.load(Relaxed), open, rec.flood_sent.load(Relaxed))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hoic_and_smart_floods_reach_an_unprotected_origin() {
        let (seen, _, _) = flood(FloodKind::Hoic, |seen, _| seen >= 50).await;
        assert!(seen >= 50, "HOIC requests seen by the origin: {seen}");
        let (seen, _, _) = flood(FloodKind::Smart, |seen, _| seen >= 50).await;
        assert!(seen >= 50, "smart requests seen by the origin: {seen}");
        let (seen, _, sent) = flood(FloodKind::Residential, |seen, _| seen >= 50).await;
        assert!(seen >= 50, "residential botnet's searches seen by the origin: {seen} of {sent}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slowloris_and_slow_post_hold_connections_open() {
        // The shop is a plain hyper server without a header timeout: slowloris holds it.
        let (_, open, _) = flood(FloodKind::Slowloris, |_, open| open >= 100).await;
        assert!(open >= 100, "slowloris connections held open: {open}");
        let (_, open, _) = flood(FloodKind::SlowPost, |_, open| open >= 100).await;
        assert!(open >= 100, "slow POST connections held open: {open}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_in_scenario_runs() {
    for (name, _) in crate::scenario::BUILT_IN {
        let dir = std::env::temp_dir().join(format!("holdfast-drill-{name}-{}", std::process::id()));
        let mut opts = options(&dir);
        opts.scenario = Scenario::load(name).unwrap();
        // Short runs, few shoppers, floods scaled down: this checks that each runs.
        opts.scenario.shoppers.count = 4;
        for e in &mut opts.scenario.events {
            e.rate = e.rate.map(|r| r.min(100));
            e.sources = e.sources.map(|s| s.min(100));
        }
        opts.config = holdfast_drill_demo_config().parse().unwrap();
        opts.duration = Duration::from_secs(2);
        let run = crate::run_mode(&opts, Mode::Direct).await.unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(run.summary["all"].requests > 0, "{name}");
        assert!(!run.events.is_empty(), "{name}: its events happened");
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn holdfast_drill_demo_config() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.toml")).unwrap()
}

/// Shoppers meet holdfast in "under attack" mode (every client challenged): like browsers,
/// they pass the proof of work once and shop on with the clearance cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_pass_the_challenge_like_browsers() {
    use crate::measure::Recorder;
    use crate::shoppers::{shopper, Plan, Target};
    use std::sync::Arc;
    use std::time::Instant;
    use tokio::sync::watch;

    let (origin, _shop) = holdfast_shop::spawn(
        holdfast_shop::ShopConfig::new("shop-de", "de", "eu-west"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let cfg = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[shield.challenge]\nmode = \"on\"\ndifficulty = 8\n\
         [[datacenter]]\nname = \"eu-west\"\n[[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\n\
         health = {{ enabled = false }}\n[[site.pool]]\ndatacenter = \"eu-west\"\norigins = [\"{origin}\"]\n"
    );
    let file = holdfast_gateway::config::parse_str("t.toml", &cfg).unwrap();
    let gw = holdfast_gateway::Gateway::start(file, None).await.unwrap();
    let plan = Arc::new(Plan {
        targets: vec![Target { site: "shop-de".into(), host: "shop.de".into(), addrs: vec![gw.http_addrs[0]] }],
        addresses: None,
        newsletter_from: None,
        think: Duration::from_millis(20),
        checkout_share: 1.0,
        timeout: Duration::from_secs(5),
    });
    let start = Instant::now();
    let rec = Arc::new(Recorder::new(start));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (_active_tx, active_rx) = watch::channel(3u32);
    let tasks: Vec<_> = (0..3)
        .map(|id| tokio::spawn(shopper(id, plan.clone(), rec.clone(), active_rx.clone(), stop_rx.clone())))
        .collect();
    // Until every shopper has cleared the challenge and checked out, and shopped on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let sum = crate::measure::summarize(&rec.finish(Duration::from_secs(60)), None);
        let done = sum.get("all").is_some_and(|all| all.requests > 20 && all.checkout_ok >= 3);
        if done || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let secs = rec.finish(Duration::from_secs(60));
    let sum = crate::measure::summarize(&secs, None);
    let all = &sum["all"];
    assert!(all.requests > 20, "{}", all.requests);
    assert_eq!(all.ok, all.requests, "every request succeeded");
    assert_eq!(all.challenged, 3, "each shopper was challenged once, then cleared");
    assert!(all.checkout_ok >= 3);
    gw.stop().await;
}
