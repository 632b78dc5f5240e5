//! The status page in HTML: each site's state now, the incidents going on, and the past
//! ones in plain words, in German, English, French or Italian. No scripts (it works without
//! JavaScript; it reloads itself every 30 s), no resources from elsewhere.

use crate::incident::record::Incident;
use crate::incident::text::{self, Words, LANGUAGES};
use crate::incident::view::{Component, Page, SiteState};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Past incidents shown at most.
const HISTORY: usize = 20;

fn state_words(s: SiteState, w: &Words) -> &'static str {
    match s {
        SiteState::Operational => w.operational,
        SiteState::AttackMitigated => w.attack_mitigated,
        SiteState::CachedPages => w.cached_pages,
        SiteState::BackupDatacenter => w.backup_datacenter,
        SiteState::Degraded => w.degraded,
        SiteState::PartialOutage => w.partial_outage,
        SiteState::Down => w.down,
    }
}

fn state_class(s: SiteState) -> &'static str {
    match s {
        SiteState::Operational => "ok",
        SiteState::Down | SiteState::PartialOutage => "down",
        _ => "warn",
    }
}

fn time(ms: u64) -> String {
    let t = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string();
    t.replace('T', " ").replace('Z', " UTC")
}

/// The page in `lang`.
pub(super) fn html(page: &Page, components: &[Component], incidents: &[Incident], lang: &str) -> String {
    let w = text::words(lang);
    let open: Vec<&Incident> = incidents.iter().filter(|i| i.is_open()).collect();
    let past: Vec<&Incident> = incidents.iter().filter(|i| !i.is_open()).take(HISTORY).collect();
    let worst = components.iter().map(|c| c.state).max().unwrap_or(SiteState::Operational);
    let banner = if worst == SiteState::Operational && open.is_empty() {
        w.all_good.to_string()
    } else {
        state_words(worst, w).to_string()
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content="30";
                title { (page.name) " – " (w.title_suffix) }
                link rel="alternate" type="application/atom+xml" href="/history.atom" title=(w.feed);
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (page.name) }
                    nav.lang {
                        @for l in LANGUAGES {
                            @if l == lang { strong { (l) } } @else { a href=(format!("?lang={l}")) hreflang=(l) { (l) } }
                            " "
                        }
                    }
                }
                p class=(format!("banner {}", state_class(worst))) { (banner) }
                table.sites {
                    @for c in components {
                        tr {
                            th { (c.name) }
                            td class=(state_class(c.state)) { (state_words(c.state, w)) }
                            td.since { (w.updated) " " (time(c.since)) }
                        }
                    }
                }
                h2 { (w.current) }
                @if open.is_empty() { p { (w.no_incidents) } }
                @for i in &open { (incident(i, w, lang, true)) }
                h2 { (w.history) }
                @if past.is_empty() { p { (w.no_incidents) } }
                @for i in &past { (incident(i, w, lang, false)) }
                footer { a href="/history.atom" { (w.feed) } }
            }
        }
    };
    markup.into_string()
}

fn incident(i: &Incident, w: &Words, lang: &str, open: bool) -> Markup {
    let (title, sentence) = text::public(i, lang);
    html! {
        article.incident id=(crate::incident::view::public_id(&i.id)) {
            h3 { (title) }
            p { (sentence) }
            @if let Some(impact) = text::public_impact(i, lang) { p.impact { (impact) } }
            @if let Some(fleet) = text::public_fleet(i, lang) { p.fleet { (fleet) } }
            p.when {
                (w.started) " " (time(i.started_at)) " · "
                @if open { (w.ongoing) } @else { (w.resolved) " " (i.resolved_at.map_or(String::new(), time)) }
            }
            // Its updates, newest first, as Statuspage shows them (the words of each in
            // English only: the stage says it in every language).
            ol.updates reversed {
                @for u in i.updates.iter().rev() {
                    li {
                        strong { (w.stage(u.stage)) } " "
                        time datetime=(time_attr(u.at)) { (time(u.at)) }
                        @if lang == "en" { " – " (u.text) }
                    }
                }
            }
        }
    }
}

fn time_attr(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:860px;margin:1.5em auto;padding:0 1em;color:#222}\
header{display:flex;justify-content:space-between;align-items:baseline}nav.lang a,nav.lang strong{margin-left:.4em}\
.banner{padding:.8em 1em;border-radius:6px;font-weight:600}.ok{background:#e6f4ea;color:#1e4620}\
.warn{background:#fff4e5;color:#663c00}.down{background:#fdecea;color:#611a15}\
table.sites{width:100%;border-collapse:collapse}table.sites th,table.sites td{padding:.5em;border-bottom:1px solid #eee;text-align:left}\
td.since{color:#777;font-size:.85em}article.incident{border-left:4px solid #ccc;padding:.2em 1em;margin:1em 0}\
article.incident h3{margin:.3em 0}.when{color:#777;font-size:.85em}.impact{font-weight:500}\
ol.updates{list-style:none;padding:0;margin:.5em 0;font-size:.9em}ol.updates li{margin:.2em 0}footer{margin-top:2em;font-size:.85em}";
