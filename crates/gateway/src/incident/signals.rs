//! What the incident engine reads. Requests count themselves into their site's
//! [`SiteTally`] as they end (relaxed atomic additions, a handful per request, no lock).
//! Every tick the gateway reads the tallies, the origins' counters and states, the shield
//! and admission, and hands [`detect`](super::detect) an [`Observation`]: the plain
//! numbers of one tick.

use crate::config::MAX_POOLS;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How a request ended, as an incident's impact counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Outcome {
    /// Answered by an origin (which pool: [`Ended::pool`]).
    Origin = 0,
    /// Answered from a fresh copy in the cache.
    Cache,
    /// Answered from a stale copy (the origins failed, or the request was shed).
    Stale,
    /// Answered with the proof-of-work challenge.
    Challenged,
    /// Refused by the shield: a rate limit, a block, a closed connection.
    Refused,
    /// Shed by adaptive admission.
    Shed,
    /// No origin could answer: the site's maintenance page.
    Failed,
    /// Answered before any site was chosen, or a request holdfast refused (not counted).
    Local,
}

const OUTCOMES: usize = 8;

/// What the tally needs to know about a request that ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended {
    pub(crate) outcome: Outcome,
    /// The pool (failover order) whose origin answered.
    pub(crate) pool: Option<usize>,
    /// The status the client was sent (0: none, the request was cancelled first).
    pub(crate) status: u16,
    /// The client went away first.
    pub(crate) cancelled: bool,
    /// An unsafe request to one of the site's priority paths (`/checkout`).
    pub(crate) checkout: bool,
    /// It looked like a flood (the shield's signature score).
    pub(crate) suspicious: bool,
    /// Its client's prefix was first seen during the current surge.
    pub(crate) new_client: bool,
}

/// A site's requests by how they ended, since start. Kept across reloads.
#[derive(Debug, Default)]
pub(crate) struct SiteTally {
    requests: AtomicU64,
    outcomes: [AtomicU64; OUTCOMES],
    /// Answered by an origin (not with a 5xx), by pool.
    by_pool: [AtomicU64; MAX_POOLS],
    /// Origin answers that were 5xx (counted as failed).
    origin_5xx: AtomicU64,
    cancelled: AtomicU64,
    checkouts: [AtomicU64; 3],
    suspicious: [AtomicU64; 3],
    new_clients: AtomicU64,
}

/// A [`SiteTally`] read at one moment, or the difference of two readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    pub(crate) outcomes: [u64; OUTCOMES],
    pub(crate) by_pool: [u64; MAX_POOLS],
    pub(crate) origin_5xx: u64,
    pub(crate) cancelled: u64,
    /// Attempted, placed, failed.
    pub(crate) checkouts: [u64; 3],
    /// Seen, stopped by the shield, reached an origin.
    pub(crate) suspicious: [u64; 3],
    pub(crate) new_clients: u64,
}

impl SiteTally {
    /// Counts one request that ended.
    pub(crate) fn record(&self, e: &Ended) {
        if e.outcome == Outcome::Local {
            return;
        }
        self.requests.fetch_add(1, Relaxed);
        self.outcomes[e.outcome as usize].fetch_add(1, Relaxed);
        if let (Outcome::Origin, Some(p)) = (e.outcome, e.pool) {
            if e.status >= 500 {
                self.origin_5xx.fetch_add(1, Relaxed);
            } else if let Some(c) = self.by_pool.get(p) {
                c.fetch_add(1, Relaxed);
            }
        }
        if e.cancelled {
            self.cancelled.fetch_add(1, Relaxed);
        }
        if e.checkout {
            self.checkouts[0].fetch_add(1, Relaxed);
            let placed = e.outcome == Outcome::Origin && (200..400).contains(&e.status);
            self.checkouts[if placed { 1 } else { 2 }].fetch_add(1, Relaxed);
        }
        if e.suspicious {
            self.suspicious[0].fetch_add(1, Relaxed);
            match e.outcome {
                Outcome::Challenged | Outcome::Refused | Outcome::Shed => {
                    self.suspicious[1].fetch_add(1, Relaxed);
                }
                Outcome::Origin => {
                    self.suspicious[2].fetch_add(1, Relaxed);
                }
                _ => {}
            }
        }
        if e.new_client {
            self.new_clients.fetch_add(1, Relaxed);
        }
    }

    /// The counts so far.
    pub(crate) fn read(&self) -> Counts {
        let load = |a: &AtomicU64| a.load(Relaxed);
        Counts {
            requests: load(&self.requests),
            outcomes: self.outcomes.each_ref().map(load),
            by_pool: self.by_pool.each_ref().map(load),
            origin_5xx: load(&self.origin_5xx),
            cancelled: load(&self.cancelled),
            checkouts: self.checkouts.each_ref().map(load),
            suspicious: self.suspicious.each_ref().map(load),
            new_clients: load(&self.new_clients),
        }
    }
}

