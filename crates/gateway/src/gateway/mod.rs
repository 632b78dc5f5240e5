//! The running gateway: it builds the handles the modules need (the request path's
//! [`Edge`], the listeners' [`Front`], the admin listener's [`Admin`], the [`Reloader`]),
//! opens the listeners ([`Listeners`]), starts the background tasks (health checks in
//! [`checkers`], the shield's [`upkeep`]), reloads on SIGHUP, upgrades its binary on
//! SIGUSR2 ([`upgrade`]), and stops with a bounded drain.

mod checkers;
mod handover;
mod incidents;
mod systemd;
pub mod upgrade;
mod upkeep;

use crate::admin::Admin;
use crate::config::File;
use crate::listen::quic::QuicListeners;
use crate::listen::set::{Inherited, Listeners, Role, Serve};
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
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A started gateway.
pub struct Gateway {
    front: Arc<Front>,
    reloader: Arc<Reloader>,
    listeners: Arc<Listeners>,
    quic: Arc<QuicListeners>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// How to start this process again (`holdfast run`); None: no binary upgrade.
    process: Option<upgrade::Process>,
    /// The plain HTTP listeners' addresses (a configured port 0 shows its real port here).
    pub http_addrs: Vec<SocketAddr>,
    /// The TLS listeners' addresses.
    pub https_addrs: Vec<SocketAddr>,
    /// The QUIC (HTTP/3) listeners' addresses.
    pub quic_addrs: Vec<SocketAddr>,
    /// The admin listener's address, if there is one.
    pub admin_addr: Option<SocketAddr>,
    /// The public status page's address, if there is one.
    pub status_addr: Option<SocketAddr>,
}

/// `holdfast run`: loads the config, takes the listeners (from the old binary in an
/// upgrade, else from systemd, else by binding), writes the pid file, tells the old binary
/// or systemd that it serves, and runs until stopped or upgraded.
pub async fn run(config_path: PathBuf, pid_file: Option<PathBuf>) -> anyhow::Result<()> {
    let process = upgrade::Process::current(pid_file)?;
    let (successor, inherited, carried) = match upgrade::Successor::connect()? {
        Some((s, inherited, carried)) => (Some(s), inherited, Some(carried)),
        None => (None, Inherited { handed: Vec::new(), systemd: systemd::listeners() }, None),
    };
    let started = async {
        let file = crate::config::load_file(&config_path)?;
        let gw = Gateway::start_with(file, Some(config_path.clone()), inherited).await?;
        if let Some(pid_file) = &process.pid_file {
            upgrade::write_pid_file(pid_file)
                .map_err(|e| anyhow::anyhow!("cannot write the pid file {}: {e}", pid_file.display()))?;
        }
        anyhow::Ok(gw)
    };
    let mut gw = match started.await {
        Ok(gw) => gw,
        Err(e) => {
            if let Some(s) = successor {
                s.failed(&format!("{e:#}"));
            }
            return Err(e);
        }
    };
    if let Some(carried) = carried {
        let blocks = gw.front.edge.shield.restore(carried.shield, tokio::time::Instant::now());
        tracing::info!(blocks, "upgrade: the shield's blocks and keys carried over");
    }
    let took_over = successor.is_some();
    if let Some(s) = successor {
        s.ready();
    }
    systemd::ready(took_over.then_some(std::process::id()));
    gw.process = Some(process);
    gw.run_until_signal().await
}

impl Gateway {
    /// Binds every listener and starts serving. Must be called inside a tokio runtime.
    pub async fn start(file: File, config_path: Option<PathBuf>) -> anyhow::Result<Gateway> {
        Gateway::start_with(file, config_path, Inherited::default()).await
    }

