//! Events: every change of state with its time and reason: on the upstream side (an origin
//! down or up, ejected or returned, a data center failed over or failed back) and in the
//! shield (a flood started or ended, a prefix blocked, shedding started or ended). Logged,
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
    /// origin_down, origin_up, origin_ejected, origin_returned, failover, failback;
    /// flood_started, flood_ended, prefix_blocked, shedding_started, shedding_ended.
    pub kind: &'static str,
    pub site: String,
    pub datacenter: String,
    pub origin: Option<String>,
    /// The client prefix a shield event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub reason: String,
}

impl Event {
    /// A shield event (`site` "-" when it is not about one site).
    pub fn shield(kind: &'static str, site: &str, prefix: Option<String>, reason: String) -> Event {
        Event {
            at: SystemTime::now(),
            kind,
            site: site.to_string(),
            datacenter: "-".into(),
            origin: None,
            prefix,
            reason,
        }
    }
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
            prefix = e.prefix.as_deref().unwrap_or("-"),
            reason = %e.reason,
            "event"
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

/// Reports an origin's state change, then any change of its site's data centers' eligibility
/// that it caused (failover, failback).
pub fn origin_changed(
    shared: &crate::gateway::Shared,
    site: &crate::snapshot::SiteRt,
    origin: &crate::upstream::Origin,
    kind: &'static str,
    reason: String,
) {
    shared.events.push(
        &shared.metrics,
        Event {
            at: SystemTime::now(),
            kind,
            site: site.name.to_string(),
            datacenter: origin.datacenter.to_string(),
            origin: Some(origin.authority.to_string()),
            prefix: None,
            reason,
        },
    );
    let now = crate::clock::now_ms();
    for (i, p) in site.pools.iter().enumerate() {
        if let Some(c) = p.update_eligibility(i, &site.cfg.failover, now) {
            pool_changed(shared, site, &c);
        }
    }
}

/// Reports a data center that stopped (failover) or started again (failback) taking traffic.
pub fn pool_changed(shared: &crate::gateway::Shared, site: &crate::snapshot::SiteRt, c: &crate::upstream::PoolChange) {
    let cfg = &site.cfg.failover;
    let dc = site.pools.get(c.pool).map_or_else(String::new, |p| p.datacenter.to_string());
    let (kind, reason) = if c.up {
        (
            "failback",
            format!(
                "{:.0}% of its origins available again; its traffic returns over {:?}",
                c.share * 100.0,
                cfg.slow_start.get()
            ),
        )
    } else {
        (
            "failover",
            format!(
                "only {:.0}% of its origins available (threshold {:.0}%); its traffic moves to the next data center",
                c.share * 100.0,
                cfg.min_healthy_share * 100.0
            ),
        )
    };
    shared.events.push(
        &shared.metrics,
        Event {
            at: SystemTime::now(),
            kind,
            site: site.name.to_string(),
            datacenter: dc,
            origin: None,
            prefix: None,
            reason,
        },
    );
}
