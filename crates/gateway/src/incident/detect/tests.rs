//! The classifier's table of cases, at injected times: each case is a timeline of ticks
//! (one a second) built from a healthy world and changed at chosen moments, and the
//! incidents it must open, the tick they open at, and those it must never open.

use super::*;
use crate::incident::signals::{Counts, FloodObs, Observation, PoolObs, SiteObs};

/// A world of two sites: shop-de (eu-west with two origins, then eu-central with one) and
/// shop-fr (eu-west with two, then eu-central with one).
#[derive(Clone)]
struct World {
    /// Requests per second per site, all answered by the first pool.
    rate: f64,
    /// Per data center: origins unavailable, and the error kind its tries and checks fail with.
    broken: BTreeMap<&'static str, (u32, &'static str)>,
    /// Mean answer time of eu-west (ms).
    west_latency: f64,
    /// eu-west still answers a few requests, this late (ms), while it is broken.
    west_late: Option<f64>,
    flood: Option<f64>,
    /// Admission: saturated, and requests waiting.
    saturated: bool,
    waiting: u32,
    /// Share of requests with a flood's signature.
    suspicious: f64,
    /// eu-west's origins answer this many requests a second with 503 (busy).
    west_busy: u64,
    /// Slow clients: request heads begun and not finished, and their addresses.
    slow: (u64, u64),
}

impl World {
    fn healthy(rate: f64) -> World {
        World {
            rate,
            broken: BTreeMap::new(),
            west_latency: 20.0,
            west_late: None,
            flood: None,
            saturated: false,
            waiting: 0,
            suspicious: 0.0,
            west_busy: 0,
            slow: (0, 0),
        }
    }

    fn observe(&self, t: u64) -> Observation {
        let sites = ["shop-de", "shop-fr"]
            .into_iter()
            .map(|name| {
                let pools: Vec<PoolObs> = [("eu-west", 2u32), ("eu-central", 1)]
                    .into_iter()
                    .map(|(dc, n)| {
                        let (broken, kind) = self.broken.get(dc).copied().unwrap_or((0, ""));
                        let broken = broken.min(n);
                        PoolObs {
                            datacenter: dc.into(),
                            route: None,
                            origins: n,
                            available: n - broken,
                            failing: 0,
                            // A pool of two fails over when fewer than half its origins are up.
                            eligible: (n - broken) * 2 >= n && n > broken,
                            answered: 0,
                            latency_ms: 0.0,
                            errors: if broken > 0 { vec![(kind, 3 * u64::from(broken))] } else { Vec::new() },
                            busy: if dc == "eu-west" { self.west_busy } else { 0 },
                            down: (0..broken).map(|i| format!("{dc}-origin-{i}")).collect(),
                            tls: (broken > 0 && kind == "tls").then(|| crate::upstream::tls::TlsFailure {
                                reason: "expired".into(),
                                not_after: Some(1_765_000_000_000),
                                detail: String::new(),
                            }),
                        }
                    })
                    .collect();
                let total = self.rate.round() as u64;
                let suspicious = (self.rate * self.suspicious).round() as u64;
                let mut counts = Counts { requests: total, ..Counts::default() };
                counts.suspicious[0] = suspicious;
                // Answered by the first pool that takes traffic.
                let first = pools.iter().position(|p| p.eligible).unwrap_or(0);
                counts.by_pool[first] = total - suspicious;
                counts.outcomes[0] = total - suspicious;
                let mut pools = pools;
                pools[first].answered = total - suspicious;
                pools[first].latency_ms = if first == 0 { self.west_latency } else { 25.0 };
                if let (Some(late), 1) = (self.west_late, first) {
                    pools[0].answered = 2;
                    pools[0].latency_ms = late;
                }
                SiteObs {
                    name: name.into(),
                    counts,
                    pools,
                    shed_level: if self.saturated { 1.0 } else { 0.0 },
                    saturated: self.saturated.then(|| "origin response time 800 ms".into()),
                    waiting: self.waiting,
                }
            })
            .collect();
        let flood = match self.flood {
            Some(rate) => FloodObs {
                active: true,
                suspicious_per_second: rate,
                refused_per_second: 3.0 * rate,
                threshold: 50.0,
                blocked_prefixes: 40,
                addresses: 2000,
                prefixes: 64,
                signature: Some("no cookies, a new connection per request".into()),
                new_prefix_burst: true,
                ..FloodObs::default()
            },
            None => FloodObs { threshold: 50.0, ..FloodObs::default() },
        };
        let flood = FloodObs {
            slow_partial_heads: self.slow.0,
            slow_sources: self.slow.1,
            slow_per_second: self.slow.0 as f64 / 10.0,
            ..flood
        };
        Observation { now: t * 1000, secs: 1.0, sites, flood }
    }
}

