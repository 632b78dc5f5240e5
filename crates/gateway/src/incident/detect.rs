//! The classification: one [`Observation`] per tick in, [`Change`]s out. Pure: no clock, no
//! I/O; the gateway's incident task feeds it and the store acts on what it says.
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

    /// Data-center and origin failures; returns the data centers that failed, and those
    /// that are saturated (busy, not failed).
    fn datacenter_rules(
        &mut self,
        obs: &Observation,
        dcs: &BTreeMap<&str, Dc>,
        out: &mut Vec<Finding>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut failed, mut saturated) = (Vec::new(), Vec::new());
        for (name, dc) in dcs {
            if dc.busy > 0 {
                self.last_busy.insert(name.to_string(), obs.now);
            }
            if dc.answered > 0 {
                self.last_alive.insert(name.to_string(), obs.now);
            }
            // A surge of shoppers on a site this data center serves.
            let surge = obs
                .sites
                .iter()
                .any(|s| s.pools.iter().any(|p| p.datacenter == **name) && self.is_watched(Kind::FlashCrowd, &s.name));
            let tries = dc.answered + dc.errors;
            let error_share = if tries == 0 { 0.0 } else { dc.errors as f64 / tries as f64 };
            let most_broken = dc.origins > 0 && dc.broken * 2 >= dc.origins && (dc.origins == 1 || dc.broken >= 2);
            let not_serving = dc.eligible < dc.pools || tries == 0 || error_share >= 0.5;
            if dc.broken > 0 && self.busy_not_failed(name, dc, obs.now, surge) {
                self.failure_errors.remove(*name);
                saturated.push(name.to_string());
            } else if most_broken && not_serving {
                failed.push(name.to_string());
                out.push(self.datacenter_failure(obs, name, dc, error_share));
            } else {
                // What it failed with is kept while its failure is watched: a tick that
                // flickers (an origin back for a moment) does not forget the way it failed.
                if !self.is_watched(Kind::DatacenterFailure, name) {
                    self.failure_errors.remove(*name);
                    self.failure_tls.remove(*name);
                }
                if dc.broken > 0 && !self.is_open(Kind::DatacenterFailure, name) {
                    out.push(origin_failure(name, dc));
                }
            }
        }
        (failed, saturated)
    }

    /// Shows nothing but timeouts, and either said "busy" lately, or still answers (tries,
    /// or health checks late) while a surge of shoppers is on its sites: saturated, not
    /// failed (its health checks time out behind its queue). A black hole answers nothing,
    /// surge or not; a failure already open stays a failure (a data center that fails while
    /// busy does not turn into a busy one); a hard error (refused, reset, 5xx, garbage) is a
    /// failure whatever came before.
    fn busy_not_failed(&self, name: &str, dc: &Dc, now: u64, surge: bool) -> bool {
        const BUSY_MEMORY_MS: u64 = 10_000;
        const ALIVE_MEMORY_MS: u64 = 3_000;
        let lately =
            |m: &BTreeMap<String, u64>, within: u64| m.get(name).is_some_and(|t| now.saturating_sub(*t) <= within);
        let busy_lately = lately(&self.last_busy, BUSY_MEMORY_MS);
        let alive_in_surge = surge && lately(&self.last_alive, ALIVE_MEMORY_MS);
        let only_timeouts = dc.kinds.keys().all(|k| matches!(*k, "connect_timeout" | "response_timeout"));
        (busy_lately || alive_in_surge) && only_timeouts && !self.is_open(Kind::DatacenterFailure, name)
    }

    fn datacenter_failure(&mut self, obs: &Observation, name: &str, dc: &Dc, error_share: f64) -> Finding {
        let usual_latency = self.usual_latency.get(name).map_or(0.0, |u| u.value);
        let (kinds, slowest) = self.failure_errors.entry(name.to_string()).or_default();
        for (k, n) in &dc.kinds {
            *kinds.entry(k).or_default() += n;
        }
        if dc.answered > 0 {
            *slowest = slowest.max(dc.latency_sum / dc.answered as f64);
        }
        let slow = *slowest >= 1000.0_f64.max(4.0 * usual_latency);
        let mode = failure_mode(kinds, slow);
        let total: u64 = kinds.values().sum();
        let dominance = kinds.values().max().map_or(0.0, |&m| m as f64 / total.max(1) as f64);
        let detail = kinds.iter().map(|(k, n)| format!("{n} {}", k.replace('_', " "))).collect::<Vec<_>>().join(", ");
        let share_now = if dc.sites_served == 0 { 0.0 } else { dc.served as f64 / dc.sites_served as f64 };
        let mut evidence = vec![
            Evidence {
                signal: format!("origins of {name} unavailable or not answering"),
                value: f64::from(dc.broken),
                baseline: Some(0.0),
                threshold: f64::from(dc.origins) / 2.0,
                unit: "count".into(),
                detail: format!("{} of {} origins", dc.broken, dc.origins),
            },
            Evidence {
                signal: format!("pools of {name} taking traffic"),
                value: f64::from(dc.eligible),
                baseline: Some(f64::from(dc.pools)),
                threshold: f64::from(dc.pools),
                unit: "count".into(),
                detail: String::new(),
            },
        ];
        if total > 0 {
            evidence.push(Evidence {
                signal: format!("tries and health checks failing in {name}"),
                value: error_share,
                baseline: None,
                threshold: 0.5,
                unit: "ratio".into(),
                detail,
            });
        }
        if let Some(u) = self.usual_share.get(name).filter(|u| u.samples > 0) {
            evidence.push(Evidence {
                signal: format!("share of its sites' answers served by {name}"),
                value: share_now,
                baseline: Some(u.value),
                threshold: u.value / 2.0,
                unit: "ratio".into(),
                detail: String::new(),
            });
        }
        if slow {
            evidence.push(Evidence {
                signal: format!("time {name} took to answer"),
                value: *slowest,
                baseline: Some(usual_latency),
                threshold: 1000.0_f64.max(4.0 * usual_latency),
                unit: "ms".into(),
                detail: String::new(),
            });
        }
        // What the certificate said is kept while the failure is watched, as its kinds are.
        if let Some(t) = &dc.tls {
            self.failure_tls.insert(name.to_string(), t.clone());
        }
        let tls = if mode == "tls" { self.failure_tls.get(name).cloned() } else { None };
        if let Some(t) = &tls {
            evidence.push(Evidence {
                signal: format!("TLS with the origins of {name}"),
                value: kinds.get("tls").copied().unwrap_or(0) as f64,
                baseline: Some(0.0),
                threshold: 1.0,
                unit: "count".into(),
                detail: t.words(),
            });
        }
        let moved_to = moved_to(obs, name, &dc.sites);
        Finding {
            key: Key { kind: Kind::DatacenterFailure, scope: name.to_string() },
            sites: dc.sites.iter().map(|s| s.to_string()).collect(),
            datacenters: vec![name.to_string()],
            facts: Facts {
                mode: Some(mode.into()),
                moved_to,
                origins: dc.down.clone(),
                routes: dc.routes.iter().cloned().collect(),
                tls,
                ..Facts::default()
            },
            evidence,
            confidence: (0.5 + 0.5 * (f64::from(dc.broken) / f64::from(dc.origins.max(1))) * dominance.max(0.5))
                .min(1.0),
        }
    }

    fn flood_rule(&mut self, obs: &Observation, out: &mut Vec<Finding>) {
        let f = &obs.flood;
        let slow = (f.slow_partial_heads >= SLOW_HEADS || f.slow_cut_per_second >= SLOW_CUTS)
            && f.slow_sources >= SLOW_SOURCES;
        if !f.active && !slow {
            if !self.is_watched(Kind::Flood, "*") {
                self.flood_peak = (0.0, 0);
            }
            return;
        }
        let rate = if f.active { f.suspicious_per_second + f.refused_per_second } else { 0.0 }
            + if slow { f.slow_per_second } else { 0.0 };
        self.flood_peak.0 = self.flood_peak.0.max(rate);
        self.flood_peak.1 =
            self.flood_peak.1.max(if f.active { f.addresses } else { 0 }.max(if slow { f.slow_sources } else { 0 }));
        let slow_signature = if f.slow_bodies {
            "request bodies trickled in, slower than the upload pace (slow POST)"
        } else {
            "request heads sent a line at a time and never finished (slowloris)"
        };
        let signature = if f.active { f.signature.clone() } else { Some(slow_signature.to_string()) };
        let mut sites: Vec<String> =
            obs.sites.iter().filter(|s| s.counts.suspicious[0] > 0).map(|s| s.name.clone()).collect();
        if sites.is_empty() {
            sites = obs.sites.iter().map(|s| s.name.clone()).collect();
        }
        let mut evidence = Vec::new();
        if f.active {
            evidence.push(Evidence {
                signal: "requests with a flood's signature".into(),
                value: f.suspicious_per_second,
                baseline: None,
                threshold: f.threshold,
                unit: "per_second".into(),
                detail: f.signature.clone().unwrap_or_default(),
            });
            evidence.push(Evidence {
                signal: "distinct addresses sending them".into(),
                value: f.addresses as f64,
                baseline: None,
                threshold: 1.0,
                unit: "count".into(),
                detail: format!("in {} prefixes; {} prefixes blocked", f.prefixes, f.blocked_prefixes),
            });
        }
        if slow {
            evidence.push(Evidence {
                signal: "request heads begun and not finished".into(),
                value: f.slow_partial_heads as f64,
                baseline: Some(0.0),
                threshold: SLOW_HEADS as f64,
                unit: "count".into(),
                detail: slow_signature.into(),
            });
            evidence.push(Evidence {
                signal: "connections cut off for a slow head or body".into(),
                value: f.slow_cut_per_second,
                baseline: Some(0.0),
                threshold: SLOW_CUTS,
                unit: "per_second".into(),
                detail: String::new(),
            });
            evidence.push(Evidence {
                signal: "distinct addresses of slow clients".into(),
                value: f.slow_sources as f64,
                baseline: None,
                threshold: SLOW_SOURCES as f64,
                unit: "count".into(),
                detail: String::new(),
            });
        }
        // Its share of the sites' requests and what it cost their origins, beside the
        // shoppers' (a flood inside a crowd is told apart by these).
        let (all, flood, at_origin) = obs.sites.iter().fold((0, 0, 0), |(a, f, o), s| {
            (a + s.counts.requests, f + s.counts.suspicious[0], o + s.counts.suspicious[2])
        });
        if flood > 0 {
            evidence.push(Evidence {
                signal: "share of the sites' requests that are the flood's".into(),
                value: flood as f64 / all.max(1) as f64,
                baseline: None,
                threshold: 0.0,
                unit: "ratio".into(),
                detail: format!(
                    "{} of its requests reached an origin ({:.0}% of them): the origins' cost of the flood",
                    at_origin,
                    at_origin as f64 * 100.0 / flood as f64
                ),
            });
        }
        if f.refused_per_second > 0.0 {
            evidence.push(Evidence {
                signal: "connections from blocked flood sources, refused on accept".into(),
                value: f.refused_per_second,
                baseline: None,
                threshold: 0.0,
                unit: "per_second".into(),
                detail: String::new(),
            });
        }
        if f.new_prefix_burst {
            evidence.push(Evidence {
                signal: "never-seen prefixes arriving in a burst".into(),
                value: 1.0,
                baseline: None,
                threshold: 1.0,
                unit: "count".into(),
                detail: String::new(),
            });
        }
        let over = if f.active {
            f.suspicious_per_second / f.threshold.max(1.0) - 1.0
        } else {
            f.slow_partial_heads as f64 / SLOW_HEADS as f64 - 1.0
        }
        .clamp(0.0, 1.0);
        out.push(Finding {
            key: Key { kind: Kind::Flood, scope: "*".into() },
            sites,
            datacenters: Vec::new(),
            facts: Facts {
                signature,
                peak_rps: Some(self.flood_peak.0),
                sources: Some(self.flood_peak.1),
                ..Facts::default()
            },
            evidence,
            confidence: 0.7 + 0.3 * over,
        });
    }

    fn surge_rules(&mut self, obs: &Observation, out: &mut Vec<Finding>) {
        let t = self.tuning.clone();
        for s in &obs.sites {
            let rate = clean_rate(s, obs.secs);
            let Some(usual) = self.usual_rate.get(&s.name).copied() else { continue };
            let watched = self.is_watched(Kind::FlashCrowd, &s.name);
            // Once a surge is being watched it holds until the rate is back under the
            // threshold by a margin: a surge that wobbles is one surge.
            let factor = if watched { t.surge_factor * 0.8 } else { t.surge_factor };
            let surging = usual.samples >= t.warmup_ticks
                && rate >= factor * usual.value.max(1.0)
                && rate - usual.value >= t.surge_min_rps
                && (watched || rate >= PEAK_MARGIN * usual.peak);
            if !surging {
                if !watched {
                    self.surge_peak.remove(&s.name);
                }
                continue;
            }
            let peak = self.surge_peak.entry(s.name.clone()).or_default();
            *peak = peak.max(rate);
            let c = &s.counts;
            let returning = if c.requests == 0 { 0.0 } else { 1.0 - c.new_clients as f64 / c.requests as f64 };
            let suspicious = if c.requests == 0 { 0.0 } else { c.suspicious[0] as f64 / c.requests as f64 };
            let shoppers = c.requests.saturating_sub(c.suspicious[0]);
            let shoppers_at_origin = c.outcome(super::Outcome::Origin).saturating_sub(c.suspicious[2]);
            let ratio = rate / usual.value.max(1.0);
            out.push(Finding {
                key: Key { kind: Kind::FlashCrowd, scope: s.name.clone() },
                sites: vec![s.name.clone()],
                datacenters: Vec::new(),
                facts: Facts { peak_rps: Some(*peak), usual_rps: Some(usual.value), ..Facts::default() },
                evidence: vec![
                    Evidence {
                        signal: format!("requests per second to {} (flood traffic left out)", s.name),
                        value: rate,
                        baseline: Some(usual.value),
                        threshold: t.surge_factor * usual.value.max(1.0),
                        unit: "per_second".into(),
                        detail: format!("{ratio:.1} times the usual rate; recent peak {:.0}/s", usual.peak),
                    },
                    Evidence {
                        signal: "requests from clients seen before the surge".into(),
                        value: returning,
                        baseline: None,
                        threshold: 0.0,
                        unit: "ratio".into(),
                        detail: String::new(),
                    },
                    Evidence {
                        signal: "requests with a flood's signature".into(),
                        value: suspicious,
                        baseline: None,
                        threshold: 0.3,
                        unit: "ratio".into(),
                        detail: "requests that show a flood's signature, or come from sources that never fetch a \
                                 sub-resource and ask for a page of their own every time (no person browses so), \
                                 are the flood's and left out here"
                            .into(),
                    },
                    Evidence {
                        signal: "origin requests per shopper request".into(),
                        value: shoppers_at_origin as f64 / shoppers.max(1) as f64,
                        baseline: None,
                        threshold: 0.0,
                        unit: "ratio".into(),
                        detail: format!(
                            "{shoppers} shoppers' requests (browsers: pages with their assets, pages again), \
                             {shoppers_at_origin} of them answered by an origin, the rest by the cache"
                        ),
                    },
                ],
                confidence: (0.7 + 0.3 * ((ratio - t.surge_factor) / t.surge_factor).clamp(0.0, 1.0)).min(1.0),
            });
        }
    }

    fn overload_rules(
        &mut self,
        obs: &Observation,
        failed_dcs: &[String],
        saturated_dcs: &[String],
        out: &mut Vec<Finding>,
    ) {
        for s in &obs.sites {
            let busy_dcs: Vec<&str> = s
                .pools
                .iter()
                .map(|p| p.datacenter.as_str())
                .filter(|d| saturated_dcs.iter().any(|s| s == d))
                .collect();
            if s.saturated.is_none() && s.waiting == 0 && busy_dcs.is_empty() {
                continue;
            }
            // A crowd named (open) is the cause; one only found this tick is, unless a flood
            // is on: then it may be the botnet's first seconds, and the flood is the cause.
            let crowd = Key { kind: Kind::FlashCrowd, scope: s.name.clone() };
            let crowd_open = self.tracks.get(&crowd).is_some_and(|t| t.open);
            let crowd_now = out.iter().any(|f| f.key == crowd);
            let cause = if crowd_open || (crowd_now && !obs.flood.active) {
                Some("flash_crowd")
            } else if obs.flood.active {
                Some("flood")
            } else if s.pools.iter().any(|p| failed_dcs.contains(&p.datacenter)) {
                Some("failover")
            } else {
                None
            };
            let shed = s.counts.outcome(super::Outcome::Shed);
            let reason = s.saturated.clone().unwrap_or_else(|| {
                if busy_dcs.is_empty() {
                    format!("{} requests waiting for a slot", s.waiting)
                } else {
                    format!("origins in {} answer busy (503) and their health checks time out", busy_dcs.join(", "))
                }
            });
            let busy: u64 = s.pools.iter().map(|p| p.busy).sum();
            let mut evidence = vec![
                Evidence {
                    signal: format!("admission's shed level for {}", s.name),
                    value: s.shed_level,
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "level".into(),
                    detail: reason.clone(),
                },
                Evidence {
                    signal: "requests waiting for a slot at the origins".into(),
                    value: f64::from(s.waiting),
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "count".into(),
                    detail: String::new(),
                },
                Evidence {
                    signal: "requests shed".into(),
                    value: shed as f64 / obs.secs.max(0.001),
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "per_second".into(),
                    detail: String::new(),
                },
            ];
            if busy > 0 || !busy_dcs.is_empty() {
                evidence.push(Evidence {
                    signal: "origin answers that said busy (503, 429)".into(),
                    value: busy as f64 / obs.secs.max(0.001),
                    baseline: Some(0.0),
                    threshold: 0.0,
                    unit: "per_second".into(),
                    detail: String::new(),
                });
            }
            out.push(Finding {
                key: Key { kind: Kind::Overload, scope: s.name.clone() },
                sites: vec![s.name.clone()],
                datacenters: busy_dcs.iter().map(|d| d.to_string()).collect(),
                facts: Facts { cause: cause.map(str::to_string), reason: Some(reason), ..Facts::default() },
                evidence,
                confidence: if s.saturated.is_some() || !busy_dcs.is_empty() { 0.9 } else { 0.7 },
            });
        }
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

/// The pools of every data center, over all sites.
fn datacenters(obs: &Observation) -> BTreeMap<&str, Dc<'_>> {
    let mut dcs: BTreeMap<&str, Dc> = BTreeMap::new();
    for s in &obs.sites {
        let answered: u64 = s.counts.by_pool.iter().sum();
        for (i, p) in s.pools.iter().enumerate() {
            let dc = dcs.entry(&p.datacenter).or_default();
            add_pool(dc, p);
            if p.available < p.origins || p.failing > 0 {
                dc.sites.insert(&s.name);
                if let Some(r) = &p.route {
                    dc.routes.insert(format!("{r} of {}", s.name));
                }
            }
            // A route's pool in a data center the site has a pool in counts its answers
            // under that pool: the site's share there is counted once.
            if !s.pools[..i].iter().any(|q| q.datacenter == p.datacenter) {
                dc.served += s.counts.by_pool.get(i).copied().unwrap_or(0);
                dc.sites_served += answered;
            }
        }
    }
    dcs
}

