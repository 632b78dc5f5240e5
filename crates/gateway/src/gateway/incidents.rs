//! The incident task: once a second it reads what the gateway saw in that second (each
//! site's tally, each origin's counters and state, each data center's eligibility,
//! admission, the shield's flood state), hands it to the detector as one
//! [`Observation`], and passes the changes to the incident store, the journal, the
//! webhooks and the event log. It runs off the request path and takes no lock a request
//! takes but the store's own.

use crate::incident::detect::{Detector, Tuning};
use crate::incident::journal::Journal;
use crate::incident::notify::{self, Notifier};
use crate::incident::signals::{Counts, FloodObs, Observation, PoolObs, SiteObs};
use crate::incident::store::Event;
use crate::incident::{view, Incidents};
use crate::proxy::Edge;
use crate::shield::slow::SlowNow;
use crate::snapshot::Snapshot;
use crate::telemetry::Event as LogEvent;
use crate::upstream::{health::State, ErrorKind, Origin, OriginCounts, FAULT_KINDS};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const EVERY: Duration = Duration::from_secs(1);

/// What the task remembers between ticks.
struct Memory {
    detector: Detector,
    sites: BTreeMap<String, Counts>,
    /// Each origin's counters at the last tick, by address; the map holds the origin, so
    /// that its address is not reused by another while it is here.
    origins: BTreeMap<usize, (Arc<Origin>, OriginCounts)>,
    notifier: Option<Notifier>,
    last: tokio::time::Instant,
    /// Connections the shield refused from flood sources, and slow clients, at the last
    /// tick.
    refused: u64,
    slow: SlowNow,
}

/// Runs until shutdown.
pub(crate) async fn run(
    edge: Arc<Edge>,
    incidents: Arc<Incidents>,
    journal: Option<Journal>,
    page: view::Page,
    admin_url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let tuning = Tuning::from_config(&edge.snapshot.load().file.incidents);
    let mut m = Memory {
        detector: Detector::new(tuning),
        sites: BTreeMap::new(),
        origins: BTreeMap::new(),
        notifier: None,
        last: tokio::time::Instant::now(),
        refused: 0,
        slow: SlowNow::default(),
    };
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let snap = edge.snapshot.load_full();
        let cfg = &snap.file.incidents;
        if !cfg.enabled {
            continue;
        }
        m.detector.retune(Tuning::from_config(cfg));
        incidents.set_limits(cfg.retention.get().as_millis() as u64, cfg.max_incidents);
        if m.notifier.as_ref().is_none_or(|n| n.config != Notifier::key(&cfg.webhooks)) {
            let cx = notify::Context { page: page.clone(), admin_url: admin_url.clone() };
            m.notifier = Some(Notifier::start(&cfg.webhooks, cx, edge.telemetry.clone()));
        }
        let now = tokio::time::Instant::now();
        let secs = now.duration_since(m.last).as_secs_f64().max(0.001);
        m.last = now;
        let (obs, totals) = observe(&snap, &edge, &mut m, secs);
        let changes = m.detector.step(&obs);
        incidents.set_usual(m.detector.usual_rates());
        for (event, i) in incidents.apply(changes, &obs, &totals) {
            if let Some(j) = &journal {
                j.record(&i);
            }
            if let Some(n) = &m.notifier {
                n.tell(event, &i);
            }
            let kind = match event {
                Event::Opened => "incident_opened",
                Event::Updated => "incident_updated",
                Event::Resolved => "incident_resolved",
            };
            if event != Event::Updated || i.updates.last().is_some_and(|u| u.at == obs.now) {
                let site = i.sites.first().map_or("-", String::as_str);
                let text = i.updates.last().map_or_else(|| i.summary.clone(), |u| u.text.clone());
                edge.telemetry.event(LogEvent::incident(kind, site, i.datacenters.first().cloned(), &i.id, text));
            }
        }
    }
}

