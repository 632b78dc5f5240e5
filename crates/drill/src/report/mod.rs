//! The drill's report: a table in the terminal, `report.json` with every figure, and
//! `report.html` with charts over time (availability, p99 latency, requests by data center,
//! events shaded) that opens in a browser without network access.
//!
//! Charts are SVG ([`svg`]); the verdicts against the ground truth have their own section
//! ([`verdicts`]).

mod svg;
mod verdicts;

use crate::{Mode, Report, RunResult};
use std::fmt::Write;
use std::path::Path;
use svg::{chart, escape, Series};

/// Prints the comparison table and writes report.json and report.html into `dir`.
pub(crate) fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    println!("{}", table(report));
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(report)?)?;
    std::fs::write(dir.join("report.html"), html(report))?;
    println!("report: {} and {}", dir.join("report.json").display(), dir.join("report.html").display());
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn run_of(report: &Report, mode: Mode) -> Option<&RunResult> {
    report.runs.iter().find(|r| r.mode == mode)
}

/// The terminal table: one row per site (and all), holdfast and direct side by side.
pub(crate) fn table(report: &Report) -> String {
    let hf = run_of(report, Mode::Holdfast);
    let direct = run_of(report, Mode::Direct);
    let mut out = String::new();
    let _ = writeln!(out, "\n{} ({:.0} s): {}", report.scenario, report.duration_s, report.description);
    if let Some(r) = hf.or(direct) {
        for e in &r.events {
            let _ = writeln!(out, "  {:>5.1}s  {}", e.t, e.what);
        }
    }
    if direct.is_some() {
        let _ =
            writeln!(out, "\nEach cell: holdfast | direct (shoppers straight to the primary data center, as in 2010).");
    }
    let _ = writeln!(
        out,
        "\n{:<9} {:>22} {:>18} {:>18} {:>18} {:>14}  served by (holdfast)",
        "site", "success", "checkout ok", "p50 ms", "p99 ms", "failed >1s"
    );
    let sites: Vec<&String> = hf.or(direct).map(|r| r.summary.keys().collect()).unwrap_or_default();
    for site in sites {
        let a = hf.and_then(|r| r.summary.get(site));
        let b = direct.and_then(|r| r.summary.get(site));
        let pair = |f: &dyn Fn(&crate::measure::SiteSummary) -> String| -> String {
            match (a, b) {
                (Some(a), Some(b)) => format!("{} | {}", f(a), f(b)),
                (Some(a), None) => f(a),
                (None, Some(b)) => format!("- | {}", f(b)),
                _ => "-".into(),
            }
        };
        let served = a
            .map(|a| {
                let total: u64 = a.by_datacenter.values().sum();
                a.by_datacenter
                    .iter()
                    .map(|(dc, n)| format!("{dc} {:.0}%", *n as f64 * 100.0 / total.max(1) as f64))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<9} {:>22} {:>18} {:>18} {:>18} {:>14}  {}",
            site,
            pair(&|s| pct(s.success_rate)),
            pair(&|s| format!("{}/{}", s.checkout_ok, s.checkout_attempts)),
            pair(&|s| format!("{:.1}", s.p50_ms)),
            pair(&|s| format!("{:.1}", s.p99_ms)),
            pair(&|s| s.failed_after_first_second.to_string()),
            served
        );
    }
    for r in report.runs.iter() {
        let name = match r.mode {
            Mode::Holdfast => "holdfast",
            Mode::Direct => "direct",
        };
        let _ = write!(out, "\n{name:>9}: orders placed {}, duplicated {}", r.orders_placed, r.duplicate_orders);
        if r.flood_sent > 0 {
            let share = r.flood_reached_origins as f64 / r.flood_sent as f64;
            let _ = write!(
                out,
                "; flood sent {}, reached origins {} ({})",
                r.flood_sent,
                r.flood_reached_origins,
                pct(share)
            );
        }
        if let Some(all) = r.summary.get("all") {
            let kinds: Vec<String> = all.success_by_kind.iter().map(|(k, v)| format!("{k} {}", pct(*v))).collect();
            let _ = write!(out, "; success by page: {}", kinds.join(", "));
            if all.stale > 0 {
                let _ = write!(
                    out,
                    "; served stale from cache {} ({})",
                    all.stale,
                    pct(all.stale as f64 / all.requests.max(1) as f64)
                );
            }
        }
        if let Some(all) = r.summary.get("all") {
            if r.mode == Mode::Holdfast || all.rejected > 0 {
                let n = all.requests.max(1) as f64;
                let _ = write!(
                    out,
                    "; shoppers challenged {} ({}), refused by the shield {} ({})",
                    all.challenged,
                    pct(all.challenged as f64 / n),
                    all.rejected,
                    pct(all.rejected as f64 / n)
                );
            }
        }
        if let Some(line) = r.gateway_status.as_ref().and_then(shield_evidence) {
            let _ = write!(out, "; {line}");
        }
        if let Some(b) = r.back_on_preferred_after_s {
            let _ = write!(out, "; back on preferred data center {b:.0} s after recovery");
        }
        if let (Some(rss), Some(cpu)) = (r.gateway_peak_rss_mib, r.gateway_mean_cpu_percent) {
            let _ = write!(out, "; gateway peak {rss:.0} MiB, mean CPU {cpu:.0}%");
        }
    }
    out.push('\n');
    if let Some(v) = hf.and_then(|r| r.verdicts.as_ref()) {
        out.push_str(&verdicts::text(v));
    }
    out
}

