//! Incidents across the fleet: every tenth sync, each instance writes what it named (open
//! ones, and those resolved in the last hour, without their charts) to one Redis hash, and
//! reads the others'; [`crate::incident::fleet`] merges them for the status page and
//! `/incidents.json`.

use super::key;
use crate::incident::fleet::FleetView;
use crate::incident::record::Incident;
use crate::incident::Incidents;
use redis::{Pipeline, Value};
use std::collections::HashMap;

/// Resolved incidents are told for this long.
const RECENT_MS: u64 = 3_600_000;

/// Adds this instance's incidents (ignored answer) when they changed since `last` (a hash
/// of what was written; None: write), and the read of everyone's.
pub(super) fn publish(p: &mut Pipeline, incidents: &Incidents, me: &str, now: u64, last: &mut Option<u64>) {
    let mine: Vec<Incident> = incidents
        .local()
        .into_iter()
        .filter(|i| i.resolved_at.is_none_or(|r| now.saturating_sub(r) < RECENT_MS))
        .map(|mut i| {
            i.series.clear();
            i
        })
        .collect();
    if let Ok(json) = serde_json::to_string(&mine) {
        let hash = std::hash::BuildHasher::hash_one(
            &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
            &json,
        );
        if *last != Some(hash) {
            p.cmd("HSET").arg(key("inc")).arg(me).arg(json).ignore();
            *last = Some(hash);
        }
    }
    p.cmd("HGETALL").arg(key("inc"));
}

/// The others' incidents, from the answer to [`publish`]'s read.
pub(super) fn read_back(answer: Option<Value>, incidents: &Incidents, me: &str, live: &[&String], _now: u64) {
    let all: HashMap<String, String> = super::take_map(answer);
    let others = all
        .into_iter()
        .filter(|(inst, _)| inst != me && live.contains(&inst))
        .filter_map(|(inst, json)| Some((inst, serde_json::from_str::<Vec<Incident>>(&json).ok()?)))
        .collect();
    incidents.set_fleet(FleetView { me: me.to_string(), live: live.iter().map(|l| l.to_string()).collect(), others });
}
