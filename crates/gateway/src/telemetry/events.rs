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
pub(crate) struct Event {
    #[serde(with = "crate::util::rfc3339")]
    pub(crate) at: SystemTime,
    /// origin_down, origin_up, origin_ejected, origin_returned, failover, failback;
    /// flood_started, flood_ended, prefix_blocked, shedding_started, shedding_ended;
    /// dns_changed, dns_failed; certificate_ordering, certificate_issued,
    /// certificate_order_failed.
    pub(crate) kind: &'static str,
    pub(crate) site: String,
    pub(crate) datacenter: String,
    pub(crate) origin: Option<String>,
    /// The client prefix a shield event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
    pub(crate) reason: String,
}

impl Event {
    /// A DNS name of origins answered other addresses (`dns_changed`), or its lookup failed
    /// (`dns_failed`: the last good addresses are kept).
    pub(crate) fn dns(kind: &'static str, reason: String) -> Event {
        Event {
            at: SystemTime::now(),
            kind,
            site: String::new(),
            datacenter: String::new(),
            origin: None,
            prefix: None,
            reason,
        }
    }

    /// An origin's state change.
    pub(crate) fn origin(kind: &'static str, site: &str, datacenter: &str, origin: String, reason: String) -> Event {
        Event {
            at: SystemTime::now(),
            kind,
            site: site.to_string(),
            datacenter: datacenter.to_string(),
            origin: Some(origin),
            prefix: None,
            reason,
        }
    }

    /// A data center that stopped taking a site's traffic (`up` false: failover, with the
    /// share of its origins available and the threshold) or started again (failback, over
    /// `slow_start`).
    pub(crate) fn pool(
        site: &str,
        datacenter: &str,
        up: bool,
        share: f64,
        threshold: f64,
        slow_start: std::time::Duration,
    ) -> Event {
        let (kind, reason) = if up {
            (
                "failback",
                format!(
                    "{:.0}% of its origins available again; its traffic returns over {slow_start:?}",
                    share * 100.0
                ),
            )
        } else {
            (
                "failover",
                format!(
                    "only {:.0}% of its origins available (threshold {:.0}%); its traffic moves to the next data center",
                    share * 100.0,
                    threshold * 100.0
                ),
            )
        };
        Event {
            at: SystemTime::now(),
            kind,
            site: site.to_string(),
            datacenter: datacenter.to_string(),
            origin: None,
            prefix: None,
            reason,
        }
    }

    /// An incident opened, changed or resolved (`id` and what it says in `reason`).
    pub(crate) fn incident(
        kind: &'static str,
        site: &str,
        datacenter: Option<String>,
        id: &str,
        reason: String,
    ) -> Event {
        Event {
            at: SystemTime::now(),
            kind,
            site: site.to_string(),
            datacenter: datacenter.unwrap_or_else(|| "-".into()),
            origin: None,
            prefix: None,
            reason: format!("{id}: {reason}"),
        }
    }

    /// The fleet: its Redis gone or back, keys shared (`reason` says what).
    pub(crate) fn fleet(kind: &'static str, reason: String) -> Event {
        Event {
            at: SystemTime::now(),
            kind,
            site: "-".into(),
            datacenter: "-".into(),
            origin: None,
            prefix: None,
            reason,
        }
    }

    /// A certificate event of ACME: certificate_ordering, certificate_issued,
    /// certificate_order_failed.
    pub(crate) fn acme(kind: &'static str, site: &str, reason: String) -> Event {
        Event::shield(kind, site, None, reason)
    }

    /// A shield event (`site` "-" when it is not about one site).
    pub(crate) fn shield(kind: &'static str, site: &str, prefix: Option<String>, reason: String) -> Event {
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
pub(crate) struct EventLog {
    recent: Mutex<VecDeque<Event>>,
}

impl EventLog {
    pub(crate) fn push(&self, metrics: &super::Metrics, e: Event) {
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

    pub(crate) fn recent(&self) -> Vec<Event> {
        self.recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }
}