/// What the gateway's status says its shield did: floods, blocks, shedding.
fn shield_evidence(status: &serde_json::Value) -> Option<String> {
    let events = status.get("events")?.as_array()?;
    let count = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
    let (floods, blocked, shedding) = (count("flood_started"), count("prefix_blocked"), count("shedding_started"));
    if floods + blocked + shedding == 0 {
        return Some("shield: no flood, no block, no shedding".into());
    }
    Some(format!("shield: {floods} flood(s) detected, {blocked} prefixes blocked, shedding started {shedding} time(s)"))
}

/// Shaded bands: (from, to, colour, label) from the events.
fn bands(r: &RunResult, duration: f64) -> Vec<(f64, f64, &'static str, String)> {
    use crate::scenario::Action;
    let mut out = Vec::new();
    let ends = |from: f64, kinds: &[Action]| {
        r.events.iter().find(|e| e.t > from && e.action.is_some_and(|a| kinds.contains(&a))).map_or(duration, |e| e.t)
    };
    for e in &r.events {
        match e.action {
            Some(Action::Fail) => out.push((e.t, ends(e.t, &[Action::Recover]), "#f4cccc", e.what.clone())),
            Some(Action::Flood) => out.push((e.t, ends(e.t, &[Action::StopFlood]), "#fce5cd", e.what.clone())),
            Some(Action::Surge) => out.push((e.t, ends(e.t, &[Action::Calm]), "#d9ead3", e.what.clone())),
            _ => {}
        }
    }
    out
}

fn availability(r: &RunResult) -> Vec<f64> {
    r.seconds
        .iter()
        .map(|s| {
            let (ok, n) = s.sites.values().fold((0u32, 0u32), |(o, n), x| (o + x.ok, n + x.requests));
            if n == 0 {
                f64::NAN
            } else {
                f64::from(ok) * 100.0 / f64::from(n)
            }
        })
        .map(|v| if v.is_nan() { 0.0 } else { v })
        .collect()
}

fn p99(r: &RunResult) -> Vec<f64> {
    r.seconds.iter().map(|s| s.sites.values().map(|x| x.p99_ms).fold(0.0, f64::max)).collect()
}

const PALETTE: &[&str] = &["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn by_datacenter(r: &RunResult) -> Vec<Series> {
    let mut dcs: Vec<String> = Vec::new();
    for s in &r.seconds {
        for site in s.sites.values() {
            for dc in site.by_datacenter.keys() {
                if !dcs.contains(dc) {
                    dcs.push(dc.clone());
                }
            }
        }
    }
    dcs.sort();
    dcs.into_iter()
        .enumerate()
        .map(|(i, dc)| {
            let points = r
                .seconds
                .iter()
                .map(|s| f64::from(s.sites.values().filter_map(|x| x.by_datacenter.get(&dc)).sum::<u32>()))
                .collect();
            let colour = match dc.as_str() {
                crate::shoppers::CACHE => "#7f7f7f",
                crate::shoppers::CACHE_STALE => "#bcbd22",
                _ => PALETTE[i % PALETTE.len()],
            };
            Series { name: dc, colour, points }
        })
        .collect()
}

