//! The running gateway: binds the listeners, holds the current config snapshot (swapped
//! atomically on reload), and stops with a bounded drain.

use crate::config::{self, File};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// State shared by every connection and the admin listener.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Metrics,
    pub started: SystemTime,
    pub config_path: Option<PathBuf>,
    pub open_connections: AtomicUsize,
    pub drained: Notify,
    pub events: crate::events::EventLog,
    /// Flood defence state that lives across reloads.
    pub shield: crate::shield::Shield,
    reload_lock: tokio::sync::Mutex<()>,
    /// Signalled after a reload so health checkers start for new origins.
    new_snapshot: Notify,
    pub last_reload: Mutex<Option<ReloadEvent>>,
}

/// The outcome of the last reload, shown on /status.json.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadEvent {
    #[serde(with = "crate::util::rfc3339")]
    pub at: SystemTime,
    pub ok: bool,
    pub error: Option<String>,
}

impl Shared {
    /// Re-reads the config file and swaps it in. A bad file is refused and the old config
    /// keeps serving. Requests in flight finish on the snapshot they started with.
    pub async fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.config_path else {
            return Err("no config file to reload (embedded configuration)".into());
        };
        let _one_at_a_time = self.reload_lock.lock().await;
        let result = config::load_file(path).map_err(|e| e.to_string()).and_then(|file| {
            let current = self.snapshot.load();
            if file.listen.http != current.file.listen.http
                || file.listen.https != current.file.listen.https
                || file.listen.admin != current.file.listen.admin
            {
                tracing::warn!("listen addresses changed: they take effect on restart; everything else is applied now");
            }
            Snapshot::build(file, &self.metrics, Some(&current))
        });
        let event = ReloadEvent { at: SystemTime::now(), ok: result.is_ok(), error: result.as_ref().err().cloned() };
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(event);
        }
        match result {
            Ok(snap) => {
                self.shield.reconfigure(&snap.file.shield);
                self.snapshot.store(Arc::new(snap));
                self.new_snapshot.notify_one();
                self.metrics.reloads.get_or_create(&crate::metrics::ReasonLabel { reason: "ok".into() }).inc();
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reloads.get_or_create(&crate::metrics::ReasonLabel { reason: "error".into() }).inc();
                tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps serving");
                Err(e)
            }
        }
    }
}

/// A started gateway.
pub struct Gateway {
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Bound addresses (a configured port 0 shows its real port here).
    pub http_addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
}

impl Gateway {
    /// Binds every listener and starts serving. Must be called inside a tokio runtime.
    pub async fn start(file: File, config_path: Option<PathBuf>) -> anyhow::Result<Gateway> {
        let metrics = Metrics::new();
        let snapshot = Snapshot::build(file, &metrics, None).map_err(anyhow::Error::msg)?;
        let listen = snapshot.file.listen.clone();
        let shield = crate::shield::Shield::new(&snapshot.file.shield);
        let shared = Arc::new(Shared {
            shield,
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            started: SystemTime::now(),
            config_path,
            open_connections: AtomicUsize::new(0),
            drained: Notify::new(),
            events: Default::default(),
            reload_lock: tokio::sync::Mutex::new(()),
            new_snapshot: Notify::new(),
            last_reload: Mutex::new(None),
        });
        crate::upstream::checker::ensure(&shared);
        // After each reload: checkers for origins that are new in the config.
        let checkers = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    shared.new_snapshot.notified().await;
                    crate::upstream::checker::ensure(&shared);
                }
            })
        };
        let (shutdown, rx) = watch::channel(false);
        let upkeep = tokio::spawn(crate::shield::run_upkeep(shared.clone(), rx.clone()));
        let mut gw = Gateway {
            shared: shared.clone(),
            shutdown,
            tasks: vec![checkers, upkeep],
            http_addrs: Vec::new(),
            https_addrs: Vec::new(),
            admin_addr: None,
        };
        for (addrs, tls) in [(&listen.http, false), (&listen.https, true)] {
            for addr in addrs {
                let l = bind(*addr.get_ref()).await?;
                let local = l.local_addr()?;
                if tls {
                    gw.https_addrs.push(local)
                } else {
                    gw.http_addrs.push(local)
                }
                tracing::info!(addr = %local, tls, "listening");
                gw.tasks.push(tokio::spawn(crate::listen::serve_listener(shared.clone(), l, tls, rx.clone())));
            }
        }
        if let Some(addr) = listen.admin {
            let l = bind(addr).await?;
            let local = l.local_addr()?;
            gw.admin_addr = Some(local);
            tracing::info!(addr = %local, "admin listening");
            gw.tasks.push(tokio::spawn(crate::admin::serve(shared.clone(), l, rx.clone())));
        }
        Ok(gw)
    }

    /// Runs until SIGTERM or SIGINT (reloading on SIGHUP), then drains and returns.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading configuration");
                    let _ = self.shared.reload().await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("stopping: no new connections; draining in-flight requests");
        self.stop().await;
        Ok(())
    }

    /// Stops accepting, asks every connection to finish, and waits for them up to
    /// `timeouts.drain`.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let drain = self.shared.snapshot.load().file.timeouts.drain.get();
        let shared = self.shared.clone();
        let drained = async move {
            loop {
                let notified = shared.drained.notified();
                if shared.open_connections.load(Relaxed) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(drain, drained).await.is_err() {
            tracing::warn!(
                open = self.shared.open_connections.load(Relaxed),
                "drain timeout: closing remaining connections"
            );
        }
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    Ok(socket.listen(4096)?)
}
