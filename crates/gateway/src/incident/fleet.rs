//! The fleet's incidents: what every live point of presence named, merged. An incident of
//! the same kind about the same thing (a data center, a site, the flood) that several named
//! at overlapping times is one incident, seen from each of them ("eu-west unreachable, seen
//! from 3 of 3 points of presence"); a data-center failure seen from one point of presence
//! only, while others see the data center fine, is named as that point's own problem.

use super::record::Incident;
use super::Kind;
use std::collections::HashMap;

/// What the other instances named, as the last sync read it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetView {
    /// This instance's name.
    pub(crate) me: String,
    /// The live instances, this one included.
    pub(crate) live: Vec<String>,
    /// The others' incidents, by instance.
    pub(crate) others: HashMap<String, Vec<Incident>>,
}

/// Do `a` and `b` describe the same event?
fn same(a: &Incident, b: &Incident) -> bool {
    let end = |i: &Incident| i.resolved_at.unwrap_or(u64::MAX);
    a.kind == b.kind && a.scope == b.scope && a.started_at <= end(b) && b.started_at <= end(a)
}

/// The fleet's incidents, newest first: this instance's own, each with the points of
/// presence that saw it, then what only others saw.
pub(crate) fn merge(local: Vec<Incident>, view: &FleetView) -> Vec<Incident> {
    let fleet_size = view.live.len().max(1);
    let mut out: Vec<Incident> = Vec::with_capacity(local.len());
    let mut all: Vec<(String, Incident)> = local.into_iter().map(|i| (view.me.clone(), i)).collect();
    for inst in &view.live {
        if let Some(list) = view.others.get(inst).filter(|_| *inst != view.me) {
            all.extend(list.iter().cloned().map(|i| (inst.clone(), i)));
        }
    }
    for (inst, i) in all {
        match out.iter_mut().find(|o| same(o, &i)) {
            Some(o) => {
                if !o.seen_from.contains(&inst) {
                    o.seen_from.push(inst);
                    if o.kind == Kind::Flood {
                        // Each PoP saw its part of the flood (anycast and DNS keep a source at
                        // one): the fleet's is their sum.
                        o.facts.peak_rps = sum(o.facts.peak_rps, i.facts.peak_rps);
                        o.facts.sources = sum(o.facts.sources, i.facts.sources);
                    }
                }
                // The merged incident lasts as long as any of them.
                o.started_at = o.started_at.min(i.started_at);
                o.resolved_at = match (o.resolved_at, i.resolved_at) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                if i.is_open() {
                    o.stage = i.stage;
                }
            }
            None => {
                let mut i = i;
                i.seen_from = vec![inst];
                out.push(i);
            }
        }
    }
    for o in &mut out {
        o.seen_from.sort();
        o.fleet_size = fleet_size;
        if fleet_size > 1 {
            o.summary = with_fleet_words(o, fleet_size);
        }
    }
    out.sort_by_key(|i| std::cmp::Reverse(i.started_at));
    out
}

fn with_fleet_words(i: &Incident, fleet_size: usize) -> String {
    let n = i.seen_from.len();
    if n == 1 && i.kind == Kind::DatacenterFailure {
        let pop = &i.seen_from[0];
        let dc = i.datacenters.first().map_or("the data center", String::as_str);
        let others = match fleet_size - 1 {
            1 => "the other point of presence reaches it".to_string(),
            n => format!("the other {n} points of presence reach it"),
        };
        return format!(
            "{dc} could not be reached from {pop} only; {others}: a problem of {pop}'s own network, not of {dc}. {}",
            i.summary
        );
    }
    let total = match (i.kind, i.facts.peak_rps, i.facts.sources) {
        (Kind::Flood, Some(rps), Some(sources)) if n > 1 => format!(
            " Across the fleet: up to {rps:.0} requests and connection attempts per second from about {sources} addresses."
        ),
        _ => String::new(),
    };
    format!("{} Seen from {n} of {fleet_size} points of presence ({}).{total}", i.summary, i.seen_from.join(", "))
}

