//! The classification: one [`Observation`] per tick in, [`Change`]s out. Pure: no clock, no
//! I/O; the gateway's incident task feeds it and the store acts on what it says. Here: the
//! detector, its baselines, and the hysteresis; the rules are in `datacenter.rs` (data
//! centers and origins) and `load.rs` (flood, flash crowd, overload).
//!
//! The rules, each a condition over one tick with its evidence:
//! - **datacenter_failure** (scope: a data center): at least half of the data center's
//!   origins, over all sites, are unavailable or answer nothing (and at least two of them,
//!   unless it has one), and its pools have failed over or its tries mostly fail. Which way
//!   it failed comes from the errors seen while it lasts: refused, black hole (connections
//!   or requests that get no answer), resets, errors (5xx, garbage), or slow (answers that
//!   come, late).
//!   A data center that shows nothing but timeouts, and whose origins said "busy" (503,
//!   429) in the last ten seconds, or still answer while a surge of shoppers is on its
//!   sites, is saturated, not failed: its health checks time out behind the queue. That is
//!   an overload (of its sites), not a data-center failure. A black hole answers nothing.
//! - **origin_failure** (scope: a data center): some of its origins are unavailable or
//!   failing while the data center still serves. Not while a failure of the whole data
//!   center is open.
//! - **flood** (scope: the gateway): the shield sees a flood; or slow clients hold
//!   connections (slowloris: request heads begun and never finished; slow POST: bodies
//!   cut off below the upload pace) from many addresses.
//! - **flash_crowd** (scope: a site): the site's requests per second, flood traffic left out,
//!   are at least `surge_factor` times their usual rate, `surge_min_rps` above it, and half
//!   as much again as its recent peak. The usual rate is a moving average (two minutes),
//!   established after ten ticks; the recent peak is the highest rate seen, fading over half
//!   an hour (traffic back to its level after a lull is no surge). Neither learns while a
//!   surge lasts.
//! - **overload** (scope: a site): admission sees the site's origins, or holdfast, saturated,
//!   or requests wait for a slot. Its cause is named when another condition explains it: a
//!   flash crowd, a flood, or a failover onto fewer origins.
//!
//! Hysteresis: a condition opens an incident once it has held for `open_after` ticks (three
//! for an origin failure); an open incident whose condition clears is `Cleared` at once
//! and `Resolve`d after `resolve_after` without it coming back.

use super::signals::{Observation, PoolObs, SiteObs};
use super::{Evidence, Facts, Kind};
use std::collections::{BTreeMap, BTreeSet};

/// Ticks more a flash crowd must hold to open while a flood is on.
const FLOOD_CROWD_GRACE: u32 = 4;

/// What the detector is tuned by.
#[derive(Debug, Clone)]
pub(crate) struct Tuning {
    /// Ticks a condition must hold before an incident opens.
    pub(crate) open_after: u32,
    /// ... for an origin failure (a restart should not make one).
    pub(crate) origin_open_after: u32,
    /// An open incident resolves once its condition has been clear this long.
    pub(crate) resolve_after_ms: u64,
    pub(crate) surge_factor: f64,
    pub(crate) surge_min_rps: f64,
    /// Time constant of a site's usual request rate.
    pub(crate) usual_secs: f64,
    /// Ticks of traffic before a usual rate counts.
    pub(crate) warmup_ticks: u32,
}

impl Tuning {
    pub(crate) fn from_config(c: &crate::config::incidents::Incidents) -> Tuning {
        Tuning {
            resolve_after_ms: c.resolve_after.get().as_millis() as u64,
            surge_factor: c.surge_factor,
            surge_min_rps: c.surge_min_rps,
            ..Tuning::default()
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            open_after: 2,
            origin_open_after: 3,
            resolve_after_ms: 30_000,
            surge_factor: 3.0,
            surge_min_rps: 10.0,
            usual_secs: 120.0,
            warmup_ticks: 10,
        }
    }
}

/// An incident's identity: its kind and what it is about (a data center, a site, or `*`,
/// the whole gateway, for a flood).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) kind: Kind,
    pub(crate) scope: String,
}

/// A condition that holds in this tick, and what it rests on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub(crate) key: Key,
    pub(crate) sites: Vec<String>,
    pub(crate) datacenters: Vec<String>,
    pub(crate) facts: Facts,
    pub(crate) evidence: Vec<Evidence>,
    /// How sure the verdict is, 0 to 1.
    pub(crate) confidence: f64,
}

/// What changed in a tick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// A condition has held long enough: an incident opens. `since`: when it was first
    /// seen (unix ms).
    Open { finding: Finding, since: u64 },
    /// An open incident's condition holds (with its evidence now).
    Holds(Finding),
    /// An open incident's condition has just cleared.
    Cleared(Key),
    /// Its condition has been clear for `resolve_after`: resolved.
    Resolve(Key),
    /// The open incident `from` (single origins failing in a data center) turns out to be
    /// this one (the whole data center failing): the same incident, its kind upgraded.
    Escalate { from: Key, finding: Finding },
}

