//! The shield's periodic work, every 250 ms: measure holdfast's own event-loop lag, move
//! each site's admission level, start and end floods; every second the never-seen-prefix
//! rate; every five seconds sweep idle client state, expire blocks, decay the offender
//! sketch and refresh the gauges. Changes become events.

use super::admission::Change;
use super::flood::FloodChange;
use super::gcra::{self, Gcra};
use crate::events::Event;
use crate::gateway::Shared;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const EVERY: Duration = Duration::from_millis(250);

fn event(shared: &Shared, kind: &'static str, site: &str, reason: String) {
    shared.events.push(&shared.metrics, Event::shield(kind, site, None, reason));
}

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let shield = &shared.shield;
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
        let snap = shared.snapshot.load();
        let cfg = &snap.file.shield;
        let unix_ms = crate::clock::unix_ms();
        if cfg.enabled && cfg.admission.enabled {
            for site in &snap.sites {
                match site.load.tick(&cfg.admission, lag, unix_ms) {
                    Some(Change::Started(why)) => event(&shared, "shedding_started", &site.name, why),
                    Some(Change::Ended) => event(&shared, "shedding_ended", &site.name, "origins keep up again".into()),
                    None => {}
                }
                shared
                    .metrics
                    .shield
                    .shed_level
                    .get_or_create(&super::metrics::SiteLabel { site: site.name.to_string() })
                    .set(site.load.view().shed_level);
            }
        }
        let t = shield.tick(now);
        match shield.flood.tick(EVERY, cfg.signatures.flood_rate, cfg.signatures.calm_after.get(), t) {
            Some(FloodChange::Started { rate }) => event(
                &shared,
                "flood_started",
                "-",
                format!("{rate:.0} suspicious requests per second (threshold {})", cfg.signatures.flood_rate),
            ),
            Some(FloodChange::Ended) => event(
                &shared,
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
        shared.metrics.shield.flood.set(i64::from(shield.flood.active()));
        if n % 4 == 0 {
            shield.flood.tick_prefixes();
        }
        if n % 20 == 0 {
            shield.sweep(cfg, now);
            if n % 40 == 0 {
                shield.top.decay();
            }
            let m = &shared.metrics.shield;
            m.top_prefixes.clear();
            for o in shield.top.top(10) {
                m.top_prefixes.get_or_create(&super::metrics::PrefixLabel { prefix: o.prefix }).set(o.count as i64);
            }
            for (name, len) in
                [("addresses", shield.addrs.len()), ("prefixes", shield.prefixes.len()), ("stems", shield.stems.len())]
            {
                m.tracked.get_or_create(&super::metrics::TableLabel { table: name.into() }).set(len as i64);
            }
            m.bytes.set(shield.table_bytes() as i64);
            m.blocked_prefixes.set(shield.dynamic.read().map_or(0, |d| d.iter().count()) as i64);
        }
    }
}

impl super::Shield {
    /// Drops the state of clients idle longer than `idle` and expired blocks.
    pub fn sweep(&self, cfg: &crate::config::shield::Shield, now: Instant) {
        let t = self.tick(now);
        let idle = gcra::ticks(cfg.idle.get());
        self.addrs.retain(|c| c.conns > 0 || !Gcra::idle(c.last, t, idle));
        self.prefixes.retain(|c| c.conns > 0 || !Gcra::idle(c.last, t, idle));
        self.classes.retain(|c| !Gcra::idle(c.last, t, idle));
        let window = (self.secs(now) / (cfg.signatures.window.get().as_secs().max(1) as u32)).saturating_sub(1);
        self.stems.retain(|c| c.window >= window);
        if self.any_dynamic.load(Relaxed) {
            if let Ok(mut d) = self.dynamic.write() {
                d.retain(|_, b| b.until > now);
                self.any_dynamic.store(!d.is_empty(), Relaxed);
            }
        }
    }
}