/// Both added, or the one that is known.
fn sum<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Stage;

    fn incident(kind: Kind, scope: &str, started: u64) -> Incident {
        let mut v: Incident = serde_json::from_value(serde_json::json!({
            "id": format!("{}-{scope}-{started}", kind.as_str()),
            "kind": kind, "stage": "identified",
            "started_at": "2010-12-12T19:00:00Z", "detected_at": "2010-12-12T19:00:02Z",
            "resolved_at": null, "updated_at": "2010-12-12T19:00:02Z",
            "scope": scope, "sites": ["shop-de"], "datacenters": [scope],
            "summary": "Data center eu-west stopped serving shop-de.",
            "facts": {}, "evidence": [], "impact": {"requests": 0, "served": 0, "served_by_other_datacenter": 0,
              "served_stale": 0, "challenged": 0, "refused_or_shed": 0, "failed": 0, "cancelled": 0,
              "checkouts_attempted": 0, "checkouts_placed": 0, "checkouts_failed": 0, "flood_blocked": 0, "flood_leaked": 0},
            "impact_by_site": {}, "confidence": 1.0, "severity": "minor", "related": [], "updates": [], "series": []
        }))
        .unwrap();
        v.started_at = started;
        v.stage = Stage::Identified;
        v
    }

    #[test]
    fn one_event_seen_from_several_points_of_presence_is_one_incident() {
        let view = FleetView {
            me: "fra".into(),
            live: vec!["fra".into(), "ams".into(), "par".into()],
            others: HashMap::from([
                ("ams".to_string(), vec![incident(Kind::DatacenterFailure, "eu-west", 1_000)]),
                ("par".to_string(), vec![incident(Kind::DatacenterFailure, "eu-west", 1_500)]),
                ("gone".to_string(), vec![incident(Kind::Flood, "*", 1_000)]),
            ]),
        };
        let merged = merge(vec![incident(Kind::DatacenterFailure, "eu-west", 1_200)], &view);
        assert_eq!(merged.len(), 1, "{merged:?}");
        assert_eq!(merged[0].seen_from, vec!["ams", "fra", "par"]);
        assert_eq!(merged[0].started_at, 1_000);
        assert!(
            merged[0].summary.ends_with("Seen from 3 of 3 points of presence (ams, fra, par)."),
            "{}",
            merged[0].summary
        );
    }

    #[test]
    fn a_failure_seen_from_one_point_of_presence_only_is_its_own_problem() {
        let view = FleetView {
            me: "fra".into(),
            live: vec!["fra".into(), "ams".into(), "par".into()],
            others: HashMap::new(),
        };
        let merged = merge(vec![incident(Kind::DatacenterFailure, "eu-west", 1_000)], &view);
        assert!(merged[0].summary.starts_with("eu-west could not be reached from fra only"), "{}", merged[0].summary);
        // Alone (no fleet view, or a fleet of one), the words are the incident's own.
        let alone = FleetView { me: "fra".into(), live: vec!["fra".into()], others: HashMap::new() };
        let merged = merge(vec![incident(Kind::DatacenterFailure, "eu-west", 1_000)], &alone);
        assert_eq!(merged[0].summary, "Data center eu-west stopped serving shop-de.");
    }

    #[test]
    fn a_flood_spread_over_the_fleet_is_given_its_whole_size() {
        let part = |rps: f64, sources: u64| {
            let mut i = incident(Kind::Flood, "*", 1_000);
            i.facts.peak_rps = Some(rps);
            i.facts.sources = Some(sources);
            i
        };
        let view = FleetView {
            me: "fra".into(),
            live: vec!["fra".into(), "ams".into(), "par".into()],
            others: HashMap::from([
                ("ams".to_string(), vec![part(1900.0, 990)]),
                ("par".to_string(), vec![part(2100.0, 1010)]),
            ]),
        };
        let merged = merge(vec![part(2000.0, 1000)], &view);
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].facts.peak_rps, merged[0].facts.sources), (Some(6000.0), Some(3000)));
        assert!(merged[0].summary.ends_with("from about 3000 addresses."), "{}", merged[0].summary);
    }
}