impl Counts {
    /// What happened between `earlier` and this reading.
    pub(crate) fn since(&self, earlier: &Counts) -> Counts {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let mut out = Counts {
            requests: d(self.requests, earlier.requests),
            origin_5xx: d(self.origin_5xx, earlier.origin_5xx),
            cancelled: d(self.cancelled, earlier.cancelled),
            new_clients: d(self.new_clients, earlier.new_clients),
            ..Counts::default()
        };
        for i in 0..OUTCOMES {
            out.outcomes[i] = d(self.outcomes[i], earlier.outcomes[i]);
        }
        for i in 0..MAX_POOLS {
            out.by_pool[i] = d(self.by_pool[i], earlier.by_pool[i]);
        }
        for i in 0..3 {
            out.checkouts[i] = d(self.checkouts[i], earlier.checkouts[i]);
            out.suspicious[i] = d(self.suspicious[i], earlier.suspicious[i]);
        }
        out
    }

    pub(crate) fn outcome(&self, o: Outcome) -> u64 {
        self.outcomes[o as usize]
    }

    /// Requests that failed: the maintenance page, or an origin's 5xx.
    pub(crate) fn failed(&self) -> u64 {
        self.outcome(Outcome::Failed) + self.origin_5xx
    }

    /// What these requests did to shoppers, as an incident counts it.
    pub(crate) fn impact(&self) -> super::Impact {
        let others: u64 = self.by_pool[1..].iter().sum();
        super::Impact {
            requests: self.requests,
            served: self.by_pool[0] + self.outcome(Outcome::Cache),
            served_by_other_datacenter: others,
            served_stale: self.outcome(Outcome::Stale),
            challenged: self.outcome(Outcome::Challenged),
            refused_or_shed: self.outcome(Outcome::Refused) + self.outcome(Outcome::Shed),
            failed: self.failed(),
            cancelled: self.cancelled,
            checkouts_attempted: self.checkouts[0],
            checkouts_placed: self.checkouts[1],
            checkouts_failed: self.checkouts[2],
            flood_blocked: self.suspicious[1],
            flood_leaked: self.suspicious[2],
        }
    }
}

/// One tick of what the gateway saw: plain numbers, for [`detect`](super::detect).
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    /// Unix milliseconds at the end of the tick.
    pub(crate) now: u64,
    /// The tick's length in seconds.
    pub(crate) secs: f64,
    pub(crate) sites: Vec<SiteObs>,
    pub(crate) flood: FloodObs,
}

/// One site in one tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct SiteObs {
    pub(crate) name: String,
    /// Requests that ended in the tick.
    pub(crate) counts: Counts,
    /// Its pools in failover order.
    pub(crate) pools: Vec<PoolObs>,
    /// Adaptive admission.
    pub(crate) shed_level: f64,
    /// Why the site's origins (or holdfast) count as saturated now, if they do.
    pub(crate) saturated: Option<String>,
    /// Requests waiting for a slot at the origins.
    pub(crate) waiting: u32,
}

/// One pool (a site's origins in one data center) in one tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolObs {
    pub(crate) datacenter: String,
    /// The path route whose pool it is (`checkout`); None: the site's own.
    pub(crate) route: Option<String>,
    pub(crate) origins: u32,
    /// Origins that may take traffic now.
    pub(crate) available: u32,
    /// Origins that tried and answered nothing this tick although they were available.
    pub(crate) failing: u32,
    /// The pool takes traffic (else its data center has failed over).
    pub(crate) eligible: bool,
    /// Tries sent to its origins that got a response head, and their mean time to it.
    pub(crate) answered: u64,
    pub(crate) latency_ms: f64,
    /// Failed tries by kind: `connect_refused`, `connect_timeout`, `response_timeout`,
    /// `reset`, `protocol`, `tls`, `status_5xx` (and health-check failures by the same
    /// names).
    pub(crate) errors: Vec<(&'static str, u64)>,
    /// Answers (to tries and health checks) that said "busy": 503 or 429.
    pub(crate) busy: u64,
    /// Addresses of origins not available or failing (internal).
    pub(crate) down: Vec<String>,
    /// Why TLS with its origins failed this tick, when it did (the latest failure seen).
    pub(crate) tls: Option<crate::upstream::tls::TlsFailure>,
}

impl PoolObs {
    pub(crate) fn error_total(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }
}

/// The shield's flood state in one tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct FloodObs {
    pub(crate) active: bool,
    /// Requests with the flood signature per second (recent).
    pub(crate) suspicious_per_second: f64,
    /// Connections from blocked flood sources refused on accept, per second in the tick.
    pub(crate) refused_per_second: f64,
    /// The rate that makes a flood.
    pub(crate) threshold: f64,
    /// Prefixes blocked now.
    pub(crate) blocked_prefixes: u64,
    /// Distinct addresses and prefixes the flood's requests came from.
    pub(crate) addresses: u64,
    pub(crate) prefixes: u64,
    /// The latest block's reason: the flood's signature in words.
    pub(crate) signature: Option<String>,
    /// Never-seen prefixes arrive in a burst.
    pub(crate) new_prefix_burst: bool,
    /// Slow clients: request heads begun and not finished now; slow heads and bodies
    /// begun, and cut off, per second in the tick; their distinct addresses (recent); and
    /// whether slow bodies (slow POST) outnumber slow heads (slowloris).
    pub(crate) slow_partial_heads: u64,
    pub(crate) slow_per_second: f64,
    pub(crate) slow_cut_per_second: f64,
    pub(crate) slow_sources: u64,
    pub(crate) slow_bodies: bool,
}
