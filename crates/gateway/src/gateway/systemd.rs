//! systemd: listening sockets passed by socket activation (`LISTEN_FDS`, through the
//! listenfd crate), and the service's state told to the manager (`sd_notify`: READY,
//! RELOADING, STOPPING, and MAINPID when a new binary takes over). Outside systemd both are
//! no-ops.

use sd_notify::NotifyState;
use std::net::TcpListener as StdListener;

/// The TCP listeners systemd passed; they are matched to `[listen]` by address.
pub(crate) fn listeners() -> Vec<StdListener> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for i in 0..fds.len() {
        match fds.take_tcp_listener(i) {
            Ok(Some(l)) => out.push(l),
            Ok(None) => {}
            Err(e) => tracing::warn!(fd = i + 3, error = %e, "a socket from systemd is not a TCP listener; ignored"),
        }
    }
    if !out.is_empty() {
        tracing::info!(sockets = out.len(), "listening sockets from systemd");
    }
    out
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify");
    }
}

/// The gateway serves (`pid`: this process, when it took over from an old binary).
pub(crate) fn ready(new_main: Option<u32>) {
    match new_main {
        Some(pid) => notify(&[NotifyState::MainPid(pid), NotifyState::Ready]),
        None => notify(&[NotifyState::Ready]),
    }
}

/// A reload or an upgrade begins.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// The gateway stops.
pub(crate) fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// A line for `systemctl status`.
pub(crate) fn status(line: &str) {
    notify(&[NotifyState::Status(line)]);
}
