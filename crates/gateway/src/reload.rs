//! Reloading the configuration: re-read the file, build a new snapshot (carrying origins,
//! caches and site load over), swap it in atomically. A bad file is refused and the old
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
        let result = match config::load_file(path) {
            Ok(file) => {
                let current = self.snapshot.load();
                if file.listen.http != current.file.listen.http
                    || file.listen.https != current.file.listen.https
                    || file.listen.admin != current.file.listen.admin
                {
                    tracing::warn!(
                        "listen addresses changed: they take effect on restart; everything else is applied now"
                    );
                }
                // New names are looked up before the config serves (the request path never
                // waits for DNS).
                self.dns.configure(&file.dns);
                self.dns.resolve_new(&crate::upstream::dns::names(&file), &self.telemetry).await;
                Snapshot::build(file, &self.telemetry.metrics, Some(&current), &self.dns.addresses())
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
