//! Certificates by ACME (RFC 8555), managed, not configured, as Caddy's certmagic does: for
//! each site with `tls = { acme = true }` a task keeps a certificate for the site's exact
//! hosts, orders one when there is none (or it is due), answers the server's challenge
//! (HTTP-01 on the http listeners, else TLS-ALPN-01 on the https ones), keeps it in
//! `[acme] state_dir` (mode 0700, files 0600), serves it at once, and renews it once
//! `renewal_window` of its life is left. A failure is retried with a doubling backoff; every
//! attempt is an event.
//!
//! [`Certs`] is what the request path and the TLS handshake read: the certificates issued,
//! the challenges' answers. It lives across reloads (the snapshot carries it).

mod order;
mod shared;
mod store;

pub(crate) use store::validity;

use crate::config::acme::Acme;
use crate::telemetry::{Event, Telemetry};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// The longest wait between retries of a failing order.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);
/// A certificate this close to its expiry is an operator alert.
pub(crate) const ALERT_BEFORE_SECS: u64 = 7 * 24 * 3600;

/// What ACME gives the rest of the gateway.
#[derive(Debug, Default)]
pub(crate) struct Certs {
    /// Issued certificates, by site.
    issued: RwLock<HashMap<String, Issued>>,
    /// TLS-ALPN-01 answers, by host.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 answers: token → key authorization.
    http: RwLock<HashMap<String, String>>,
    /// The fleet's HTTP-01 answers, read from Redis in the background.
    fleet_http: RwLock<HashMap<String, String>>,
    /// The sites a task keeps a certificate for (a reload starts tasks for new ones only),
    /// and whether the fleet's answers are read.
    managed: std::sync::Mutex<(std::collections::HashSet<String>, bool)>,
}

/// A certificate served for a site.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) key: Arc<CertifiedKey>,
    /// Unix seconds.
    pub(crate) not_before: u64,
    pub(crate) not_after: u64,
}

impl Certs {
    /// The site's ACME certificate, once there is one.
    pub(crate) fn for_site(&self, site: &str) -> Option<Arc<CertifiedKey>> {
        self.issued.read().ok()?.get(site).map(|i| i.key.clone())
    }

    /// The TLS-ALPN-01 answer for `host`, while its challenge is on.
    pub(crate) fn alpn_answer(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.alpn.read().ok()?.get(host).cloned()
    }

    /// The HTTP-01 answer for `token`, while its challenge is on.
    pub(crate) fn http_answer(&self, token: &str) -> Option<String> {
        let local = self.http.read().ok().and_then(|h| h.get(token).cloned());
        local.or_else(|| self.fleet_http.read().ok()?.get(token).cloned())
    }

    /// Every site's certificate's validity: (site, not_before, not_after).
    pub(crate) fn validity(&self) -> Vec<(String, u64, u64)> {
        let Ok(issued) = self.issued.read() else { return Vec::new() };
        let mut v: Vec<_> = issued.iter().map(|(s, i)| (s.clone(), i.not_before, i.not_after)).collect();
        v.sort();
        v
    }

    fn install(&self, site: &str, issued: Issued) {
        if let Ok(mut m) = self.issued.write() {
            m.insert(site.to_string(), issued);
        }
    }
}

/// A site whose certificate comes by ACME.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub(crate) name: String,
    /// Its exact hosts (wildcards need DNS-01, which holdfast does not do).
    pub(crate) hosts: Vec<String>,
}

/// The sites of `file` with `tls.acme`, and whether HTTP-01 can be answered (there is an
/// http listener).
pub(crate) fn sites(file: &crate::config::File) -> Vec<Site> {
    let sites = file.sites.iter().filter(|s| s.tls.as_ref().is_some_and(|t| t.acme));
    sites
        .map(|s| Site {
            name: s.name.get_ref().clone(),
            hosts: s.hosts.iter().map(|h| h.get_ref().to_ascii_lowercase()).filter(|h| !h.starts_with("*.")).collect(),
        })
        .collect()
}

