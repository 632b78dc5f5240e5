//! Incidents: the answer to "DDoS or hardware?". Signals come in ([`signals`]: requests
//! count themselves into their site's tally as they end; every tick the gateway reads the
//! tallies, the origins, the shield and admission), incidents come out: a named cause,
//! the evidence that decided it, and its impact on shoppers.
//!
//! - [`detect`] decides, purely: per tick, from plain numbers and their baselines, which
//!   conditions hold (a data center failing, single origins failing, a flood, a flash
//!   crowd, an overload), with hysteresis. Tested table-driven at injected times.
//! - [`store`] keeps the incidents: opens, updates and resolves them as the detector says,
//!   counts their impact, links those that overlap, keeps their history in the journal
//!   ([`journal`]) and tells the webhooks ([`notify`]).
//! - [`text`] words them: a plain English summary for the API, and the status page's
//!   sentences in each language.
//! - [`report`] draws the post-incident report (HTML, with charts).
//!
//! Nothing here runs on the request path but the tally's few atomic additions.

pub(crate) mod detect;
pub(crate) mod fleet;
pub(crate) mod journal;
pub(crate) mod notify;
pub(crate) mod record;
pub(crate) mod report;
pub(crate) mod signals;
pub(crate) mod store;
pub(crate) mod text;
pub(crate) mod view;

pub(crate) use signals::{Outcome, SiteTally};
pub(crate) use store::Incidents;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A data center, or its network, stopped serving a site's pools.
    DatacenterFailure,
    /// Single origins failed while their data center still serves.
    OriginFailure,
    /// An attack: requests that look like a flood, by signature.
    Flood,
    /// A surge of real shoppers.
    FlashCrowd,
    /// Origins, or holdfast itself, saturated.
    Overload,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::DatacenterFailure => "datacenter_failure",
            Kind::OriginFailure => "origin_failure",
            Kind::Flood => "flood",
            Kind::FlashCrowd => "flash_crowd",
            Kind::Overload => "overload",
        }
    }
}

/// Where an incident stands, in Statuspage's words: `investigating` (its condition has
/// just been seen), `identified` (confirmed, with its cause), `monitoring` (the condition
/// has cleared; it stays open a while in case it comes back), `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stage {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Investigating => "investigating",
            Stage::Identified => "identified",
            Stage::Monitoring => "monitoring",
            Stage::Resolved => "resolved",
        }
    }
}

/// How much shoppers felt it (Statuspage's `impact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Severity {
    None,
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    /// From the share of a site's requests that failed.
    pub(crate) fn of_failed_share(failed: f64) -> Severity {
        if failed >= 0.25 {
            Severity::Critical
        } else if failed >= 0.02 {
            Severity::Major
        } else {
            Severity::Minor
        }
    }
}

/// One signal that decided a verdict: its value now, its usual value, and the threshold
/// it crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Evidence {
    /// What was measured, in a few words ("origins unavailable in eu-west").
    pub(crate) signal: String,
    pub(crate) value: f64,
    /// Its usual value (a moving average), where it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) baseline: Option<f64>,
    pub(crate) threshold: f64,
    /// `ratio`, `per_second`, `count`, `ms`.
    pub(crate) unit: String,
    /// A detail in words (the kinds of errors, the flood's signature).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub(crate) detail: String,
}

/// What an incident did to shoppers, counted from requests that ended while it was open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Impact {
    pub(crate) requests: u64,
    /// Answered by the site's preferred data center, or from a fresh cached copy.
    pub(crate) served: u64,
    /// Answered by another data center.
    pub(crate) served_by_other_datacenter: u64,
    /// Answered with a stale copy from the cache.
    pub(crate) served_stale: u64,
    pub(crate) challenged: u64,
    /// Refused by the shield (rate limits, blocks) or shed by admission.
    pub(crate) refused_or_shed: u64,
    /// No origin could answer (the maintenance page), or an origin's 5xx.
    pub(crate) failed: u64,
    /// Clients that gave up before their answer.
    pub(crate) cancelled: u64,
    pub(crate) checkouts_attempted: u64,
    pub(crate) checkouts_placed: u64,
    pub(crate) checkouts_failed: u64,
    /// Requests with the flood's signature that the shield stopped (blocked, refused,
    /// challenged, shed) ...
    pub(crate) flood_blocked: u64,
    /// ... and that reached an origin.
    pub(crate) flood_leaked: u64,
}

impl Impact {
    pub(crate) fn add(&mut self, o: &Impact) {
        self.requests += o.requests;
        self.served += o.served;
        self.served_by_other_datacenter += o.served_by_other_datacenter;
        self.served_stale += o.served_stale;
        self.challenged += o.challenged;
        self.refused_or_shed += o.refused_or_shed;
        self.failed += o.failed;
        self.cancelled += o.cancelled;
        self.checkouts_attempted += o.checkouts_attempted;
        self.checkouts_placed += o.checkouts_placed;
        self.checkouts_failed += o.checkouts_failed;
        self.flood_blocked += o.flood_blocked;
        self.flood_leaked += o.flood_leaked;
    }

    /// The share of requests that failed.
    pub(crate) fn failed_share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }
}

/// A change in an incident's life, with when and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Update {
    #[serde(with = "crate::util::rfc3339_ms")]
    pub(crate) at: u64,
    pub(crate) stage: Stage,
    /// Plain English.
    pub(crate) text: String,
}

/// One point of an incident's charts: what one second looked like.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Point {
    /// Unix milliseconds.
    pub(crate) t: u64,
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    pub(crate) stale: u64,
    pub(crate) cache: u64,
    /// Requests answered by each data center.
    pub(crate) datacenters: BTreeMap<String, u64>,
    /// Shield actions: challenged, refused and shed.
    pub(crate) shield: u64,
    /// Requests with a flood's signature.
    pub(crate) suspicious: u64,
}

/// The facts an incident's words are made of (see [`text`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Facts {
    /// How a data center failed: `refused`, `blackhole`, `resets`, `errors`, `slow`, `tls`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) mode: Option<String>,
    /// Where its traffic went.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) moved_to: Vec<String>,
    /// The path routes whose pools failed: "checkout of shop-de".
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) routes: Vec<String>,
    /// Origins that failed (admin API and reports only, never the status page).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) origins: Vec<String>,
    /// A flood's signature in words.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) signature: Option<String>,
    /// Peak request rate (flood: suspicious requests; flash crowd: the site's requests).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) peak_rps: Option<f64>,
    /// The usual rate the peak is compared with.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) usual_rps: Option<f64>,
    /// Distinct sources a flood came from (prefixes blocked).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) sources: Option<u64>,
    /// What an overload was caused by, when known: `flash_crowd`, `flood`, `failover`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) cause: Option<String>,
    /// Why it was judged so, in a few words (an overload's saturation signals).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) reason: Option<String>,
    /// A data center failed in TLS (`mode = "tls"`): what its certificate or handshake
    /// said (expired at ..., another name, an unknown issuer, refused).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) tls: Option<crate::upstream::tls::TlsFailure>,
}
