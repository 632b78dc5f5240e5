//! The drill's report: a table in the terminal, `report.json` with every figure, and
//! `report.html` with charts over time (availability, p99 latency, requests by data center,
//! events shaded) that opens in a browser without network access.
//!
//! Charts are SVG written here: plotters would need system fonts for its text layout, and
//! the report must render the same anywhere, offline.

use crate::{Mode, Report, RunResult};
use std::fmt::Write;
use std::path::Path;

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

struct Series {
    name: String,
    colour: &'static str,
    points: Vec<f64>,
}

fn chart(
    title: &str,
    unit: &str,
    series: &[Series],
    y_max: f64,
    bands: &[(f64, f64, &str, String)],
    duration: f64,
) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 260.0, 60.0, 20.0, 30.0, 40.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let x = |t: f64| left + t / duration.max(1.0) * pw;
    let y = |v: f64| top + ph - (v / y_max.max(f64::MIN_POSITIVE)).clamp(0.0, 1.0) * ph;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{title}\">\
<text x=\"{left}\" y=\"18\" font-size=\"14\" font-family=\"sans-serif\">{title}</text>"
    );
    for (from, to, colour, label) in bands {
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{ph}\" fill=\"{colour}\"><title>{}</title></rect>",
            x(*from),
            (x(*to) - x(*from)).max(1.0),
            escape(label)
        );
    }
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" font-family=\"sans-serif\">{}{unit}</text>",
            left + pw,
            y(v),
            y(v),
            left - 4.0,
            y(v) + 3.0,
            trim_num(v)
        );
    }
    let step = (duration / 10.0).max(1.0).ceil();
    let mut t = 0.0;
    while t <= duration {
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" font-family=\"sans-serif\">{t:.0}s</text>", x(t), h - bottom + 14.0);
        t += step;
    }
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> =
            se.points.iter().enumerate().map(|(t, v)| format!("{:.1},{:.1}", x(t as f64 + 0.5), y(*v))).collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            se.colour,
            pts.join(" ")
        );
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-family=\"sans-serif\">{}</text>",
            left + 10.0 + i as f64 * 160.0,
            h - 14.0,
            se.colour,
            left + 24.0 + i as f64 * 160.0,
            h - 5.0,
            escape(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn trim_num(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
            Series { name: dc, colour: PALETTE[i % PALETTE.len()], points }
        })
        .collect()
}

/// The HTML report: self-contained, no scripts, no network.
pub(crate) fn html(report: &Report) -> String {
    let d = report.duration_s;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>holdfast drill: {}</h1><p>{}</p><pre>{}</pre>",
        escape(&report.scenario),
        escape(&report.description),
        escape(&table(report))
    );
    let hf = run_of(report, Mode::Holdfast);
    let direct = run_of(report, Mode::Direct);
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
                &format!("Successful requests per second by data center ({name})"),
                "",
                &series,
                max,
                &b,
                d,
            ));
        }
        body.push_str("<p class=\"legend\"><span style=\"background:#f4cccc\">data-center failure</span> <span style=\"background:#fce5cd\">flood</span> <span style=\"background:#d9ead3\">surge</span></p>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>holdfast drill: {}</title>\
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}pre{{font-size:12px;overflow-x:auto;background:#f6f6f6;padding:1em}}\
svg{{display:block;margin:1em 0}}.legend span{{padding:0 .5em;margin-right:1em}}</style></head><body>{body}</body></html>\n",
        escape(&report.scenario)
    )
}
