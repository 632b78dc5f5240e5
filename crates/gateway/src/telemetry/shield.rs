//! The shield's metrics: every block, challenge, limit and shed by action, reason and site;
//! the prefixes with the most of them (the top of a bounded sketch, so the label set stays
//! small); the state of the defence (flood, blocked prefixes, tracked clients, memory).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabels {
    pub(crate) action: String,
    pub(crate) reason: String,
    pub(crate) site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PrefixLabel {
    pub(crate) prefix: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TableLabel {
    pub(crate) table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SiteLabel {
    pub(crate) site: String,
}

pub(crate) struct ShieldMetrics {
    pub(crate) actions: Family<ActionLabels, Counter>,
    pub(crate) top_prefixes: Family<PrefixLabel, Gauge>,
    pub(crate) tracked: Family<TableLabel, Gauge>,
    pub(crate) bytes: Gauge,
    pub(crate) blocked_prefixes: Gauge,
    pub(crate) flood: Gauge,
    pub(crate) shed_level: Family<SiteLabel, Gauge<f64, AtomicU64>>,
}

impl ShieldMetrics {
    pub(crate) fn register(registry: &mut Registry) -> ShieldMetrics {
        let m = ShieldMetrics {
            actions: Family::default(),
            top_prefixes: Family::default(),
            tracked: Family::default(),
            bytes: Gauge::default(),
            blocked_prefixes: Gauge::default(),
            flood: Gauge::default(),
            shed_level: Family::default(),
        };
        registry.register(
            "shield_actions",
            "Shield actions (block, close, reject, challenge, shed, dry_run) by reason and site (\"-\": before routing)",
            m.actions.clone(),
        );
        registry.register(
            "shield_top_prefix_actions",
            "Shield actions against the most offending prefixes (recent, decaying estimate)",
            m.top_prefixes.clone(),
        );
        registry.register(
            "shield_tracked",
            "Addresses, prefixes, path stems, visitors and visitors' addresses with shield state",
            m.tracked.clone(),
        );
        registry.register("shield_table_bytes", "Memory held by the shield's client tables", m.bytes.clone());
        registry.register(
            "shield_blocked_prefixes",
            "Prefixes and addresses blocked now (dynamic)",
            m.blocked_prefixes.clone(),
        );
        registry.register("shield_flood", "1 while a flood is detected", m.flood.clone());
        registry.register(
            "shield_shed_level",
            "Adaptive admission level by site: 0 admits all, 1 sheds all low-priority requests, 2 all but critical",
            m.shed_level.clone(),
        );
        m
    }

    pub(crate) fn action(&self, action: &str, reason: &str, site: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_string(),
                reason: reason.to_string(),
                site: site.to_string(),
            })
            .inc();
    }
}
