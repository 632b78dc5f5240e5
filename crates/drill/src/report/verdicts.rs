//! The report's verdicts section: the scenario's ground truth and what holdfast named, on
//! one timeline; the time to each verdict; the confusion matrix. As text for the terminal
//! and as HTML.

use super::svg::escape;
use crate::verdicts::{axes, matrix_text, Answer, Named, Verdicts};
use std::fmt::Write;

fn truth_label(a: &Answer) -> String {
    let detail: Vec<&str> = [a.mode.as_deref(), a.cause.as_deref()].into_iter().flatten().collect();
    format!(
        "{} {}{}{}",
        a.kind,
        if a.scope == "*" { "(any)" } else { a.scope.as_str() },
        if detail.is_empty() { String::new() } else { format!(" ({})", detail.join(", ")) },
        if a.required { "" } else { " [may be named]" }
    )
}

fn verdict_label(a: &Answer) -> String {
    match (a.time_to_verdict_s, a.details_right) {
        (Some(t), true) => format!("named {t:.1} s after the fault"),
        (Some(t), false) => format!("named {t:.1} s after the fault, with the wrong mode or cause"),
        (None, _) if a.required => "MISSED".into(),
        (None, _) => "not named (allowed)".into(),
    }
}

fn about(n: &Named) -> String {
    match (n.datacenters.as_slice(), n.sites.as_slice()) {
        ([], [one]) => one.clone(),
        ([], sites) => format!("{} sites", sites.len()),
        (dcs, _) => dcs.join(", "),
    }
}

/// For the terminal.
pub(crate) fn text(v: &Verdicts) -> String {
    let mut out = String::from("\nIncidents: the truth, and holdfast's verdicts\n");
    for a in &v.answers {
        let truth = format!("{} from {:.0}s to {:.0}s", truth_label(a), a.from_s, a.until_s);
        let _ = writeln!(out, "  truth  {truth:<62} {}", verdict_label(a));
    }
    for n in &v.named {
        let _ = writeln!(out, "  named  {:>5.1}s  {:<19} {:<12} {}", n.detected_s, n.kind, n.role, n.summary);
    }
    if v.named.is_empty() {
        out.push_str("  named  nothing\n");
    }
    out.push('\n');
    out.push_str(&matrix_text(&v.matrix));
    let _ = writeln!(out, "verdicts: {}", if v.passed { "right" } else { "WRONG" });
    out
}

fn role_colour(role: &str) -> &'static str {
    match role {
        "expected" => "#2ca02c",
        "allowed" => "#98df8a",
        "wrong" => "#ff7f0e",
        _ => "#d62728",
    }
}

/// One row per truth and per incident named, over the run.
fn timeline(v: &Verdicts, duration: f64) -> String {
    let rows = v.answers.len() + v.named.len();
    let (w, left, right, row) = (900.0, 250.0, 20.0, 22.0);
    let h = 30.0 + row * rows as f64 + 24.0;
    let pw = w - left - right;
    let x = |t: f64| left + t.clamp(0.0, duration) / duration.max(1.0) * pw;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"incident timeline\">\
<text x=\"0\" y=\"18\" font-size=\"14\" font-family=\"sans-serif\">Truth (grey) and holdfast's verdicts, over the run</text>"
    );
    let mut y = 30.0;
    let label = |s: &mut String, y: f64, text: &str| {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" font-family=\"sans-serif\">{}</text>",
            left - 6.0,
            y + 14.0,
            escape(text)
        );
    };
    for a in &v.answers {
        label(&mut s, y, &format!("truth: {}", truth_label(a)));
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"#bbb\"><title>{}</title></rect>",
            x(a.from_s),
            y + 2.0,
            (x(a.until_s) - x(a.from_s)).max(2.0),
            escape(&verdict_label(a))
        );
        y += row;
    }
    for n in &v.named {
        label(&mut s, y, &format!("named: {} {}", n.kind, about(n)));
        let end = n.resolved_s.unwrap_or(duration);
        // Seen, not yet named (the hysteresis), then named.
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{}\" opacity=\"0.35\"/>\
<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{}\"><title>{} ({}): {}</title></rect>",
            x(n.started_s),
            y + 2.0,
            (x(n.detected_s) - x(n.started_s)).max(1.0),
            role_colour(n.role),
            x(n.detected_s),
            y + 2.0,
            (x(end) - x(n.detected_s)).max(2.0),
            role_colour(n.role),
            escape(&n.kind),
            n.role,
            escape(&n.summary)
        );
        y += row;
    }
    let step = (duration / 10.0).max(1.0).ceil();
    let mut t = 0.0;
    while t <= duration {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" font-family=\"sans-serif\">{t:.0}s</text>",
            x(t),
            y + 14.0
        );
        t += step;
    }
    s.push_str("</svg>");
    s
}

/// The confusion matrix as an HTML table.
pub(super) fn matrix_html(m: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>) -> String {
    let axes = axes();
    let mut s = String::from("<table class=\"matrix\"><thead><tr><th>truth \\ named</th>");
    for c in &axes {
        let _ = write!(s, "<th>{c}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for r in axes.iter().filter(|r| m.contains_key(**r)) {
        let _ = write!(s, "<tr><th>{r}</th>");
        for c in &axes {
            let n = m.get(*r).and_then(|row| row.get(*c)).copied().unwrap_or(0);
            let class = match (n, r == c) {
                (0, _) => "",
                (_, true) => " class=\"right\"",
                _ => " class=\"wrong\"",
            };
            let _ = write!(s, "<td{class}>{}</td>", if n == 0 { String::new() } else { n.to_string() });
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// For the HTML report.
pub(crate) fn html(v: &Verdicts, duration: f64) -> String {
    let mut s = format!(
        "<h2>Incidents: the truth, and holdfast's verdicts <span class=\"{}\">{}</span></h2>",
        if v.passed { "right" } else { "wrong" },
        if v.passed { "right" } else { "wrong" }
    );
    s.push_str(&timeline(v, duration));
    s.push_str("<table><thead><tr><th>truth</th><th>from</th><th>until</th><th>verdict</th></tr></thead><tbody>");
    for a in &v.answers {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{:.0} s</td><td>{:.0} s</td><td>{}</td></tr>",
            escape(&truth_label(a)),
            a.from_s,
            a.until_s,
            escape(&verdict_label(a))
        );
    }
    if v.answers.is_empty() {
        s.push_str("<tr><td colspan=\"4\">nothing: holdfast must name nothing</td></tr>");
    }
    s.push_str("</tbody></table>");
    s.push_str("<table><thead><tr><th>named at</th><th>kind</th><th>about</th><th>judged</th><th>what holdfast said</th></tr></thead><tbody>");
    for n in &v.named {
        let _ = write!(
            s,
            "<tr><td>{:.1} s</td><td>{}</td><td>{}</td><td style=\"color:{}\">{}</td><td>{}</td></tr>",
            n.detected_s,
            escape(&n.kind),
            escape(&about(n)),
            role_colour(n.role),
            n.role.replace('_', " "),
            escape(&n.summary)
        );
    }
    if v.named.is_empty() {
        s.push_str("<tr><td colspan=\"5\">nothing</td></tr>");
    }
    s.push_str("</tbody></table><h3>Confusion matrix</h3>");
    s.push_str(&matrix_html(&v.matrix));
    s
}
