//! The holdfast binary as an operator uses it: check, run with SIGHUP reload and SIGTERM
//! drain, shop, --version.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("holdfast-cli-{}-{name}", std::process::id()))
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `holdfast shop` for shop-de in `datacenter` on `addr`.
fn shop_process(datacenter: &str, addr: SocketAddr, extra: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .args([
            "shop",
            "--site",
            "shop-de",
            "--language",
            "de",
            "--datacenter",
            datacenter,
            "--listen",
            &addr.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
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

#[test]
fn run_reloads_on_sighup_and_drains_on_sigterm() {
    let shop_a = free_port();
    let shop_b = free_port();
    let _a = shop_process("eu-west", shop_a, &[]);
    let _b = shop_process("eu-central", shop_b, &["--latency", "1500"]);
    let http = free_port();
    let cfg = |origin: SocketAddr| {
        format!("[listen]\nhttp = [\"{http}\"]\nadmin = \"127.0.0.1:0\"\n[[datacenter]]\nname = \"eu\"\n[[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\n[[site.pool]]\ndatacenter = \"eu\"\norigins = [\"{origin}\"]\n")
    };
    let path = temp("run.toml");
    std::fs::write(&path, cfg(shop_a)).unwrap();
    let gw = Proc(
        Command::new(BIN).args(["run", "--workers", "1", "--config"]).arg(&path).stdout(Stdio::null()).spawn().unwrap(),
    );

    let first = wait_for(|| http_get(http, "shop.de", "/").filter(|r| r.starts_with("HTTP/1.1 200")));
    assert!(first.contains("x-datacenter: eu-west"), "{first}");

    std::fs::write(&path, cfg(shop_b)).unwrap();
    signal(&gw.0, "HUP");
    wait_for(|| http_get(http, "shop.de", "/healthz").filter(|r| r.contains("x-datacenter: eu-central")));

    // A slow request (the eu-central shop adds 1.5 s) is in flight when SIGTERM arrives.
    let inflight = std::thread::spawn(move || http_get(http, "shop.de", "/p/1"));
    std::thread::sleep(Duration::from_millis(400));
    signal(&gw.0, "TERM");
    let resp = inflight.join().unwrap().unwrap_or_default();
    assert!(resp.starts_with("HTTP/1.1 200"), "in-flight request finished during drain: {resp}");
    let mut gw = gw;
    let status = wait_for(|| gw.0.try_wait().ok().flatten());
    assert!(status.success());
    let _ = std::fs::remove_file(path);
}

#[test]
fn drill_runs_holdfast_and_direct_and_writes_the_report() {
    let dir = temp("drill");
    let scenario = temp("scenario.toml");
    std::fs::write(
        &scenario,
        "name = \"cli-test\"\nduration = \"4s\"\n[shoppers]\ncount = 6\nthink = \"50ms\"\n\
         [[event]]\nat = \"25%\"\naction = \"fail\"\ndatacenter = \"eu-west\"\nmode = \"refused\"\n\
         [[event]]\nat = \"75%\"\naction = \"recover\"\ndatacenter = \"eu-west\"\n",
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
    assert!(html.matches("<svg").count() >= 4, "availability, latency and two by-data-center charts");
    assert!(!html.contains("http://") && !html.contains("https://"), "opens without network access");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(scenario);
}
