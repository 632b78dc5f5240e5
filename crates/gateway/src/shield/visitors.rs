//! Visitors and the shared addresses they come from. Many shoppers share one address
//! behind a carrier's NAT, a company's proxy, a university's or a hotel's network; counted
//! as one client, they were refused as one (300 shoppers behind 3 addresses: 6.5% of their
//! page views served). Here a visitor is whoever holds a valid visitor cookie issued to its
//! prefix (HMAC-signed, [`super::challenge::Keys::visitor`]):
//!
//! - its requests count against its own limit (`per_visitor`), not its address's plain one;
//! - its address's limit for visitors' requests is `per_visitor` times the visitors that
//!   showed a browser's behaviour there (fetched a sub-resource) in this window or the one
//!   before, at most `max_per_address` of them, never below the plain per-address limit;
//!   the prefix's limit still bounds them all;
//! - an address is given at most `new_per_address` new cookies (a bot cannot mint
//!   visitors faster than that);
//! - a cookie presented from `max_prefixes` prefixes other than its own in one window is
//!   a bot's (a farmed or shared cookie): limited as its address, never first in line.
//!
//! A request without a valid cookie counts against its address as before. The state: a
//! cell per visitor seen recently and one per address that carries visitors, in the
//! shield's bounded tables, swept when idle.

use super::gcra::{Gcra, Tick};
use super::table::Table;
use std::net::IpAddr;

/// Addresses carrying visitors, at most.
const MAX_SHARED_ADDRS: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct VisitorCell {
    tat: Tick,
    last: Tick,
    /// The address (its key) and window it was last counted at.
    addr: u64,
    window: u32,
    /// It fetched a sub-resource: a browser, as far as one can tell.
    browser: bool,
    /// Other prefixes its cookie came from in `foreign_window` (16-bit tags); as many as
    /// `[shield.visitors] max_prefixes` may be (at most four).
    foreign: [u16; 4],
    foreign_n: u8,
    foreign_window: u32,
    bot: bool,
}

#[derive(Debug, Clone, Copy)]
struct AddrCell {
    ip: IpAddr,
    window: u32,
    /// Browsing visitors counted in this window and the one before.
    current: u32,
    previous: u32,
    /// The visitors' shared limit, and new cookies given.
    tat: Tick,
    issue_tat: Tick,
    last: Tick,
}

impl AddrCell {
    fn visitors(&self, window: u32) -> u32 {
        match window.wrapping_sub(self.window) {
            0 => self.current.max(self.previous),
            1 => self.current,
            _ => 0,
        }
    }

    fn roll(&mut self, window: u32) {
        match window.wrapping_sub(self.window) {
            0 => {}
            1 => (self.previous, self.current) = (self.current, 0),
            _ => (self.previous, self.current) = (0, 0),
        }
        self.window = window;
    }
}

/// How a request's visitor cookie stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// None, or not valid.
    Unknown,
    /// A visitor of this prefix: counted against its own limits.
    Visitor(u64),
    /// A genuine cookie issued to another prefix (a shopper who moved, or a cookie carried
    /// elsewhere): counted against its address, re-issued here.
    Moved,
    /// A cookie seen from too many prefixes: a bot's.
    Bot,
}

/// A shared address, for /status.json.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SharedAddress {
    pub(crate) address: String,
    /// Visitors seen behind it recently.
    pub(crate) visitors: u32,
}

pub(crate) struct Visitors {
    cells: Table<VisitorCell>,
    addrs: Table<AddrCell>,
}

/// Where and when a request is judged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub(crate) ip: IpAddr,
    /// The client's prefix, as the shield's prefix table keys it (a keyed hash: its low
    /// 16 bits tag the prefix here, and an attacker cannot choose prefixes that collide).
    pub(crate) prefix_key: u64,
    pub(crate) t: Tick,
    pub(crate) window: u32,
}

impl Visitors {
    pub(crate) fn new(max_visitors: usize) -> Visitors {
        Visitors { cells: Table::new(max_visitors), addrs: Table::new(MAX_SHARED_ADDRS) }
    }

