//! The gateway under test, run as its own process (`holdfast run`) so that its CPU and
//! memory are its own and the drill drives it only from outside: listener, admin API, config.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct GatewayProcess {
    child: Child,
    pub(crate) http: SocketAddr,
    pub(crate) admin: SocketAddr,
    last_cpu: Option<(Instant, u64)>,
}

/// The address in the gateway's first JSON log line with `message` (plain listeners only).
fn bound(log: &Path, message: &str) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| (v["message"] == message && v["tls"] != true).then(|| v["addr"].as_str()?.parse().ok()).flatten())
}

impl GatewayProcess {
    /// Writes `config` (its listeners on port 0) into `dir` and starts `exe run` on it;
    /// reads the addresses it bound from its log (JSON lines in `dir/gateway.log`: no port
    /// is chosen before the gateway binds it) and waits until it answers.
    pub(crate) fn start(exe: &Path, config: &toml::Table, dir: &Path) -> anyhow::Result<GatewayProcess> {
        let path: PathBuf = dir.join("gateway.toml");
        std::fs::write(&path, toml::to_string(config)?).with_context(|| format!("cannot write {}", path.display()))?;
        let log_path = dir.join("gateway.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "warn,holdfast_gateway::gateway=info,holdfast_gateway::listen::set=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let unspecified = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut gw = GatewayProcess { child, http: unspecified, admin: unspecified, last_cpu: None };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let (Some(http), Some(admin)) = (bound(&log_path, "listening"), bound(&log_path, "admin listening")) {
                (gw.http, gw.admin) = (http, admin);
                if gw.healthy() {
                    return Ok(gw);
                }
            }
            if let Some(status) = gw.child.try_wait()? {
                bail!("the gateway exited ({status}); see {}", log_path.display());
            }
            if Instant::now() > deadline {
                bail!("the gateway did not answer within 20 s; see {}", log_path.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.admin, Duration::from_millis(200)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    }

    /// GET on the admin listener; the body.
    pub(crate) fn admin_get(&self, path: &str) -> Option<String> {
        admin_get(self.admin, path)
    }

    /// CPU use since the last call (percent of one core) and resident memory (MiB).
    pub(crate) fn sample(&mut self) -> (Option<f64>, Option<f64>) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may contain spaces).
        let ticks = stat.rsplit_once(')').and_then(|(_, rest)| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        });
        let now = Instant::now();
        let cpu = match (ticks, self.last_cpu) {
            (Some(t), Some((then, before))) => {
                let secs = now.duration_since(then).as_secs_f64();
                Some((t.saturating_sub(before)) as f64 / clock_ticks() / secs * 100.0)
            }
            _ => None,
        };
        if let Some(t) = ticks {
            self.last_cpu = Some((now, t));
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0);
        (cpu, rss)
    }

    /// SIGTERM, then wait (up to 10 s, then SIGKILL).
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill").args(["-s", "TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET on an admin listener (blocking; run it off the runtime's workers); the body.
pub(crate) fn admin_get(admin: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on Linux for every architecture we run on.
    100.0
}
