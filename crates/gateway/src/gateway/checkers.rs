//! Active health checks on a schedule: one task per origin, a check
//! ([`upstream::checker::check`]) every interval with ±10% jitter. A checker stops by itself
//! when its origin leaves the configuration. What changes is reported through the origin's
//! site (events, and failover or failback of its data center).

use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;
use crate::upstream::{self, health::Transition, Origin};
use arc_swap::ArcSwap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

/// Starts a checker for every origin of the current snapshot that has none.
pub(crate) fn ensure(snapshot: &Arc<ArcSwap<Snapshot>>, telemetry: &Arc<Telemetry>) {
    let snap = snapshot.load();
    for site in snap.sites.iter().flat_map(|s| s.with_routes()) {
        for pool in &site.pools {
            for o in &pool.origins {
                if !o.checker_running.swap(true, Relaxed) {
                    tokio::spawn(run(snapshot.clone(), telemetry.clone(), Arc::downgrade(o)));
                }
            }
        }
    }
}

async fn run(snapshot: Arc<ArcSwap<Snapshot>>, telemetry: Arc<Telemetry>, origin: Weak<Origin>) {
    let mut seed = Arc::as_ptr(&telemetry) as u64 ^ origin.as_ptr() as u64 | 1;
    loop {
        let Some(o) = origin.upgrade() else { return };
        let snap = snapshot.load_full();
        let site = snap
            .sites
            .iter()
            .flat_map(|s| s.with_routes())
            .find(|s| s.pools.iter().any(|p| p.origins.iter().any(|x| Arc::ptr_eq(x, &o))));
        let Some(site) = site.cloned() else {
            o.checker_running.store(false, Relaxed);
            return;
        };
        drop(snap);
        let cfg = &site.cfg.health;
        if cfg.enabled {
            let host = site.hosts.iter().find(|h| !h.starts_with('*')).map_or(o.authority.as_str(), |h| h.as_str());
            let checked = upstream::checker::check(&o, host, cfg).await;
            if let Err(kind) = checked {
                if let Some(i) = kind.fault_index() {
                    o.stats.failed_checks[i].fetch_add(1, Relaxed);
                }
            }
            if let Some(t) = o.health.record_check(checked.is_ok(), cfg) {
                let (kind, reason) = match t {
                    Transition::CheckDown { fails } => {
                        ("origin_down", format!("{fails} health checks of {} failed in a row", cfg.path))
                    }
                    Transition::CheckUp { oks } => {
                        ("origin_up", format!("{oks} health checks of {} passed in a row", cfg.path))
                    }
                    _ => ("origin_health", String::new()),
                };
                site.origin_changed(&telemetry, &o, kind, reason);
            }
        }
        let jitter = 0.9 + 0.2 * crate::util::unit(crate::util::next_random_local(&mut seed));
        let interval = cfg.interval.get().mul_f64(jitter);
        drop(o);
        drop(site);
        tokio::time::sleep(interval).await;
    }
}
