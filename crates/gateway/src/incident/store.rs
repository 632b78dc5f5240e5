//! The incidents: open ones and history. Each tick the gateway's incident task hands the
//! store the detector's changes and what the sites counted; the store opens, updates and
//! resolves incidents, counts their impact (requests that ended while they were open, per
//! site), keeps their timeline and a second-by-second series for the report, links those
//! open at the same time on the same sites, and passes every change on: to the journal,
//! the metrics and the webhooks. Readers (admin API, status page) take a copy.

use super::detect::{Change, Finding, Key};
use super::record::Incident;
use super::record::{merge, point};
use super::signals::{Counts, Observation};
use super::view::{Component, SiteState};
use super::{text, Impact, Kind, Point, Severity, Stage, Update};
use crate::telemetry::Telemetry;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Seconds before an incident's start that its series shows.
const BEFORE: usize = 60;

/// What happened to an incident in a tick, for those told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Opened,
    Updated,
    Resolved,
}

impl Event {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::Updated => "updated",
            Event::Resolved => "resolved",
        }
    }
}

/// The incidents, behind one lock (taken once a tick to write, briefly by readers).
pub(crate) struct Incidents {
    inner: Mutex<Inner>,
    telemetry: Arc<Telemetry>,
    /// In a fleet: the others' incidents, for [`Incidents::all`].
    fleet: Mutex<Option<super::fleet::FleetView>>,
}

#[derive(Default)]
struct Inner {
    /// Newest last.
    list: VecDeque<Incident>,
    open: BTreeMap<Key, String>,
    /// The last seconds of every site, for the start of a new incident's series.
    recent: VecDeque<Point>,
    /// Each site's counts so far, for the last seconds (unix ms).
    history: VecDeque<(u64, BTreeMap<String, Counts>)>,
    retention_ms: u64,
    max: usize,
    /// Each site's state for the status page, and since when (unix ms).
    states: BTreeMap<String, (SiteState, u64)>,
    /// What the detector counts as each site's usual request rate, and whether it knows it.
    usual: BTreeMap<String, (f64, bool)>,
}

