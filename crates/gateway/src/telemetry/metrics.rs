//! Prometheus metrics (prometheus-client). Hot-path handles are resolved once per config
//! snapshot ([`SiteMetrics`]) so a request costs a few atomic adds, not label hashing.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) site: String,
    pub(crate) datacenter: String,
    pub(crate) status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) site: String,
    pub(crate) route: String,
    pub(crate) datacenter: String,
    pub(crate) status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SiteLabel {
    pub(crate) site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OriginErrorLabels {
    pub(crate) site: String,
    pub(crate) datacenter: String,
    pub(crate) origin: String,
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~16 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 17))
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    route_requests: Family<RouteLabels, Counter>,
    /// Tunnels (WebSocket and other upgrades): open now, and opened, by protocol.
    pub(crate) tunnels_open: Gauge,
    /// Each site's TLS certificate's expiry (Unix seconds), files and ACME alike.
    pub(crate) certificate_expiry: Family<SiteLabel, Gauge>,
    pub(crate) tunnels: Family<KindLabel, Counter>,
    duration: HistogramFamily<SiteLabel>,
    pub(crate) origin_errors: Family<OriginErrorLabels, Counter>,
    pub(crate) open_connections: Gauge,
    pub(crate) connections: Counter,
    pub(crate) rejected: Family<ReasonLabel, Counter>,
    pub(crate) reloads: Family<ReasonLabel, Counter>,
    pub(crate) events: Family<KindLabel, Counter>,
    pub(crate) retries: Family<SiteReason, Counter>,
    pub(crate) cache_results: Family<SiteReason, Counter>,
    pub(crate) cache_bytes: Family<SiteLabel, Gauge>,
    pub(crate) cache_entries: Family<SiteLabel, Gauge>,
    pub(crate) cache_evictions: Family<SiteLabel, Counter>,
    pub(crate) shield: super::shield::ShieldMetrics,
    pub(crate) quic: super::quic::QuicMetrics,
    incidents: Family<KindLabel, Counter>,
    incident_open: Family<IncidentLabels, Gauge>,
    incident_verdict: Histogram,
    webhooks: Family<WebhookLabels, Counter>,
    /// The fleet: Redis reachable (1) or not (0); live instances; sync rounds by result.
    pub(crate) fleet_redis_up: Gauge,
    pub(crate) fleet_instances: Gauge,
    pub(crate) fleet_syncs: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("holdfast");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily<SiteLabel> = Family::new_with_constructor(latency_histogram);
        let origin_errors = Family::<OriginErrorLabels, Counter>::default();
        let open_connections = Gauge::default();
        let connections = Counter::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let reloads = Family::<ReasonLabel, Counter>::default();
        registry.register("requests", "Requests answered, by site, data center and status class", requests.clone());
        let route_requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "route_requests",
            "Requests to a site's path routes, by site, route, data center and status class (also in requests)",
            route_requests.clone(),
        );
        let tunnels_open = Gauge::default();
        let tunnels = Family::<KindLabel, Counter>::default();
        let certificate_expiry = Family::<SiteLabel, Gauge>::default();
        registry.register(
            "certificate_expiry_seconds",
            "When each site's TLS certificate expires, in Unix seconds (as blackbox_exporter's probe_ssl_earliest_cert_expiry)",
            certificate_expiry.clone(),
        );
        registry.register("tunnels_open", "Tunnels (WebSocket and other upgrades) open now", tunnels_open.clone());
        registry.register("tunnels", "Tunnels opened, by protocol (websocket, or the Upgrade token)", tunnels.clone());
        registry.register(
            "request_duration_seconds",
            "Time from request head to the end of the response body, by site",
            duration.clone(),
        );
        registry.register("origin_errors", "Failed requests to origins, by kind", origin_errors.clone());
        registry.register("open_connections", "Client connections open now", open_connections.clone());
        registry.register("connections", "Client connections accepted", connections.clone());
        registry.register(
            "requests_rejected",
            "Requests and connections refused before reaching an origin, by reason",
            rejected.clone(),
        );
        registry.register("config_reloads", "Config reloads, by result (ok, error)", reloads.clone());
        let events = Family::<KindLabel, Counter>::default();
        let retries = Family::<SiteReason, Counter>::default();
        registry.register(
            "upstream_events",
            "Origin and data-center state changes: origin_down, origin_up, origin_ejected, origin_returned, failover, failback",
            events.clone(),
        );
        registry.register(
            "retries",
            "Requests sent again to another origin, by site and reason (or budget_exhausted)",
            retries.clone(),
        );
        let cache_results = Family::<SiteReason, Counter>::default();
        registry.register(
            "cache",
            "Cacheable requests by site and result (reason): hit, miss, revalidated, stale",
            cache_results.clone(),
        );
        let cache_bytes = Family::<SiteLabel, Gauge>::default();
        let cache_entries = Family::<SiteLabel, Gauge>::default();
        let cache_evictions = Family::<SiteLabel, Counter>::default();
        registry.register("cache_bytes", "Bytes stored in the site's cache", cache_bytes.clone());
        registry.register("cache_entries", "URLs stored in the site's cache", cache_entries.clone());
        registry.register("cache_evictions", "Cache entries evicted for space", cache_evictions.clone());
        let shield = super::shield::ShieldMetrics::register(&mut registry);
        let quic = super::quic::QuicMetrics::register(&mut registry);
        let incidents = Family::<KindLabel, Counter>::default();
        let incident_open = Family::<IncidentLabels, Gauge>::default();
        // 0.5 s .. ~64 s
        let incident_verdict = Histogram::new(exponential_buckets(0.5, 2.0, 8));
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register("incidents", "Incidents named, by kind", incidents.clone());
        registry.register(
            "incident_open",
            "1 while an incident of this kind is open for this site and data center (as Prometheus' ALERTS)",
            incident_open.clone(),
        );
        registry.register(
            "incident_verdict_seconds",
            "Time from an incident's first signal to its verdict",
            incident_verdict.clone(),
        );
        registry.register("webhook_deliveries", "Incident notifications by receiver and result", webhooks.clone());
        let fleet_redis_up = Gauge::default();
        let fleet_instances = Gauge::default();
        let fleet_syncs = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "fleet_redis_up",
            "1 while the fleet's Redis answers (0 without a fleet)",
            fleet_redis_up.clone(),
        );
        registry.register("fleet_instances", "Live instances of the fleet, this one included", fleet_instances.clone());
        registry.register(
            "fleet_syncs",
            "Sync rounds with the fleet's Redis, by result (ok, error, timeout)",
            fleet_syncs.clone(),
        );
        Metrics {
            fleet_redis_up,
            fleet_instances,
            fleet_syncs,
            incidents,
            incident_open,
            incident_verdict,
            webhooks,
            shield,
            quic,
            cache_bytes,
            cache_entries,
            cache_evictions,
            registry,
            requests,
            route_requests,
            tunnels_open,
            certificate_expiry,
            tunnels,
            duration,
            origin_errors,
            open_connections,
            connections,
            rejected,
            reloads,
            events,
            retries,
            cache_results,
        }
    }

    /// Prometheus text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub(crate) fn reject(&self, reason: &str) {
        self.rejected.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }

    /// Handles for one site, or one of its routes: `datacenters` are its pools' data
    /// centers in order.
    pub(crate) fn site(&self, site: &str, route: Option<&str>, datacenters: &[&str]) -> SiteMetrics {
        let class = |dc: &str| -> [[Counter; 2]; 5] {
            STATUS_CLASSES.map(|c| {
                let site_count = self
                    .requests
                    .get_or_create(&RequestLabels {
                        site: site.to_string(),
                        datacenter: dc.to_string(),
                        status_class: c.to_string(),
                    })
                    .clone();
                // A site's own requests count once: its route counter is one no family holds.
                let route_count = route.map_or_else(Counter::default, |r| {
                    self.route_requests
                        .get_or_create(&RouteLabels {
                            site: site.to_string(),
                            route: r.to_string(),
                            datacenter: dc.to_string(),
                            status_class: c.to_string(),
                        })
                        .clone()
                });
                [site_count, route_count]
            })
        };
        let cache = CACHE_RESULTS.map(|reason| {
            self.cache_results.get_or_create(&SiteReason { site: site.to_string(), reason: reason.to_string() }).clone()
        });
        SiteMetrics {
            by_pool: datacenters.iter().map(|dc| class(dc)).collect(),
            local: class("none"),
            duration: self.duration.get_or_create(&SiteLabel { site: site.to_string() }).clone(),
            cache,
        }
    }
}

