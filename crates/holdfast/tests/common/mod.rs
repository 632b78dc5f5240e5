//! What the binary's tests share: processes of the binary with their JSON logs, plain HTTP
//! GETs, polling for a condition, and headless Chromium.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_holdfast");

pub fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("holdfast-cli-{}-{name}", std::process::id()))
}

/// A child process whose JSON log lines (stdout, `--log-format json`) are collected as
/// they come; killed when dropped.
pub struct Proc {
    pub child: Child,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
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
    pub fn lines(&self, f: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().iter().filter(|v| f(v)).cloned().collect()
    }

    /// The address in the first log line with this message (the process bound port 0 and
    /// says which port it got: no port is chosen before the process binds it).
    pub fn bound(&self, message: &str) -> SocketAddr {
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
pub fn shop_process(datacenter: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["shop", "--site", "shop-de", "--language", "de", "--datacenter", datacenter, "--listen", "127.0.0.1:0"])
        .args(extra);
    let p = Proc::spawn(cmd);
    let addr = p.bound("shop listening");
    (p, addr)
}

/// `holdfast run` on `config`; returns it with its HTTP and admin addresses.
pub fn gateway_process(config: &std::path::Path) -> (Proc, SocketAddr, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--workers", "1", "--config"]).arg(config);
    let p = Proc::spawn(cmd);
    let (http, admin) = (p.bound("listening"), p.bound("admin listening"));
    (p, http, admin)
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args(["-s", sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
}

/// A plain HTTP/1.1 GET; returns the whole response text.
pub fn http_get(addr: SocketAddr, host: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

pub fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn site_config(origin: SocketAddr) -> String {
    format!("[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[[datacenter]]\nname = \"eu\"\n[[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\n[[site.pool]]\ndatacenter = \"eu\"\norigins = [\"{origin}\"]\n")
}

/// The gateway's /status.json.
pub fn status(admin: SocketAddr) -> Option<serde_json::Value> {
    let text = http_get(admin, "admin", "/status.json")?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// Headless Chromium (Debian's `chromium`; scripts/test installs it) on `url` with `args`
/// (`--dump-dom`, `--screenshot=…`); its standard output. None only when the environment
/// says there is no browser here (`HOLDFAST_NO_BROWSER=1`); a missing browser otherwise
/// fails the test, with what to install.
pub fn chromium(args: &[&str], url: &str) -> Option<String> {
    if std::env::var_os("HOLDFAST_NO_BROWSER").is_some() {
        eprintln!("HOLDFAST_NO_BROWSER is set: the browser check is skipped");
        return None;
    }
    let profile = temp(&format!(
        "chromium-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        // QUIC only where a test asks for it (against its own test server).
        .args((!args.iter().any(|a| a.starts_with("--origin-to-force-quic-on"))).then_some("--disable-quic"))
        .args([
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("headless Chromium is needed ({e}): apt-get install chromium (scripts/test does)"));
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish with {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(profile);
    Some(reader.join().unwrap())
}
