//! Origins and their pools per data center, keep-alive connections to them ([`pool`]),
//! origin choice, and the classification of origin failures.

pub(crate) mod balance;
pub(crate) mod checker;
pub(crate) mod dns;
pub(crate) mod failover;
pub(crate) mod health;
pub(crate) mod http1;
pub(crate) mod pool;
pub(crate) mod retry;
pub(crate) mod stream;
pub(crate) mod tls;

use crate::telemetry::RequestPhase;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One origin server of one site in one data center. Kept across reloads when the site,
/// data center and address stay the same, so its counters, health and connections survive.
#[derive(Debug)]
pub(crate) struct Origin {
    /// Its address as shown (metrics, events, `/status.json`): `ip:port`.
    pub(crate) authority: http::uri::Authority,
    /// The address connected to.
    pub(crate) addr: std::net::SocketAddr,
    /// The configured DNS name (`host:port`) this address was resolved from, if any.
    pub(crate) name: Option<Arc<str>>,
    /// TLS to it (None: plain); replaced on a reload that changed the pool's TLS settings.
    pub(crate) tls: arc_swap::ArcSwapOption<tls::OriginTls>,
    /// Its handshakes, resumptions and the last TLS failure.
    pub(crate) tls_notes: Arc<tls::TlsNotes>,
    pub(crate) datacenter: Arc<str>,
    /// Its share of the pool's traffic relative to the others, as f64 bits (a name's
    /// weight is split among its addresses, so it changes with the DNS answer).
    weight: AtomicU64,
    pub(crate) stats: OriginStats,
    pub(crate) health: health::OriginHealth,
    /// Idle keep-alive connections to this origin.
    pub(crate) conns: pool::ConnPool,
    /// An active health checker runs for this origin.
    pub(crate) checker_running: AtomicBool,
}

/// How many kinds of failure are an origin's ([`ErrorKind::FAULTS`]).
pub(crate) const FAULT_KINDS: usize = 7;

#[derive(Debug, Default)]
pub(crate) struct OriginStats {
    pub(crate) in_flight: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) last_error: Mutex<Option<OriginErrorEvent>>,
    /// Failed tries by kind ([`ErrorKind::FAULTS`]).
    pub(crate) failed_tries: [AtomicU64; FAULT_KINDS],
    /// Failed health checks by kind.
    pub(crate) failed_checks: [AtomicU64; FAULT_KINDS],
    /// Tries answered (a response head), their total time to it, and those that were 5xx
    /// other than 503.
    pub(crate) answered: AtomicU64,
    pub(crate) answered_us: AtomicU64,
    pub(crate) status_5xx: AtomicU64,
    /// Answers (to tries or health checks, late ones too) that said "busy": 503 or 429.
    pub(crate) busy: AtomicU64,
    /// Requests sent again on a new connection because the origin closed a reused one
    /// without answering them (the keep-alive race).
    pub(crate) resent: AtomicU64,
    /// The latest answer to a health check that came after its timeout (ms; 0: none):
    /// the origin is slow, not gone.
    pub(crate) late_answer_ms: AtomicU64,
}

/// Counters of an origin read at one moment, for the incident engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OriginCounts {
    pub(crate) failed_tries: [u64; FAULT_KINDS],
    pub(crate) failed_checks: [u64; FAULT_KINDS],
    pub(crate) answered: u64,
    pub(crate) answered_us: u64,
    pub(crate) status_5xx: u64,
    pub(crate) busy: u64,
}

impl OriginStats {
    pub(crate) fn read(&self) -> OriginCounts {
        let load = |a: &AtomicU64| a.load(Relaxed);
        OriginCounts {
            failed_tries: self.failed_tries.each_ref().map(load),
            failed_checks: self.failed_checks.each_ref().map(load),
            answered: load(&self.answered),
            answered_us: load(&self.answered_us),
            status_5xx: load(&self.status_5xx),
            busy: load(&self.busy),
        }
    }

