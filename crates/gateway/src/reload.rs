//! Reloading the configuration: re-read the file, open the listeners it adds, build a new
//! snapshot (carrying origins, caches and site load over), swap it in atomically, then start
//! the new listeners and stop the removed ones. A bad file is refused and the old
//! config keeps serving; requests in flight finish on the snapshot they started with.

use crate::config;
use crate::shield::Shield;
use crate::snapshot::Snapshot;
use crate::telemetry::{metrics::ReasonLabel, Telemetry};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::Notify;

/// The outcome of the last reload, shown on /status.json.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReloadEvent {
    #[serde(with = "crate::util::rfc3339")]
    pub(crate) at: SystemTime,
    pub(crate) ok: bool,
    pub(crate) error: Option<String>,
}

/// What a reload needs and changes.
pub(crate) struct Reloader {
    /// The file to read again (None: an embedded config, which cannot be reloaded).
    path: Option<PathBuf>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    shield: Arc<Shield>,
    telemetry: Arc<Telemetry>,
    /// One reload at a time.
    lock: tokio::sync::Mutex<()>,
    last: Mutex<Option<ReloadEvent>>,
    /// Signalled after each reload that took effect (health checkers for new origins).
    pub(crate) reloaded: Notify,
    /// The addresses of origins given by DNS name.
    pub(crate) dns: Arc<crate::upstream::dns::Dns>,
    /// The listeners, changed with `[listen]` (set once the gateway has opened them).
    pub(crate) listeners: std::sync::OnceLock<Arc<crate::listen::set::Listeners>>,
    /// The QUIC listeners, changed with `[listen] quic` and given each new snapshot's
    /// certificates.
    pub(crate) quic: std::sync::OnceLock<Arc<crate::listen::quic::QuicListeners>>,
}

impl Reloader {
    pub(crate) fn new(
        path: Option<PathBuf>,
        snapshot: Arc<ArcSwap<Snapshot>>,
        shield: Arc<Shield>,
        telemetry: Arc<Telemetry>,
        dns: Arc<crate::upstream::dns::Dns>,
    ) -> Reloader {
        Reloader {
            dns,
            path,
            snapshot,
            shield,
            telemetry,
            lock: Default::default(),
            last: Mutex::new(None),
            reloaded: Notify::new(),
            listeners: std::sync::OnceLock::new(),
            quic: std::sync::OnceLock::new(),
        }
    }

    /// The last reload's outcome, if there was one.
    pub(crate) fn last(&self) -> Option<ReloadEvent> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Builds the current config again with the names' current addresses (a DNS answer
    /// changed), carrying everything over as a reload does.
    pub(crate) async fn reapply(&self) {
        let _one_at_a_time = self.lock.lock().await;
        let current = self.snapshot.load();
        match Snapshot::build(current.file.clone(), &self.telemetry.metrics, Some(&current), &self.dns.addresses()) {
            Ok(snap) => {
                self.snapshot.store(Arc::new(snap));
                self.reloaded.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "origins' new addresses not applied"),
        }
    }

    /// Re-reads the config file and swaps it in. A bad file is refused and the old config
    /// keeps serving. Requests in flight finish on the snapshot they started with.
    pub(crate) async fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Err("no config file to reload (embedded configuration)".into());
        };
        let _one_at_a_time = self.lock.lock().await;
        let (mut listen_plan, mut quic_plan) = (None, None);
        let result = match config::load_file(path) {
            Ok(file) => {
                let current = self.snapshot.load();
                // New listeners are opened before anything changes: an address that cannot
                // be bound refuses the whole reload.
                let planned = match self.listeners.get() {
                    Some(l) => l.plan(&file.listen, &mut Default::default()).map(Some),
                    None => Ok(None),
                };
                let quic_planned = match self.quic.get() {
                    Some(q) => planned.and_then(|p| Ok((p, Some(q.plan(&file.listen)?)))),
                    None => planned.map(|p| (p, None)),
                };
                match quic_planned {
                    Ok((plan, quic)) => {
                        listen_plan = plan;
                        quic_plan = quic;
                        // New names are looked up before the config serves (the request path
                        // never waits for DNS).
                        self.dns.configure(&file.dns);
                        self.dns.resolve_new(&crate::upstream::dns::names(&file), &self.telemetry).await;
                        Snapshot::build(file, &self.telemetry.metrics, Some(&current), &self.dns.addresses())
                    }
                    Err(e) => Err(format!("{}: {e}", path.display())),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let event = ReloadEvent { at: SystemTime::now(), ok: result.is_ok(), error: result.as_ref().err().cloned() };
        if let Ok(mut last) = self.last.lock() {
            *last = Some(event);
        }
        let reloads = &self.telemetry.metrics.reloads;
        match result {
            Ok(snap) => {
                self.shield.reconfigure(&snap.file.shield);
                self.snapshot.store(Arc::new(snap));
                if let (Some(listeners), Some(plan)) = (self.listeners.get(), listen_plan.filter(|p| !p.is_empty())) {
                    if let Err(e) = listeners.commit(plan) {
                        tracing::error!(error = %e, "listeners not changed");
                    }
                }
                if let (Some(quic), Some(plan)) = (self.quic.get(), quic_plan) {
                    if let Err(e) = quic.commit(plan, &self.snapshot.load()) {
                        tracing::error!(error = %e, "QUIC listeners not changed");
                    }
                }
                self.reloaded.notify_one();
                reloads.get_or_create(&ReasonLabel { reason: "ok".into() }).inc();
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                reloads.get_or_create(&ReasonLabel { reason: "error".into() }).inc();
                tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps serving");
                Err(e)
            }
        }
    }
}
