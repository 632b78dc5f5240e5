//! The post-incident report, `GET /incidents/{id}` on the admin listener: what happened,
//! the timeline, the evidence, the impact, and charts over the incident's life (from a
//! minute before it was first seen): requests and failures, the traffic each data center
//! answered (cache hits apart), and the shield's actions. One self-contained HTML page, no
//! scripts, no network; the charts are drawn as the drill's are (inline SVG).

use super::record::Incident;
use super::Point;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// A line of a chart.
struct Series {
    name: String,
    colour: &'static str,
    points: Vec<(f64, f64)>,
}

const PALETTE: [&str; 6] = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// The report page.
pub(crate) fn html(i: &Incident) -> String {
    let start = i.series.first().map_or(i.started_at, |p| p.t);
    let end = i.series.last().map_or(i.updated_at, |p| p.t).max(start + 1000);
    let secs = (end - start) as f64 / 1000.0;
    let x = |p: &Point| (p.t.saturating_sub(start)) as f64 / 1000.0;
    let band = (
        (i.started_at.saturating_sub(start)) as f64 / 1000.0,
        (i.resolved_at.unwrap_or(end).saturating_sub(start)) as f64 / 1000.0,
    );
    let line = |name: &str, colour: &'static str, f: &dyn Fn(&Point) -> u64| Series {
        name: name.into(),
        colour,
        points: i.series.iter().map(|p| (x(p), f(p) as f64)).collect(),
    };
    let traffic = [
        line("requests", "#1f77b4", &|p| p.requests),
        line("failed", "#d62728", &|p| p.failed),
        line("stale from the cache", "#ff7f0e", &|p| p.stale),
    ];
    let mut dcs: Vec<String> = i.series.iter().flat_map(|p| p.datacenters.keys().cloned()).collect();
    dcs.sort();
    dcs.dedup();
    let mut by_dc: Vec<Series> = dcs
        .iter()
        .enumerate()
        .map(|(n, dc)| line(dc, PALETTE[n % PALETTE.len()], &|p| p.datacenters.get(dc).copied().unwrap_or(0)))
        .collect();
    by_dc.push(line("cache hits", "#7f7f7f", &|p| p.cache));
    let shield = [
        line("with a flood's signature", "#ff7f0e", &|p| p.suspicious),
        line("stopped by the shield", "#2ca02c", &|p| p.shield),
    ];
    let m = &i.impact;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "holdfast incident " (i.id) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (i.kind.as_str().replace('_', " ")) ": " (i.scope) }
                p.summary { (i.summary) }
                table.facts {
                    tr { th { "id" } td { code { (i.id) } } }
                    tr { th { "status" } td { (i.stage.as_str()) " (" (i.severity.as_str()) ")" } }
                    tr { th { "started" } td { (time(i.started_at)) } }
                    tr { th { "named" } td { (time(i.detected_at)) " (" (format!("{:.1}", (i.detected_at.saturating_sub(i.started_at)) as f64 / 1000.0)) " s after the first signal)" } }
                    tr { th { "resolved" } td { (i.resolved_at.map_or("not yet".to_string(), time)) } }
                    tr { th { "sites" } td { (i.sites.join(", ")) } }
                    @if !i.datacenters.is_empty() { tr { th { "data centers" } td { (i.datacenters.join(", ")) } } }
                    @if let Some(mode) = &i.facts.mode { tr { th { "how it failed" } td { (mode) } } }
                    @if !i.facts.moved_to.is_empty() { tr { th { "traffic moved to" } td { (i.facts.moved_to.join(", ")) } } }
                    @if !i.facts.origins.is_empty() { tr { th { "origins" } td { (i.facts.origins.join(", ")) } } }
                    tr { th { "confidence" } td { (format!("{:.0}%", i.confidence * 100.0)) } }
                    @if !i.related.is_empty() {
                        tr { th { "related" } td { @for r in &i.related { a href=(format!("/incidents/{r}")) { (r) } " " } } }
                    }
                }
                h2 { "Timeline" }
                table {
                    tr { th { "time" } th { "stage" } th { "what" } }
                    @for u in &i.updates { tr { td { (time(u.at)) } td { (u.stage.as_str()) } td { (u.text) } } }
                }
                h2 { "Evidence" }
                table {
                    tr { th { "signal" } th { "value" } th { "usual" } th { "threshold" } th { "detail" } }
                    @for e in &i.evidence {
                        tr {
                            td { (e.signal) }
                            td.num { (num(e.value, &e.unit)) }
                            td.num { (e.baseline.map_or(String::from("-"), |b| num(b, &e.unit))) }
                            td.num { (num(e.threshold, &e.unit)) }
                            td { (e.detail) }
                        }
                    }
                }
                h2 { "Impact" }
                table {
                    tr { th { "requests" } td.num { (m.requests) } }
                    tr { th { "served as usual" } td.num { (m.served) } }
                    tr { th { "served by another data center" } td.num { (m.served_by_other_datacenter) } }
                    tr { th { "served stale from the cache" } td.num { (m.served_stale) } }
                    tr { th { "challenged" } td.num { (m.challenged) } }
                    tr { th { "refused or shed" } td.num { (m.refused_or_shed) } }
                    tr { th { "failed" } td.num { (m.failed) } }
                    tr { th { "cancelled by the client" } td.num { (m.cancelled) } }
                    tr { th { "checkouts placed / attempted (failed)" } td.num { (m.checkouts_placed) " / " (m.checkouts_attempted) " (" (m.checkouts_failed) ")" } }
                    tr { th { "flood requests stopped / reached origins" } td.num { (m.flood_blocked) " / " (m.flood_leaked) } }
                }
                h2 { "Over time" }
                (chart("Requests per second", &traffic, secs, band))
                (chart("Requests answered per second, by data center (cache hits apart)", &by_dc, secs, band))
                (chart("The shield, per second", &shield, secs, band))
                p.legend { span style="background:#f4cccc" { "the incident" } " from its first signal to its resolution" }
            }
        }
    };
    page.into_string()
}