    /// A try got its response head after `elapsed`.
    pub(crate) fn answered(&self, elapsed: std::time::Duration, status: u16) {
        self.answered.fetch_add(1, Relaxed);
        self.answered_us.fetch_add(elapsed.as_micros() as u64, Relaxed);
        // 503 is an overloaded origin's answer, admission's to handle, not an error.
        if status >= 500 && status != 503 {
            self.status_5xx.fetch_add(1, Relaxed);
        }
        self.answered_busy(status);
    }

    /// Counts an answer that says "alive, but busy" (503, 429).
    pub(crate) fn answered_busy(&self, status: u16) {
        if status == 503 || status == 429 {
            self.busy.fetch_add(1, Relaxed);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct OriginErrorEvent {
    #[serde(with = "crate::util::rfc3339")]
    pub(crate) at: SystemTime,
    pub(crate) kind: &'static str,
}

impl Origin {
    pub(crate) fn new(addr: std::net::SocketAddr, name: Option<Arc<str>>, datacenter: Arc<str>, weight: f64) -> Origin {
        let authority = http::uri::Authority::try_from(addr.to_string())
            .unwrap_or_else(|_| http::uri::Authority::from_static("0.0.0.0:0"));
        Origin {
            authority,
            addr,
            name,
            tls: Default::default(),
            tls_notes: Default::default(),
            datacenter,
            weight: AtomicU64::new(weight.to_bits()),
            stats: OriginStats::default(),
            health: health::OriginHealth::default(),
            conns: pool::ConnPool::default(),
            checker_running: AtomicBool::new(false),
        }
    }

    /// Sends a request on a pooled or new connection (marking the request's phase:
    /// connecting, uploading, waiting for the response head). The response body holds the
    /// connection; it comes back to the pool when the body has been read to its end.
    pub(crate) async fn send(
        &self,
        msg: http1::Outgoing<'_>,
        timing: pool::Timing,
        phase: &RequestPhase,
    ) -> Result<http::Response<http1::OriginBody>, http1::SendError> {
        self.conns.send(self, msg, timing, phase).await
    }

    /// Its share of the pool's traffic relative to the others.
    pub(crate) fn weight(&self) -> f64 {
        f64::from_bits(self.weight.load(Relaxed))
    }

    pub(crate) fn set_weight(&self, w: f64) {
        self.weight.store(w.to_bits(), Relaxed);
    }

    /// Sets its TLS (None: plain). Changed settings drop the idle connections made with the
    /// old ones; the same settings keep them, and the session cache.
    pub(crate) fn set_tls(&self, tls: Option<tls::OriginTls>) {
        let old = self.tls.load();
        let same = match (old.as_deref(), &tls) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_settings(b),
            _ => false,
        };
        if !same {
            self.tls.store(tls.map(Arc::new));
            self.conns.clear();
        }
    }

    pub(crate) fn record_error(&self, kind: ErrorKind) {
        self.stats.errors.fetch_add(1, Relaxed);
        if let Some(i) = kind.fault_index() {
            self.stats.failed_tries[i].fetch_add(1, Relaxed);
        }
        if let Ok(mut last) = self.stats.last_error.lock() {
            *last = Some(OriginErrorEvent { at: SystemTime::now(), kind: kind.as_str() });
        }
    }
}

/// A request at an origin: counted in the origin's requests and in flight from the try
/// until the guard is dropped (the try failed, or the response ended or was abandoned).
/// The balancer reads the in-flight count, so a count left behind by a cancelled request
/// would steer traffic away from a healthy origin for good.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Origin>);

impl InFlight {
    pub(crate) fn new(origin: &Arc<Origin>) -> InFlight {
        origin.stats.requests.fetch_add(1, Relaxed);
        origin.stats.in_flight.fetch_add(1, Relaxed);
        InFlight(origin.clone())
    }

    pub(crate) fn origin(&self) -> &Arc<Origin> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Relaxed);
    }
}

/// The single probe request an origin gets after an ejection. Spent when its result is
/// recorded ([`ProbePermit::spend`]); dropped unspent (the request was cancelled before an
/// answer), it frees the probe slot, so the origin can be probed again instead of staying
/// out of rotation for good.
#[derive(Debug)]
pub(crate) struct ProbePermit(Option<Arc<Origin>>);

