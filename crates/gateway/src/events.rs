//! Events: every change of state on the upstream side (an origin down or up, ejected or
//! returned, a data center failed over or failed back) with its time and reason. Logged,
//! counted in metrics, and kept (the last 500) for /status.json.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

const KEEP: usize = 500;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(with = "crate::util::rfc3339")]
    pub at: SystemTime,
    /// origin_down, origin_up, origin_ejected, origin_returned, failover, failback.
    pub kind: &'static str,
    pub site: String,
    pub datacenter: String,
    pub origin: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct EventLog {
    recent: Mutex<VecDeque<Event>>,
}

impl EventLog {
    pub fn push(&self, metrics: &crate::metrics::Metrics, e: Event) {
        tracing::warn!(
            kind = e.kind,
            site = %e.site,
            datacenter = %e.datacenter,
            origin = e.origin.as_deref().unwrap_or("-"),
            reason = %e.reason,
            "upstream event"
        );
        metrics.event(e.kind);
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == KEEP {
                r.pop_front();
            }
            r.push_back(e);
        }
    }

    pub fn recent(&self) -> Vec<Event> {
        self.recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }
}
