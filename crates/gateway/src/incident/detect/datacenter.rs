//! The data-center rules: a data center whose origins refuse, time out, fail or hang is
//! failed (or only some of its origins are), unless it is only busy; the way it fails, the
//! routes of it that broke, and where its traffic went.

use super::*;

impl Detector {
    /// Data-center and origin failures; returns the data centers that failed, and those
    /// that are saturated (busy, not failed).
    pub(super) fn datacenter_rules(
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
    pub(super) fn busy_not_failed(&self, name: &str, dc: &Dc, now: u64, surge: bool) -> bool {
        const BUSY_MEMORY_MS: u64 = 10_000;
        const ALIVE_MEMORY_MS: u64 = 3_000;
        let lately =
            |m: &BTreeMap<String, u64>, within: u64| m.get(name).is_some_and(|t| now.saturating_sub(*t) <= within);
        let busy_lately = lately(&self.last_busy, BUSY_MEMORY_MS);
        let alive_in_surge = surge && lately(&self.last_alive, ALIVE_MEMORY_MS);
        let only_timeouts = dc.kinds.keys().all(|k| matches!(*k, "connect_timeout" | "response_timeout"));
        (busy_lately || alive_in_surge) && only_timeouts && !self.is_open(Kind::DatacenterFailure, name)
    }

    pub(super) fn datacenter_failure(&mut self, obs: &Observation, name: &str, dc: &Dc, error_share: f64) -> Finding {
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
}

/// The pools of every data center, over all sites.
pub(super) fn datacenters(obs: &Observation) -> BTreeMap<&str, Dc<'_>> {
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

pub(super) fn add_pool(dc: &mut Dc, p: &PoolObs) {
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

pub(super) fn origin_failure(name: &str, dc: &Dc) -> Finding {
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
pub(super) fn routes_in(dc: &Dc) -> Option<String> {
    (!dc.routes.is_empty()).then(|| dc.routes.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// Which way a data center failed, from the errors seen while it did.
pub(super) fn failure_mode(kinds: &BTreeMap<&'static str, u64>, slow: bool) -> &'static str {
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
pub(super) fn moved_to(obs: &Observation, failed: &str, sites: &BTreeSet<&str>) -> Vec<String> {
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