/// Pre-resolved metric handles of one site.
#[derive(Debug)]
pub(crate) struct SiteMetrics {
    /// Per status class: the site's counter, and the route's (a detached one for the site).
    by_pool: Vec<[[Counter; 2]; 5]>,
    /// Answered by holdfast itself (no origin).
    local: [[Counter; 2]; 5],
    pub(crate) duration: Histogram,
    /// `holdfast_cache_total{site,reason}` by [`CacheResult`].
    cache: [Counter; 4],
}

/// How the cache took part in a request (`holdfast_cache_total`'s reason).
#[derive(Debug, Clone, Copy)]
pub(crate) enum CacheResult {
    Hit = 0,
    Miss,
    Revalidated,
    Stale,
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

const CACHE_RESULTS: [&str; 4] = ["hit", "miss", "revalidated", "stale"];

impl SiteMetrics {
    /// Counts one request the cache took part in (a pre-resolved counter: no label
    /// strings on the request path).
    pub(crate) fn cache(&self, result: CacheResult) {
        self.cache[result as usize].inc();
    }

    /// Counts one response. `pool` is the index of the pool that served it, if any.
    pub(crate) fn count(&self, pool: Option<usize>, status: u16) {
        let idx = usize::from(status / 100).clamp(1, 5) - 1;
        let row = pool.and_then(|p| self.by_pool.get(p)).unwrap_or(&self.local);
        for c in &row[idx] {
            c.inc();
        }
    }
}

impl Metrics {
    pub(crate) fn origin_error(&self, site: &str, datacenter: &str, origin: &str, kind: &str) {
        self.origin_errors
            .get_or_create(&OriginErrorLabels {
                site: site.to_string(),
                datacenter: datacenter.to_string(),
                origin: origin.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }
}

impl Metrics {
    pub(crate) fn event(&self, kind: &str) {
        self.events.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
    }

    /// Updates the cache gauges of one site (at scrape time): bytes and entries stored now,
    /// entries evicted since the last scrape.
    pub(crate) fn cache_sizes(&self, site: &str, bytes: u64, entries: u64, evicted: u64) {
        let label = SiteLabel { site: site.to_string() };
        self.cache_bytes.get_or_create(&label).set(bytes as i64);
        self.cache_entries.get_or_create(&label).set(entries as i64);
        self.cache_evictions.get_or_create(&label).inc_by(evicted);
    }

    /// An incident of `kind` was named, `verdict_secs` after its first signal.
    pub(crate) fn incident_opened(&self, kind: &str, verdict_secs: f64) {
        self.incidents.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
        self.incident_verdict.observe(verdict_secs);
    }

    /// An incident is open (1) or over (the series goes) for this site and data center.
    pub(crate) fn incident_open(&self, kind: &str, site: &str, datacenter: &str, open: bool) {
        let labels = IncidentLabels { kind: kind.into(), site: site.into(), datacenter: datacenter.into() };
        if open {
            self.incident_open.get_or_create(&labels).set(1);
        } else {
            self.incident_open.remove(&labels);
        }
    }

    /// A webhook delivery's result: delivered, failed (given up), dropped (queue full).
    pub(crate) fn webhook(&self, receiver: &str, result: &str) {
        self.webhooks.get_or_create(&WebhookLabels { receiver: receiver.into(), result: result.into() }).inc();
    }

    /// Registers the per-phase request families (see [`super::Phase`]).
    pub(crate) fn request_phases(&mut self) -> (Family<PhaseLabel, Gauge>, Family<PhaseLabel, Counter>) {
        let in_phase = Family::<PhaseLabel, Gauge>::default();
        let cancelled = Family::<PhaseLabel, Counter>::default();
        self.registry.register(
            "requests_in_phase",
            "Client requests in flight now, by phase (route, cache_fill, admission, connect, upload, response_headers, response_body)",
            in_phase.clone(),
        );
        self.registry.register(
            "requests_cancelled",
            "Client requests abandoned by their client (stream reset, connection closed), by the phase they were in",
            cancelled.clone(),
        );
        (in_phase, cancelled)
    }

    pub(crate) fn retry(&self, site: &str, reason: &str) {
        self.retries.get_or_create(&SiteReason { site: site.to_string(), reason: reason.to_string() }).inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IncidentLabels {
    pub(crate) kind: String,
    pub(crate) site: String,
    pub(crate) datacenter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WebhookLabels {
    pub(crate) receiver: String,
    pub(crate) result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabel {
    pub(crate) phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SiteReason {
    pub(crate) site: String,
    pub(crate) reason: String,
}
