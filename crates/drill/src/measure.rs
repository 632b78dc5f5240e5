//! What the shoppers experienced, per second and per site, and the run's summary figures.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One shopper request's outcome.
pub(crate) struct Outcome<'a> {
    pub(crate) site: &'a str,
    /// None when no response came (connect error, reset, timeout).
    pub(crate) status: Option<u16>,
    pub(crate) latency: Duration,
    pub(crate) datacenter: Option<String>,
    pub(crate) checkout: bool,
    /// The response came from a cache serving stale (Cache-Status says so).
    pub(crate) stale: bool,
    /// catalogue (pages, images, CSS, search: cacheable), cart, checkout.
    pub(crate) kind: &'static str,
    /// holdfast challenged the shopper first (who passed, as a browser does).
    pub(crate) challenged: bool,
    /// holdfast's shield refused the request (rate limit, block, shed).
    pub(crate) mitigated: bool,
}

impl Outcome<'_> {
    /// A shopper got what it asked for: a 2xx/3xx, and for a checkout an order id.
    pub(crate) fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..400).contains(&s))
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct SiteSecond {
    pub(crate) requests: u32,
    pub(crate) ok: u32,
    pub(crate) failed: u32,
    /// Refused by holdfast's shield (rate limit, block, shed).
    pub(crate) rejected: u32,
    /// Challenged first (and passed, as a browser would).
    pub(crate) challenged: u32,
    pub(crate) checkout_attempts: u32,
    pub(crate) checkout_ok: u32,
    pub(crate) stale: u32,
    pub(crate) by_datacenter: BTreeMap<String, u32>,
    /// (requests, ok) per page kind.
    pub(crate) by_kind: BTreeMap<&'static str, (u32, u32)>,
    #[serde(skip)]
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Second {
    pub(crate) t: u32,
    pub(crate) sites: BTreeMap<String, SiteSecond>,
    pub(crate) flood_sent: u64,
    pub(crate) flood_failed: u64,
    pub(crate) attack_connections_open: u64,
    pub(crate) gateway_cpu_percent: Option<f64>,
    pub(crate) gateway_rss_mib: Option<f64>,
}

/// Collects outcomes; cheap enough for a few thousand requests per second.
pub(crate) struct Recorder {
    start: Instant,
    seconds: Mutex<Vec<Second>>,
    pub(crate) flood_sent: AtomicU64,
    pub(crate) flood_failed: AtomicU64,
    pub(crate) attack_open: AtomicU64,
}

impl Recorder {
    pub(crate) fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            seconds: Mutex::new(Vec::new()),
            flood_sent: AtomicU64::new(0),
            flood_failed: AtomicU64::new(0),
            attack_open: AtomicU64::new(0),
        }
    }

    fn with_second<R>(&self, at: Instant, f: impl FnOnce(&mut Second) -> R) -> Option<R> {
        let t = at.saturating_duration_since(self.start).as_secs() as usize;
        let mut secs = self.seconds.lock().ok()?;
        while secs.len() <= t {
            let n = secs.len() as u32;
            secs.push(Second { t: n, ..Second::default() });
        }
        secs.get_mut(t).map(f)
    }

    /// Records a request at the time it was sent.
    pub(crate) fn record(&self, sent: Instant, o: &Outcome) {
        self.with_second(sent, |s| {
            let site = s.sites.entry(o.site.to_string()).or_default();
            site.requests += 1;
            let ok = o.ok();
            if ok {
                site.ok += 1;
            } else {
                site.failed += 1;
            }
            site.rejected += u32::from(o.mitigated);
            site.challenged += u32::from(o.challenged);
            if o.checkout {
                site.checkout_attempts += 1;
                site.checkout_ok += u32::from(ok);
            }
            site.stale += u32::from(o.stale);
            let k = site.by_kind.entry(o.kind).or_default();
            k.0 += 1;
            k.1 += u32::from(ok);
            if let Some(dc) = &o.datacenter {
                *site.by_datacenter.entry(dc.clone()).or_default() += 1;
            }
            site.latencies_us.push(o.latency.as_micros().min(u32::MAX as u128) as u32);
        });
    }

    /// Called once a second by the sampler: flood counters and gateway resources.
    pub(crate) fn sample(&self, now: Instant, cpu: Option<f64>, rss_mib: Option<f64>) {
        let sent = self.flood_sent.swap(0, Relaxed);
        let failed = self.flood_failed.swap(0, Relaxed);
        let open = self.attack_open.load(Relaxed);
        let at = now.checked_sub(Duration::from_millis(500)).unwrap_or(now);
        self.with_second(at, |s| {
            s.flood_sent += sent;
            s.flood_failed += failed;
            s.attack_connections_open = open;
            s.gateway_cpu_percent = cpu;
            s.gateway_rss_mib = rss_mib;
        });
    }

    /// The seconds recorded, with per-second percentiles filled in.
    pub(crate) fn finish(&self, duration: Duration) -> Vec<Second> {
        let mut secs = self.seconds.lock().map(|s| s.clone()).unwrap_or_default();
        secs.truncate(duration.as_secs().max(1) as usize);
        for s in &mut secs {
            for site in s.sites.values_mut() {
                site.latencies_us.sort_unstable();
                site.p50_ms = percentile(&site.latencies_us, 0.50);
                site.p99_ms = percentile(&site.latencies_us, 0.99);
            }
        }
        secs
    }
}