/// One tick's observation, and each site's counts so far.
fn observe(snap: &Snapshot, edge: &Edge, m: &mut Memory, secs: f64) -> (Observation, BTreeMap<String, Counts>) {
    let now_ms = crate::clock::unix_ms();
    let clock_now = crate::clock::now_ms();
    let mut totals = BTreeMap::new();
    let mut sites = Vec::with_capacity(snap.sites.len());
    let mut seen = Vec::new();
    for site in &snap.sites {
        let total = site.tally.read();
        let counts = total.since(m.sites.get(&*site.name).unwrap_or(&Counts::default()));
        m.sites.insert(site.name.to_string(), total.clone());
        totals.insert(site.name.to_string(), total);
        let mut pools = Vec::with_capacity(site.pools.len());
        // The site's pools, then its routes' (the tally counts a route's requests under
        // the site's pool in the same data center).
        for (route, pool) in site.with_routes().flat_map(|rt| rt.pools.iter().map(move |p| (&rt.route, p))) {
            let mut p = PoolObs {
                datacenter: pool.datacenter.to_string(),
                route: route.as_deref().map(str::to_string),
                origins: pool.origins.len() as u32,
                eligible: pool.eligible(),
                ..PoolObs::default()
            };
            let mut errors = [0u64; FAULT_KINDS + 1];
            let mut latency_us = 0u64;
            for o in &pool.origins {
                let key = Arc::as_ptr(o) as usize;
                seen.push(key);
                let now = o.stats.read();
                let before = m.origins.insert(key, (o.clone(), now)).map_or(now, |(_, c)| c);
                let mut failed = 0;
                for (i, e) in errors.iter_mut().take(FAULT_KINDS).enumerate() {
                    let tries = now.failed_tries[i].saturating_sub(before.failed_tries[i]);
                    let checks = now.failed_checks[i].saturating_sub(before.failed_checks[i]);
                    failed += tries;
                    *e += tries + checks;
                    // A TLS failure this tick: why (the latest one seen).
                    if ErrorKind::FAULTS[i] == ErrorKind::Tls && tries + checks > 0 && p.tls.is_none() {
                        p.tls = o.tls_notes.last();
                    }
                }
                let answered = now.answered.saturating_sub(before.answered);
                let fives = now.status_5xx.saturating_sub(before.status_5xx);
                errors[FAULT_KINDS] += fives;
                p.answered += answered;
                p.busy += now.busy.saturating_sub(before.busy);
                latency_us += now.answered_us.saturating_sub(before.answered_us);
                let late = o.stats.late_answer_ms.swap(0, Relaxed);
                if late > 0 {
                    p.answered += 1;
                    latency_us += late * 1000;
                }
                let available = o.health.state(clock_now) == State::Available;
                // Available, yet its tries this tick failed (no answer at all, or at least
                // two in five of them errors).
                let tries = answered + failed;
                let failing = available && tries >= 2 && (failed + fives) * 5 >= tries * 2;
                p.available += u32::from(available);
                p.failing += u32::from(failing);
                if !available || failing {
                    p.down.push(o.authority.to_string());
                }
            }
            if p.answered > 0 {
                p.latency_ms = latency_us as f64 / 1000.0 / p.answered as f64;
            }
            p.errors = ErrorKind::FAULTS
                .iter()
                .map(|k| k.as_str())
                .chain(["status_5xx"])
                .zip(errors)
                .filter(|(_, n)| *n > 0)
                .collect();
            pools.push(p);
        }
        let (shed_level, saturated, waiting) = site.load.observe_now();
        sites.push(SiteObs { name: site.name.to_string(), counts, pools, shed_level, saturated, waiting });
    }
    m.origins.retain(|k, _| seen.contains(k));
    m.sites.retain(|k, _| snap.sites.iter().any(|s| *s.name == **k));
    let flood = flood(snap, edge, m, secs);
    (Observation { now: now_ms, secs, sites, flood }, totals)
}

fn flood(snap: &Snapshot, edge: &Edge, m: &mut Memory, secs: f64) -> FloodObs {
    let cfg = &snap.file.shield;
    let f = edge.shield.flood_now();
    // The total starts again with each flood.
    let refused = f.refused.saturating_sub(m.refused.min(f.refused));
    m.refused = f.refused;
    let slow = edge.shield.slow.now(crate::clock::unix_ms());
    let d = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
    let (heads_cut, bodies_cut) = (d(slow.heads_cut, m.slow.heads_cut), d(slow.bodies_cut, m.slow.bodies_cut));
    let heads_begun = d(slow.heads_begun, m.slow.heads_begun);
    m.slow = slow;
    FloodObs {
        active: f.active && cfg.enabled,
        suspicious_per_second: f.rate,
        refused_per_second: refused as f64 / secs,
        slow_partial_heads: slow.partial_heads,
        slow_per_second: heads_begun + bodies_cut,
        slow_cut_per_second: heads_cut + bodies_cut,
        slow_sources: slow.sources,
        slow_bodies: bodies_cut > heads_cut,
        threshold: f64::from(cfg.signatures.flood_rate),
        blocked_prefixes: f.blocked as u64,
        addresses: f.addresses,
        prefixes: f.prefixes,
        signature: f.signature,
        new_prefix_burst: f.new_prefix_burst,
    }
}
