//! The binary upgrade, as nginx's `USR2` does it: the running process starts the executable
//! at its own path again with the same arguments, hands it every listening socket and what
//! else must survive ([`handover`](super::handover)), and once the new process says it
//! serves, stops accepting and drains. The sockets are never closed, so no connection is
//! refused, and one waiting in an accept queue is accepted by the new process. A new
//! process that cannot load its config, or fails to start, says why; the old one keeps
//! serving.
//!
//! Also here: the pid file (written when the process serves, atomically), and the outcome
//! file beside it (`FILE.upgrade`) that `holdfast upgrade --pid-file FILE` waits for.

use super::handover::{self, Carried, Reply};
use crate::listen::set::{Inherited, Listeners};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a new binary may take to start serving (config, DNS, certificates).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How this process was started, to start it again.
#[derive(Debug, Clone)]
pub struct Process {
    /// The executable's path, read at start (a package manager may replace the file
    /// later; the path then names the new binary).
    pub exe: PathBuf,
    /// The arguments after the executable's name.
    pub args: Vec<OsString>,
    /// Where the process id is written (`--pid-file`).
    pub pid_file: Option<PathBuf>,
}

impl Process {
    /// This process, as the operating system started it.
    pub fn current(pid_file: Option<PathBuf>) -> std::io::Result<Process> {
        Ok(Process { exe: std::env::current_exe()?, args: std::env::args_os().skip(1).collect(), pid_file })
    }
}

/// How an upgrade ended, written to `PID_FILE.upgrade` by the old process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the new process serves.
    pub ok: bool,
    /// The process that was asked to upgrade.
    pub old_pid: u32,
    /// The process that serves now, when the upgrade succeeded.
    pub new_pid: Option<u32>,
    /// Why it failed.
    pub error: Option<String>,
    /// Milliseconds from the signal to the new process serving (or to the failure).
    pub ms: u64,
}

/// The outcome file beside a pid file.
pub fn outcome_path(pid_file: &Path) -> PathBuf {
    let mut p = pid_file.as_os_str().to_owned();
    p.push(".upgrade");
    PathBuf::from(p)
}

/// Writes `contents` to `path` through a file renamed over it (readers never see half).
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Writes this process's id to the pid file.
pub(crate) fn write_pid_file(path: &Path) -> std::io::Result<()> {
    write_atomically(path, format!("{}\n", std::process::id()).as_bytes())
}

/// Removes the pid file if it still names this process (after an upgrade it names the new
/// one, and stays).
pub(crate) fn remove_pid_file(path: &Path) {
    let ours =
        std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u32>().ok()) == Some(std::process::id());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

pub(crate) fn write_outcome(process: &Process, outcome: &Outcome) {
    let Some(pid_file) = &process.pid_file else { return };
    let written = serde_json::to_vec(outcome).map_err(std::io::Error::other).and_then(|mut j| {
        j.push(b'\n');
        write_atomically(&outcome_path(pid_file), &j)
    });
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot write the upgrade's outcome beside the pid file");
    }
}

/// A directory of this process's own (mode 0700) for the handover socket; removed on drop.
struct HandoverDir(PathBuf);

impl HandoverDir {
    fn new() -> std::io::Result<HandoverDir> {
        use std::os::unix::fs::DirBuilderExt;
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("holdfast-upgrade-{}-{nonce:x}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(HandoverDir(dir))
    }
}

impl Drop for HandoverDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the new binary and hands it the listeners; Ok(its pid) once it serves.
pub(crate) async fn hand_over(process: &Process, listeners: &Listeners, carried: Carried) -> Result<u32, String> {
    let dir = HandoverDir::new().map_err(|e| format!("cannot make the handover directory: {e}"))?;
    let path = dir.0.join("handover.sock");
    let socket =
        tokio::net::UnixListener::bind(&path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let mut child = tokio::process::Command::new(&process.exe)
        .args(&process.args)
        .env(handover::ENV, &path)
        // systemd's sockets were this process's; the new one gets them through the handover.
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", process.exe.display()))?;
    let child_pid = child.id().unwrap_or(0);
    tracing::info!(exe = %process.exe.display(), pid = child_pid, "upgrade: new binary started");
    let deadline = tokio::time::sleep(START_TIMEOUT);
    tokio::pin!(deadline);
    let stream = tokio::select! {
        accepted = socket.accept() => accepted.map_err(|e| format!("handover: {e}"))?.0,
        status = child.wait() => return Err(exited(status)),
        _ = &mut deadline => {
            let _ = child.start_kill();
            return Err(format!("the new process did not connect within {}s", START_TIMEOUT.as_secs()));
        }
    };
    let peer = rustix::net::sockopt::socket_peercred(&stream).map_err(|e| format!("handover: {e}"))?;
    if peer.pid.as_raw_nonzero().get() as u32 != child_pid {
        let _ = child.start_kill();
        return Err(format!("the handover was taken by process {}, not the new binary", peer.pid.as_raw_nonzero()));
    }
    let stream = stream.into_std().map_err(|e| format!("handover: {e}"))?;
    let sockets = listeners.sockets().map_err(|e| format!("cannot duplicate the listeners: {e}"))?;
    let talk = tokio::task::spawn_blocking(move || -> std::io::Result<Reply> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(START_TIMEOUT))?;
        handover::send_offer(&stream, &sockets, carried)?;
        drop(sockets);
        handover::read_reply(&stream)
    });
    let reply = tokio::select! {
        r = talk => r.map_err(|e| format!("handover: {e}"))?,
        _ = &mut deadline => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer")),
    };
    match reply {
        Ok(Reply::Ready { pid }) => Ok(pid),
        Ok(Reply::Failed { error }) => {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Err(error)
        }
        Err(e) => {
            // It holds copies of the sockets and said nothing: it must not go on.
            let _ = child.start_kill();
            let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Err(match status {
                Ok(status) => format!("{} ({e})", exited(status)),
                Err(_) => format!("the new process did not say it serves ({e}); stopped"),
            })
        }
    }
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => format!("the new process exited ({s}) before it served"),
        Err(e) => format!("the new process was lost: {e}"),
    }
}