/// Runs `ticks` seconds; `world(t)` is the world at tick t. Returns every change with its
/// tick.
fn run(ticks: u64, world: impl Fn(u64) -> World) -> Vec<(u64, Change)> {
    let mut d = Detector::new(Tuning::default());
    let mut out = Vec::new();
    for t in 0..ticks {
        for c in d.step(&world(t).observe(t)) {
            out.push((t, c));
        }
    }
    out
}

/// When an incident of `kind` on `scope` opened, if one did.
fn opened(changes: &[(u64, Change)], kind: Kind, scope: &str) -> Option<(u64, Finding)> {
    changes.iter().find_map(|(t, c)| match c {
        Change::Open { finding, .. } if finding.key.kind == kind && finding.key.scope == scope => {
            Some((*t, finding.clone()))
        }
        _ => None,
    })
}

fn kinds_opened(changes: &[(u64, Change)]) -> Vec<(Kind, String)> {
    changes
        .iter()
        .filter_map(|(_, c)| match c {
            Change::Open { finding, .. } => Some((finding.key.kind, finding.key.scope.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ten_minutes_of_normal_varying_traffic_open_nothing() {
    // Shoppers come and go: between 10 and 40 requests a second, in waves and jitter.
    let changes = run(600, |t| {
        let wave = (t as f64 / 45.0).sin() * 12.0;
        let jitter = ((t * 7919) % 13) as f64 - 6.0;
        World::healthy(25.0 + wave + jitter)
    });
    assert_eq!(changes, Vec::new());
}

#[test]
fn one_origin_restarting_in_a_pool_of_several_is_at_most_a_minor_origin_failure() {
    // One eu-west origin of each site refuses for 8 s (a restart), then is back.
    let changes = run(60, |t| {
        let mut w = World::healthy(20.0);
        if (20..28).contains(&t) {
            w.broken.insert("eu-west", (1, "connect_refused"));
        }
        w
    });
    let (at, f) = opened(&changes, Kind::OriginFailure, "eu-west").expect("an origin failure");
    assert_eq!(at, 22, "after three ticks");
    assert_eq!(f.facts.origins, vec!["eu-west-origin-0", "eu-west-origin-0"]);
    assert_eq!(kinds_opened(&changes), vec![(Kind::OriginFailure, "eu-west".into())], "nothing else");
    assert!(changes.iter().any(|(t, c)| *t == 57 && matches!(c, Change::Resolve(k) if k.kind == Kind::OriginFailure)));
}

/// The cases where a whole data center fails, one per way of failing.
#[test]
fn a_failed_data_center_is_named_with_the_way_it_failed() {
    let cases = [
        ("connect_refused", None, "refused"),
        ("connect_timeout", None, "blackhole"),
        ("response_timeout", None, "blackhole"),
        ("reset", None, "resets"),
        ("status_5xx", None, "errors"),
        // Its certificate expired: TLS, with the reason kept.
        ("tls", None, "tls"),
        // Answers still come from eu-west, but three seconds late.
        ("response_timeout", Some(3000.0), "slow"),
    ];
    for (kind, late, mode) in cases {
        let changes = run(40, |t| {
            let mut w = World::healthy(20.0);
            if t >= 20 {
                w.broken.insert("eu-west", (2, kind));
                w.west_late = late;
            }
            w
        });
        let (at, f) = opened(&changes, Kind::DatacenterFailure, "eu-west").unwrap_or_else(|| panic!("{kind}"));
        assert_eq!(at, 21, "{kind}: two ticks after the fault");
        assert_eq!(f.facts.mode.as_deref(), Some(mode), "{kind}");
        assert_eq!(f.facts.tls.as_ref().map(|t| t.reason.as_str()), (kind == "tls").then_some("expired"), "{kind}");
        assert_eq!(f.facts.moved_to, vec!["eu-central"], "{kind}");
        assert_eq!(f.sites, vec!["shop-de", "shop-fr"]);
        assert!(f.confidence >= 0.9, "{kind}: {}", f.confidence);
        let kinds = kinds_opened(&changes);
        assert_eq!(kinds, vec![(Kind::DatacenterFailure, "eu-west".into())], "{kind}: no origin failure as well");
    }
}

/// Half a data center's origins fail (an origin failure), then all of them: one incident,
/// escalated to a data-center failure, not a second one beside the first.
#[test]
fn origins_failing_then_the_whole_data_center_is_one_escalated_incident() {
    let changes = run(40, |t| {
        let mut w = World::healthy(20.0);
        if t >= 20 {
            w.broken.insert("eu-west", (if t >= 26 { 2 } else { 1 }, "status_5xx"));
        }
        w
    });
    assert_eq!(kinds_opened(&changes), vec![(Kind::OriginFailure, "eu-west".into())]);
    let escalated: Vec<(u64, Kind)> = changes
        .iter()
        .filter_map(|(t, c)| match c {
            Change::Escalate { from, finding } if from.kind == Kind::OriginFailure => Some((*t, finding.key.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(escalated, vec![(27, Kind::DatacenterFailure)]);
    assert!(!changes
        .iter()
        .any(|(_, c)| matches!(c, Change::Open { finding, .. } if finding.key.kind == Kind::DatacenterFailure)));
}

#[test]
fn a_datacenter_failure_resolves_after_its_hold_and_is_one_incident_if_it_flaps() {
    let changes = run(120, |t| {
        let mut w = World::healthy(20.0);
        // Down 20..30, back for 5 s, down again 35..45, then well.
        if (20..30).contains(&t) || (35..45).contains(&t) {
            w.broken.insert("eu-west", (2, "connect_refused"));
        }
        w
    });
    let opens = changes.iter().filter(|(_, c)| matches!(c, Change::Open { .. })).count();
    assert_eq!(opens, 1, "one incident for the flapping data center");
    let cleared: Vec<u64> = changes.iter().filter(|(_, c)| matches!(c, Change::Cleared(_))).map(|(t, _)| *t).collect();
    assert_eq!(cleared, vec![30, 45]);
    let resolved: Vec<u64> = changes.iter().filter(|(_, c)| matches!(c, Change::Resolve(_))).map(|(t, _)| *t).collect();
    assert_eq!(resolved, vec![74], "30 s after it last held (tick 44)");
}

#[test]
fn a_flood_is_named_at_once_with_its_signature_and_sources() {
    let changes = run(40, |t| {
        let mut w = World::healthy(20.0);
        if t >= 20 {
            w.flood = Some(300.0 + t as f64);
            w.suspicious = 0.9;
        }
        w
    });
    let (at, f) = opened(&changes, Kind::Flood, "*").expect("a flood");
    assert_eq!(at, 21);
    assert_eq!(f.facts.sources, Some(2000));
    assert_eq!(f.facts.signature.as_deref(), Some("no cookies, a new connection per request"));
    // Its size counts the connections refused from blocked sources with its requests.
    assert_eq!(f.facts.peak_rps, Some(4.0 * 321.0));
    assert_eq!(kinds_opened(&changes), vec![(Kind::Flood, "*".into())], "flood traffic is no flash crowd");
}

/// Slowloris: hundreds of connections from hundreds of addresses hold request heads open.
/// No request ever arrives, yet it is an attack, named with its signature. A few slow
/// heads from a few addresses (slow mobile links) are nothing.
#[test]
fn slow_heads_from_many_addresses_are_a_flood() {
    let changes = run(40, |t| {
        let mut w = World::healthy(20.0);
        w.slow = if t >= 20 { (300, 450) } else { (3, 3) };
        w
    });
    let (at, f) = opened(&changes, Kind::Flood, "*").expect("a flood");
    assert_eq!(at, 21);
    assert!(f.facts.signature.as_deref().is_some_and(|s| s.contains("slowloris")), "{:?}", f.facts.signature);
    assert_eq!(f.facts.sources, Some(450));
    assert_eq!(kinds_opened(&changes).len(), 1);
    let calm = run(40, |_| {
        let mut w = World::healthy(20.0);
        w.slow = (20, 4);
        w
    });
    assert_eq!(kinds_opened(&calm), Vec::new());
}

/// December 2010: eu-west's network fails during a flood. Both are named, apart.
#[test]
fn a_datacenter_failure_during_a_flood_is_both() {
    let changes = run(60, |t| {
        let mut w = World::healthy(20.0);
        if t >= 15 {
            w.flood = Some(600.0);
            w.suspicious = 0.95;
        }
        if t >= 25 {
            w.broken.insert("eu-west", (2, "response_timeout"));
        }
        w
    });
    let kinds = kinds_opened(&changes);
    assert_eq!(kinds, vec![(Kind::Flood, "*".into()), (Kind::DatacenterFailure, "eu-west".into())]);
    let (at, f) = opened(&changes, Kind::DatacenterFailure, "eu-west").unwrap();
    assert_eq!((at, f.facts.mode.as_deref()), (26, Some("blackhole")));
}

#[test]
fn ten_times_the_shoppers_is_a_flash_crowd_not_an_attack() {
    let changes = run(60, |t| World::healthy(if (30..45).contains(&t) { 200.0 } else { 20.0 }));
    let (at, f) = opened(&changes, Kind::FlashCrowd, "shop-de").expect("a flash crowd");
    assert_eq!(at, 31);
    assert_eq!(f.facts.usual_rps.map(|u| u.round()), Some(20.0));
    assert_eq!(
        kinds_opened(&changes),
        vec![(Kind::FlashCrowd, "shop-de".into()), (Kind::FlashCrowd, "shop-fr".into())],
        "nothing else: no flood, no overload while the origins keep up"
    );
    // The surge did not become the usual rate: a second one later is a surge again.
    let changes = run(150, |t| {
        let surge = (30..45).contains(&t) || (100..110).contains(&t);
        World::healthy(if surge { 200.0 } else { 20.0 })
    });
    let opens = changes
        .iter()
        .filter(|(_, c)| matches!(c, Change::Open { finding, .. } if finding.key.scope == "shop-de"))
        .count();
    assert_eq!(opens, 2);
}

#[test]
fn a_rush_beyond_the_origins_capacity_is_an_overload_caused_by_the_crowd() {
    let changes = run(60, |t| {
        let mut w = World::healthy(20.0);
        if (30..50).contains(&t) {
            w.rate = 200.0;
        }
        if (32..50).contains(&t) {
            w.saturated = true;
            w.waiting = 30;
        }
        w
    });
    let (at, f) = opened(&changes, Kind::Overload, "shop-de").expect("an overload");
    assert_eq!(at, 33);
    assert_eq!(f.facts.cause.as_deref(), Some("flash_crowd"));
    assert!(opened(&changes, Kind::FlashCrowd, "shop-de").is_some());
    assert!(opened(&changes, Kind::Flood, "*").is_none());
}

#[test]
fn an_overload_without_a_surge_has_no_named_cause() {
    let changes = run(30, |t| {
        let mut w = World::healthy(20.0);
        w.saturated = t >= 10;
        w
    });
    let (_, f) = opened(&changes, Kind::Overload, "shop-de").expect("an overload");
    assert_eq!(f.facts.cause, None);
    assert_eq!(kinds_opened(&changes).len(), 2, "both sites, nothing else");
}

/// eu-west's origins say "busy" (503), then their health checks time out behind their
/// queue and the site fails over: saturated origins, an overload, not a black hole. A
/// data center that refuses connections after being busy has failed all the same.
#[test]
fn busy_origins_whose_checks_time_out_are_an_overload_not_a_failure() {
    let changes = run(40, |t| {
        let mut w = World::healthy(20.0);
        if t >= 20 {
            w.west_busy = 8;
        }
        if t >= 22 {
            w.broken.insert("eu-west", (2, "response_timeout"));
        }
        w
    });
    let (_, f) = opened(&changes, Kind::Overload, "shop-de").expect("an overload");
    assert_eq!(f.datacenters, vec!["eu-west"]);
    assert!(f.facts.reason.as_deref().is_some_and(|r| r.contains("eu-west answer busy")), "{:?}", f.facts.reason);
    let kinds: Vec<Kind> = kinds_opened(&changes).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, vec![Kind::Overload, Kind::Overload], "both sites, no failure");

    for hard in ["connect_refused", "reset", "status_5xx"] {
        let changes = run(40, |t| {
            let mut w = World::healthy(20.0);
            w.west_busy = if t >= 20 { 8 } else { 0 };
            if t >= 22 {
                w.broken.insert("eu-west", (2, hard));
            }
            w
        });
        let (at, _) = opened(&changes, Kind::DatacenterFailure, "eu-west").unwrap_or_else(|| panic!("{hard}"));
        assert_eq!(at, 23, "{hard}");
    }
}

/// Five busy minutes, five quiet ones (the usual rate falls), then busy again: back to
/// the evening's level, under its recent peak, which is no surge.
#[test]
fn traffic_back_after_a_lull_is_no_flash_crowd() {
    let changes = run(780, |t| World::healthy(if (300..600).contains(&t) { 10.0 } else { 60.0 }));
    assert_eq!(kinds_opened(&changes), Vec::new());
    // While ten times the usual rate, from the same lull, is one.
    let changes = run(780, |t| {
        World::healthy(match t {
            300..600 => 10.0,
            600.. => 600.0,
            _ => 60.0,
        })
    });
    assert!(opened(&changes, Kind::FlashCrowd, "shop-de").is_some());
}

/// A rush on every site: eu-west's origins queue, their health checks time out and the
/// sites fail over, but they still answer, slowly. An overload caused by the crowd, no
/// failure. A black hole in the same rush (nothing answers) is a failure all the same.
#[test]
fn origins_swamped_by_a_surge_are_an_overload_and_a_black_hole_in_it_a_failure() {
    let rush = |t: u64, answering: bool| {
        let mut w = World::healthy(if t >= 20 { 200.0 } else { 20.0 });
        w.saturated = t >= 21;
        if t >= 24 {
            w.broken.insert("eu-west", (2, "response_timeout"));
            w.west_late = answering.then_some(900.0);
        }
        w
    };
    let changes = run(45, |t| rush(t, true));
    let kinds: Vec<Kind> = kinds_opened(&changes).into_iter().map(|(k, _)| k).collect();
    assert!(kinds.iter().all(|k| matches!(k, Kind::FlashCrowd | Kind::Overload)), "{kinds:?}");
    let (_, f) = opened(&changes, Kind::Overload, "shop-de").expect("an overload");
    assert_eq!(f.facts.cause.as_deref(), Some("flash_crowd"));
    let changes = run(45, |t| rush(t, false));
    let (at, f) = opened(&changes, Kind::DatacenterFailure, "eu-west").expect("a failure");
    assert!(at <= 24 + 6, "within seconds: {at}");
    assert_eq!(f.facts.mode.as_deref(), Some("blackhole"));
}

#[test]
fn no_surge_before_a_usual_rate_is_known() {
    // Traffic starts at 200 requests a second: that is the usual rate, not a surge.
    let changes = run(40, |_| World::healthy(200.0));
    assert_eq!(changes, Vec::new());
}

/// A path route of shop-de (its checkout) has a pool of its own in eu-west; its one origin
/// fails while the site's pages are served as usual. An origin failure in eu-west, named
/// with the route, and no data-center failure.
#[test]
fn a_failed_route_pool_is_named_with_its_route() {
    let mut d = Detector::new(Tuning::default());
    let mut changes = Vec::new();
    for t in 0..20 {
        let mut obs = World::healthy(20.0).observe(t);
        let broken = t >= 5;
        let de = obs.sites.iter_mut().find(|s| s.name == "shop-de").unwrap();
        de.pools.push(PoolObs {
            datacenter: "eu-west".into(),
            route: Some("checkout".into()),
            origins: 1,
            available: u32::from(!broken),
            eligible: !broken,
            errors: if broken { vec![("connect_refused", 3)] } else { Vec::new() },
            down: if broken { vec!["checkout-1".into()] } else { Vec::new() },
            ..PoolObs::default()
        });
        for c in d.step(&obs) {
            changes.push((t, c));
        }
    }
    assert!(opened(&changes, Kind::DatacenterFailure, "eu-west").is_none(), "{changes:?}");
    let (_, f) = opened(&changes, Kind::OriginFailure, "eu-west").expect("an origin failure");
    assert_eq!(f.facts.routes, vec!["checkout of shop-de".to_string()]);
    assert!(f.evidence[0].signal.contains("checkout of shop-de in eu-west"), "{:?}", f.evidence[0]);
}
