//! The drill end to end on a small config: shops, shoppers from many source addresses,
//! failure injection and a LOIC flood, in direct mode (no gateway process), and the report.

use holdfast_drill::scenario::Scenario;
use holdfast_drill::{Mode, Options};
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_run_measures_failure_flood_and_orders() {
    let dir = std::env::temp_dir().join(format!("holdfast-drill-test-{}", std::process::id()));
    let run = holdfast_drill::run_mode(&options(&dir), Mode::Direct).await.unwrap();
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
    let report =
        holdfast_drill::Report { scenario: "x".into(), description: "d".into(), duration_s: 1.0, runs: vec![] };
    holdfast_drill::report::write(&report, &dir).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(!html.contains("http://") && !html.contains("https://"), "no network resources");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["scenario"], "x");
    let _ = std::fs::remove_dir_all(dir);
}
