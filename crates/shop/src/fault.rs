//! Failure injection for one shop origin, switchable at run time:
//! - `Refused`: the listener is closed and open connections are dropped (process gone);
//! - `Blackhole`: connections are accepted and held, requests never answered (dead
//!   network hardware), including requests on connections opened before;
//! - `Slow(d)`: every response waits `d` more;
//! - `Errors(p)`: a share `p` of requests get 503.

use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    None,
    Refused,
    Blackhole,
    Slow(Duration),
    Errors(f64),
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
    pub fn set(&self, fault: Fault) {
        self.tx.send_replace(fault);
    }

    pub fn get(&self) -> Fault {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Fault> {
        self.tx.subscribe()
    }
}