/// How a manager task reaches the server and reports.
pub(crate) struct Manager {
    pub(crate) cfg: Acme,
    pub(crate) dir: PathBuf,
    pub(crate) certs: Arc<Certs>,
    pub(crate) telemetry: Arc<Telemetry>,
    /// HTTP-01 (there is an http listener), else TLS-ALPN-01.
    pub(crate) http01: bool,
    /// In a fleet: the lock and the certificates shared through Redis.
    shared: Option<shared::Shared>,
    /// The account, once read or created (one for all the sites' tasks).
    account: tokio::sync::Mutex<Option<instant_acme::Account>>,
}

/// What one turn of a site's loop did.
enum Turn {
    /// A certificate was ordered, or taken from the fleet.
    Done,
    /// Another instance holds the fleet's lock: look again after `retry`.
    Wait,
    Failed(String),
}

impl Manager {
    fn event(&self, kind: &'static str, site: &str, reason: String) {
        self.telemetry.event(Event::acme(kind, site, reason));
    }

    fn set_expiry(&self, site: &str, not_after: u64) {
        let label = crate::telemetry::metrics::SiteLabel { site: site.to_string() };
        self.telemetry.metrics.certificate_expiry.get_or_create(&label).set(not_after as i64);
    }

    /// Keeps `site`'s certificate until shutdown.
    pub(crate) async fn run(self: Arc<Self>, site: Site, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            let stored = store::load(&self.dir, &site.name);
            if let Some(issued) = &stored {
                self.certs.install(&site.name, issued.clone());
                self.set_expiry(&site.name, issued.not_after);
            }
            let now = crate::clock::unix_secs();
            let due = match (&stored, failures) {
                (_, n) if n > 0 => now + backoff(self.cfg.retry.get(), n).as_secs(),
                (Some(i), _) => renewal_due(i.not_before, i.not_after, self.cfg.renewal_window),
                (None, _) => now,
            };
            if due > now {
                let wait = Duration::from_secs(due - now);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
            let turn = tokio::select! {
                t = self.turn(&site, stored.as_ref()) => t,
                _ = shutdown.changed() => return,
            };
            match turn {
                Turn::Done => failures = 0,
                Turn::Wait => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.cfg.retry.get()) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                Turn::Failed(e) => {
                    failures += 1;
                    let wait = backoff(self.cfg.retry.get(), failures);
                    let reason = format!("{e}; retry {failures} in {}", humantime::format_duration(wait));
                    self.event("certificate_order_failed", &site.name, reason);
                }
            }
        }
    }

    /// The site's certificate is due: in a fleet, a newer one another instance published is
    /// taken, else this instance orders if it wins the lock; alone, it orders.
    async fn turn(&self, site: &Site, stored: Option<&Issued>) -> Turn {
        if let Some(shared) = &self.shared {
            match shared.fetch(&site.name).await {
                Ok(Some((chain, key))) => {
                    let newer = store::parse(chain.as_bytes(), key.as_bytes())
                        .ok()
                        .filter(|i| stored.is_none_or(|s| i.not_after > s.not_after));
                    if newer.is_some() {
                        return match store::save(&self.dir, &site.name, &chain, &key) {
                            Ok(i) => {
                                let until = crate::util::rfc3339_seconds(i.not_after * 1000);
                                self.event(
                                    "certificate_issued",
                                    &site.name,
                                    format!("from the fleet, valid until {until}"),
                                );
                                Turn::Done
                            }
                            Err(e) => Turn::Failed(e),
                        };
                    }
                }
                Ok(None) => {}
                Err(e) => return Turn::Failed(e),
            }
            match shared.lock(&site.name).await {
                Ok(true) => {}
                Ok(false) => return Turn::Wait,
                Err(e) => return Turn::Failed(e),
            }
        }
        let hosts = site.hosts.join(", ");
        self.event("certificate_ordering", &site.name, format!("ordering a certificate for {hosts}"));
        let ordered = order::order(self, site).await;
        let saved =
            ordered.and_then(|(chain, key)| Ok((store::save(&self.dir, &site.name, &chain, &key)?, chain, key)));
        match saved {
            Ok((issued, chain, key)) => {
                if let Some(shared) = &self.shared {
                    if let Err(e) = shared.publish(&site.name, &chain, &key).await {
                        tracing::warn!(site = %site.name, error = %e, "certificate not shared with the fleet");
                    }
                }
                let until = crate::util::rfc3339_seconds(issued.not_after * 1000);
                self.event("certificate_issued", &site.name, format!("for {hosts}, valid until {until}"));
                Turn::Done
            }
            Err(e) => {
                if let Some(shared) = &self.shared {
                    shared.unlock(&site.name).await;
                }
                Turn::Failed(e)
            }
        }
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed: once `window` of
/// its lifetime is left.
pub(crate) fn renewal_due(not_before: u64, not_after: u64, window: f64) -> u64 {
    let life = not_after.saturating_sub(not_before) as f64;
    not_after.saturating_sub((life * window).ceil() as u64)
}

/// The wait after the `n`th failure in a row: `first`, doubling, at most a day.
fn backoff(first: Duration, n: u32) -> Duration {
    first.saturating_mul(1u32 << (n.saturating_sub(1)).min(20)).min(MAX_BACKOFF)
}

/// Starts a manager task per ACME site of `file` that has none yet (at start, and after
/// each reload).
pub(crate) fn start(
    file: &crate::config::File,
    certs: &Arc<Certs>,
    telemetry: &Arc<Telemetry>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let Some(mut cfg) = file.acme.clone() else { return Ok(Vec::new()) };
    cfg.ca = cfg.ca.map(|ca| file.path(&ca));
    let Ok(mut managed) = certs.managed.lock() else { return Ok(Vec::new()) };
    let sites: Vec<Site> = sites(file).into_iter().filter(|s| !managed.0.contains(&s.name)).collect();
    if sites.is_empty() {
        return Ok(Vec::new());
    }
    let dir = file.path(&cfg.state_dir);
    store::ensure_dir(&dir).map_err(|e| anyhow::anyhow!("[acme] state_dir {}: {e}", dir.display()))?;
    let http01 = !file.listen.http.is_empty();
    let shared = file.fleet.as_ref().and_then(shared::Shared::new);
    let mut tasks = Vec::new();
    if !managed.1 {
        if let Some(answers) = file.fleet.as_ref().and_then(shared::Shared::new) {
            managed.1 = true;
            tasks.push(tokio::spawn(fleet_answers(answers, certs.clone(), shutdown.clone())));
        }
    }
    managed.0.extend(sites.iter().map(|s| s.name.clone()));
    let account = Default::default();
    let manager =
        Arc::new(Manager { cfg, dir, certs: certs.clone(), telemetry: telemetry.clone(), http01, shared, account });
    tasks.extend(sites.into_iter().map(|s| tokio::spawn(manager.clone().run(s, shutdown.clone()))));
    Ok(tasks)
}

/// Keeps the fleet's HTTP-01 answers here, read every `ANSWERS_EVERY` (the request path
/// never waits on Redis).
async fn fleet_answers(shared: shared::Shared, certs: Arc<Certs>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared::ANSWERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Ok(answers) = shared.answers().await {
            if let Ok(mut h) = certs.fleet_http.write() {
                *h = answers;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_two_thirds_of_the_life_and_backoff_doubles_to_a_day() {
        // 90 days from day 0: renewed on day 60.
        let day = 24 * 3600;
        assert_eq!(renewal_due(0, 90 * day, 1.0 / 3.0), 60 * day);
        assert_eq!(renewal_due(1000, 1000, 0.5), 1000, "no life left: due now");
        let first = Duration::from_secs(60);
        assert_eq!(backoff(first, 1), first);
        assert_eq!(backoff(first, 3), Duration::from_secs(240));
        assert_eq!(backoff(first, 40), MAX_BACKOFF);
    }
}