/// The verdicts of several scenarios: printed, and written as summary.json and summary.html.
pub(crate) fn summary(reports: &[Report], dir: &Path) -> anyhow::Result<()> {
    let mut matrix = std::collections::BTreeMap::new();
    let mut rows = Vec::new();
    for r in reports {
        let Some(v) = r.runs.iter().find_map(|x| x.verdicts.as_ref()) else { continue };
        crate::verdicts::add(&mut matrix, &v.matrix);
        for a in &v.answers {
            rows.push(serde_json::json!({
                "scenario": r.scenario, "kind": a.kind, "scope": a.scope, "required": a.required,
                "time_to_verdict_s": a.time_to_verdict_s, "details_right": a.details_right,
            }));
        }
        let false_alarms = v.named.iter().filter(|n| n.role == "false_alarm" || n.role == "wrong").count();
        rows.push(serde_json::json!({"scenario": r.scenario, "passed": v.passed, "false_or_wrong": false_alarms}));
    }
    let mut text = String::from("\nVerdicts over all scenarios\n");
    for r in reports {
        let Some(v) = r.runs.iter().find_map(|x| x.verdicts.as_ref()) else { continue };
        let times: Vec<String> = v
            .answers
            .iter()
            .map(|a| match a.time_to_verdict_s {
                Some(t) => format!("{} in {t:.1} s", a.kind),
                None if a.required => format!("{} MISSED", a.kind),
                None => format!("{} not named (allowed)", a.kind),
            })
            .collect();
        let wrong = v.named.iter().filter(|n| n.role == "false_alarm" || n.role == "wrong").count();
        let _ = writeln!(
            text,
            "  {:<24} {:<6} {}{}",
            r.scenario,
            if v.passed { "right" } else { "WRONG" },
            if times.is_empty() { "nothing to name".to_string() } else { times.join("; ") },
            if wrong > 0 { format!("; {wrong} wrong or false") } else { String::new() }
        );
    }
    text.push('\n');
    text.push_str(&crate::verdicts::matrix_text(&matrix));
    println!("{text}");
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(&serde_json::json!({"matrix": matrix, "rows": rows}))?,
    )?;
    let mut links = String::new();
    for r in reports {
        let ok = r.verdicts_right();
        let _ = write!(
            links,
            "<li><a href=\"{0}/report.html\">{0}</a>: <span class=\"{1}\">{1}</span></li>",
            escape(&r.scenario),
            if ok { "right" } else { "wrong" }
        );
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>holdfast drill: verdicts</title>\
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}pre{{font-size:12px;background:#f6f6f6;padding:1em}}\
table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:.25em .6em}}table.matrix td{{text-align:center;min-width:4em}}\
.right{{color:#1a7f1a;font-weight:bold}}.wrong{{color:#c62828;font-weight:bold}}</style></head><body>\
<h1>holdfast drill: verdicts over {} scenarios</h1><ul>{links}</ul><h2>Confusion matrix</h2>{}<pre>{}</pre></body></html>\n",
        reports.len(),
        verdicts::matrix_html(&matrix),
        escape(&text)
    );
    std::fs::write(dir.join("summary.html"), html)?;
    println!("summary: {} and {}", dir.join("summary.json").display(), dir.join("summary.html").display());
    Ok(())
}