fn add_pool(dc: &mut Dc, p: &PoolObs) {
    dc.origins += p.origins;
    dc.broken += (p.origins - p.available.min(p.origins) + p.failing).min(p.origins);
    dc.pools += 1;
    dc.eligible += u32::from(p.eligible);
    dc.answered += p.answered;
    dc.latency_sum += p.latency_ms * p.answered as f64;
    dc.errors += p.error_total();
    dc.busy += p.busy;
    for (k, n) in &p.errors {
        *dc.kinds.entry(k).or_default() += n;
    }
    dc.down.extend(p.down.iter().cloned());
    if dc.tls.is_none() {
        dc.tls = p.tls.clone();
    }
}

fn origin_failure(name: &str, dc: &Dc) -> Finding {
    Finding {
        key: Key { kind: Kind::OriginFailure, scope: name.to_string() },
        sites: dc.sites.iter().map(|s| s.to_string()).collect(),
        datacenters: vec![name.to_string()],
        facts: Facts { origins: dc.down.clone(), routes: dc.routes.iter().cloned().collect(), ..Facts::default() },
        evidence: vec![Evidence {
            signal: match routes_in(dc) {
                Some(routes) => format!("origins of {routes} in {name} unavailable or not answering"),
                None => format!("origins of {name} unavailable or not answering"),
            },
            value: f64::from(dc.broken),
            baseline: Some(0.0),
            threshold: 1.0,
            unit: "count".into(),
            detail: format!("{} of {} origins; the data center still serves", dc.broken, dc.origins),
        }],
        confidence: 0.8,
    }
}

