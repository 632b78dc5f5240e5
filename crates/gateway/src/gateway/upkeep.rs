//! The shield's periodic task, every 250 ms: measure holdfast's own event-loop lag, move
//! each site's admission level, and run the shield's upkeep (floods start and end; every
//! second the never-seen-prefix rate; every five seconds idle client state and expired
//! blocks are swept). Changes become events, and the shield's gauges are refreshed.

use crate::proxy::Edge;
use crate::shield::{admission::Change, FloodChange};
use crate::telemetry::shield::{PrefixLabel, SiteLabel, TableLabel};
use crate::telemetry::{Event, Telemetry};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const EVERY: Duration = Duration::from_millis(250);

fn event(telemetry: &Telemetry, kind: &'static str, site: &str, reason: String) {
    telemetry.event(Event::shield(kind, site, None, reason));
}

pub(crate) async fn run(edge: Arc<Edge>, mut shutdown: watch::Receiver<bool>) {
    let (shield, telemetry) = (&edge.shield, &*edge.telemetry);
    let mut expected = Instant::now() + EVERY;
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(expected) => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let lag = now.saturating_duration_since(expected);
        expected = now + EVERY;
        n += 1;
        let snap = edge.snapshot.load();
        let cfg = &snap.file.shield;
        let unix_ms = crate::clock::unix_ms();
        if cfg.enabled && cfg.admission.enabled {
            for site in &snap.sites {
                match site.load.tick(&cfg.admission, lag, unix_ms) {
                    Some(Change::Started(why)) => event(telemetry, "shedding_started", &site.name, why),
                    Some(Change::Ended) => {
                        event(telemetry, "shedding_ended", &site.name, "origins keep up again".into())
                    }
                    None => {}
                }
                telemetry
                    .metrics
                    .shield
                    .shed_level
                    .get_or_create(&SiteLabel { site: site.name.to_string() })
                    .set(site.load.view().shed_level);
            }
        }
        let pass = shield.upkeep(cfg, EVERY, n, now);
        match pass.flood {
            Some(FloodChange::Started { rate }) => event(
                telemetry,
                "flood_started",
                "-",
                format!("{rate:.0} suspicious requests per second (threshold {})", cfg.signatures.flood_rate),
            ),
            Some(FloodChange::Ended) => event(
                telemetry,
                "flood_ended",
                "-",
                format!(
                    "below {} suspicious requests per second for {}",
                    cfg.signatures.flood_rate / 2,
                    humantime::format_duration(cfg.signatures.calm_after.get())
                ),
            ),
            None => {}
        }
        let m = &telemetry.metrics.shield;
        m.flood.set(i64::from(pass.flood_active));
        if let Some(tables) = pass.tables {
            m.top_prefixes.clear();
            for o in tables.top {
                m.top_prefixes.get_or_create(&PrefixLabel { prefix: o.prefix }).set(o.count as i64);
            }
            for (name, len) in tables.tracked {
                m.tracked.get_or_create(&TableLabel { table: name.into() }).set(len as i64);
            }
            m.bytes.set(tables.bytes as i64);
            m.blocked_prefixes.set(tables.blocked as i64);
        }
    }
}