#[derive(Debug)]
struct Track {
    first_seen: u64,
    last_seen: u64,
    streak: u32,
    open: bool,
    cleared: bool,
}

/// A signal's baseline: a moving average with a warm-up (the plain mean until it has
/// enough samples), and its recent peak, which fades with a time constant of half an hour.
#[derive(Debug, Default, Clone, Copy)]
struct Usual {
    value: f64,
    peak: f64,
    samples: u32,
}

/// A slow-client attack (slowloris, slow POST): this many request heads begun and not
/// finished at once, or this many slow heads or bodies cut off a second, from at least this
/// many addresses. Browsers send a head in one piece; a head that takes seconds is rare,
/// fifty at once from ten addresses is an attack.
const SLOW_HEADS: u64 = 50;
const SLOW_CUTS: f64 = 10.0;
const SLOW_SOURCES: u64 = 10;

/// How long a recent peak takes to fade (by 1/e).
const PEAK_FADES_SECS: f64 = 1800.0;
/// A surge goes this far beyond the recent peak: traffic back to its level after a lull is
/// no surge.
const PEAK_MARGIN: f64 = 1.5;

impl Usual {
    fn learn(&mut self, x: f64, secs: f64, time_constant: f64) {
        self.samples = self.samples.saturating_add(1);
        let alpha = (secs / time_constant).max(1.0 / f64::from(self.samples)).min(1.0);
        self.value += alpha * (x - self.value);
        self.peak = x.max(self.peak * (-secs / PEAK_FADES_SECS).exp());
    }
}

/// The detector's memory: conditions being watched, and the usual values of signals.
#[derive(Debug, Default)]
pub(crate) struct Detector {
    tuning: Tuning,
    tracks: BTreeMap<Key, Track>,
    /// Per site: requests per second, flood traffic left out.
    usual_rate: BTreeMap<String, Usual>,
    /// Per data center: the time its origins take to answer, in ms.
    usual_latency: BTreeMap<String, Usual>,
    /// Per data center: its share of its sites' answered requests.
    usual_share: BTreeMap<String, Usual>,
    /// Per data center: errors by kind while its failure is watched; and the slowest
    /// answer seen then (ms).
    failure_errors: BTreeMap<String, (BTreeMap<&'static str, u64>, f64)>,
    /// Per data center: what TLS with its origins last said while its failure is watched.
    failure_tls: BTreeMap<String, crate::upstream::tls::TlsFailure>,
    /// Per data center: when its origins last said "busy" (unix ms) ...
    last_busy: BTreeMap<String, u64>,
    /// ... and when they last answered anything (a try, or a health check, late or not).
    last_alive: BTreeMap<String, u64>,
    /// Per flood: the peak rate, and the most distinct addresses seen, while it lasts.
    flood_peak: (f64, u64),
    /// Per site: the peak request rate while a surge lasts.
    surge_peak: BTreeMap<String, f64>,
}

/// A data center's pools over all sites, in one tick.
#[derive(Debug, Default)]
struct Dc<'a> {
    origins: u32,
    broken: u32,
    eligible: u32,
    pools: u32,
    answered: u64,
    latency_sum: f64,
    errors: u64,
    busy: u64,
    kinds: BTreeMap<&'static str, u64>,
    sites: BTreeSet<&'a str>,
    /// The path routes whose pools here are broken: "checkout of shop-de".
    routes: BTreeSet<String>,
    down: Vec<String>,
    /// Why TLS with its origins failed this tick, if it did.
    tls: Option<crate::upstream::tls::TlsFailure>,
    /// Requests its pools answered, and all its sites' answered requests.
    served: u64,
    sites_served: u64,
}

impl Detector {
    pub(crate) fn new(tuning: Tuning) -> Detector {
        Detector { tuning, ..Detector::default() }
    }

    /// Each site's usual request rate (flood traffic left out) and whether it is known yet.
    pub(crate) fn usual_rates(&self) -> BTreeMap<String, (f64, bool)> {
        self.usual_rate.iter().map(|(s, u)| (s.clone(), (u.value, u.samples >= self.tuning.warmup_ticks))).collect()
    }

    /// New tuning (a reload); what was learnt is kept.
    pub(crate) fn retune(&mut self, tuning: Tuning) {
        self.tuning = tuning;
    }

    fn is_open(&self, kind: Kind, scope: &str) -> bool {
        self.tracks.get(&Key { kind, scope: scope.to_string() }).is_some_and(|t| t.open)
    }