fn num(v: f64, unit: &str) -> String {
    match unit {
        "ratio" => format!("{:.1}%", v * 100.0),
        "per_second" => format!("{v:.1}/s"),
        "ms" => format!("{v:.0} ms"),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}\
td.num{text-align:right;font-variant-numeric:tabular-nums}.summary{font-size:1.1em}svg{display:block;margin:1em 0}\
.legend span{padding:0 .5em}";

fn chart(title: &str, series: &[Series], secs: f64, band: (f64, f64)) -> Markup {
    let (w, h, left, right, top, bottom) = (900.0, 260.0, 60.0, 20.0, 30.0, 40.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    // Counts per second: the axis goes to a multiple of 4, so its five labels are whole.
    let max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(4.0, f64::max);
    let max = (max / 4.0).ceil() * 4.0;
    let x = |t: f64| left + t / secs.max(1.0) * pw;
    let y = |v: f64| top + ph - (v / max).clamp(0.0, 1.0) * ph;
    let ticks: Vec<f64> = (0..=4).map(|n| max * f64::from(n) / 4.0).collect();
    let step = (secs / 10.0).max(1.0).ceil();
    let times: Vec<f64> = (0..).map(|n| f64::from(n) * step).take_while(|t| *t <= secs).collect();
    html! {
        svg viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) role="img" aria-label=(title) {
            text x=(left) y="18" font-size="14" font-family="sans-serif" { (title) }
            rect x=(format!("{:.1}", x(band.0))) y=(top) width=(format!("{:.1}", (x(band.1) - x(band.0)).max(1.0))) height=(ph) fill="#f4cccc" {}
            @for v in &ticks {
                line x1=(left) x2=(left + pw) y1=(format!("{:.1}", y(*v))) y2=(format!("{:.1}", y(*v))) stroke="#ddd" {}
                text x=(left - 4.0) y=(format!("{:.1}", y(*v) + 3.0)) font-size="10" text-anchor="end" font-family="sans-serif" { (format!("{v:.0}")) }
            }
            @for t in &times {
                text x=(format!("{:.1}", x(*t))) y=(h - bottom + 14.0) font-size="10" text-anchor="middle" font-family="sans-serif" { (format!("{t:.0}s")) }
            }
            @for (n, s) in series.iter().enumerate() {
                polyline fill="none" stroke=(s.colour) stroke-width="2"
                    points=(s.points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect::<Vec<_>>().join(" ")) {}
                rect x=(left + 10.0 + n as f64 * 170.0) y=(h - 14.0) width="10" height="10" fill=(s.colour) {}
                text x=(left + 24.0 + n as f64 * 170.0) y=(h - 5.0) font-size="11" font-family="sans-serif" { (s.name) }
            }
        }
    }
}
