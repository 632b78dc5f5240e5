//! One incident as it is kept, journaled and shown: what it is, where, since when, its
//! evidence, impact, updates and series, and the plain changes to it (an update added, its
//! impact counted, a point of its series, its severity). The engine that decides those
//! changes is [`store`](super::store); the words are [`text`](super::text). A leaf of
//! `incident`: it imports none of its siblings but `signals`.

use super::signals::{Counts, Observation};
use super::{Impact, Kind, Point, Severity, Stage, Update};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Points of the series kept for one incident (one a second; then thinned).
const MAX_POINTS: usize = 900;
/// Updates kept per incident.
const MAX_UPDATES: usize = 50;

/// One incident, as kept and journaled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Incident {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) stage: Stage,
    /// When its condition was first seen (unix ms).
    #[serde(with = "crate::util::rfc3339_ms")]
    pub(crate) started_at: u64,
    /// When it was named.
    #[serde(with = "crate::util::rfc3339_ms")]
    pub(crate) detected_at: u64,
    /// When it was named as the kind it is now (later than `detected_at` when it was
    /// escalated: origins failing, then the whole data center).
    #[serde(with = "crate::util::rfc3339_ms", default)]
    pub(crate) kind_since: u64,
    #[serde(with = "crate::util::rfc3339_ms_opt", default)]
    pub(crate) resolved_at: Option<u64>,
    #[serde(with = "crate::util::rfc3339_ms")]
    pub(crate) updated_at: u64,
    /// What it is about: a data center, a site, or `*`.
    pub(crate) scope: String,
    pub(crate) sites: Vec<String>,
    pub(crate) datacenters: Vec<String>,
    pub(crate) summary: String,
    pub(crate) facts: super::Facts,
    pub(crate) evidence: Vec<super::Evidence>,
    pub(crate) impact: Impact,
    pub(crate) impact_by_site: BTreeMap<String, Impact>,
    pub(crate) confidence: f64,
    pub(crate) severity: Severity,
    pub(crate) related: Vec<String>,
    pub(crate) updates: Vec<Update>,
    pub(crate) series: Vec<Point>,
    /// In a fleet: the points of presence that saw it, and how many were live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) seen_from: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) fleet_size: usize,
    /// Each site's counts when it opened (its impact is what came after).
    #[serde(skip)]
    pub(super) base: BTreeMap<String, Counts>,
}

impl Incident {
    pub(crate) fn is_open(&self) -> bool {
        self.stage != Stage::Resolved
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Incident {
    pub(super) fn push_update(&mut self, at: u64, stage: Stage, text: String) {
        if self.updates.len() == MAX_UPDATES {
            self.updates.remove(1); // the first (how it began) stays
        }
        self.updates.push(Update { at, stage, text });
    }

    pub(super) fn count_impact(&mut self, totals: &BTreeMap<String, Counts>) {
        let mut all = Impact::default();
        for s in &self.sites {
            let now = totals.get(s).cloned().unwrap_or_default();
            let base = self.base.entry(s.clone()).or_insert_with(|| now.clone());
            let impact = now.since(base).impact();
            all.add(&impact);
            self.impact_by_site.insert(s.clone(), impact);
        }
        self.impact = all;
    }

    pub(super) fn extend_series(&mut self, obs: &Observation) {
        self.series.push(point(obs, Some(&self.sites)));
        if self.series.len() > MAX_POINTS {
            // Thin the middle: every other point of the older half.
            let half = self.series.len() / 2;
            let older: Vec<Point> =
                self.series.drain(..half).enumerate().filter(|(n, _)| n % 2 == 0).map(|(_, p)| p).collect();
            self.series.splice(0..0, older);
        }
    }

    /// Severity from the worst site's share of failed requests; a flood that the shield
    /// absorbed stays minor.
    pub(super) fn severity_now(&self) -> Severity {
        let worst = self.impact_by_site.values().map(Impact::failed_share).fold(0.0, f64::max);
        Severity::of_failed_share(worst)
    }
}

/// A tick's point over `sites` (all when None).
pub(super) fn point(obs: &Observation, sites: Option<&[String]>) -> Point {
    let mut p = Point { t: obs.now, ..Point::default() };
    for s in obs.sites.iter().filter(|s| sites.is_none_or(|list| list.contains(&s.name))) {
        let c = &s.counts;
        p.requests += c.requests;
        p.failed += c.failed();
        p.stale += c.outcome(super::Outcome::Stale);
        p.cache += c.outcome(super::Outcome::Cache);
        p.shield += c.outcome(super::Outcome::Challenged)
            + c.outcome(super::Outcome::Refused)
            + c.outcome(super::Outcome::Shed);
        p.suspicious += c.suspicious[0];
        for (i, pool) in s.pools.iter().enumerate() {
            *p.datacenters.entry(pool.datacenter.clone()).or_default() += c.by_pool.get(i).copied().unwrap_or(0);
        }
    }
    p
}

/// `a` with what of `b` it lacks, in order.
pub(super) fn merge(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for x in b {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}