/// This process, when a binary upgrade started it: the handover to answer.
pub(crate) struct Successor {
    stream: UnixStream,
}

impl Successor {
    /// Connects to the old process named in `HOLDFAST_UPGRADE` and takes what it hands
    /// over; None when this process was not started by an upgrade.
    pub(crate) fn connect() -> anyhow::Result<Option<(Successor, Inherited, Carried)>> {
        let Some(path) = std::env::var_os(handover::ENV) else { return Ok(None) };
        let stream = UnixStream::connect(&path)
            .map_err(|e| anyhow::anyhow!("upgrade: cannot reach the old process at {:?}: {e}", path))?;
        stream.set_read_timeout(Some(START_TIMEOUT))?;
        let (inherited, carried) =
            handover::receive_offer(&stream).map_err(|e| anyhow::anyhow!("upgrade: the handover failed: {e}"))?;
        tracing::info!(listeners = inherited.handed.len(), "upgrade: listeners taken over from the old process");
        Ok(Some((Successor { stream }, inherited, carried)))
    }

    /// Tells the old process why this one cannot serve (it keeps serving).
    pub(crate) fn failed(self, error: &str) {
        let _ = handover::send_reply(&self.stream, &Reply::Failed { error: error.to_string() });
    }

    /// Tells the old process this one serves (it stops accepting and drains).
    pub(crate) fn ready(self) {
        let _ = handover::send_reply(&self.stream, &Reply::Ready { pid: std::process::id() });
    }
}

/// `holdfast upgrade --pid-file FILE`: signals the process the file names and waits up to
/// `timeout` for the outcome. Err: why it did not happen (the old process keeps serving).
pub fn request(pid_file: &Path, timeout: Duration) -> Result<Outcome, String> {
    use rustix::process::{kill_process, test_kill_process, Pid, Signal};
    let text = std::fs::read_to_string(pid_file).map_err(|e| format!("cannot read {}: {e}", pid_file.display()))?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("{}: expected a process id, found {:?}", pid_file.display(), text.trim()))?;
    let alive = |pid| test_kill_process(pid).is_ok();
    if !alive(pid) {
        return Err(format!("no process {} (named by {})", pid.as_raw_nonzero(), pid_file.display()));
    }
    let outcome_file = outcome_path(pid_file);
    let _ = std::fs::remove_file(&outcome_file);
    kill_process(pid, Signal::USR2).map_err(|e| format!("cannot signal process {}: {e}", pid.as_raw_nonzero()))?;
    let started = Instant::now();
    let old = pid.as_raw_nonzero().get() as u32;
    loop {
        let read = std::fs::read(&outcome_file).ok().and_then(|b| serde_json::from_slice::<Outcome>(&b).ok());
        if let Some(outcome) = read.filter(|o| o.old_pid == old) {
            return match outcome.ok {
                true => Ok(outcome),
                false => Err(outcome.error.unwrap_or_else(|| "the upgrade failed".into())),
            };
        }
        if !alive(pid) {
            return Err(format!("process {old} exited without saying how the upgrade went"));
        }
        if started.elapsed() > timeout {
            return Err(format!("no outcome within {}s; see process {old}'s log", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
