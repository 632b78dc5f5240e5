//! Scenarios: a shopper population, a timeline of events (failures, recoveries, floods,
//! surges), and the incidents holdfast must name for them (the ground truth), as TOML.
//! Times are absolute (`"20s"`) or a share of the run (`"30%"`), so `--duration` scales the
//! built-in scenarios. Documented in docs/drill.md.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::time::Duration;

/// The built-in scenarios, by name.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("christmas-2010", include_str!("../scenarios/christmas-2010.toml")),
    ("christmas-2010-outage", include_str!("../scenarios/christmas-2010-outage.toml")),
    ("dc-blackhole", include_str!("../scenarios/dc-blackhole.toml")),
    ("dc-refused", include_str!("../scenarios/dc-refused.toml")),
    ("dc-slow", include_str!("../scenarios/dc-slow.toml")),
    ("dc-errors", include_str!("../scenarios/dc-errors.toml")),
    ("payback", include_str!("../scenarios/payback.toml")),
    ("flash-crowd", include_str!("../scenarios/flash-crowd.toml")),
    ("christmas-rush", include_str!("../scenarios/christmas-rush.toml")),
    ("slowloris", include_str!("../scenarios/slowloris.toml")),
    ("total-outage", include_str!("../scenarios/total-outage.toml")),
    ("origin-restart", include_str!("../scenarios/origin-restart.toml")),
    ("calm", include_str!("../scenarios/calm.toml")),
    ("distributed-flood", include_str!("../scenarios/distributed-flood.toml")),
    ("carrier-nat-crowd", include_str!("../scenarios/carrier-nat-crowd.toml")),
    ("residential-botnet", include_str!("../scenarios/residential-botnet.toml")),
    ("newsletter-crowd", include_str!("../scenarios/newsletter-crowd.toml")),
    ("sale-with-botnet", include_str!("../scenarios/sale-with-botnet.toml")),
    ("dc-certificate-expired", include_str!("../scenarios/dc-certificate-expired.toml")),
];

/// A scenario: shoppers, origins and a timeline of failures, floods and surges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    /// How long a run takes unless `--duration` says otherwise.
    #[serde(default = "default_duration", with = "dur")]
    pub duration: Duration,
    /// Points of presence to run, sharing one Redis, unless `--fleet` says otherwise
    /// (default 1: one gateway on its own).
    #[serde(default)]
    pub fleet: Option<u32>,
    #[serde(default)]
    pub(crate) shoppers: Shoppers,
    #[serde(default)]
    pub(crate) origins: Origins,
    #[serde(default, rename = "event")]
    pub(crate) events: Vec<Event>,
    /// The incidents holdfast must name (and, by their absence, the ones it must not).
    #[serde(default, rename = "expect")]
    pub(crate) expects: Vec<Expect>,
}

/// One incident the scenario causes: holdfast must name it, of this kind, about this
/// scope, between `from` and `until`. An incident that no expectation accounts for is a
/// false alarm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    /// `datacenter_failure`, `origin_failure`, `flood`, `flash_crowd`, `overload`.
    pub(crate) kind: String,
    /// The data center it is about (datacenter_failure, origin_failure).
    pub(crate) datacenter: Option<String>,
    /// A site it must name (any of its sites, for kinds about several).
    pub(crate) site: Option<String>,
    /// How the data center failed: `refused`, `blackhole`, `resets`, `errors`, `slow`.
    pub(crate) mode: Option<String>,
    /// An overload's cause: `flash_crowd`, `flood`, `failover`.
    pub(crate) cause: Option<String>,
    /// When the truth begins (the fault), `"20s"` or `"30%"`; the time to verdict counts
    /// from here.
    pub(crate) from: String,
    /// When it ends (the recovery); default: the end of the run.
    pub(crate) until: Option<String>,
    /// `false`: holdfast may name it (an honest consequence, such as a minor origin
    /// failure while one machine restarts), but need not.
    #[serde(default = "yes")]
    pub(crate) required: bool,
}

fn yes() -> bool {
    true
}

/// The kinds of incident holdfast names.
pub(crate) const KINDS: &[&str] = &["datacenter_failure", "origin_failure", "flood", "flash_crowd", "overload"];