impl ProbePermit {
    /// The result is being recorded (which ends the probe).
    pub(crate) fn spend(mut self) {
        self.0 = None;
    }
}

impl Drop for ProbePermit {
    fn drop(&mut self) {
        if let Some(o) = self.0.take() {
            o.health.release_probe();
        }
    }
}

/// The origins of one site in one data center.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) datacenter: Arc<str>,
    pub(crate) origins: Vec<Arc<Origin>>,
    /// Whether the pool was eligible for traffic at the last choice, and since when.
    was_up: AtomicBool,
    up_since: AtomicU64,
}

impl Pool {
    pub(crate) fn new(datacenter: Arc<str>, origins: Vec<Arc<Origin>>) -> Pool {
        Pool { datacenter, origins, was_up: AtomicBool::new(true), up_since: AtomicU64::new(0) }
    }

    /// Whether the pool took traffic at the last choice (else its data center has failed
    /// over).
    pub(crate) fn eligible(&self) -> bool {
        self.was_up.load(Relaxed)
    }

    /// Origins ejected now (for the ejection cap).
    pub(crate) fn ejected(&self) -> usize {
        self.origins.iter().filter(|o| o.health.is_ejected()).count()
    }

    /// Whether one more origin may be ejected under `max_ejected_percent`.
    pub(crate) fn may_eject(&self, max_percent: u32) -> bool {
        let total = self.origins.len().max(1);
        self.ejected() * 100 < total * max_percent as usize
    }

    /// Notes whether the pool is eligible for traffic now; returns the change if it is one.
    pub(crate) fn update_eligibility(
        &self,
        index: usize,
        cfg: &crate::config::Failover,
        now: u64,
    ) -> Option<PoolChange> {
        self.note_eligibility(index, &mut self.view(now), cfg, now)
    }

    /// As `update_eligibility`, on a view already taken (a pool that just became eligible
    /// starts its slow start in the view too).
    fn note_eligibility(
        &self,
        index: usize,
        v: &mut failover::PoolView,
        cfg: &crate::config::Failover,
        now: u64,
    ) -> Option<PoolChange> {
        let up = v.eligible(cfg);
        if self.was_up.swap(up, Relaxed) == up {
            return None;
        }
        if up {
            self.up_since.store(now, Relaxed);
            v.up_since = now;
        }
        Some(PoolChange { pool: index, up, share: v.share() })
    }

    fn view(&self, now: u64) -> failover::PoolView {
        let available = self.origins.iter().filter(|o| o.health.state(now) != health::State::Down).count();
        failover::PoolView { available, total: self.origins.len(), up_since: self.up_since.load(Relaxed) }
    }
}

/// The origin chosen for one try.
pub(crate) struct Selection {
    pub(crate) pool: usize,
    pub(crate) origin: Arc<Origin>,
    /// This try is the origin's single probe after an ejection.
    pub(crate) probe: Option<ProbePermit>,
}

/// The data centers of a site whose eligibility changed since it was last noted (after an
/// origin's state changed).
pub(crate) fn eligibility_changes(pools: &[Pool], cfg: &crate::config::Failover, now: u64) -> Vec<PoolChange> {
    pools.iter().enumerate().filter_map(|(i, p)| p.update_eligibility(i, cfg, now)).collect()
}

/// A data center changed its eligibility at the last choice.
pub(crate) struct PoolChange {
    pub(crate) pool: usize,
    pub(crate) up: bool,
    pub(crate) share: f64,
}

