//! The report's charts: SVG written here, because plotters would need system fonts for its
//! text layout, and the report must render the same anywhere, offline.

use std::fmt::Write;

pub(super) struct Series {
    pub(super) name: String,
    pub(super) colour: &'static str,
    pub(super) points: Vec<f64>,
}

pub(super) fn chart(
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

pub(super) fn trim_num(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
