//! Real `redis-server` processes for the fleet tests, on free loopback ports: a single
//! server, a replica, Sentinels, and the nodes of a Redis Cluster. Each is ended (by its PID)
//! when dropped. `scripts/test` installs redis-server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server process this test started.
pub(crate) struct Redis {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

/// A port free now, with `port + 10000` free too (a cluster node's bus).
fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(a) = l.local_addr() else { continue };
        if a.port() < 55_000 && TcpListener::bind(("127.0.0.1", a.port() + 10_000)).is_ok() {
            return a.port();
        }
    }
    panic!("no free port pair")
}

/// Sends one inline command and returns the first reply line(s).
pub(crate) fn command(port: u16, cmd: &str) -> Option<String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 16 * 1024];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Polls `f` every 20 ms until it holds or `limit` passes.
pub(crate) fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

impl Redis {
    /// A plain server (no persistence).
    pub(crate) fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// A server with extra arguments (`--replicaof …`, `--cluster-enabled yes`, or
    /// `--sentinel` with a config file written by [`Redis::sentinel`]).
    pub(crate) fn start_with(extra: &[&str]) -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("holdfast-redis-{}-{port}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let mut r = Redis { child: None, port, dir, args: extra.iter().map(|s| s.to_string()).collect() };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        let sentinel = self.args.iter().any(|a| a == "--sentinel");
        if sentinel {
            // A Sentinel's config file comes first, and is rewritten by the Sentinel.
            cmd.arg(self.dir.join("sentinel.conf"));
        }
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}); scripts/test installs it (apt-get install redis-server)")
        });
        self.child = Some(child);
        let port = self.port;
        assert!(
            poll(Duration::from_secs(10), || command(port, "PING").is_some_and(|r| r.starts_with("+PONG"))),
            "redis-server on {port} did not answer"
        );
    }

    /// A Sentinel watching `master` (on `master_port`) with a quorum of `quorum`.
    pub(crate) fn sentinel(master: &str, master_port: u16, quorum: u32) -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("holdfast-sentinel-{}-{port}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let conf = format!(
            "sentinel monitor {master} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {master} 1000\n\
             sentinel failover-timeout {master} 5000\n\
             sentinel parallel-syncs {master} 1\n"
        );
        std::fs::write(dir.join("sentinel.conf"), conf).unwrap();
        let mut r = Redis { child: None, port, dir, args: vec!["--sentinel".into()] };
        r.spawn();
        r
    }

    /// A server that speaks TLS on a second port (a self-signed certificate) and knows
    /// only the ACL user `holdfast` (password `s3cret`, keys `hf:*` only); returns it and
    /// the TLS port.
    pub(crate) fn start_tls_acl() -> (Redis, u16) {
        let tls = free_port();
        let dir = std::env::temp_dir().join(format!("holdfast-redis-tls-{}-{tls}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let (crt, key) = (dir.join("redis.crt"), dir.join("redis.key"));
        std::fs::write(&crt, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let (crt, key) = (crt.display().to_string(), key.display().to_string());
        let r = Redis::start_with(&[
            "--tls-port",
            &tls.to_string(),
            "--tls-cert-file",
            &crt,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &crt,
            "--tls-auth-clients",
            "no",
            // (Each word its own argument: redis-server joins them into one directive.)
            "--user",
            "holdfast",
            "on",
            ">s3cret",
            "~hf:*",
            "&*",
            "+@all",
        ]);
        (r, tls)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    /// SIGSTOP: the server hangs (connections stay open, nothing answers).
    pub(crate) fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub(crate) fn thaw(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL, and waits for the process to end.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing was saved).
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `n` masters (no replicas), created with `redis-cli --cluster create`.
pub(crate) fn cluster(n: usize) -> Vec<Redis> {
    let nodes: Vec<Redis> =
        (0..n).map(|_| Redis::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])).collect();
    let addrs: Vec<String> = nodes.iter().map(|r| format!("127.0.0.1:{}", r.port)).collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli (package redis-tools)");
    assert!(status.success(), "redis-cli --cluster create failed");
    for r in &nodes {
        let port = r.port;
        assert!(
            poll(Duration::from_secs(20), || command(port, "CLUSTER INFO")
                .is_some_and(|i| i.contains("cluster_state:ok"))),
            "the cluster did not come up"
        );
    }
    nodes
}