    /// Notes a request whose cookie names visitor `id` (`here`: issued to its prefix) and
    /// says how it stands. `subresource`: the request is for a style sheet, script, image.
    pub(crate) fn note(&self, id: u64, here: bool, subresource: bool, at: At, max_prefixes: u8) -> Standing {
        let key = self.cells.key(&id);
        // The address it is counted at (a visitor of this prefix only).
        let akey = if here { self.addrs.key(&at.ip) } else { 0 };
        let tag = at.prefix_key as u16;
        let fresh = VisitorCell {
            tat: at.t,
            last: at.t,
            addr: 0,
            window: u32::MAX,
            browser: false,
            foreign: [0; 4],
            foreign_n: 0,
            foreign_window: at.window,
            bot: false,
        };
        let mut count_at_addr = false;
        let standing = self.cells.with(
            key,
            || fresh,
            |c| {
                c.last = at.t;
                if !here {
                    if c.foreign_window != at.window {
                        (c.foreign_window, c.foreign_n) = (at.window, 0);
                    }
                    let n = usize::from(c.foreign_n).min(c.foreign.len());
                    if !c.foreign[..n].contains(&tag) {
                        if n < c.foreign.len() {
                            c.foreign[n] = tag;
                        }
                        c.foreign_n = c.foreign_n.saturating_add(1);
                    }
                    if c.foreign_n >= max_prefixes.max(1) {
                        c.bot = true;
                    }
                    return if c.bot { Standing::Bot } else { Standing::Moved };
                }
                if c.bot {
                    return Standing::Bot;
                }
                c.browser |= subresource;
                if c.browser && (c.addr != akey || c.window != at.window) {
                    (c.addr, c.window) = (akey, at.window);
                    count_at_addr = true;
                }
                Standing::Visitor(id)
            },
        );
        if count_at_addr {
            self.addrs.with(
                akey,
                || self.fresh_addr(at),
                |a| {
                    a.roll(at.window);
                    a.current = a.current.saturating_add(1);
                    a.last = at.t;
                },
            );
        }
        // A table full of visitors: this one is not tracked, and counts as its address.
        standing.unwrap_or(Standing::Unknown)
    }

    fn fresh_addr(&self, at: At) -> AddrCell {
        AddrCell { ip: at.ip, window: at.window, current: 0, previous: 0, tat: at.t, issue_tat: at.t, last: at.t }
    }

    /// Counts a visitor's request against its own limit; Err: how long until it conforms.
    pub(crate) fn check_visitor(&self, id: u64, g: &Gcra, t: Tick) -> Result<(), std::time::Duration> {
        let key = self.cells.key(&id);
        self.cells.get(key, |c| g.check(&mut c.tat, t)).unwrap_or(Ok(()))
    }

    /// Counts a visitor's request against its address's limit for visitors: `g` (one
    /// visitor's) times the visitors seen there, at most `max`; never tighter than `plain`
    /// (the per-address limit), which applies alone when the address carries none yet.
    pub(crate) fn check_address(
        &self,
        g: &Gcra,
        plain: Option<&Gcra>,
        max: u32,
        at: At,
    ) -> Option<Result<(), std::time::Duration>> {
        let akey = self.addrs.key(&at.ip);
        self.addrs.with(
            akey,
            || self.fresh_addr(at),
            |a| {
                a.last = at.t;
                a.roll(at.window);
                let n = a.visitors(at.window).clamp(1, max.max(1));
                let scaled = g.scaled(n as f32);
                match plain {
                    Some(p) if p.looser_than(&scaled) => p.check(&mut a.tat, at.t),
                    _ => scaled.check(&mut a.tat, at.t),
                }
            },
        )
    }

    /// May the address be given a new visitor cookie now (counted if so)?
    pub(crate) fn may_issue(&self, g: Option<&Gcra>, at: At) -> bool {
        let Some(g) = g else { return true };
        let akey = self.addrs.key(&at.ip);
        self.addrs
            .with(
                akey,
                || self.fresh_addr(at),
                |a| {
                    a.last = at.t;
                    g.check(&mut a.issue_tat, at.t).is_ok()
                },
            )
            .unwrap_or(false)
    }

    /// The addresses carrying more than one visitor now, most first (at most `n`).
    pub(crate) fn shared(&self, window: u32, n: usize) -> Vec<SharedAddress> {
        let mut out = Vec::new();
        self.addrs.for_each(|a| {
            let visitors = a.visitors(window);
            if visitors > 1 {
                out.push(SharedAddress { address: a.ip.to_string(), visitors });
            }
        });
        out.sort_by(|a, b| b.visitors.cmp(&a.visitors).then_with(|| a.address.cmp(&b.address)));
        out.truncate(n);
        out
    }