impl Expect {
    /// Its window in a run of `duration`.
    pub(crate) fn window(&self, duration: Duration) -> anyhow::Result<(Duration, Duration)> {
        let from = at(&self.from, duration)?;
        let until = self.until.as_deref().map_or(Ok(duration), |u| at(u, duration))?;
        Ok((from, until.max(from)))
    }

    fn check(&self, duration: Duration) -> anyhow::Result<()> {
        if !KINDS.contains(&self.kind.as_str()) {
            bail!("expect kind {:?}: one of {}", self.kind, KINDS.join(", "));
        }
        self.window(duration).map(|_| ())
    }
}

/// A time in a run of `duration`: `"20s"`, or `"30%"` of it.
fn at(text: &str, duration: Duration) -> anyhow::Result<Duration> {
    let at = text.trim();
    if let Some(p) = at.strip_suffix('%') {
        let p: f64 = p.trim().parse().with_context(|| format!("time {at:?}: expected a percentage like \"30%\""))?;
        if !(0.0..=100.0).contains(&p) {
            bail!("time {at:?}: a percentage from 0% to 100%");
        }
        return Ok(duration.mul_f64(p / 100.0));
    }
    humantime::parse_duration(at).with_context(|| format!("time {at:?}: expected \"20s\" or \"30%\""))
}

fn default_duration() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Shoppers {
    /// Concurrent shopper sessions at normal load, across all sites.
    pub(crate) count: u32,
    /// Mean think time between pages.
    #[serde(with = "dur")]
    pub(crate) think: Duration,
    /// Share of sessions that end in a checkout.
    pub(crate) checkout_share: f64,
    /// Give up on a response after this long (a shopper's patience).
    #[serde(with = "dur")]
    pub(crate) timeout: Duration,
    /// Shoppers share this many source addresses (a carrier's NAT, each address in a /24
    /// of its own); default: every shopper has its own.
    pub(crate) addresses: Option<u32>,
    /// How the shoppers a surge brings arrive: `home`, or `newsletter` (the home page with
    /// a `utm_…` query of their own on every visit).
    pub(crate) surge_landing: Landing,
}

/// Where the shoppers a surge brings land.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Landing {
    #[default]
    Home,
    Newsletter,
}

