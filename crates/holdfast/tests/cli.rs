//! The holdfast binary as an operator uses it: check, run with SIGHUP reload and SIGTERM
//! drain, shop, --version.

// A test's helpers may unwrap and panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;

mod common;

use common::*;

#[test]
fn check_accepts_valid_and_rejects_invalid_with_position() {
    let out = Command::new(BIN).args(["check", "--config", "../../examples/demo.toml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = temp("bad.toml");
    std::fs::write(&bad, "[listen]\nhttp = [\"127.0.0.1:8080\"]\n\n[[site]]\nname = \"s\"\nhosts = [\"a.de\"]\n[[site.pool]]\ndatacenter = \"nowhere\"\norigins = [\"127.0.0.1:1\"]\n").unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:8:14: unknown data center \"nowhere\""), "{err}");
    let out = Command::new(BIN).args(["check", "--config", "/nonexistent.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_file(bad);
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("holdfast "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "check", "demo", "shop"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[test]
fn run_reloads_on_sighup_and_drains_on_sigterm() {
    let (_a, shop_a) = shop_process("eu-west", &[]);
    let (_b, shop_b) = shop_process("eu-central", &["--latency", "1500"]);
    let path = temp("run.toml");
    std::fs::write(&path, site_config(shop_a)).unwrap();
    let (gw, http, admin) = gateway_process(&path);

    let first = wait_for(|| http_get(http, "shop.de", "/").filter(|r| r.starts_with("HTTP/1.1 200")));
    assert!(first.contains("x-datacenter: eu-west"), "{first}");

    std::fs::write(&path, site_config(shop_b)).unwrap();
    signal(&gw.child, "HUP");
    wait_for(|| http_get(http, "shop.de", "/healthz").filter(|r| r.contains("x-datacenter: eu-central")));

    // A slow request (the eu-central shop adds 1.5 s) is in flight when SIGTERM arrives.
    let inflight = std::thread::spawn(move || http_get(http, "shop.de", "/p/1"));
    wait_for(|| status(admin).filter(|s| s["requests"]["by_phase"]["response_headers"] == 1));
    signal(&gw.child, "TERM");
    let resp = inflight.join().unwrap().unwrap_or_default();
    assert!(resp.starts_with("HTTP/1.1 200"), "in-flight request finished during drain: {resp}");
    let mut gw = gw;
    let status = wait_for(|| gw.child.try_wait().ok().flatten());
    assert!(status.success());
    let _ = std::fs::remove_file(path);
}

/// A client that hangs up while its request waits for the origin: the request is logged
/// once, as nginx does, with status 499, and with the phase it was cancelled in.
#[test]
fn a_cancelled_request_is_logged_once_with_499_and_its_phase() {
    let (_shop, shop) = shop_process("eu-west", &["--latency", "20000"]);
    let path = temp("cancel.toml");
    std::fs::write(&path, site_config(shop)).unwrap();
    let (gw, http, admin) = gateway_process(&path);
    wait_for(|| status(admin));
    let mut s = TcpStream::connect(http).unwrap();
    write!(s, "GET /p/7?cancelled=yes HTTP/1.1\r\nHost: shop.de\r\n\r\n").unwrap();
    wait_for(|| status(admin).filter(|s| s["requests"]["by_phase"]["response_headers"] == 1));
    drop(s);
    let line = wait_for(|| {
        let access = gw.lines(|v| v["target"] == "access" && v["path"] == "/p/7?cancelled=yes");
        access.into_iter().next()
    });
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["cancelled"], "response_headers", "{line}");
    assert_eq!(line["complete"], false, "{line}");
    wait_for(|| status(admin).filter(|s| s["requests"]["in_flight"] == 0));
    let st = status(admin).unwrap();
    assert_eq!(st["requests"]["cancelled"]["response_headers"], 1);
    assert_eq!(st["sites"][0]["pools"][0]["origins"][0]["in_flight"], 0);
    let metrics = http_get(admin, "admin", "/metrics").unwrap();
    assert!(metrics.contains("holdfast_requests_cancelled_total{phase=\"response_headers\"} 1"), "{metrics}");
    let logged = gw.lines(|v| v["target"] == "access" && v["path"] == "/p/7?cancelled=yes");
    assert_eq!(logged.len(), 1, "logged once: {logged:?}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn drill_runs_holdfast_and_direct_and_writes_the_report() {
    let dir = temp("drill");
    let scenario = temp("scenario.toml");
    std::fs::write(
        &scenario,
        "name = \"cli-test\"\nduration = \"8s\"\n[shoppers]\ncount = 6\nthink = \"50ms\"\n\
         [[event]]\nat = \"25%\"\naction = \"fail\"\ndatacenter = \"eu-west\"\nmode = \"refused\"\n\
         [[event]]\nat = \"75%\"\naction = \"recover\"\ndatacenter = \"eu-west\"\n\
         [[expect]]\nkind = \"datacenter_failure\"\ndatacenter = \"eu-west\"\nmode = \"refused\"\nfrom = \"25%\"\nuntil = \"75%\"\n",
    )
    .unwrap();
    let out =
        Command::new(BIN).args(["drill", "--scenario"]).arg(&scenario).arg("--report").arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("holdfast | direct"), "{stdout}");
    assert!(stdout.contains("shop-de"), "{stdout}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);
    assert_eq!(json["runs"][0]["mode"], "holdfast");
    assert!(json["runs"][0]["summary"]["all"]["requests"].as_u64().unwrap() > 0);
    assert!(json["runs"][0]["gateway_peak_rss_mib"].as_f64().unwrap() > 0.0, "gateway memory measured");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 5, "verdicts, availability, latency and two by-data-center charts");
    assert!(html.contains("Confusion matrix"), "the verdicts are in the report");
    // holdfast named the failure, rightly, within seconds of the fault, and nothing else.
    let v = &json["runs"][0]["verdicts"];
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["answers"][0]["time_to_verdict_s"].as_f64().is_some_and(|t| t < 4.0), "{v}");
    assert!(stdout.contains("verdicts: right"), "{stdout}");
    assert!(!html.contains("http://") && !html.contains("https://"), "opens without network access");
    // As a browser draws it.
    let url = format!("file://{}", dir.join("report.html").display());
    if let Some(dom) = chromium(&["--dump-dom"], &url) {
        assert!(dom.matches("<polyline").count() >= 4, "the charts' lines: {dom}");
        assert!(dom.contains("class=\"matrix\""), "the confusion matrix: {dom}");
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(scenario);
}

/// Shell completions and the manual page come from the same definition as `--help`.
#[test]
fn completions_and_the_manual_page() {
    for (shell, mark) in [("bash", "_holdfast()"), ("zsh", "#compdef holdfast"), ("fish", "complete -c holdfast")] {
        let out = Command::new(BIN).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(mark), "{shell}: {text}");
        for sub in ["run", "check", "drill", "completions"] {
            assert!(text.contains(sub), "{shell} completes {sub}");
        }
    }
    let out = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
    let out = Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    let roff = String::from_utf8_lossy(&out.stdout);
    assert!(roff.contains(".TH holdfast 1"), "{roff}");
    assert!(roff.contains("drill") && roff.contains("\\-\\-log\\-format"), "{roff}");
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("holdfast {}", env!("CARGO_PKG_VERSION")));
}
