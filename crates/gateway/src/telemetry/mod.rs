//! Telemetry: the one handle for counting and telling what happened. It owns the Prometheus
//! registry and its metric families ([`metrics`], the shield's in [`shield`]), the recent
//! state changes ([`events`]), and where requests are in their life ([`Phase`],
//! [`RequestPhase`]). A leaf: it imports nothing from the rest of the gateway, and a module
//! that only counts gets this handle, not the whole gateway.

pub(crate) mod events;
pub(crate) mod metrics;
pub(crate) mod quic;
pub(crate) mod shield;

pub(crate) use events::{Event, EventLog};
pub(crate) use metrics::Metrics;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

/// Metrics, events and request phases.
pub(crate) struct Telemetry {
    pub(crate) metrics: Metrics,
    pub(crate) events: EventLog,
    pub(crate) requests: Arc<RequestGauges>,
    /// Tunnels (WebSocket and other upgrades) open now and in all.
    pub(crate) tunnels: crate::proxy::tunnel::TunnelCounts,
}

impl Telemetry {
    pub(crate) fn new() -> Telemetry {
        let mut metrics = Metrics::new();
        let requests = Arc::new(RequestGauges::register(&mut metrics));
        Telemetry { metrics, events: EventLog::default(), requests, tunnels: Default::default() }
    }

    /// Records a state change: logged, counted, kept for /status.json.
    pub(crate) fn event(&self, e: Event) {
        self.events.push(&self.metrics, e);
    }
}

/// Where a request is in its life. Each phase counts the requests in it now
/// (`/status.json` `requests`, metric `holdfast_requests_in_phase`), and a request that is
/// cancelled (its client reset the stream or hung up) is logged and counted with the phase
/// it was cancelled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Host, route, the shield's judgement, limits, the cache lookup: no waiting.
    Route = 0,
    /// Waiting for another request's fetch of the same page (a collapsed cache miss).
    CacheFill,
    /// Waiting in the admission queue for a slot at the origins.
    Admission,
    /// Connecting to an origin.
    Connect,
    /// Reading the client's request body and sending it to the origin.
    Upload,
    /// Waiting for the origin's response head.
    ResponseHeaders,
    /// Sending the response body to the client.
    ResponseBody,
}

impl Phase {
    pub(crate) const ALL: [Phase; 7] = [
        Phase::Route,
        Phase::CacheFill,
        Phase::Admission,
        Phase::Connect,
        Phase::Upload,
        Phase::ResponseHeaders,
        Phase::ResponseBody,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Route => "route",
            Phase::CacheFill => "cache_fill",
            Phase::Admission => "admission",
            Phase::Connect => "connect",
            Phase::Upload => "upload",
            Phase::ResponseHeaders => "response_headers",
            Phase::ResponseBody => "response_body",
        }
    }

    fn from_u8(v: u8) -> Phase {
        Phase::ALL.get(usize::from(v)).copied().unwrap_or(Phase::Route)
    }
}

/// Requests in each phase now, and requests cancelled in each phase since start.
#[derive(Debug)]
pub(crate) struct RequestGauges {
    in_phase: [Gauge; 7],
    cancelled: [Counter; 7],
}

/// Requests in each phase now, for /status.json.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestsView {
    pub(crate) in_flight: i64,
    pub(crate) by_phase: std::collections::BTreeMap<&'static str, i64>,
    pub(crate) cancelled: std::collections::BTreeMap<&'static str, u64>,
}

impl RequestGauges {
    fn register(metrics: &mut Metrics) -> RequestGauges {
        let (in_phase, cancelled) = metrics.request_phases();
        RequestGauges {
            in_phase: Phase::ALL.map(|p| in_phase.get_or_create(&metrics::PhaseLabel { phase: p.as_str() }).clone()),
            cancelled: Phase::ALL.map(|p| cancelled.get_or_create(&metrics::PhaseLabel { phase: p.as_str() }).clone()),
        }
    }

    /// A request was cancelled in `phase`.
    pub(crate) fn cancelled(&self, phase: Phase) {
        self.cancelled[phase as usize].inc();
    }

    pub(crate) fn view(&self) -> RequestsView {
        let by_phase: std::collections::BTreeMap<_, _> =
            Phase::ALL.iter().map(|p| (p.as_str(), self.in_phase[*p as usize].get())).collect();
        RequestsView {
            in_flight: by_phase.values().sum(),
            by_phase,
            cancelled: Phase::ALL.iter().map(|p| (p.as_str(), self.cancelled[*p as usize].get())).collect(),
        }
    }
}

/// One request's phase, counted in [`RequestGauges`] from its creation until it is dropped
/// (a guard: a request dropped at any `.await` leaves its phase's count as it found it).
#[derive(Debug)]
pub(crate) struct RequestPhase {
    gauges: Option<Arc<RequestGauges>>,
    current: AtomicU8,
}

impl RequestPhase {
    /// A client request, counted from now in [`Phase::Route`].
    pub(crate) fn counted(gauges: &Arc<RequestGauges>) -> RequestPhase {
        gauges.in_phase[Phase::Route as usize].inc();
        RequestPhase { gauges: Some(gauges.clone()), current: AtomicU8::new(Phase::Route as u8) }
    }

    /// A request of holdfast's own (a background refresh): phases kept, not counted.
    pub(crate) fn uncounted() -> RequestPhase {
        RequestPhase { gauges: None, current: AtomicU8::new(Phase::Route as u8) }
    }

    /// Moves the request to `phase`.
    pub(crate) fn enter(&self, phase: Phase) {
        let old = self.current.swap(phase as u8, Relaxed);
        if old != phase as u8 {
            if let Some(g) = &self.gauges {
                g.in_phase[usize::from(old)].dec();
                g.in_phase[phase as usize].inc();
            }
        }
    }

    pub(crate) fn get(&self) -> Phase {
        Phase::from_u8(self.current.load(Relaxed))
    }
}

impl Drop for RequestPhase {
    fn drop(&mut self) {
        if let Some(g) = &self.gauges {
            g.in_phase[usize::from(self.current.load(Relaxed))].dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_counted_while_the_request_is_in_it_and_never_after() {
        let t = Telemetry::new();
        let a = RequestPhase::counted(&t.requests);
        let b = RequestPhase::counted(&t.requests);
        a.enter(Phase::Admission);
        a.enter(Phase::Admission);
        b.enter(Phase::ResponseHeaders);
        let v = t.requests.view();
        assert_eq!((v.in_flight, v.by_phase["admission"], v.by_phase["route"]), (2, 1, 0));
        drop(a);
        b.enter(Phase::ResponseBody);
        let v = t.requests.view();
        assert_eq!((v.in_flight, v.by_phase["admission"], v.by_phase["response_body"]), (1, 0, 1));
        drop(b);
        assert_eq!(t.requests.view().in_flight, 0);
        let own = RequestPhase::uncounted();
        own.enter(Phase::Connect);
        assert_eq!(t.requests.view().in_flight, 0);
    }
}
