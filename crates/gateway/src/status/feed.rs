//! The incident history as an Atom feed (RFC 4287), built with `atom_syndication`: one
//! entry per incident, with a stable id (`urn:holdfast:incident:ID`) and an `updated` that
//! moves with each of its updates. In English; the 50 most recent incidents.

use crate::incident::record::Incident;
use crate::incident::view::Page;
use atom_syndication::{Content, Entry, Feed, FixedDateTime, Link, Person, Text};

/// Entries at most.
const ENTRIES: usize = 50;

fn date(ms: u64) -> FixedDateTime {
    let secs = (ms / 1000) as i64;
    let nanos = ((ms % 1000) * 1_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default().fixed_offset()
}

fn link(href: String, rel: &str) -> Link {
    Link { href, rel: rel.into(), ..Link::default() }
}

pub(super) fn atom(page: &Page, incidents: &[Incident]) -> String {
    let entries: Vec<Entry> = incidents
        .iter()
        .take(ENTRIES)
        .map(|i| {
            let (title, sentence) = crate::incident::text::public(i, "en");
            let public_id = crate::incident::view::public_id(&i.id);
            let timeline: String = i
                .updates
                .iter()
                .map(|u| {
                    let at = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u.at),
                    );
                    format!("{at} {}: {}\n", u.stage.as_str(), u.text)
                })
                .collect();
            Entry {
                id: format!("urn:holdfast:incident:{}", i.id),
                title: Text::plain(title),
                updated: date(i.updated_at),
                published: Some(date(i.started_at)),
                summary: Some(Text::plain(sentence)),
                content: Some(Content {
                    value: Some(timeline),
                    content_type: Some("text".into()),
                    ..Content::default()
                }),
                links: vec![link(format!("{}/#{public_id}", page.url), "alternate")],
                categories: vec![atom_syndication::Category { term: i.kind.as_str().into(), ..Default::default() }],
                ..Entry::default()
            }
        })
        .collect();
    let updated = incidents.iter().map(|i| i.updated_at).max().unwrap_or(page.updated_at);
    let feed = Feed {
        id: format!("urn:holdfast:status:{}", page.id),
        title: Text::plain(format!("{} incidents", page.name)),
        updated: date(updated),
        authors: vec![Person { name: page.name.clone(), ..Person::default() }],
        links: vec![link(format!("{}/history.atom", page.url), "self"), link(format!("{}/", page.url), "alternate")],
        entries,
        ..Feed::default()
    };
    feed.to_string()
}