impl Default for Shoppers {
    fn default() -> Self {
        Shoppers {
            count: 40,
            think: Duration::from_millis(500),
            checkout_share: 0.3,
            timeout: Duration::from_secs(10),
            addresses: None,
            surge_landing: Landing::Home,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Origins {
    /// Requests per second each origin can serve (queueing, then 503 beyond); none = unlimited.
    pub(crate) capacity: Option<u32>,
    /// The origins speak TLS with certificates of a private CA the drill makes, verified by
    /// holdfast (`[site.pool.tls]`); `fail` with `mode = "expired-certificate"` then shows
    /// new connections an expired one.
    #[serde(default)]
    pub(crate) tls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    Fail,
    Recover,
    Flood,
    StopFlood,
    Surge,
    Calm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FailMode {
    Refused,
    Blackhole,
    Slow,
    Errors,
    ExpiredCertificate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FloodKind {
    Loic,
    Hoic,
    Smart,
    /// A residential-proxy botnet: sources four to a /24, a real browser's headers, the
    /// cookies it is given and its connection kept, searching for random words.
    Residential,
    Slowloris,
    SlowPost,
}

/// One timeline event. Which fields apply depends on `action` (checked on load).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Event {
    /// `"20s"` or `"30%"` of the duration.
    pub(crate) at: String,
    pub(crate) action: Action,
    /// fail/recover: a data center name, or `"*"` for all.
    pub(crate) datacenter: Option<String>,
    pub(crate) mode: Option<FailMode>,
    /// fail slow: added delay.
    #[serde(default, with = "opt_dur")]
    pub(crate) delay: Option<Duration>,
    /// fail errors: share of requests answered 500.
    pub(crate) share: Option<f64>,
    /// fail/recover: only this many of the data center's origins (per site; with `site`,
    /// of that site only). Default: all of them.
    pub(crate) origins: Option<u32>,
    /// flood: attacker kind, number of source addresses, requests per second in total.
    pub(crate) kind: Option<FloodKind>,
    pub(crate) sources: Option<u32>,
    pub(crate) rate: Option<u32>,
    /// flood: target site (default: the first) and path (default "/").
    pub(crate) site: Option<String>,
    pub(crate) path: Option<String>,
    /// surge: shopper multiplier.
    pub(crate) factor: Option<f64>,
}

impl Event {
    /// The event's time in a run of `duration`.
    pub(crate) fn time(&self, duration: Duration) -> anyhow::Result<Duration> {
        at(&self.at, duration).context("event")
    }

    fn check(&self) -> anyhow::Result<()> {
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                bail!("event {:?} at {}: needs {what}", self.action, self.at)
            }
        };
        match self.action {
            Action::Fail => {
                need(self.datacenter.is_some(), "datacenter")?;
                need(self.mode.is_some(), "mode (refused, blackhole, slow, errors, expired-certificate)")?;
                if self.mode == Some(FailMode::Slow) {
                    need(self.delay.is_some(), "delay")?;
                }
                if self.mode == Some(FailMode::Errors) {
                    need(self.share.is_some_and(|s| (0.0..=1.0).contains(&s)), "share from 0 to 1")?;
                }
            }
            Action::Recover => need(self.datacenter.is_some(), "datacenter")?,
            Action::Flood => {
                need(self.kind.is_some(), "kind (loic, hoic, smart, residential, slowloris, slow-post)")?;
                need(self.sources.is_some_and(|s| (1..=60_000).contains(&s)), "sources from 1 to 60000")?;
                need(self.rate.is_some_and(|r| (1..=50_000).contains(&r)), "rate from 1 to 50000")?;
            }
            Action::Surge => need(self.factor.is_some_and(|f| (0.0..=50.0).contains(&f)), "factor from 0 to 50")?,
            Action::StopFlood | Action::Calm => {}
        }
        Ok(())
    }
}

impl Scenario {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn parse(name: &str, text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = toml::from_str(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        for e in &s.events {
            e.check().with_context(|| name.to_string())?;
            e.time(s.duration).with_context(|| name.to_string())?;
            if e.mode == Some(FailMode::ExpiredCertificate) && !s.origins.tls {
                bail!("{name}: mode = \"expired-certificate\" needs [origins] tls = true");
            }
        }
        for e in &s.expects {
            e.check(s.duration).with_context(|| name.to_string())?;
        }
        Ok(s)
    }

    /// A built-in name or a path to a TOML file.
    pub fn load(name_or_path: &str) -> anyhow::Result<Scenario> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(name_or_path, text);
        }
        let text = std::fs::read_to_string(name_or_path).with_context(|| {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            format!("scenario {name_or_path:?} is neither a built-in ({}) nor a readable file", names.join(", "))
        })?;
        Scenario::parse(name_or_path, &text)
    }

    /// Events with their times in a run of `duration`, in order.
    pub(crate) fn timeline(&self, duration: Duration) -> Vec<(Duration, Event)> {
        let mut t: Vec<_> =
            self.events.iter().filter_map(|e| e.time(duration).ok().map(|at| (at, e.clone()))).collect();
        t.sort_by_key(|(at, _)| *at);
        t
    }
}

mod dur {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

mod opt_dur {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_loads() {
        for (name, _) in BUILT_IN {
            let s = Scenario::load(name).unwrap();
            assert_eq!(&s.name, name);
            assert!(!s.events.is_empty() || *name == "calm", "{name}");
            assert!(!s.expects.is_empty() || *name == "calm", "{name}: its ground truth");
        }
    }

    #[test]
    fn percent_times_scale_with_duration() {
        let s = Scenario::load("dc-blackhole").unwrap();
        let t = s.timeline(Duration::from_secs(100));
        assert_eq!(t[0].0, Duration::from_secs(30));
        let t = s.timeline(Duration::from_secs(20));
        assert_eq!(t[0].0, Duration::from_secs(6));
    }

    #[test]
    fn bad_events_are_explained() {
        let e = Scenario::parse("x", "name = \"x\"\n[[event]]\nat = \"10%\"\naction = \"fail\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("needs datacenter"), "{e:#}");
        let e = Scenario::parse("x", "name = \"x\"\n[[event]]\nat = \"soon\"\naction = \"calm\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("expected \"20s\" or \"30%\""), "{e:#}");
    }
}
