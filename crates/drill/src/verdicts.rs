//! Holdfast's verdicts against the scenario's ground truth: which incidents it named
//! (read from its admin API, `/incidents.json`), which the scenario caused (`[[expect]]`),
//! the time from each fault to its verdict, and the confusion matrix (truth by row, verdict
//! by column, `nothing` on both sides: a miss, a false alarm).
//!
//! Matching: an incident answers an expectation when it is of the expected kind, about the
//! expected data center or site, and named within the expectation's window (from a second
//! before the fault until five seconds after it ended). One expectation may be answered by
//! several incidents (a flash crowd on every site). A required expectation that nothing
//! answers is a miss; the incidents of other kinds named within its window are its wrong
//! verdicts; every other incident is a false alarm.

use crate::scenario::{Expect, KINDS};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// A verdict may come this long after its truth has ended, and still be its verdict.
const LATE: f64 = 5.0;
/// ... or this long before the fault (the clocks of drill and gateway are one, but a
/// second is a tick).
const EARLY: f64 = 1.0;

/// An incident holdfast named, on the run's clock (seconds from its start).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Named {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) datacenters: Vec<String>,
    pub(crate) sites: Vec<String>,
    pub(crate) mode: Option<String>,
    pub(crate) cause: Option<String>,
    pub(crate) started_s: f64,
    pub(crate) detected_s: f64,
    pub(crate) resolved_s: Option<f64>,
    pub(crate) summary: String,
    /// `expected`, `allowed` (an optional expectation), `wrong` (another kind than the
    /// truth in its window), `false_alarm`.
    pub(crate) role: &'static str,
}

/// One expectation and how holdfast answered it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Answer {
    pub(crate) kind: String,
    pub(crate) scope: String,
    pub(crate) mode: Option<String>,
    pub(crate) cause: Option<String>,
    pub(crate) required: bool,
    pub(crate) from_s: f64,
    pub(crate) until_s: f64,
    /// The incidents that answered it.
    pub(crate) named: Vec<String>,
    /// Seconds from the fault to the first of them.
    pub(crate) time_to_verdict_s: Option<f64>,
    /// The mode and cause it was named with, where the expectation gives one, are right.
    pub(crate) details_right: bool,
}

/// The verdicts of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Verdicts {
    pub(crate) answers: Vec<Answer>,
    pub(crate) named: Vec<Named>,
    /// Truth (rows) by verdict (columns), `nothing` included.
    pub(crate) matrix: BTreeMap<String, BTreeMap<String, u32>>,
    /// Every required truth named rightly, and nothing else named.
    pub(crate) passed: bool,
}