impl Incidents {
    /// Incidents loaded from the journal (if any), kept for `retention_ms`, at most `max`.
    pub(crate) fn new(telemetry: Arc<Telemetry>, loaded: Vec<Incident>, retention_ms: u64, max: usize) -> Incidents {
        let mut inner = Inner { retention_ms, max, ..Inner::default() };
        for mut i in loaded {
            // An incident left open by a stop is over: nothing watches it any more.
            if i.is_open() {
                let at = i.updated_at;
                i.stage = Stage::Resolved;
                i.resolved_at = Some(at);
                i.updates.push(Update { at, stage: Stage::Resolved, text: "holdfast restarted; closed".into() });
            }
            inner.list.push_back(i);
        }
        Incidents { inner: Mutex::new(inner), telemetry, fleet: Mutex::new(None) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every incident kept, newest first.
    /// The incidents, newest first; in a fleet, the fleet's (see [`super::fleet`]).
    pub(crate) fn all(&self) -> Vec<Incident> {
        let local: Vec<Incident> = self.lock().list.iter().rev().cloned().collect();
        match self.fleet.lock().ok().and_then(|f| f.clone()) {
            Some(f) => super::fleet::merge(local, &f),
            None => local,
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Incident> {
        self.all().into_iter().find(|i| i.id == id)
    }

    /// This instance's own incidents, newest first (what it tells its fleet).
    pub(crate) fn local(&self) -> Vec<Incident> {
        self.lock().list.iter().rev().cloned().collect()
    }

    /// What the other instances of the fleet named (the fleet's sync task).
    pub(crate) fn set_fleet(&self, view: super::fleet::FleetView) {
        if let Ok(mut f) = self.fleet.lock() {
            *f = Some(view);
        }
    }

    /// New retention limits (a reload).
    pub(crate) fn set_limits(&self, retention_ms: u64, max: usize) {
        let mut inner = self.lock();
        inner.retention_ms = retention_ms;
        inner.max = max;
    }

    /// One tick: the detector's `changes`, the tick's observation, and each site's counts
    /// since start. Returns what happened to which incidents (their state after it).
    pub(crate) fn apply(
        &self,
        changes: Vec<Change>,
        obs: &Observation,
        totals: &BTreeMap<String, Counts>,
    ) -> Vec<(Event, Incident)> {
        let now = obs.now;
        let mut inner = self.lock();
        let mut touched = Vec::new();
        let mut resolving = Vec::new();
        for change in changes {
            match change {
                Change::Open { finding, since } => {
                    let id = inner.open_incident(finding, since, now);
                    touched.push((Event::Opened, id));
                }
                Change::Holds(f) => {
                    if let Some(i) = inner.find_open(&f.key) {
                        if i.holds(f, now) {
                            touched.push((Event::Updated, i.id.clone()));
                        }
                    }
                }
                Change::Cleared(key) => {
                    if let Some(i) = inner.find_open(&key) {
                        i.stage = Stage::Monitoring;
                        i.updated_at = now;
                        let text = text::cleared(i);
                        i.push_update(now, Stage::Monitoring, text);
                        touched.push((Event::Updated, i.id.clone()));
                    }
                }
                Change::Resolve(key) => resolving.push(key),
                Change::Escalate { from, finding } => {
                    let Some(id) = inner.open.remove(&from) else { continue };
                    let old = from.kind;
                    inner.open.insert(finding.key.clone(), id.clone());
                    if let Some(i) = inner.list.iter_mut().find(|i| i.id == id) {
                        i.escalate(finding, now);
                        self.escalated_metrics(i, old, now);
                        touched.push((Event::Updated, id));
                    }
                }
            }
        }
        inner.remember(obs, totals);
        // Every open incident: its impact so far, its series, its links and words.
        let open_ids: Vec<String> = inner.open.values().cloned().collect();
        let related = inner.overlaps(&open_ids);
        let base_for = |since: u64, site: &str, inner: &Inner| inner.totals_before(since, site);
        let bases: Vec<(String, BTreeMap<String, Counts>)> = inner
            .list
            .iter()
            .filter(|i| i.is_open())
            .map(|i| {
                (
                    i.id.clone(),
                    i.sites
                        .iter()
                        .filter(|s| !i.base.contains_key(*s))
                        .map(|s| (s.clone(), base_for(i.started_at, s, &inner)))
                        .collect(),
                )
            })
            .collect();
        for (id, missing) in bases {
            if let Some(i) = inner.list.iter_mut().find(|i| i.id == id) {
                i.base.extend(missing);
            }
        }
        for i in inner.list.iter_mut().filter(|i| i.is_open()) {
            i.count_impact(totals);
            i.extend_series(obs);
            if let Some(r) = related.get(&i.id) {
                for id in r {
                    if !i.related.contains(id) {
                        i.related.push(id.clone());
                    }
                }
            }
        }
        let kinds: BTreeMap<String, Kind> = inner.list.iter().map(|i| (i.id.clone(), i.kind)).collect();
        for i in inner.list.iter_mut().filter(|i| i.is_open()) {
            let related_kinds: Vec<Kind> = i.related.iter().filter_map(|id| kinds.get(id).copied()).collect();
            i.summary = text::summary(i, &related_kinds);
            i.severity = i.severity_now();
        }
        for key in resolving {
            let Some(id) = inner.open.remove(&key) else { continue };
            if let Some(i) = inner.list.iter_mut().find(|i| i.id == id) {
                i.stage = Stage::Resolved;
                i.resolved_at = Some(now);
                i.updated_at = now;
                let text = text::resolved(i);
                i.push_update(now, Stage::Resolved, text);
                touched.push((Event::Resolved, id));
            }
        }
        let out: Vec<(Event, Incident)> = touched
            .into_iter()
            .filter_map(|(e, id)| inner.list.iter().find(|i| i.id == id).map(|i| (e, i.clone())))
            .collect();
        for (e, i) in &out {
            match e {
                Event::Opened => self.opened_metrics(i, now),
                Event::Resolved => self.resolved_metrics(i),
                Event::Updated => {}
            }
        }
        inner.judge_states(obs, totals);
        inner.trim(now);
        out
    }

    /// Keeps the detector's usual rates for /status.json.
    pub(crate) fn set_usual(&self, usual: BTreeMap<String, (f64, bool)>) {
        self.lock().usual = usual;
    }

    /// The engine's state for /status.json: incidents open, and the usual rates.
    pub(crate) fn engine_view(&self) -> serde_json::Value {
        let inner = self.lock();
        let usual: serde_json::Map<String, serde_json::Value> = inner
            .usual
            .iter()
            .map(|(s, (rps, known))| {
                (
                    s.clone(),
                    serde_json::json!({"requests_per_second": (rps * 10.0).round() / 10.0, "established": known}),
                )
            })
            .collect();
        serde_json::json!({"open": inner.open.len(), "kept": inner.list.len(), "usual": usual})
    }

    /// The sites as the status page shows them, in the configuration's order.
    pub(crate) fn components(&self, snap: &crate::snapshot::Snapshot, started: u64) -> Vec<Component> {
        let inner = self.lock();
        snap.sites
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let (state, since) = inner.states.get(&*s.name).copied().unwrap_or((SiteState::Operational, started));
                Component { name: s.name.to_string(), position: n + 1, state, since }
            })
            .collect()
    }

    fn opened_metrics(&self, i: &Incident, now: u64) {
        let m = &self.telemetry.metrics;
        m.incident_opened(i.kind.as_str(), (now.saturating_sub(i.started_at)) as f64 / 1000.0);
        for (site, dc) in labels(i) {
            m.incident_open(i.kind.as_str(), &site, &dc, true);
        }
    }

    fn escalated_metrics(&self, i: &Incident, old: Kind, now: u64) {
        let m = &self.telemetry.metrics;
        for (site, dc) in labels(i) {
            m.incident_open(old.as_str(), &site, &dc, false);
        }
        self.opened_metrics(i, now);
    }

    fn resolved_metrics(&self, i: &Incident) {
        for (site, dc) in labels(i) {
            self.telemetry.metrics.incident_open(i.kind.as_str(), &site, &dc, false);
        }
    }
}

/// The (site, data center) label pairs an incident's open gauge is set on.
fn labels(i: &Incident) -> Vec<(String, String)> {
    let sites = if i.sites.is_empty() { vec!["-".to_string()] } else { i.sites.clone() };
    let dcs = if i.datacenters.is_empty() { vec!["-".to_string()] } else { i.datacenters.clone() };
    sites.iter().flat_map(|s| dcs.iter().map(move |d| (s.clone(), d.clone()))).collect()
}

impl Inner {
    fn find_open(&mut self, key: &Key) -> Option<&mut Incident> {
        let id = self.open.get(key)?.clone();
        self.list.iter_mut().find(|i| i.id == id)
    }

    /// Opens an incident; returns its id.
    fn open_incident(&mut self, f: Finding, since: u64, now: u64) -> String {
        let id = format!("{}-{}-{}", f.key.kind.as_str().replace('_', "-"), slug(&f.key.scope), since / 1000);
        // The series starts a minute before the condition was first seen.
        let series: Vec<Point> =
            self.recent.iter().filter(|p| p.t + (BEFORE as u64) * 1000 >= since).cloned().collect();
        let stage = if f.confidence >= 0.8 { Stage::Identified } else { Stage::Investigating };
        let mut i = Incident {
            id: id.clone(),
            kind: f.key.kind,
            stage,
            started_at: since,
            detected_at: now,
            kind_since: now,
            resolved_at: None,
            updated_at: now,
            scope: f.key.scope.clone(),
            sites: f.sites,
            datacenters: f.datacenters,
            summary: String::new(),
            facts: f.facts,
            evidence: f.evidence,
            impact: Impact::default(),
            impact_by_site: BTreeMap::new(),
            confidence: f.confidence,
            severity: Severity::Minor,
            related: Vec::new(),
            updates: Vec::new(),
            series,
            seen_from: Vec::new(),
            fleet_size: 0,
            base: BTreeMap::new(),
        };
        i.summary = text::summary(&i, &[]);
        let text = text::opened(&i);
        i.push_update(now, stage, text);
        self.open.insert(f.key, id.clone());
        self.list.push_back(i);
        id
    }

    /// A site's counts just before `since` (its first tick), from the last minute kept;
    /// the oldest kept when `since` is older.
    fn totals_before(&self, since: u64, site: &str) -> Counts {
        let before = self.history.iter().rev().find(|(t, _)| *t < since).or_else(|| self.history.front());
        before.and_then(|(_, m)| m.get(site).cloned()).unwrap_or_default()
    }

    /// Open incidents that share a site (a flood and the data-center failure under it;
    /// an overload and the crowd that caused it).
    fn overlaps(&self, open: &[String]) -> BTreeMap<String, Vec<String>> {
        let open: Vec<&Incident> = self.list.iter().filter(|i| open.contains(&i.id)).collect();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in &open {
            for b in &open {
                if a.id != b.id && a.sites.iter().any(|s| b.sites.contains(s)) {
                    out.entry(a.id.clone()).or_default().push(b.id.clone());
                }
            }
        }
        out
    }

    /// Keeps this tick's numbers: every site's together for the start of a series, and
    /// each site's counts so far for the impact of an incident first seen in the past.
    fn remember(&mut self, obs: &Observation, totals: &BTreeMap<String, Counts>) {
        self.recent.push_back(point(obs, None));
        self.history.push_back((obs.now, totals.clone()));
        while self.recent.len() > BEFORE + 5 {
            self.recent.pop_front();
        }
        while self.history.len() > BEFORE + 5 {
            self.history.pop_front();
        }
    }

    /// Each site's state now, from its last ten seconds and the incidents open on it.
    fn judge_states(&mut self, obs: &Observation, totals: &BTreeMap<String, Counts>) {
        let ten_ago = self.history.iter().rev().nth(10).or_else(|| self.history.front()).map(|(_, m)| m.clone());
        for s in &obs.sites {
            let now = totals.get(&s.name).cloned().unwrap_or_default();
            let then = ten_ago.as_ref().and_then(|m| m.get(&s.name)).cloned().unwrap_or_default();
            let c = now.since(&then);
            let open: Vec<Kind> =
                self.list.iter().filter(|i| i.is_open() && i.sites.contains(&s.name)).map(|i| i.kind).collect();
            let state = site_state(&c, &open);
            let entry = self.states.entry(s.name.clone()).or_insert((state, obs.now));
            if entry.0 != state {
                *entry = (state, obs.now);
            }
        }
    }

    /// Drops incidents past retention, then the oldest resolved beyond the maximum.
    fn trim(&mut self, now: u64) {
        let keep_from = now.saturating_sub(self.retention_ms);
        self.list.retain(|i| i.is_open() || i.resolved_at.is_none_or(|r| r >= keep_from));
        while self.list.len() > self.max {
            match self.list.iter().position(|i| !i.is_open()) {
                Some(oldest) => {
                    self.list.remove(oldest);
                }
                None => break,
            }
        }
    }
}

/// A site's state from what its requests did in the last seconds and what is open on it.
fn site_state(c: &Counts, open: &[Kind]) -> SiteState {
    let n = c.requests as f64;
    let share = |x: u64| if n >= 5.0 { x as f64 / n } else { 0.0 };
    let failed = share(c.failed());
    let other: u64 = c.by_pool[1..].iter().sum();
    if failed >= 0.5 {
        SiteState::Down
    } else if failed >= 0.05 {
        SiteState::PartialOutage
    } else if open.contains(&Kind::DatacenterFailure) || (n >= 5.0 && other > c.by_pool[0]) {
        SiteState::BackupDatacenter
    } else if share(c.outcome(super::Outcome::Stale)) >= 0.3 {
        SiteState::CachedPages
    } else if open.contains(&Kind::Flood) && failed < 0.05 {
        SiteState::AttackMitigated
    } else if open.iter().any(|k| matches!(k, Kind::Overload | Kind::OriginFailure | Kind::Flood)) {
        SiteState::Degraded
    } else {
        SiteState::Operational
    }
}

impl Incident {
    /// Its condition holds: new evidence; true when something worth telling changed (it
    /// came back after clearing, or a data center's way of failing turned out otherwise).
    /// Becomes the larger incident the finding names (single origins failing → the whole
    /// data center): its kind, scope, facts and evidence, with an update saying so.
    fn escalate(&mut self, f: Finding, now: u64) {
        self.kind = f.key.kind;
        self.kind_since = now;
        self.scope = f.key.scope;
        self.stage = Stage::Identified;
        for s in f.sites {
            if !self.sites.contains(&s) {
                self.sites.push(s);
            }
        }
        self.datacenters = f.datacenters;
        self.facts.mode = f.facts.mode;
        self.facts.moved_to = f.facts.moved_to;
        self.facts.origins = merge(&self.facts.origins, &f.facts.origins);
        self.evidence = f.evidence;
        self.confidence = f.confidence;
        self.updated_at = now;
        self.summary = text::summary(self, &[]);
        let text = format!("Escalated: {}", self.summary);
        self.push_update(now, Stage::Identified, text);
    }

    fn holds(&mut self, f: Finding, now: u64) -> bool {
        let mut told = false;
        if self.stage == Stage::Monitoring {
            self.stage = Stage::Identified;
            let text = text::came_back(self);
            self.push_update(now, Stage::Identified, text);
            told = true;
        } else if self.stage == Stage::Investigating && f.confidence >= 0.8 {
            self.stage = Stage::Identified;
            told = true;
        }
        if self.facts.mode != f.facts.mode && f.facts.mode.is_some() {
            let text = text::mode_changed(self, f.facts.mode.as_deref().unwrap_or(""));
            self.push_update(now, self.stage, text);
            told = true;
        }
        for s in &f.sites {
            if !self.sites.contains(s) {
                self.sites.push(s.clone()); // its impact counts from the incident's start
            }
        }
        let mut facts = f.facts;
        // What grows over the incident's life keeps its largest value.
        facts.moved_to = merge(&self.facts.moved_to, &facts.moved_to);
        facts.origins = merge(&self.facts.origins, &facts.origins);
        self.facts = facts;
        self.evidence = f.evidence;
        self.confidence = self.confidence.max(f.confidence);
        self.updated_at = now;
        told
    }
}

/// A scope as part of an id: `*` is `all`.
fn slug(scope: &str) -> String {
    if scope == "*" {
        return "all".into();
    }
    scope.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::detect::{Detector, Tuning};
    use crate::incident::signals::{PoolObs, SiteObs};

    fn obs(t: u64, west_down: bool, failed: u64) -> Observation {
        let pools = vec![
            PoolObs {
                datacenter: "eu-west".into(),
                origins: 2,
                available: if west_down { 0 } else { 2 },
                eligible: !west_down,
                errors: if west_down { vec![("connect_refused", 4)] } else { Vec::new() },
                ..PoolObs::default()
            },
            PoolObs { datacenter: "eu-central".into(), origins: 1, available: 1, eligible: true, ..PoolObs::default() },
        ];
        let mut counts = Counts { requests: 20, ..Counts::default() };
        counts.by_pool[usize::from(west_down)] = 20 - failed;
        counts.outcomes[crate::incident::Outcome::Failed as usize] = failed;
        Observation {
            now: t * 1000,
            secs: 1.0,
            sites: vec![SiteObs { name: "shop-de".into(), counts, pools, ..SiteObs::default() }],
            ..Observation::default()
        }
    }

    #[test]
    fn an_origin_failure_that_spreads_is_escalated_in_place() {
        let store = Incidents::new(Arc::new(Telemetry::new()), Vec::new(), 3_600_000, 10);
        let mut d = Detector::new(Tuning::default());
        let mut ids = Vec::new();
        for t in 0..40 {
            let mut o = obs(t, t >= 26, 0);
            if (20..26).contains(&t) {
                // One of eu-west's two origins down: the data center still serves.
                o.sites[0].pools[0].available = 1;
                o.sites[0].pools[0].errors = vec![("connect_refused", 2)];
            }
            let all = BTreeMap::from([("shop-de".to_string(), o.sites[0].counts.clone())]);
            for (e, i) in store.apply(d.step(&o), &o, &all) {
                ids.push((t, e, i.id.clone(), i.kind));
            }
        }
        let all = store.all();
        assert_eq!(all.len(), 1, "one incident: {ids:?}");
        let i = &all[0];
        assert_eq!(i.kind, Kind::DatacenterFailure);
        assert!(i.kind_since > i.detected_at, "named a data-center failure later than first named");
        assert!(i.updates.iter().any(|u| u.text.starts_with("Escalated:")), "{:?}", i.updates);
        assert_eq!(store.lock().open.len(), 1);
    }

    #[test]
    fn an_incident_opens_counts_its_impact_and_resolves_with_its_timeline() {
        let store = Incidents::new(Arc::new(Telemetry::new()), Vec::new(), 3_600_000, 10);
        let mut d = Detector::new(Tuning::default());
        let mut totals = Counts::default();
        let mut events = Vec::new();
        for t in 0..80 {
            let down = (20..30).contains(&t);
            let o = obs(t, down, 0);
            let c = &o.sites[0].counts;
            totals.requests += c.requests;
            for i in 0..8 {
                totals.outcomes[i] += c.outcomes[i];
            }
            for i in 0..2 {
                totals.by_pool[i] += c.by_pool[i];
            }
            let all = BTreeMap::from([("shop-de".to_string(), totals.clone())]);
            for (e, i) in store.apply(d.step(&o), &o, &all) {
                events.push((t, e, i.stage));
            }
        }
        assert_eq!(
            events,
            vec![
                (21, Event::Opened, Stage::Identified),
                (30, Event::Updated, Stage::Monitoring),
                (59, Event::Resolved, Stage::Resolved)
            ]
        );
        let all = store.all();
        assert_eq!(all.len(), 1);
        let i = &all[0];
        assert_eq!(i.id, "datacenter-failure-eu-west-20");
        assert_eq!((i.started_at, i.detected_at, i.resolved_at), (20_000, 21_000, Some(59_000)));
        // From the tick it was first seen to the one it resolved in: ten ticks down (served
        // by eu-central), then well.
        assert_eq!(i.impact.served_by_other_datacenter, 10 * 20);
        assert_eq!(i.impact.requests, 40 * 20);
        assert!(i.summary.contains("eu-west") && i.summary.contains("refused"), "{}", i.summary);
        assert_eq!(i.updates.len(), 3);
        // Every tick from the start (less than a minute before it) to its resolution.
        assert_eq!(i.series.len(), 60);
        assert_eq!(i.series.iter().filter(|p| p.datacenters.get("eu-central") == Some(&20)).count(), 10);
        assert!(i.series.windows(2).all(|w| w[0].t < w[1].t), "one point a tick");
    }

    #[test]
    fn a_sites_state_comes_from_its_last_seconds_and_its_open_incidents() {
        let counts = |origin: u64, other: u64, failed: u64, stale: u64| {
            let mut c = Counts { requests: origin + other + failed + stale, ..Counts::default() };
            c.by_pool[0] = origin;
            c.by_pool[1] = other;
            c.outcomes[super::super::Outcome::Failed as usize] = failed;
            c.outcomes[super::super::Outcome::Stale as usize] = stale;
            c
        };
        assert_eq!(site_state(&counts(100, 0, 0, 0), &[]), SiteState::Operational);
        assert_eq!(site_state(&counts(40, 0, 60, 0), &[]), SiteState::Down);
        assert_eq!(site_state(&counts(90, 0, 10, 0), &[]), SiteState::PartialOutage);
        assert_eq!(site_state(&counts(1, 99, 0, 0), &[]), SiteState::BackupDatacenter);
        assert_eq!(site_state(&counts(60, 0, 0, 40), &[]), SiteState::CachedPages);
        assert_eq!(site_state(&counts(100, 0, 0, 0), &[Kind::Flood]), SiteState::AttackMitigated);
        assert_eq!(site_state(&counts(100, 0, 0, 0), &[Kind::Overload]), SiteState::Degraded);
        // Too few requests to judge by: only what is open counts.
        assert_eq!(site_state(&counts(1, 0, 2, 0), &[]), SiteState::Operational);
    }

    #[test]
    fn old_incidents_leave_and_open_ones_stay() {
        let store = Incidents::new(Arc::new(Telemetry::new()), Vec::new(), 10_000, 10);
        let mut d = Detector::new(Tuning { resolve_after_ms: 1000, ..Tuning::default() });
        let totals = BTreeMap::new();
        for t in 0..60 {
            let o = obs(t, (5..10).contains(&t), 0);
            store.apply(d.step(&o), &o, &totals);
        }
        assert!(store.all().is_empty(), "resolved at 10 s, kept 10 s");
    }
}