/// Percentile of sorted microseconds, in milliseconds.
pub(crate) fn percentile(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let idx = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[idx]) / 1000.0
}

/// A site's figures over a whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SiteSummary {
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) success_rate: f64,
    pub(crate) checkout_attempts: u64,
    pub(crate) checkout_ok: u64,
    pub(crate) rejected: u64,
    pub(crate) challenged: u64,
    pub(crate) stale: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Failed requests from one second after the first failure event to the end.
    pub(crate) failed_after_first_second: u64,
    pub(crate) by_datacenter: BTreeMap<String, u64>,
    /// Success rate per page kind (catalogue, cart, checkout).
    pub(crate) success_by_kind: BTreeMap<String, f64>,
    #[serde(skip)]
    kinds: BTreeMap<&'static str, (u64, u64)>,
}

pub(crate) fn summarize(seconds: &[Second], fault_at: Option<Duration>) -> BTreeMap<String, SiteSummary> {
    let mut out: BTreeMap<String, SiteSummary> = BTreeMap::new();
    let mut lat: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let grace = fault_at.map(|f| f.as_secs() + 1);
    for s in seconds {
        for (name, site) in &s.sites {
            for key in [name.as_str(), "all"] {
                let sum = out.entry(key.to_string()).or_default();
                sum.requests += u64::from(site.requests);
                sum.ok += u64::from(site.ok);
                sum.checkout_attempts += u64::from(site.checkout_attempts);
                sum.checkout_ok += u64::from(site.checkout_ok);
                sum.rejected += u64::from(site.rejected);
                sum.challenged += u64::from(site.challenged);
                sum.stale += u64::from(site.stale);
                if grace.is_some_and(|g| u64::from(s.t) >= g) {
                    sum.failed_after_first_second += u64::from(site.failed);
                }
                for (dc, n) in &site.by_datacenter {
                    *sum.by_datacenter.entry(dc.clone()).or_default() += u64::from(*n);
                }
                for (kind, (n, ok)) in &site.by_kind {
                    let k = sum.kinds.entry(kind).or_default();
                    k.0 += u64::from(*n);
                    k.1 += u64::from(*ok);
                }
                lat.entry(key.to_string()).or_default().extend_from_slice(&site.latencies_us);
            }
        }
    }
    for (name, sum) in out.iter_mut() {
        sum.success_rate = if sum.requests == 0 { 0.0 } else { sum.ok as f64 / sum.requests as f64 };
        sum.success_by_kind =
            sum.kinds.iter().map(|(k, (n, ok))| (k.to_string(), *ok as f64 / (*n).max(1) as f64)).collect();
        if let Some(l) = lat.get_mut(name) {
            l.sort_unstable();
            sum.p50_ms = percentile(l, 0.5);
            sum.p99_ms = percentile(l, 0.99);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_second_and_summarizes() {
        let start = Instant::now();
        let r = Recorder::new(start);
        for i in 0..100u64 {
            let o = Outcome {
                site: "shop-de",
                status: if i < 98 { Some(200) } else { None },
                latency: Duration::from_millis(i),
                datacenter: Some("eu-west".into()),
                checkout: i % 10 == 0,
                stale: false,
                kind: "catalogue",
                challenged: false,
                mitigated: false,
            };
            r.record(start + Duration::from_millis(i * 30), &o);
        }
        let secs = r.finish(Duration::from_secs(10));
        assert_eq!(secs.len(), 3);
        let sum = summarize(&secs, Some(Duration::from_secs(1)));
        let de = &sum["shop-de"];
        assert_eq!((de.requests, de.ok), (100, 98));
        assert_eq!(de.checkout_attempts, 10);
        assert_eq!(de.p50_ms, 49.0);
        assert_eq!(de.p99_ms, 98.0);
        assert_eq!(de.failed_after_first_second, 2, "the two failures were in second 2");
        assert_eq!(sum["all"].requests, 100);
    }
}
