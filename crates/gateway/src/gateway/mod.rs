//! The running gateway: it builds the handles the modules need (the request path's
//! [`Edge`], the listeners' [`Front`], the admin listener's [`Admin`], the [`Reloader`]),
//! binds the listeners, starts the background tasks (health checks in [`checkers`], the
//! shield's [`upkeep`]), reloads on SIGHUP, and stops with a bounded drain.

mod checkers;
mod incidents;
mod upkeep;

use crate::admin::Admin;
use crate::config::File;
use crate::listen::Front;
use crate::proxy::Edge;
use crate::reload::Reloader;
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A started gateway.
pub struct Gateway {
    front: Arc<Front>,
    reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The plain HTTP listeners' addresses (a configured port 0 shows its real port here).
    pub http_addrs: Vec<SocketAddr>,
    /// The TLS listeners' addresses.
    pub https_addrs: Vec<SocketAddr>,
    /// The admin listener's address, if there is one.
    pub admin_addr: Option<SocketAddr>,
    /// The public status page's address, if there is one.
    pub status_addr: Option<SocketAddr>,
}

impl Gateway {
    /// Binds every listener and starts serving. Must be called inside a tokio runtime.
    pub async fn start(file: File, config_path: Option<PathBuf>) -> anyhow::Result<Gateway> {
        let telemetry = Arc::new(Telemetry::new());
        let dns = Arc::new(crate::upstream::dns::Dns::new(&file.dns));
        dns.resolve_new(&crate::upstream::dns::names(&file), &telemetry).await;
        let snapshot = Snapshot::build(file, &telemetry.metrics, None, &dns.addresses()).map_err(anyhow::Error::msg)?;
        let listen = snapshot.file.listen.clone();
        let shield = Arc::new(crate::shield::Shield::new(&snapshot.file.shield));
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let edge = Arc::new(Edge { snapshot: snapshot.clone(), telemetry: telemetry.clone(), shield: shield.clone() });
        let front = Arc::new(Front::new(edge.clone()));
        let reloader = Arc::new(Reloader::new(config_path, snapshot.clone(), shield, telemetry.clone(), dns));
        checkers::ensure(&snapshot, &telemetry);
        // After each reload: checkers for origins that are new in the config.
        let checkers = {
            let (reloader, snapshot) = (reloader.clone(), snapshot.clone());
            tokio::spawn(async move {
                loop {
                    reloader.reloaded.notified().await;
                    checkers::ensure(&snapshot, &telemetry);
                }
            })
        };
        let (shutdown, rx) = watch::channel(false);
        let upkeep = tokio::spawn(upkeep::run(edge.clone(), rx.clone()));
        let resolving = tokio::spawn(resolve(reloader.clone(), edge.telemetry.clone(), rx.clone()));
        let (incidents, journal) = open_incidents(&edge)?;
        let mut gw = Gateway {
            front: front.clone(),
            reloader: reloader.clone(),
            shutdown,
            tasks: vec![checkers, upkeep, resolving],
            http_addrs: Vec::new(),
            https_addrs: Vec::new(),
            admin_addr: None,
            status_addr: None,
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
                gw.tasks.push(tokio::spawn(crate::listen::serve_listener(front.clone(), l, tls, rx.clone())));
            }
        }
        let started = crate::clock::unix_ms();
        if let Some(addr) = listen.status {
            let l = bind(addr).await?;
            let local = l.local_addr()?;
            gw.status_addr = Some(local);
            tracing::info!(addr = %local, "status page listening");
            let status =
                Arc::new(crate::status::Status { snapshot: snapshot.clone(), incidents: incidents.clone(), started });
            gw.tasks.push(tokio::spawn(crate::status::serve(status, l, rx.clone())));
        }
        let mut admin_url = String::new();
        if let Some(addr) = listen.admin {
            let l = bind(addr).await?;
            let local = l.local_addr()?;
            gw.admin_addr = Some(local);
            admin_url = format!("http://{local}");
            tracing::info!(addr = %local, "admin listening");
            let admin = Arc::new(Admin {
                edge: edge.clone(),
                front,
                reloader,
                incidents: incidents.clone(),
                started: SystemTime::now(),
            });
            gw.tasks.push(tokio::spawn(crate::admin::serve(admin, l, rx.clone())));
        }
        let status = &edge.snapshot.load().file.status;
        let page = crate::incident::view::Page {
            id: "holdfast".into(),
            name: status.title.clone(),
            url: status.url.clone(),
            updated_at: started,
        };
        if let Some(cfg) = edge.snapshot.load().file.fleet.clone() {
            tracing::info!(instance = %cfg.instance, "fleet: syncing through Redis");
            let fleet = Arc::new(crate::fleet::Fleet {
                static_secret: !edge.snapshot.load().file.shield.challenge.secret.is_empty(),
                cfg,
                shield: edge.shield.clone(),
                telemetry: edge.telemetry.clone(),
                incidents: incidents.clone(),
            });
            gw.tasks.push(tokio::spawn(fleet.run(rx.clone())));
        }
        gw.tasks.push(tokio::spawn(incidents::run(edge, incidents, journal, page, admin_url, rx.clone())));
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
                    let _ = self.reloader.reload().await;
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
        let drain = self.front.edge.snapshot.load().file.timeouts.drain.get();
        if tokio::time::timeout(drain, self.front.drained()).await.is_err() {
            tracing::warn!(open = self.front.open_connections(), "drain timeout: closing remaining connections");
        }
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Looks origin names up again as their TTLs run out; a changed answer rebuilds the
/// snapshot (`Reloader::reapply`).
async fn resolve(reloader: Arc<Reloader>, telemetry: Arc<Telemetry>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let idle = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let due = reloader.dns.next_due().unwrap_or(idle).min(idle);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = shutdown.changed() => return,
        }
        if reloader.dns.refresh_due(&telemetry).await {
            reloader.reapply().await;
        }
    }
}

/// The incident store, with the history of `[incidents] state_dir` when there is one.
fn open_incidents(
    edge: &Edge,
) -> anyhow::Result<(Arc<crate::incident::Incidents>, Option<crate::incident::journal::Journal>)> {
    let snap = edge.snapshot.load();
    let cfg = &snap.file.incidents;
    let retention = cfg.retention.get().as_millis() as u64;
    let (journal, loaded) = match &cfg.state_dir {
        Some(dir) => {
            let dir = snap.file.path(dir);
            let (j, loaded) = crate::incident::journal::Journal::open(&dir, crate::clock::unix_ms(), retention)
                .map_err(|e| anyhow::anyhow!("cannot keep the incident journal in {}: {e}", dir.display()))?;
            tracing::info!(dir = %dir.display(), incidents = loaded.len(), "incident journal");
            (Some(j), loaded)
        }
        None => (None, Vec::new()),
    };
    let store = crate::incident::Incidents::new(edge.telemetry.clone(), loaded, retention, cfg.max_incidents);
    Ok((Arc::new(store), journal))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    Ok(socket.listen(4096)?)
}