    /// Drops the state of visitors and addresses idle longer than `idle` ticks.
    pub(crate) fn sweep(&self, t: Tick, idle: u64) {
        self.cells.retain(|c| !Gcra::idle(c.last, t, idle));
        self.addrs.retain(|a| !Gcra::idle(a.last, t, idle));
    }

    pub(crate) fn len(&self) -> (usize, usize) {
        (self.cells.len(), self.addrs.len())
    }

    pub(crate) fn bytes(&self) -> usize {
        self.cells.bytes() + self.addrs.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::shield::Limit;

    fn at(ip: [u8; 4], prefix_key: u64, t: Tick, window: u32) -> At {
        At { ip: IpAddr::from(ip), prefix_key, t, window }
    }

    #[test]
    fn an_address_limit_grows_with_the_browsing_visitors_behind_it_within_its_bound() {
        let v = Visitors::new(10_000);
        let one = Gcra::new(Limit { rate: 10.0, burst: 10 }).unwrap();
        let plain = Gcra::new(Limit { rate: 50.0, burst: 50 }).unwrap();
        let a = at([203, 0, 113, 7], 1, 1000, 5);
        // 100 visitors behind it, each having fetched an asset.
        for id in 0..100u64 {
            assert_eq!(v.note(id, true, true, a, 3), Standing::Visitor(id));
        }
        assert_eq!(v.shared(5, 10)[0].visitors, 100);
        // The address's limit for them: 100 x 10/s with 100 x ... of burst in time: the
        // burst tolerance stays 0.9 s, so about 100 x 10 = 1,000 requests at once.
        let passed = (0..2000).filter(|_| v.check_address(&one, Some(&plain), 256, a) == Some(Ok(()))).count();
        assert!((900..=1100).contains(&passed), "{passed}");
        // Bounded: 1,000 visitors count as 256.
        let b = at([203, 0, 113, 8], 1, 1000, 5);
        for id in 1000..2000u64 {
            v.note(id, true, true, b, 3);
        }
        let passed = (0..5000).filter(|_| v.check_address(&one, Some(&plain), 256, b) == Some(Ok(()))).count();
        assert!((2300..=2700).contains(&passed), "{passed}");
        // Visitors that never behaved like a browser do not widen it: the plain limit.
        let c = at([203, 0, 113, 9], 1, 1000, 5);
        for id in 5000..5100u64 {
            v.note(id, true, false, c, 3);
        }
        let passed = (0..500).filter(|_| v.check_address(&one, Some(&plain), 256, c) == Some(Ok(()))).count();
        assert_eq!(passed, 50, "the plain per-address limit");
    }

    #[test]
    fn a_cookie_from_many_prefixes_is_a_bots() {
        let v = Visitors::new(1000);
        assert_eq!(v.note(7, true, true, at([10, 0, 0, 1], 1, 0, 1), 3), Standing::Visitor(7));
        assert_eq!(v.note(7, false, true, at([10, 0, 1, 1], 2, 0, 1), 3), Standing::Moved);
        assert_eq!(v.note(7, false, true, at([10, 0, 1, 2], 2, 0, 1), 3), Standing::Moved, "same prefix again");
        assert_eq!(v.note(7, false, true, at([10, 0, 2, 1], 3, 0, 1), 3), Standing::Moved);
        assert_eq!(v.note(7, false, true, at([10, 0, 3, 1], 4, 0, 1), 3), Standing::Bot);
        assert_eq!(v.note(7, true, true, at([10, 0, 0, 1], 1, 0, 1), 3), Standing::Bot, "at home too");
    }

    #[test]
    fn new_cookies_per_address_are_bounded() {
        let v = Visitors::new(1000);
        let g = Gcra::new(Limit { rate: 5.0, burst: 20 }).unwrap();
        let a = at([198, 51, 100, 1], 1, 0, 0);
        assert_eq!((0..100).filter(|_| v.may_issue(Some(&g), a)).count(), 20);
        let later = at([198, 51, 100, 1], 1, super::super::gcra::TICKS_PER_SEC as Tick, 0);
        assert_eq!((0..100).filter(|_| v.may_issue(Some(&g), later)).count(), 5, "5 a second after the burst");
    }
}