/// Chooses an origin for a try: a pool by failover order (with slow start and panic mode),
/// then an origin in it by P2C; origins in `tried` are avoided while others remain.
/// Returns pool eligibility changes for the caller to report as events. No heap allocation
/// unless a pool changed.
pub(crate) fn choose(
    pools: &[Pool],
    cfg: &crate::config::Site,
    tried: &[usize],
    now: u64,
    rng: &AtomicU64,
) -> (Option<Selection>, Vec<PoolChange>) {
    let n = pools.len().min(failover::MAX_POOLS);
    let pools = &pools[..n];
    let mut views = [failover::PoolView::default(); failover::MAX_POOLS];
    let mut changes = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        views[i] = p.view(now);
        if let Some(c) = p.note_eligibility(i, &mut views[i], &cfg.failover, now) {
            changes.push(c);
        }
    }
    let r = balance::uniform(rng);
    let not_tried = |o: &&Arc<Origin>| !tried.contains(&(Arc::as_ptr(o) as usize));
    let choice = failover::choose(&views[..n], &cfg.failover, now, r);
    let (first, panic) = match choice {
        failover::Choice::Pool(i) => (i, false),
        failover::Choice::Panic => (0, true),
    };
    // The chosen pool first, then the others in failover order.
    for i in std::iter::once(first).chain((0..n).filter(|&j| j != first)) {
        let pool = &pools[i];
        // A probe first: an ejected origin whose time is up gets exactly one request.
        if !panic {
            if let Some(o) = pool.origins.iter().filter(not_tried).find(|o| o.health.state(now) == health::State::Probe)
            {
                if o.health.try_probe() {
                    let probe = Some(ProbePermit(Some(o.clone())));
                    return (Some(Selection { pool: i, origin: o.clone(), probe }), changes);
                }
            }
        }
        let candidates =
            pool.origins.iter().filter(not_tried).filter(|o| panic || o.health.state(now) == health::State::Available);
        if let Some(o) = balance::pick_where(candidates, cfg.balance, balance::next_random(rng)) {
            return (Some(Selection { pool: i, origin: o.clone(), probe: None }), changes);
        }
    }
    // Everything was tried or is down: panic over untried origins of any pool.
    for (i, pool) in pools.iter().enumerate() {
        if let Some(o) = pool.origins.iter().find(not_tried) {
            return (Some(Selection { pool: i, origin: o.clone(), probe: None }), changes);
        }
    }
    (None, changes)
}

/// Why a request to an origin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// TCP connect refused (nothing listening, process gone).
    ConnectRefused,
    /// TCP connect did not complete in time (black hole, dead network).
    ConnectTimeout,
    /// Other connect failure (unreachable, DNS).
    Connect,
    /// Connected, but no response headers within `timeouts.origin_response`.
    ResponseTimeout,
    /// The connection was reset or closed before a response.
    Reset,
    /// The origin's response was not valid HTTP.
    Protocol,
    /// The TLS handshake failed: a certificate expired, untrusted or for another name, or
    /// the origin refused it (see [`tls::TlsFailure`]).
    Tls,
    /// The client's request body exceeded `limits.max_body_bytes`.
    BodyTooLarge,
    /// The client's request body broke its framing.
    ClientBody,
    /// The client went away (closed, reset its stream) before its request body ended.
    ClientGone,
    /// The client's request body came slower than `shield.connections.min_upload_rate`.
    ClientTooSlow,
}

impl ErrorKind {
    /// The kinds that are an origin's fault, in the order of [`OriginStats`]' counters.
    pub(crate) const FAULTS: [ErrorKind; FAULT_KINDS] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Connect,
        ErrorKind::ResponseTimeout,
        ErrorKind::Reset,
        ErrorKind::Protocol,
        ErrorKind::Tls,
    ];

    /// Its place in [`ErrorKind::FAULTS`].
    pub(crate) fn fault_index(self) -> Option<usize> {
        ErrorKind::FAULTS.iter().position(|k| *k == self)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::ResponseTimeout => "response_timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Tls => "tls",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::ClientBody => "client_body",
            ErrorKind::ClientGone => "client_gone",
            ErrorKind::ClientTooSlow => "client_too_slow",
        }
    }

    /// True when the failure is the origin's (counted against it), not the client's.
    pub(crate) fn is_origin_fault(self) -> bool {
        !matches!(
            self,
            ErrorKind::BodyTooLarge | ErrorKind::ClientBody | ErrorKind::ClientGone | ErrorKind::ClientTooSlow
        )
    }

    /// Classifies a connect failure (None: it timed out).
    pub(crate) fn of_connect(err: Option<&std::io::Error>) -> ErrorKind {
        match err {
            None => ErrorKind::ConnectTimeout,
            Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
            Some(_) => ErrorKind::Connect,
        }
    }
}
