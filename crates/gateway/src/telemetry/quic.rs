//! QUIC's metrics, also read back for /status.json: connections open now, connection
//! attempts by how each ended (accepted, sent a Retry, refused by the shield or the
//! connection cap, handshake failed), and HTTP/3 request streams.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub(crate) outcome: &'static str,
}

/// How a QUIC connection attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handshake completed: the connection serves HTTP/3.
    Accepted,
    /// Asked to prove its address first (a Retry, RFC 9000 §8.1.2); no state was kept.
    Retried,
    /// Refused before the handshake: by the shield, or the connection cap.
    Refused,
    /// The handshake failed or timed out.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 4] = [Outcome::Accepted, Outcome::Retried, Outcome::Refused, Outcome::Failed];

    fn label(self) -> OutcomeLabel {
        OutcomeLabel {
            outcome: match self {
                Outcome::Accepted => "accepted",
                Outcome::Retried => "retried",
                Outcome::Refused => "refused",
                Outcome::Failed => "failed",
            },
        }
    }
}

pub(crate) struct QuicMetrics {
    open: Gauge,
    connections: Family<OutcomeLabel, Counter>,
    streams: Counter,
}

/// QUIC's counts, as /status.json shows them.
#[derive(Debug, Serialize)]
pub(crate) struct QuicView {
    pub(crate) connections_open: u64,
    pub(crate) accepted: u64,
    pub(crate) retried: u64,
    pub(crate) refused: u64,
    pub(crate) failed: u64,
    pub(crate) streams: u64,
}

impl QuicMetrics {
    pub(crate) fn register(registry: &mut Registry) -> QuicMetrics {
        let m = QuicMetrics { open: Gauge::default(), connections: Family::default(), streams: Counter::default() };
        registry.register("quic_connections_open", "QUIC (HTTP/3) client connections open now", m.open.clone());
        registry.register(
            "quic_connections",
            "QUIC connection attempts, by outcome (accepted, retried, refused, failed)",
            m.connections.clone(),
        );
        registry.register("quic_streams", "HTTP/3 request streams accepted", m.streams.clone());
        m
    }

    /// A connection attempt ended so.
    pub(crate) fn attempt(&self, outcome: Outcome) {
        self.connections.get_or_create(&outcome.label()).inc();
    }

    /// A connection opens (+1) or closes (-1).
    pub(crate) fn open(&self, delta: i64) {
        self.open.inc_by(delta);
    }

    pub(crate) fn stream(&self) {
        self.streams.inc();
    }

    pub(crate) fn view(&self) -> QuicView {
        let n = |o: Outcome| self.connections.get_or_create(&o.label()).get();
        let [accepted, retried, refused, failed] = Outcome::ALL.map(n);
        QuicView {
            connections_open: self.open.get().max(0) as u64,
            accepted,
            retried,
            refused,
            failed,
            streams: self.streams.get(),
        }
    }
}
