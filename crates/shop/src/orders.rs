//! Orders placed at one shop origin. An `Idempotency-Key` seen before returns the order it
//! placed first, so a retried checkout never places a second order.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// One placed order.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    /// `DATACENTER-N`: where it was placed, and its number there.
    pub id: String,
    /// The products ordered.
    pub items: Vec<usize>,
    /// The key the checkout carried, if any.
    pub idempotency_key: Option<String>,
}

/// Bounded: the oldest orders are forgotten past `MAX_ORDERS` (counts stay exact).
const MAX_ORDERS: usize = 100_000;

/// The orders of one shop origin.
pub struct Orders {
    prefix: String,
    next: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    list: Vec<Order>,
    by_key: HashMap<String, usize>,
    repeated: u64,
}

/// What a shop's orders look like, for the drill's duplicate check.
#[derive(Serialize)]
pub struct Summary {
    /// Orders placed.
    pub placed: u64,
    /// Checkouts whose key had placed an order already (answered with that order).
    pub repeated_keys: u64,
    /// The orders (the most recent, bounded).
    pub orders: Vec<Order>,
}

impl Orders {
    /// No orders yet; ids are prefixed with `datacenter`.
    pub fn new(datacenter: &str) -> Orders {
        Orders { prefix: datacenter.to_string(), next: AtomicU64::new(1), inner: Mutex::new(Inner::default()) }
    }

    /// Places an order, or returns the earlier one with the same key (and `true`).
    pub fn place(&self, key: Option<String>, items: Vec<usize>) -> (Order, bool) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Order { id: "unavailable".into(), items, idempotency_key: key }, false);
        };
        if let Some(k) = &key {
            if let Some(&i) = inner.by_key.get(k) {
                if let Some(o) = inner.list.get(i).cloned() {
                    inner.repeated += 1;
                    return (o, true);
                }
            }
        }
        let id = format!("{}-{}", self.prefix, self.next.fetch_add(1, Relaxed));
        let order = Order { id, items, idempotency_key: key.clone() };
        if inner.list.len() >= MAX_ORDERS {
            inner.list.clear();
            inner.by_key.clear();
        }
        let idx = inner.list.len();
        inner.list.push(order.clone());
        if let Some(k) = key {
            inner.by_key.insert(k, idx);
        }
        (order, false)
    }

    /// Orders placed so far.
    pub fn placed(&self) -> u64 {
        self.next.load(Relaxed) - 1
    }

    /// Counts and the recent orders.
    pub fn summary(&self) -> Summary {
        let (orders, repeated) = match self.inner.lock() {
            Ok(i) => (i.list.clone(), i.repeated),
            Err(_) => (Vec::new(), 0),
        };
        Summary { placed: self.placed(), repeated_keys: repeated, orders }
    }
}
