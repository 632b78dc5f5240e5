//! What the shield shows on /status.json: the flood state with its evidence, dynamic
//! blocks, the most offending prefixes, how many clients it tracks and what that costs,
//! and each site's admission state.

use super::admission::LoadView;
use super::topk::Offender;
use super::Shield;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;
use tokio::time::Instant;

#[derive(Debug, Serialize)]
pub(crate) struct ShieldView {
    pub(crate) enabled: bool,
    pub(crate) mode: &'static str,
    pub(crate) challenge: &'static str,
    pub(crate) flood: FloodView,
    pub(crate) blocked: Vec<BlockView>,
    pub(crate) top_offenders: Vec<Offender>,
    pub(crate) tracked_addresses: usize,
    pub(crate) tracked_prefixes: usize,
    /// Visitors (valid visitor cookies) seen recently.
    pub(crate) tracked_visitors: usize,
    /// The shared addresses recognised (more than one visitor behind them recently), and
    /// how many visitors each carries; the 50 largest.
    pub(crate) shared_addresses: Vec<super::visitors::SharedAddress>,
    pub(crate) table_bytes: usize,
    pub(crate) sites: BTreeMap<String, LoadView>,
    /// This instance's side of the fleet (docs/fleet.md); absent when it runs alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fleet: Option<FleetShieldView>,
}

/// The shield's fleet state.
#[derive(Debug, Serialize)]
pub(crate) struct FleetShieldView {
    /// How shared limits are enforced now: `shared` (Redis answers), or the `on_redis_down`
    /// mode (`local`, `open`, `closed`).
    pub(crate) limits: &'static str,
    /// The id of the key that signs challenges and cookies (`local`: this instance's own).
    pub(crate) key: String,
    /// Another point of presence is in a flood.
    pub(crate) fleet_flood: bool,
}

/// The flood state at one moment.
#[derive(Debug, Clone)]
pub(crate) struct FloodNow {
    pub(crate) active: bool,
    /// Requests with the flood signature per second, recently.
    pub(crate) rate: f64,
    /// Prefixes blocked now.
    pub(crate) blocked: usize,
    pub(crate) signature: Option<String>,
    /// Distinct addresses and prefixes its requests came from (estimates).
    pub(crate) addresses: u64,
    pub(crate) prefixes: u64,
    /// Connections from blocked sources refused on accept since the flood began.
    pub(crate) refused: u64,
    pub(crate) new_prefix_burst: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct FloodView {
    pub(crate) active: bool,
    #[serde(with = "crate::util::rfc3339_opt")]
    pub(crate) since: Option<SystemTime>,
    /// Suspicious requests per second, recently.
    pub(crate) suspicious_per_second: f64,
    pub(crate) never_seen_prefix_burst: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct BlockView {
    pub(crate) prefix: String,
    pub(crate) reason: String,
    #[serde(with = "crate::util::rfc3339")]
    pub(crate) since: SystemTime,
    pub(crate) remaining_seconds: u64,
}

impl Shield {
    pub(crate) fn view(&self, cfg: &crate::config::shield::Shield, sites: BTreeMap<String, LoadView>) -> ShieldView {
        let now = Instant::now();
        let mut blocked: Vec<BlockView> = self
            .dynamic
            .read()
            .map(|d| {
                d.iter()
                    .filter(|(_, b)| b.until > now)
                    .map(|(net, b)| BlockView {
                        prefix: net.to_string(),
                        reason: b.reason.clone(),
                        since: b.since,
                        remaining_seconds: b.until.saturating_duration_since(now).as_secs(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        blocked.sort_by_key(|b| std::cmp::Reverse(b.since));
        blocked.truncate(200);
        ShieldView {
            enabled: cfg.enabled,
            mode: match cfg.mode {
                crate::config::shield::ShieldMode::Enforce => "enforce",
                crate::config::shield::ShieldMode::DryRun => "dry-run",
            },
            challenge: match cfg.challenge.mode {
                crate::config::shield::ChallengeMode::Off => "off",
                crate::config::shield::ChallengeMode::Auto => "auto",
                crate::config::shield::ChallengeMode::On => "on",
            },
            flood: FloodView {
                active: self.flood.active(),
                since: self
                    .flood
                    .since_unix_ms()
                    .map(|ms| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)),
                suspicious_per_second: (self.flood.rate() * 10.0).round() / 10.0,
                never_seen_prefix_burst: self.flood.new_prefix_burst(),
            },
            blocked,
            top_offenders: self.top.top(10),
            tracked_addresses: self.addrs.len(),
            tracked_prefixes: self.prefixes.len(),
            tracked_visitors: self.visitors.len().0,
            shared_addresses: self.visitors.shared(self.window_now(cfg), 50),
            table_bytes: self.table_bytes(),
            sites,
            fleet: self.shared.enabled().then(|| FleetShieldView {
                limits: match self.shared.mode() {
                    super::shared::Mode::Shared => "shared",
                    super::shared::Mode::Local => "local",
                    super::shared::Mode::Open => "open",
                    super::shared::Mode::Closed => "closed",
                },
                key: self.keys().1.id().to_string(),
                fleet_flood: self.shared.fleet_flood.load(std::sync::atomic::Ordering::Relaxed),
            }),
        }
    }

    /// The flood state now, for the incident engine: the latest flood-signature block
    /// gives the signature in words (never a prefix).
    pub(crate) fn flood_now(&self) -> FloodNow {
        let now = Instant::now();
        let (blocked, signature) = self
            .dynamic
            .read()
            .map(|d| {
                let live: Vec<_> = d.iter().filter(|(_, b)| b.until > now).collect();
                let signature = live
                    .iter()
                    .filter(|(_, b)| b.reason.starts_with("flood signature"))
                    .max_by_key(|(_, b)| b.since)
                    .map(|(_, b)| b.reason.trim_start_matches("flood signature: ").to_string());
                (live.len(), signature)
            })
            .unwrap_or((0, None));
        let seen = self.witness.seen();
        FloodNow {
            active: self.flood.active(),
            rate: self.flood.rate(),
            blocked,
            // The traits of the flood's own requests, else the latest block's reason.
            signature: seen.signature().or(signature),
            addresses: seen.addresses,
            prefixes: seen.prefixes,
            refused: seen.refused,
            new_prefix_burst: self.flood.new_prefix_burst(),
        }
    }

    /// The signature window now.
    fn window_now(&self, cfg: &crate::config::shield::Shield) -> u32 {
        self.secs(Instant::now()) / (cfg.signatures.window.get().as_secs().max(1) as u32)
    }

    pub(crate) fn table_bytes(&self) -> usize {
        self.addrs.bytes() + self.prefixes.bytes() + self.classes.bytes() + self.stems.bytes() + self.visitors.bytes()
    }
}
