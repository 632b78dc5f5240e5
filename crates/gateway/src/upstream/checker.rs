//! Active health checks: one task per origin, an HTTP GET of the site's health path on a
//! fresh connection every interval (with ±10% jitter) so that a check never hides behind a
//! pooled connection. A checker stops by itself when its origin leaves the configuration.

use super::health::Transition;
use super::Origin;
use crate::gateway::Shared;
use crate::proxy::body::ReqBody;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

/// Starts a checker for every origin of the current snapshot that has none.
pub fn ensure(shared: &Arc<Shared>) {
    let snap = shared.snapshot.load();
    for site in &snap.sites {
        for pool in &site.pools {
            for o in &pool.origins {
                if !o.checker_running.swap(true, Relaxed) {
                    tokio::spawn(run(shared.clone(), Arc::downgrade(o)));
                }
            }
        }
    }
}

async fn run(shared: Arc<Shared>, origin: Weak<Origin>) {
    let mut seed = Arc::as_ptr(&shared) as u64 ^ origin.as_ptr() as u64 | 1;
    loop {
        let Some(o) = origin.upgrade() else { return };
        let snap = shared.snapshot.load_full();
        let site = snap.sites.iter().find(|s| s.pools.iter().any(|p| p.origins.iter().any(|x| Arc::ptr_eq(x, &o))));
        let Some(site) = site.cloned() else {
            o.checker_running.store(false, Relaxed);
            return;
        };
        drop(snap);
        let cfg = &site.cfg.health;
        if cfg.enabled {
            let host = site.hosts.iter().find(|h| !h.starts_with('*')).map_or(o.authority.as_str(), |h| h.as_str());
            let ok = check(&o, host, cfg).await;
            if let Some(t) = o.health.record_check(ok, cfg) {
                let (kind, reason) = match t {
                    Transition::CheckDown { fails } => {
                        ("origin_down", format!("{fails} health checks of {} failed in a row", cfg.path))
                    }
                    Transition::CheckUp { oks } => {
                        ("origin_up", format!("{oks} health checks of {} passed in a row", cfg.path))
                    }
                    _ => ("origin_health", String::new()),
                };
                crate::events::origin_changed(&shared, &site, &o, kind, reason);
            }
        }
        let jitter = 0.9 + 0.2 * super::balance::unit(super::balance::next_random_local(&mut seed));
        let interval = cfg.interval.get().mul_f64(jitter);
        drop(o);
        drop(site);
        tokio::time::sleep(interval).await;
    }
}

/// One check: connect, GET, status in the expected range, all within the timeout (the
/// connect has its own, the exchange the deadline counted from the start).
async fn check(o: &Origin, host: &str, cfg: &crate::config::Health) -> bool {
    let deadline = tokio::time::Instant::now() + cfg.timeout.get();
    let Ok(conn) = super::pool::connect(&o.authority, cfg.timeout.get()).await else { return false };
    let Ok(req) = http::Request::get(cfg.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "holdfast-health-check")
        .header(http::header::CONNECTION, "close")
        .body(ReqBody::empty())
    else {
        return false;
    };
    let (head, body) = req.into_parts();
    match conn.send(&head, body, &bytes::Bytes::new(), deadline).await {
        Ok(resp) => (cfg.expect_status[0]..=cfg.expect_status[1]).contains(&resp.status().as_u16()),
        Err(_) => false,
    }
}
