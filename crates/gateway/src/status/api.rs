//! Atlassian Statuspage's public API (v2), so that existing status widgets and clients work
//! unchanged: `summary.json`, `status.json`, `components.json`, `incidents.json` (the 50
//! most recent) and `incidents/unresolved.json`. The sites are the components; holdfast's
//! own fields are under one extra key, `holdfast`.

use crate::incident::record::Incident;
use crate::incident::view::{self, Component, Page};
use serde_json::{json, Value};

/// Incidents listed at most.
const LIST: usize = 50;

fn status_object(components: &[Component], incidents: &[Incident]) -> Value {
    let open: Vec<&Incident> = incidents.iter().filter(|i| i.is_open()).collect();
    let (indicator, description) = view::indicator(components, &open);
    json!({"indicator": indicator, "description": description})
}

pub(super) fn status(page: &Page, components: &[Component], incidents: &[Incident]) -> Value {
    json!({"page": view::page(page), "status": status_object(components, incidents)})
}

pub(super) fn components(page: &Page, components: &[Component], created: u64) -> Value {
    json!({
        "page": view::page(page),
        "components": components.iter().map(|c| view::component(c, page, created)).collect::<Vec<_>>(),
    })
}

pub(super) fn incidents(
    page: &Page,
    components: &[Component],
    incidents: &[Incident],
    created: u64,
    lang: &str,
    unresolved: bool,
) -> Value {
    let list: Vec<Value> = incidents
        .iter()
        .filter(|i| !unresolved || i.is_open())
        .take(LIST)
        .map(|i| view::statuspage(i, page, components, created, lang))
        .collect();
    json!({"page": view::page(page), "incidents": list})
}

pub(super) fn summary(
    page: &Page,
    components: &[Component],
    incidents: &[Incident],
    created: u64,
    lang: &str,
) -> Value {
    let open: Vec<Value> = incidents
        .iter()
        .filter(|i| i.is_open())
        .map(|i| view::statuspage(i, page, components, created, lang))
        .collect();
    json!({
        "page": view::page(page),
        "status": status_object(components, incidents),
        "components": components.iter().map(|c| view::component(c, page, created)).collect::<Vec<_>>(),
        "incidents": open,
        "scheduled_maintenances": [],
    })
}
