//! Incidents as the outside sees them: the admin API's object (`/incidents.json`, the
//! `json` webhook; its schema is in docs/incidents.md and stays stable), and the mapping
//! onto Atlassian Statuspage's public schema (`/api/v2/*.json` of the status page, the
//! `statuspage` webhook), where holdfast's own fields go under one extra key, `holdfast`.
//! The Statuspage side is public: it names sites and data centers, never origins.

use super::record::Incident;
use super::{Impact, Kind, Severity, Stage};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

fn time_opt(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(time(m)))
}

/// The admin API's incident object.
pub(crate) fn admin(i: &Incident) -> Value {
    json!({
        "id": i.id,
        "kind": i.kind.as_str(),
        "status": if i.is_open() { "open" } else { "resolved" },
        "stage": i.stage.as_str(),
        "started_at": time(i.started_at),
        "detected_at": time(i.detected_at),
        "kind_since": time(i.kind_since.max(i.detected_at)),
        "resolved_at": time_opt(i.resolved_at),
        "updated_at": time(i.updated_at),
        "sites": i.sites,
        "datacenters": i.datacenters,
        "summary": i.summary,
        "facts": i.facts,
        "evidence": i.evidence,
        "impact": impact(&i.impact, &i.impact_by_site),
        "severity": i.severity.as_str(),
        "confidence": (i.confidence * 100.0).round() / 100.0,
        "related": i.related,
        "points_of_presence": i.seen_from,
        "seen_from": if i.fleet_size > 0 { Value::String(format!("{} of {}", i.seen_from.len(), i.fleet_size)) } else { Value::Null },
        "updates": i.updates.iter().map(|u| json!({"at": time(u.at), "stage": u.stage.as_str(), "text": u.text})).collect::<Vec<_>>(),
    })
}

fn impact(total: &Impact, by_site: &BTreeMap<String, Impact>) -> Value {
    let mut v = serde_json::to_value(total).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("by_site".into(), serde_json::to_value(by_site).unwrap_or(Value::Null));
    }
    v
}

/// The status page's identity, for the Statuspage API's `page` object.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) updated_at: u64,
}

pub(crate) fn page(p: &Page) -> Value {
    json!({"id": p.id, "name": p.name, "url": p.url, "time_zone": "Etc/UTC", "updated_at": time(p.updated_at)})
}

/// A site's state now, as the status page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SiteState {
    Operational,
    /// Under attack, and the shield holds.
    AttackMitigated,
    /// Served from the cache (the origins failed).
    CachedPages,
    /// Served by another data center than its own.
    BackupDatacenter,
    Degraded,
    /// Some of its requests fail (5% or more).
    PartialOutage,
    Down,
}

impl SiteState {
    /// Statuspage's component status.
    pub(crate) fn component_status(self) -> &'static str {
        match self {
            SiteState::Operational => "operational",
            SiteState::AttackMitigated | SiteState::CachedPages | SiteState::BackupDatacenter | SiteState::Degraded => {
                "degraded_performance"
            }
            SiteState::PartialOutage => "partial_outage",
            SiteState::Down => "major_outage",
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SiteState::Operational => "operational",
            SiteState::AttackMitigated => "under_attack_mitigated",
            SiteState::CachedPages => "serving_cached_pages",
            SiteState::BackupDatacenter => "serving_from_backup_datacenter",
            SiteState::Degraded => "degraded",
            SiteState::PartialOutage => "partial_outage",
            SiteState::Down => "down",
        }
    }
}

/// A site (a Statuspage component) and its state.
#[derive(Debug, Clone)]
pub(crate) struct Component {
    pub(crate) name: String,
    pub(crate) position: usize,
    pub(crate) state: SiteState,
    pub(crate) since: u64,
}

/// A stable component id from the site's name.
fn component_id(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..12].to_string()
}

pub(crate) fn component(c: &Component, p: &Page, created: u64) -> Value {
    json!({
        "id": component_id(&c.name),
        "name": c.name,
        "status": c.state.component_status(),
        "created_at": time(created),
        "updated_at": time(c.since),
        "position": c.position,
        "description": Value::Null,
        "showcase": true,
        "start_date": Value::Null,
        "group_id": Value::Null,
        "page_id": p.id,
        "group": false,
        "only_show_if_degraded": false,
        "holdfast": { "state": c.state.as_str() },
    })
}

/// Statuspage's incident impact.
pub(crate) fn statuspage_impact(i: &Incident) -> &'static str {
    match (i.kind, i.severity) {
        // An attack that the shield held, with shoppers served, did them no harm.
        (Kind::Flood | Kind::FlashCrowd, Severity::Minor) => "none",
        (_, s) => s.as_str(),
    }
}

/// The incident as Statuspage's public API shows it; `components`: the page's components
/// (those of the incident's sites are listed in it). `lang`: the language of its name and
/// updates.
pub(crate) fn statuspage(i: &Incident, p: &Page, components: &[Component], created: u64, lang: &str) -> Value {
    let (name, body) = super::text::public(i, lang);
    let affected: Vec<Value> =
        components.iter().filter(|c| i.sites.contains(&c.name)).map(|c| component(c, p, created)).collect();
    let id = public_id(&i.id);
    let updates: Vec<Value> = i
        .updates
        .iter()
        .enumerate()
        .rev()
        .map(|(n, u)| {
            let text = if n == 0 { body.clone() } else { u.text.clone() };
            json!({
                "id": format!("{id}{n:02}"),
                "status": u.stage.as_str(),
                "body": text,
                "incident_id": id,
                "created_at": time(u.at),
                "updated_at": time(u.at),
                "display_at": time(u.at),
                "affected_components": Value::Null,
                "deliver_notifications": true,
                "custom_tweet": Value::Null,
                "tweet_id": Value::Null,
            })
        })
        .collect();
    json!({
        "id": id,
        "name": name,
        "status": i.stage.as_str(),
        "created_at": time(i.detected_at),
        "updated_at": time(i.updated_at),
        "monitoring_at": time_opt(i.updates.iter().rev().find(|u| u.stage == Stage::Monitoring).map(|u| u.at)),
        "resolved_at": time_opt(i.resolved_at),
        "impact": statuspage_impact(i),
        "shortlink": format!("{}#{}", p.url, id),
        "started_at": time(i.started_at),
        "page_id": p.id,
        "incident_updates": updates,
        "components": affected,
        "holdfast": {
            "kind": i.kind.as_str(),
            "summary": i.summary,
            "datacenters": i.datacenters,
            "evidence": i.evidence,
            "impact": impact(&i.impact, &i.impact_by_site),
        },
    })
}

/// Statuspage's ids are short and opaque; holdfast's carry the kind, scope and time.
pub(crate) fn public_id(id: &str) -> String {
    component_id(id)
}

/// The page's overall indicator and its description.
pub(crate) fn indicator(components: &[Component], open: &[&Incident]) -> (&'static str, &'static str) {
    let worst = components.iter().map(|c| c.state).max().unwrap_or(SiteState::Operational);
    let impact = open.iter().map(|i| statuspage_impact(i)).max_by_key(|s| match *s {
        "critical" => 3,
        "major" => 2,
        "minor" => 1,
        _ => 0,
    });
    match (worst, impact) {
        (SiteState::Down, _) | (_, Some("critical")) => ("critical", "Major System Outage"),
        (SiteState::PartialOutage, _) | (_, Some("major")) => ("major", "Partial System Outage"),
        (SiteState::Operational, None | Some("none")) => ("none", "All Systems Operational"),
        _ => ("minor", "Minor Service Outage"),
    }
}