/// Each site's figures, holdfast and direct side by side.
fn sites_html(hf: Option<&RunResult>, direct: Option<&RunResult>) -> String {
    let runs: Vec<(&str, &RunResult)> =
        [("holdfast", hf), ("direct (2010)", direct)].into_iter().filter_map(|(n, r)| Some((n, r?))).collect();
    let Some((_, first)) = runs.first() else { return String::new() };
    let mut s = String::from(
        "<h2>What shoppers experienced</h2><table><thead><tr><th>site</th><th>run</th><th>requests</th>\
<th>success</th><th>checkouts placed</th><th>p50 ms</th><th>p99 ms</th><th>failed after the first second</th>\
<th>answered by</th></tr></thead><tbody>",
    );
    for site in first.summary.keys() {
        for (name, r) in &runs {
            let Some(x) = r.summary.get(site) else { continue };
            let total: u64 = x.by_datacenter.values().sum();
            let by: Vec<String> = x
                .by_datacenter
                .iter()
                .map(|(dc, n)| format!("{} {:.0}%", escape(dc), *n as f64 * 100.0 / total.max(1) as f64))
                .collect();
            let _ = write!(
                s,
                "<tr><th>{}</th><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
<td class=\"num\">{}/{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                escape(site),
                x.requests,
                pct(x.success_rate),
                x.checkout_ok,
                x.checkout_attempts,
                x.p50_ms,
                x.p99_ms,
                x.failed_after_first_second,
                by.join(", ")
            );
        }
    }
    s.push_str("</tbody></table>");
    s
}

/// The HTML report: self-contained, no scripts, no network.
pub(crate) fn html(report: &Report) -> String {
    let d = report.duration_s;
    let mut body = String::new();
    let _ = write!(body, "<h1>holdfast drill: {}</h1><p>{}</p>", escape(&report.scenario), escape(&report.description));
    let hf = run_of(report, Mode::Holdfast);
    let direct = run_of(report, Mode::Direct);
    if let Some(r) = hf.or(direct) {
        body.push_str("<table><thead><tr><th>at</th><th>event</th></tr></thead><tbody>");
        for e in &r.events {
            let _ = write!(body, "<tr><td>{:.1} s</td><td>{}</td></tr>", e.t, escape(&e.what));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&sites_html(hf, direct));
    if let Some(v) = hf.and_then(|r| r.verdicts.as_ref()) {
        body.push_str(&verdicts::html(v, d));
    }
    if let Some(base) = hf.or(direct) {
        let b = bands(base, d);
        let mut avail = Vec::new();
        let mut lat = Vec::new();
        if let Some(r) = hf {
            avail.push(Series { name: "holdfast".into(), colour: "#1f77b4", points: availability(r) });
            lat.push(Series { name: "holdfast".into(), colour: "#1f77b4", points: p99(r) });
        }
        if let Some(r) = direct {
            avail.push(Series { name: "direct (2010)".into(), colour: "#d62728", points: availability(r) });
            lat.push(Series { name: "direct (2010)".into(), colour: "#d62728", points: p99(r) });
        }
        body.push_str(&chart("Shopper success per second (all sites)", "%", &avail, 100.0, &b, d));
        let lat_max = lat.iter().flat_map(|s| s.points.iter().copied()).fold(1.0, f64::max);
        body.push_str(&chart("Shopper p99 latency per second (worst site)", "ms", &lat, lat_max, &b, d));
        for r in [hf, direct].into_iter().flatten() {
            let series = by_datacenter(r);
            let max = series.iter().flat_map(|s| s.points.iter().copied()).fold(1.0, f64::max);
            let name = if r.mode == Mode::Holdfast { "holdfast" } else { "direct" };
            body.push_str(&chart(
                &format!("Requests answered per second, by data center or holdfast's cache ({name})"),
                "",
                &series,
                max,
                &b,
                d,
            ));
        }
        let _ = write!(body, "<h2>The whole run, as text</h2><pre>{}</pre>", escape(&table(report)));
        body.push_str("<p class=\"legend\"><span style=\"background:#f4cccc\">data-center failure</span> <span style=\"background:#fce5cd\">flood</span> <span style=\"background:#d9ead3\">surge</span></p>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>holdfast drill: {}</title>\
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}pre{{font-size:12px;overflow-x:auto;background:#f6f6f6;padding:1em}}\
svg{{display:block;margin:1em 0}}.legend span{{padding:0 .5em;margin-right:1em}}\
table{{border-collapse:collapse;margin:1em 0;font-size:13px}}th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}\
td.num{{text-align:right}}.right{{color:#1a7f1a;font-weight:bold}}.wrong{{color:#c62828;font-weight:bold}}\
table.matrix td{{text-align:center;min-width:4em}}</style></head><body>{body}</body></html>\n",
        escape(&report.scenario)
    )
}