/// Reads `/incidents.json`: the incidents, on the run's clock (`start_ms`: the run's start,
/// unix ms).
pub(crate) fn parse(body: &str, start_ms: u64) -> Vec<Named> {
    let Ok(v) = serde_json::from_str::<Value>(body) else { return Vec::new() };
    let secs = |v: &Value| -> Option<f64> {
        let t = humantime::parse_rfc3339(v.as_str()?).ok()?;
        let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as f64;
        Some((ms - start_ms as f64) / 1000.0)
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let mut out: Vec<Named> = v["incidents"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| {
                    Some(Named {
                        id: i["id"].as_str()?.to_string(),
                        kind: i["kind"].as_str()?.to_string(),
                        datacenters: strings(&i["datacenters"]),
                        sites: strings(&i["sites"]),
                        mode: i["facts"]["mode"].as_str().map(str::to_string),
                        cause: i["facts"]["cause"].as_str().map(str::to_string),
                        started_s: secs(&i["started_at"])?,
                        // Named as the kind it is now (an escalated incident: when it was).
                        detected_s: secs(&i["kind_since"]).or_else(|| secs(&i["detected_at"]))?,
                        resolved_s: secs(&i["resolved_at"]),
                        summary: i["summary"].as_str().unwrap_or_default().to_string(),
                        role: "false_alarm",
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.detected_s.total_cmp(&b.detected_s));
    out
}

fn answers(e: &Expect, n: &Named, from: f64, until: f64) -> bool {
    n.kind == e.kind
        && e.datacenter.as_ref().is_none_or(|d| n.datacenters.contains(d))
        && e.site.as_ref().is_none_or(|s| n.sites.contains(s))
        && in_window(n, from, until)
}

fn in_window(n: &Named, from: f64, until: f64) -> bool {
    n.detected_s >= from - EARLY && n.detected_s <= until + LATE
}

/// Judges the incidents named in a run of `duration` against the expectations.
pub(crate) fn judge(expects: &[Expect], mut named: Vec<Named>, duration: Duration) -> Verdicts {
    let mut matrix: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let mut count =
        |truth: &str, verdict: &str| *matrix.entry(truth.into()).or_default().entry(verdict.into()).or_default() += 1;
    let mut out = Vec::new();
    let mut passed = true;
    for e in expects {
        let Ok((from, until)) = e.window(duration) else { continue };
        let (from, until) = (from.as_secs_f64(), until.as_secs_f64());
        let mut ids = Vec::new();
        let mut first: Option<f64> = None;
        let mut details_right = true;
        for n in named.iter_mut().filter(|n| answers(e, n, from, until)) {
            n.role = if e.required { "expected" } else { "allowed" };
            ids.push(n.id.clone());
            first = Some(first.map_or(n.detected_s, |f: f64| f.min(n.detected_s)));
            details_right &= e.mode.as_ref().is_none_or(|m| n.mode.as_ref() == Some(m));
            details_right &= e.cause.as_ref().is_none_or(|c| n.cause.as_ref() == Some(c));
        }
        if !ids.is_empty() {
            count(&e.kind, &e.kind);
            passed &= details_right;
        } else if e.required {
            passed = false;
        }
        out.push(Answer {
            kind: e.kind.clone(),
            scope: e.datacenter.clone().or_else(|| e.site.clone()).unwrap_or_else(|| "*".into()),
            mode: e.mode.clone(),
            cause: e.cause.clone(),
            required: e.required,
            from_s: from,
            until_s: until,
            named: ids,
            time_to_verdict_s: first.map(|f| (f - from).max(0.0)),
            details_right,
        });
    }
    // Required truths nothing answered: the other kinds named in their window, or nothing.
    for (a, e) in out.iter().zip(expects) {
        if !a.named.is_empty() || !a.required {
            continue;
        }
        let mut wrong: Vec<String> = Vec::new();
        for n in named.iter_mut().filter(|n| n.role == "false_alarm" && in_window(n, a.from_s, a.until_s)) {
            n.role = "wrong";
            if !wrong.contains(&n.kind) {
                wrong.push(n.kind.clone());
            }
        }
        if wrong.is_empty() {
            count(&e.kind, "nothing");
        }
        for k in wrong {
            count(&e.kind, &k);
        }
    }
    for n in named.iter().filter(|n| n.role == "false_alarm") {
        count("nothing", &n.kind);
        passed = false;
    }
    if expects.is_empty() && named.is_empty() {
        count("nothing", "nothing");
    }
    Verdicts { answers: out, named, matrix, passed }
}

/// The confusion matrix of several runs added up.
pub(crate) fn add(into: &mut BTreeMap<String, BTreeMap<String, u32>>, m: &BTreeMap<String, BTreeMap<String, u32>>) {
    for (truth, row) in m {
        for (verdict, n) in row {
            *into.entry(truth.clone()).or_default().entry(verdict.clone()).or_default() += n;
        }
    }
}

/// The matrix's rows and columns in a fixed order: the kinds, then `nothing`.
pub(crate) fn axes() -> Vec<&'static str> {
    KINDS.iter().copied().chain(["nothing"]).collect()
}

/// The matrix as text, for the terminal.
pub(crate) fn matrix_text(m: &BTreeMap<String, BTreeMap<String, u32>>) -> String {
    let axes = axes();
    let short = |k: &str| {
        match k {
            "datacenter_failure" => "dc_failure",
            "origin_failure" => "origin",
            "flash_crowd" => "crowd",
            other => other,
        }
        .to_string()
    };
    let mut out = format!("{:<20}", "truth \\ named");
    for c in &axes {
        out.push_str(&format!("{:>11}", short(c)));
    }
    out.push('\n');
    for r in axes.iter().filter(|r| m.contains_key(**r)) {
        out.push_str(&format!("{r:<20}"));
        for c in &axes {
            let n = m.get(*r).and_then(|row| row.get(*c)).copied().unwrap_or(0);
            out.push_str(&format!("{:>11}", if n == 0 { ".".to_string() } else { n.to_string() }));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn named(kind: &str, dc: &str, detected: f64, mode: Option<&str>) -> Named {
        Named {
            id: format!("{kind}-{dc}-{detected}"),
            kind: kind.into(),
            datacenters: if dc.is_empty() { vec![] } else { vec![dc.into()] },
            sites: vec!["shop-de".into()],
            mode: mode.map(str::to_string),
            cause: None,
            started_s: detected - 2.0,
            detected_s: detected,
            resolved_s: None,
            summary: String::new(),
            role: "false_alarm",
        }
    }

    fn expects(text: &str) -> Vec<Expect> {
        Scenario::parse("t", &format!("name = \"t\"\nduration = \"60s\"\n{text}")).unwrap().expects
    }

    const BLACKHOLE: &str =
        "[[expect]]\nkind = \"datacenter_failure\"\ndatacenter = \"eu-west\"\nmode = \"blackhole\"\nfrom = \"20s\"\nuntil = \"40s\"\n";

    #[test]
    fn a_right_verdict_counts_with_its_time() {
        let v = judge(
            &expects(BLACKHOLE),
            vec![named("datacenter_failure", "eu-west", 22.5, Some("blackhole"))],
            Duration::from_secs(60),
        );
        assert!(v.passed);
        assert_eq!(v.answers[0].time_to_verdict_s, Some(2.5));
        assert_eq!(v.matrix["datacenter_failure"]["datacenter_failure"], 1);
        assert_eq!(v.named[0].role, "expected");
    }

    #[test]
    fn a_flood_named_instead_of_the_hardware_fault_is_wrong_and_a_miss() {
        let v = judge(&expects(BLACKHOLE), vec![named("flood", "", 23.0, None)], Duration::from_secs(60));
        assert!(!v.passed);
        assert_eq!(v.matrix["datacenter_failure"]["flood"], 1);
        assert_eq!(v.named[0].role, "wrong");
        assert_eq!(v.answers[0].time_to_verdict_s, None);
    }

    #[test]
    fn the_wrong_mode_fails_and_a_late_or_unrelated_verdict_is_a_false_alarm() {
        let v = judge(
            &expects(BLACKHOLE),
            vec![named("datacenter_failure", "eu-west", 22.0, Some("refused"))],
            Duration::from_secs(60),
        );
        assert!(!v.passed && !v.answers[0].details_right);
        let v = judge(
            &expects(BLACKHOLE),
            vec![
                named("datacenter_failure", "eu-west", 21.0, Some("blackhole")),
                named("datacenter_failure", "eu-central", 30.0, Some("refused")),
                named("flood", "", 50.0, None),
            ],
            Duration::from_secs(60),
        );
        assert!(!v.passed);
        assert_eq!(v.matrix["nothing"]["datacenter_failure"], 1);
        assert_eq!(v.matrix["nothing"]["flood"], 1);
    }

    #[test]
    fn nothing_expected_and_nothing_named_passes_and_a_miss_is_counted() {
        let v = judge(&[], Vec::new(), Duration::from_secs(60));
        assert!(v.passed);
        assert_eq!(v.matrix["nothing"]["nothing"], 1);
        let v = judge(&expects(BLACKHOLE), Vec::new(), Duration::from_secs(60));
        assert!(!v.passed);
        assert_eq!(v.matrix["datacenter_failure"]["nothing"], 1);
    }

    #[test]
    fn an_optional_truth_may_be_named_or_not() {
        let e = expects("[[expect]]\nkind = \"origin_failure\"\nfrom = \"20s\"\nuntil = \"26s\"\nrequired = false\n");
        assert!(judge(&e, Vec::new(), Duration::from_secs(60)).passed);
        let v = judge(&e, vec![named("origin_failure", "eu-west", 24.0, None)], Duration::from_secs(60));
        assert!(v.passed);
        assert_eq!(v.named[0].role, "allowed");
    }

    #[test]
    fn incidents_are_read_from_the_admin_api_on_the_runs_clock() {
        let body = r#"{"incidents":[{"id":"flood-*-1","kind":"flood","datacenters":[],"sites":["shop-de"],
            "facts":{"signature":"x"},"started_at":"2026-11-30T09:00:10.000Z","detected_at":"2026-11-30T09:00:12.500Z",
            "resolved_at":null,"summary":"A flood"}]}"#;
        let start = humantime::parse_rfc3339("2026-11-30T09:00:00Z").unwrap();
        let ms = start.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let n = parse(body, ms);
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].started_s, n[0].detected_s, n[0].resolved_s), (10.0, 12.5, None));
        assert!(parse("garbage", ms).is_empty());
    }
}