    fn is_watched(&self, kind: Kind, scope: &str) -> bool {
        self.tracks.contains_key(&Key { kind, scope: scope.to_string() })
    }

    /// One tick: what holds now, and what that changes.
    pub(crate) fn step(&mut self, obs: &Observation) -> Vec<Change> {
        let mut findings = Vec::new();
        let dcs = datacenters(obs);
        let (failed_dcs, saturated_dcs) = self.datacenter_rules(obs, &dcs, &mut findings);
        self.flood_rule(obs, &mut findings);
        self.surge_rules(obs, &mut findings);
        self.overload_rules(obs, &failed_dcs, &saturated_dcs, &mut findings);
        self.learn(obs, &dcs, &findings);
        self.advance(obs.now, findings)
    }

    /// Usual values learn from this tick, except where a surge or failure is watched (so
    /// that it does not become the new normal).
    fn learn(&mut self, obs: &Observation, dcs: &BTreeMap<&str, Dc>, findings: &[Finding]) {
        let tc = self.tuning.usual_secs;
        for s in &obs.sites {
            let surging = self.is_watched(Kind::FlashCrowd, &s.name)
                || findings.iter().any(|f| f.key.kind == Kind::FlashCrowd && f.key.scope == s.name);
            if !surging {
                self.usual_rate.entry(s.name.clone()).or_default().learn(clean_rate(s, obs.secs), obs.secs, tc);
            }
        }
        for (name, dc) in dcs {
            let failing = findings.iter().any(|f| f.key.kind == Kind::DatacenterFailure && f.key.scope == *name)
                || self.is_watched(Kind::DatacenterFailure, name);
            if failing {
                continue;
            }
            if dc.answered > 0 {
                let mean = dc.latency_sum / dc.answered as f64;
                self.usual_latency.entry(name.to_string()).or_default().learn(mean, obs.secs, tc);
            }
            if dc.sites_served > 0 {
                let share = dc.served as f64 / dc.sites_served as f64;
                self.usual_share.entry(name.to_string()).or_default().learn(share, obs.secs, tc);
            }
        }
    }

    /// Moves every watched condition on by one tick.
    fn advance(&mut self, now: u64, findings: Vec<Finding>) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut seen = BTreeSet::new();
        let flood = self.is_watched(Kind::Flood, "*") || findings.iter().any(|f| f.key.kind == Kind::Flood);
        for f in findings {
            seen.insert(f.key.clone());
            let needed = match f.key.kind {
                Kind::OriginFailure => self.tuning.origin_open_after,
                // During a flood a surge must outlast the seconds the shield needs to tell a
                // botnet that looks like shoppers from shoppers (a source's browsing shows
                // over its first requests): else the botnet's first seconds read as a crowd.
                Kind::FlashCrowd if flood => self.tuning.open_after + FLOOD_CROWD_GRACE,
                _ => self.tuning.open_after,
            };
            let t = self.tracks.entry(f.key.clone()).or_insert(Track {
                first_seen: now,
                last_seen: now,
                streak: 0,
                open: false,
                cleared: false,
            });
            t.streak += 1;
            t.last_seen = now;
            t.cleared = false;
            if t.open {
                changes.push(Change::Holds(f));
            } else if t.streak >= needed {
                t.open = true;
                let since = t.first_seen;
                // Origins of a data center failing one after another, then the whole of it:
                // one incident, escalated, not a second beside the first.
                let smaller = Key { kind: Kind::OriginFailure, scope: f.key.scope.clone() };
                if f.key.kind == Kind::DatacenterFailure && self.tracks.get(&smaller).is_some_and(|t| t.open) {
                    self.tracks.remove(&smaller);
                    changes.push(Change::Escalate { from: smaller, finding: f });
                } else {
                    changes.push(Change::Open { since, finding: f });
                }
            }
        }
        let resolve_after = self.tuning.resolve_after_ms;
        let mut gone = Vec::new();
        for (key, t) in self.tracks.iter_mut().filter(|(k, _)| !seen.contains(*k)) {
            t.streak = 0;
            if !t.open {
                gone.push(key.clone()); // a candidate that did not last
            } else if now.saturating_sub(t.last_seen) >= resolve_after {
                changes.push(Change::Resolve(key.clone()));
                gone.push(key.clone());
            } else if !t.cleared {
                t.cleared = true;
                changes.push(Change::Cleared(key.clone()));
            }
        }
        for k in gone {
            self.tracks.remove(&k);
        }
        changes
    }
}

/// Requests per second to a site, flood traffic left out.
fn clean_rate(s: &SiteObs, secs: f64) -> f64 {
    s.counts.requests.saturating_sub(s.counts.suspicious[0]) as f64 / secs.max(0.001)
}

mod datacenter;
use datacenter::datacenters;
mod load;

#[cfg(test)]
mod tests;