    /// As [`Gateway::start`], taking listening sockets from `inherited` before binding.
    pub(crate) async fn start_with(
        file: File,
        config_path: Option<PathBuf>,
        mut inherited: Inherited,
    ) -> anyhow::Result<Gateway> {
        let telemetry = Arc::new(Telemetry::new());
        let dns = Arc::new(crate::upstream::dns::Dns::new(&file.dns));
        dns.resolve_new(&crate::upstream::dns::names(&file), &telemetry).await;
        let snapshot = Snapshot::build(file, &telemetry.metrics, None, &dns.addresses()).map_err(anyhow::Error::msg)?;
        let listen = snapshot.file.listen.clone();
        let shield = Arc::new(crate::shield::Shield::new(&snapshot.file.shield));
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let edge = Arc::new(Edge {
            snapshot: snapshot.clone(),
            telemetry: telemetry.clone(),
            shield: shield.clone(),
            alt_svc: Default::default(),
        });
        let front = Arc::new(Front::new(edge.clone()));
        let reloader = Arc::new(Reloader::new(config_path, snapshot.clone(), shield, telemetry.clone(), dns));
        checkers::ensure(&snapshot, &telemetry);
        let (shutdown, rx) = watch::channel(false);
        let acme_tasks = {
            let snap = snapshot.load();
            crate::acme::start(&snap.file, &snap.acme, &telemetry, &rx)?
        };
        // After each reload: checkers for origins that are new in the config, and ACME for
        // sites that are new to it.
        let checkers = {
            let (reloader, snapshot, rx) = (reloader.clone(), snapshot.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    reloader.reloaded.notified().await;
                    checkers::ensure(&snapshot, &telemetry);
                    let snap = snapshot.load();
                    if let Err(e) = crate::acme::start(&snap.file, &snap.acme, &telemetry, &rx) {
                        tracing::error!(error = %e, "ACME not started for the reloaded config");
                    }
                }
            })
        };
        let upkeep = tokio::spawn(upkeep::run(edge.clone(), rx.clone()));
        let resolving = tokio::spawn(resolve(reloader.clone(), edge.telemetry.clone(), rx.clone()));
        let (incidents, journal) = open_incidents(&edge)?;
        let started = crate::clock::unix_ms();
        let status =
            Arc::new(crate::status::Status { snapshot: snapshot.clone(), incidents: incidents.clone(), started });
        let admin = Arc::new(Admin {
            edge: edge.clone(),
            front: front.clone(),
            reloader: reloader.clone(),
            incidents: incidents.clone(),
            started: SystemTime::now(),
        });
        let serve: Serve = {
            let (front, rx) = (front.clone(), rx.clone());
            Arc::new(move |role, l, stop| match role {
                Role::Http => tokio::spawn(crate::listen::serve_listener(front.clone(), l, false, stop, rx.clone())),
                Role::Https => tokio::spawn(crate::listen::serve_listener(front.clone(), l, true, stop, rx.clone())),
                Role::Admin => tokio::spawn(crate::admin::serve(admin.clone(), l, stop)),
                Role::Status => tokio::spawn(crate::status::serve(status.clone(), l, stop)),
            })
        };
        let listeners = Arc::new(Listeners::new(serve));
        let plan = listeners.plan(&listen, &mut inherited).map_err(anyhow::Error::msg)?;
        listeners.commit(plan).map_err(anyhow::Error::msg)?;
        if inherited.left() > 0 {
            tracing::warn!(
                sockets = inherited.left(),
                "inherited listening sockets that no [listen] entry names: closed"
            );
        }
        drop(inherited);
        let _ = reloader.listeners.set(listeners.clone());
        let quic = Arc::new(QuicListeners::new(front.clone(), rx.clone()));
        let plan = quic.plan(&listen).map_err(anyhow::Error::msg)?;
        quic.commit(plan, &snapshot.load()).map_err(anyhow::Error::msg)?;
        let _ = reloader.quic.set(quic.clone());
        let admin_url = listeners.addrs(Role::Admin).first().map_or(String::new(), |a| format!("http://{a}"));
        let mut gw = Gateway {
            front,
            reloader,
            shutdown,
            tasks: [checkers, upkeep, resolving].into_iter().chain(acme_tasks).collect(),
            process: None,
            http_addrs: listeners.addrs(Role::Http),
            https_addrs: listeners.addrs(Role::Https),
            quic_addrs: quic.addrs(),
            quic,
            admin_addr: listeners.addrs(Role::Admin).first().copied(),
            status_addr: listeners.addrs(Role::Status).first().copied(),
            listeners,
        };
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

    /// The addresses the listeners of each kind are bound to now (reloads change them):
    /// (http, https, admin, status).
    pub fn listening(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>, Vec<SocketAddr>, Vec<SocketAddr>) {
        let l = &self.listeners;
        (l.addrs(Role::Http), l.addrs(Role::Https), l.addrs(Role::Admin), l.addrs(Role::Status))
    }

    /// Runs until SIGTERM or SIGINT (reloading on SIGHUP, upgrading on SIGUSR2), then
    /// drains and returns.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let mut upgraded = false;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading configuration");
                    systemd::reloading();
                    let _ = self.reloader.reload().await;
                    systemd::ready(None);
                }
                _ = usr2.recv() => {
                    if self.upgrade().await {
                        upgraded = true;
                        break;
                    }
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        if upgraded {
            tracing::info!("upgraded: the new binary serves; this one accepts no more and drains");
        } else {
            tracing::info!("stopping: no new connections; draining in-flight requests");
            systemd::stopping();
        }
        let pid_file = self.process.as_ref().and_then(|p| p.pid_file.clone());
        self.stop().await;
        if let (Some(pid_file), false) = (pid_file, upgraded) {
            upgrade::remove_pid_file(&pid_file);
        }
        Ok(())
    }

    /// SIGUSR2: starts the new binary and hands over; true once it serves.
    async fn upgrade(&self) -> bool {
        let Some(process) = &self.process else {
            tracing::warn!("SIGUSR2: a binary upgrade needs `holdfast run`; ignored");
            return false;
        };
        tracing::info!("SIGUSR2: upgrading the binary");
        systemd::reloading();
        let began = std::time::Instant::now();
        let carried = handover::Carried { shield: self.front.edge.shield.carry(tokio::time::Instant::now()) };
        let result = upgrade::hand_over(process, &self.listeners, carried).await;
        let ms = began.elapsed().as_millis() as u64;
        let (ok, new_pid, error) = match result {
            Ok(pid) => {
                tracing::info!(new_pid = pid, ms, "upgrade: the new binary serves");
                (true, Some(pid), None)
            }
            Err(e) => {
                tracing::error!(error = %e, "upgrade failed; this process keeps serving");
                systemd::ready(None);
                systemd::status(&format!("upgrade failed: {e}"));
                (false, None, Some(e))
            }
        };
        let outcome = upgrade::Outcome { ok, old_pid: std::process::id(), new_pid, error, ms };
        upgrade::write_outcome(process, &outcome);
        ok
    }

    /// Stops accepting, asks every connection to finish, and waits for them up to
    /// `timeouts.drain`.
    pub async fn stop(self) {
        self.listeners.close_all();
        self.quic.close_all();
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
