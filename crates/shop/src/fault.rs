//! Failure injection for one shop origin, switchable at run time:
//! - `Refused`: the listener is closed and open connections are dropped (process gone);
//! - `Blackhole`: connections are accepted and held, requests never answered (dead
//!   network hardware), including requests on connections opened before;
//! - `Slow(d)`: every response waits `d` more;
//! - `Errors(p)`: a share `p` of requests get 500 (a broken release, a dead database
//!   behind it); an overloaded origin's 503 is the capacity limit's (`ShopConfig::capacity`);
//! - `ExpiredCertificate`: a shop serving TLS (`ShopConfig::tls`) shows new connections a
//!   certificate past its end; connections already open go on, as they do when a real
//!   certificate runs out. A plain-HTTP client (the drill's direct run) is refused, as a
//!   browser refuses the page.

use std::time::Duration;
use tokio::sync::watch;

/// A failure the shop shows (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// It works.
    None,
    /// Its process is gone: connections refused.
    Refused,
    /// Its network is dead: connections accepted, nothing answered.
    Blackhole,
    /// Every response waits this much more.
    Slow(Duration),
    /// This share of requests gets 500.
    Errors(f64),
    /// New TLS connections see an expired certificate.
    ExpiredCertificate,
}

/// The switch the drill (or a test) holds; shops watch it.
#[derive(Debug, Clone)]
pub struct FaultSwitch {
    tx: watch::Sender<Fault>,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        FaultSwitch { tx: watch::channel(Fault::None).0 }
    }
}

impl FaultSwitch {
    /// Switches the shop to `fault` (from now on, for open connections too).
    pub fn set(&self, fault: Fault) {
        self.tx.send_replace(fault);
    }

    /// The fault in force.
    pub fn get(&self) -> Fault {
        *self.tx.borrow()
    }

    /// Follows the switch.
    pub fn subscribe(&self) -> watch::Receiver<Fault> {
        self.tx.subscribe()
    }
}