/// The routes whose pools are broken in `dc`, in words ("checkout of shop-de").
fn routes_in(dc: &Dc) -> Option<String> {
    (!dc.routes.is_empty()).then(|| dc.routes.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// Which way a data center failed, from the errors seen while it did.
fn failure_mode(kinds: &BTreeMap<&'static str, u64>, slow: bool) -> &'static str {
    if slow {
        return "slow";
    }
    match kinds.iter().max_by_key(|(_, n)| **n).map(|(k, _)| *k) {
        Some("connect_refused") => "refused",
        Some("connect_timeout" | "response_timeout" | "connect") => "blackhole",
        Some("reset") => "resets",
        Some("status_5xx" | "protocol") => "errors",
        Some("tls") => "tls",
        _ => "unreachable",
    }
}

/// Where a failed data center's sites were answered from in this tick.
fn moved_to(obs: &Observation, failed: &str, sites: &BTreeSet<&str>) -> Vec<String> {
    let mut to = BTreeSet::new();
    for s in obs.sites.iter().filter(|s| sites.contains(s.name.as_str())) {
        for (i, p) in s.pools.iter().enumerate() {
            if p.datacenter != failed && s.counts.by_pool.get(i).is_some_and(|n| *n > 0) {
                to.insert(p.datacenter.clone());
            }
        }
    }
    to.into_iter().collect()
}

#[cfg(test)]
mod tests;
