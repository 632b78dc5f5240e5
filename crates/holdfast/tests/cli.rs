//! The holdfast binary as an operator uses it: check, run with SIGHUP reload and SIGTERM
//! drain, shop, --version.

// A test's helpers may unwrap and panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("holdfast-cli-{}-{name}", std::process::id()))
}

/// A child process whose JSON log lines (stdout, `--log-format json`) are collected as
/// they come; killed when dropped.
struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.arg("--log-format").arg("json").stdout(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (out, lines) = (child.stdout.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    lines.lock().unwrap().push(v);
                }
            }
        });
        Proc { child, log }
    }

    /// The log lines so far that `f` accepts.
    fn lines(&self, f: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().iter().filter(|v| f(v)).cloned().collect()
    }

    /// The address in the first log line with this message (the process bound port 0 and
    /// says which port it got: no port is chosen before the process binds it).
    fn bound(&self, message: &str) -> SocketAddr {
        wait_for(|| {
            let lines = self.lines(|v| v["message"] == message && v["tls"] != true);
            lines.first().and_then(|v| v["addr"].as_str()?.parse().ok())
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `holdfast shop` for shop-de in `datacenter` on an ephemeral port.
fn shop_process(datacenter: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["shop", "--site", "shop-de", "--language", "de", "--datacenter", datacenter, "--listen", "127.0.0.1:0"])
        .args(extra);
    let p = Proc::spawn(cmd);
    let addr = p.bound("shop listening");
    (p, addr)
}

/// `holdfast run` on `config`; returns it with its HTTP and admin addresses.
fn gateway_process(config: &std::path::Path) -> (Proc, SocketAddr, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--workers", "1", "--config"]).arg(config);
    let p = Proc::spawn(cmd);
    let (http, admin) = (p.bound("listening"), p.bound("admin listening"));
    (p, http, admin)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args(["-s", sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
}

/// A plain HTTP/1.1 GET; returns the whole response text.
fn http_get(addr: SocketAddr, host: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

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

fn site_config(origin: SocketAddr) -> String {
    format!("[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[[datacenter]]\nname = \"eu\"\n[[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\n[[site.pool]]\ndatacenter = \"eu\"\norigins = [\"{origin}\"]\n")
}

/// The gateway's /status.json.
fn status(admin: SocketAddr) -> Option<serde_json::Value> {
    let text = http_get(admin, "admin", "/status.json")?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
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
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(scenario);
}
