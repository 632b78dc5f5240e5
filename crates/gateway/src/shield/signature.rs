//! Flood signatures: what a request looks like and how it arrived ([`features`]), how
//! suspicious one request is ([`request_score`]), and how a prefix's traffic over a window
//! scores ([`Window::score`]). Pure functions over plain data.
//!
//! A flood spread over thousands of addresses sends a request or two per second per address,
//! so no rate limit sees it; what gives it away is that its requests do not look like a
//! browser's: no User-Agent or an implausible set of headers, a new connection for every
//! request, no cookies, never a sub-resource (CSS, image), and targets made unique with
//! random suffixes so that no cache can answer them.

use http::{HeaderMap, Version};

pub(crate) const NO_UA: u8 = 1;
pub(crate) const IMPLAUSIBLE: u8 = 1 << 1;
pub(crate) const NEW_CONN: u8 = 1 << 2;
pub(crate) const NO_COOKIE: u8 = 1 << 3;
pub(crate) const SUBRESOURCE: u8 = 1 << 4;
pub(crate) const BUSTING: u8 = 1 << 5;
pub(crate) const NEW_PREFIX: u8 = 1 << 6;
/// A visitor cookie seen from many prefixes at once: farmed or shared by a bot.
pub(crate) const SHARED_COOKIE: u8 = 1 << 7;

/// The facts a request shows on its own.
pub(crate) fn features(version: Version, path: &str, headers: &HeaderMap, new_connection: bool) -> u8 {
    let mut f = 0;
    let ua = headers.get(http::header::USER_AGENT).map(|v| v.as_bytes()).filter(|v| !v.is_empty());
    if ua.is_none() {
        f |= NO_UA;
    }
    if implausible(version, ua, headers) {
        f |= IMPLAUSIBLE;
    }
    if new_connection {
        f |= NEW_CONN;
    }
    if !headers.contains_key(http::header::COOKIE) {
        f |= NO_COOKIE;
    }
    if is_subresource(path, headers) {
        f |= SUBRESOURCE;
    }
    f
}

/// Headers no browser would send together: none but Host; HTTP/1.0; no Accept; or a
/// browser's User-Agent without the Accept-Language and Accept-Encoding every browser sends.
fn implausible(version: Version, ua: Option<&[u8]>, headers: &HeaderMap) -> bool {
    if version < Version::HTTP_11 || headers.len() < 3 || !headers.contains_key(http::header::ACCEPT) {
        return true;
    }
    let browser = ua.is_some_and(|ua| ua.starts_with(b"Mozilla/") || ua.starts_with(b"Opera/"));
    browser
        && !(headers.contains_key(http::header::ACCEPT_LANGUAGE) && headers.contains_key(http::header::ACCEPT_ENCODING))
}

/// A style sheet, script, image or font: what a browser fetches after a page.
pub(crate) fn is_subresource(path: &str, headers: &HeaderMap) -> bool {
    if let Some(dest) = headers.get("sec-fetch-dest") {
        return !matches!(dest.as_bytes(), b"document" | b"iframe" | b"empty");
    }
    let path = path.split('?').next().unwrap_or(path);
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "css" | "js" | "mjs" | "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "avif" | "ico" | "woff" | "woff2"
    )
}

/// How suspicious one request is, 0 to 1: weights of what it shows by itself.
pub(crate) fn request_score(f: u8) -> f64 {
    let mut s = 0.0;
    if f & NO_UA != 0 {
        s += 3.0;
    }
    if f & IMPLAUSIBLE != 0 {
        s += 2.0;
    }
    if f & NEW_CONN != 0 {
        s += 2.0;
    }
    if f & NO_COOKIE != 0 {
        s += 1.0;
    }
    if f & BUSTING != 0 {
        s += 2.0;
    }
    if f & SHARED_COOKIE != 0 {
        s += 5.0;
    }
    (s / 10.0_f64).min(1.0)
}

/// A cheap hash of a request target (FNV-1a), for the per-prefix target sketch: not
/// keyed, as nothing is stored by it (an attacker who aims collisions only makes its own
/// traffic look less automated, and the other rules still apply).
pub(crate) fn target_hash(target: &str) -> u64 {
    target.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// What `path` is made of, without what a cache-busting flood randomises: the directory,
/// the first four characters of the last segment, and the names of the query's parameters
/// when they are words (`/search?q=...` -> `/sear?q`; `/checkoutQXZWBT` -> `/chec`;
/// `/?829311` -> `/?#`).
pub(crate) fn stem(path_and_query: &str) -> String {
    let (path, query) = path_and_query.split_once('?').map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let (dir, last) = path.rsplit_once('/').unwrap_or(("", path));
    let mut s = String::with_capacity(dir.len() + 16);
    s.push_str(dir);
    s.push('/');
    s.extend(last.chars().take(4));
    if let Some(q) = query {
        s.push('?');
        for pair in q.split('&').take(4) {
            let name = pair.split('=').next().unwrap_or("");
            if !name.is_empty() && name.len() <= 24 && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
                s.push_str(name);
            } else {
                s.push('#');
            }
            s.push('&');
        }
    }
    s
}

/// One stem's targets over a window: how many requests and, in a 64-bit linear-counting
/// sketch, how many distinct targets.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StemCell {
    pub(crate) window: u32,
    pub(crate) count: u32,
    pub(crate) bits: u64,
}

impl StemCell {
    /// Counts a target (its hash); true when the stem's targets are mostly unique: a flood
    /// defeating the cache.
    pub(crate) fn add(&mut self, window: u32, target_hash: u64) -> bool {
        if self.window != window {
            *self = StemCell { window, count: 0, bits: 0 };
        }
        self.count = self.count.saturating_add(1);
        self.bits |= 1 << (target_hash % 64);
        self.busting()
    }

    pub(crate) fn busting(&self) -> bool {
        let distinct = self.bits.count_ones();
        // 32 requests of a handful of pages set a handful of bits; 32 unique targets set
        // about 25 of 64.
        self.count >= 32 && distinct >= 24
    }
}

/// A prefix's requests over one window.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Window {
    /// The window's number (seconds since the shield's epoch / window length).
    pub(crate) id: u32,
    pub(crate) n: u16,
    pub(crate) no_ua: u16,
    pub(crate) implausible: u16,
    pub(crate) new_conn: u16,
    pub(crate) no_cookie: u16,
    pub(crate) subresource: u16,
    pub(crate) busting: u16,
    pub(crate) new_prefix: bool,
    /// The targets asked for, in a 64-bit linear-counting sketch: a source whose every
    /// request is for a page of its own (random search words) fills it.
    pub(crate) targets: u64,
    /// The window met [`Window::automated`]'s rule; and the window before this one did
    /// (so a new window does not start the source over as a person's until it has shown
    /// itself again: a sub-resource clears it).
    automated: bool,
    carried: bool,
}

impl Window {
    pub(crate) fn add(&mut self, id: u32, f: u8) {
        if self.id != id {
            let carried = self.automated && self.id.wrapping_add(1) == id;
            *self = Window { id, carried, ..Window::default() };
        }
        let b = |flag: u8| u16::from(f & flag != 0);
        self.n = self.n.saturating_add(1);
        self.no_ua = self.no_ua.saturating_add(b(NO_UA));
        self.implausible = self.implausible.saturating_add(b(IMPLAUSIBLE));
        self.new_conn = self.new_conn.saturating_add(b(NEW_CONN));
        self.no_cookie = self.no_cookie.saturating_add(b(NO_COOKIE));
        self.subresource = self.subresource.saturating_add(b(SUBRESOURCE));
        self.busting = self.busting.saturating_add(b(BUSTING));
        self.new_prefix |= f & NEW_PREFIX != 0;
    }

    /// Notes the target of the request just added (its hash).
    pub(crate) fn saw_target(&mut self, hash: u64) {
        self.targets |= 1 << (hash % 64);
    }

    /// The prefix's traffic is no person's browsing, whatever its headers say: at least
    /// `min` requests in the window, not one sub-resource (a browser fetches a page's style
    /// sheets, scripts and images), and nearly every request for a target of its own (a
    /// person comes back to pages and moves between a few; random search words do not).
    /// A source found so in the window before stays so until it fetches a sub-resource.
    pub(crate) fn automated(&mut self, min: u32) -> bool {
        let n = u32::from(self.n);
        // Of n requests for distinct targets, linear counting over 64 bits sets about
        // 64 * (1 - e^(-n/64)); ask for three quarters of that.
        let expected = 64.0 * (1.0 - (-f64::from(n.min(200)) / 64.0).exp());
        let shown = n >= min.max(8) && f64::from(self.targets.count_ones()) >= 0.75 * expected;
        self.automated = self.subresource == 0 && (self.carried || shown);
        self.automated
    }

    /// How much the prefix's traffic looks like a flood, 0 to 1.
    pub(crate) fn score(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let n = f64::from(self.n);
        let share = |c: u16| f64::from(c) / n;
        let mut s = 3.0 * share(self.no_ua)
            + 2.0 * share(self.implausible)
            + 2.0 * share(self.new_conn)
            + share(self.no_cookie)
            + 2.0 * share(self.busting);
        if self.subresource == 0 {
            s += 1.0;
        }
        if self.new_prefix {
            s += 1.0;
        }
        s / 12.0
    }

    /// The prefix's signature, for logs and status: which traits it showed most.
    pub(crate) fn describe(&self) -> String {
        let n = f64::from(self.n.max(1));
        let pct = |c: u16| (f64::from(c) * 100.0 / n).round();
        format!(
            "{} requests: {}% without User-Agent, {}% implausible headers, {}% on new connections, {}% without cookies, {}% sub-resources, {}% cache-busting{}",
            self.n,
            pct(self.no_ua),
            pct(self.implausible),
            pct(self.new_conn),
            pct(self.no_cookie),
            pct(self.subresource),
            pct(self.busting),
            if self.new_prefix { ", never seen before" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    fn browser() -> HeaderMap {
        headers(&[
            ("host", "shop.de"),
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
            ("accept", "text/html"),
            ("accept-language", "de"),
            ("accept-encoding", "gzip"),
            ("cookie", "sid=1"),
        ])
    }

    #[test]
    fn loic_is_suspicious_and_a_browser_is_not() {
        let loic = features(Version::HTTP_11, "/checkoutQWERTY", &headers(&[("host", "shop.de")]), true);
        assert_eq!(loic, NO_UA | IMPLAUSIBLE | NEW_CONN | NO_COOKIE);
        assert!(request_score(loic) >= 0.5);
        let b = features(Version::HTTP_11, "/", &browser(), false);
        assert_eq!(b, 0);
        let first_visit = features(Version::HTTP_11, "/", &browser(), true) | NO_COOKIE;
        assert!(request_score(first_visit) < 0.5);
        let css = features(Version::HTTP_2, "/static/shop.css", &browser(), false);
        assert_eq!(css, SUBRESOURCE);
        // A browser User-Agent without the headers browsers always send.
        let fake = headers(&[("host", "x"), ("user-agent", "Mozilla/5.0"), ("accept", "*/*")]);
        assert_ne!(features(Version::HTTP_11, "/", &fake, false) & IMPLAUSIBLE, 0);
        // curl is not a browser and does not pretend to be.
        let curl = headers(&[("host", "x"), ("user-agent", "curl/8.5.0"), ("accept", "*/*")]);
        assert_eq!(features(Version::HTTP_11, "/", &curl, false) & (IMPLAUSIBLE | NO_UA), 0);
    }

    #[test]
    fn stems_drop_what_floods_randomise() {
        assert_eq!(stem("/checkoutQWERTY"), stem("/checkoutASDFGH"));
        assert_eq!(stem("/search?q=train"), "/sear?q&");
        assert_eq!(stem("/?829311"), "/?#&");
        assert_ne!(stem("/p/1"), stem("/c/toys"));
    }

    #[test]
    fn cache_busting_needs_many_unique_targets() {
        let mut c = StemCell::default();
        let mut busting = false;
        for i in 0..40u64 {
            busting = c.add(1, i % 3);
        }
        assert!(!busting, "the same three pages again and again");
        let mut c = StemCell::default();
        for i in 0..40u64 {
            busting = c.add(1, i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7);
        }
        assert!(busting);
        assert!(!c.add(2, 1), "a new window starts over");
    }

    #[test]
    fn window_scores() {
        let mut flood = Window::default();
        for _ in 0..20 {
            flood.add(5, NO_UA | IMPLAUSIBLE | NEW_CONN | NO_COOKIE | BUSTING);
        }
        assert!(flood.score() > 0.8, "{}", flood.score());
        let mut shopper = Window::default();
        shopper.add(5, NEW_CONN | NO_COOKIE);
        for i in 0..19 {
            shopper.add(5, if i % 3 == 0 { SUBRESOURCE } else { 0 });
        }
        assert!(shopper.score() < 0.2, "{}", shopper.score());
        // A crowd of new shoppers from never-seen prefixes is still not a flood.
        let mut crowd = Window::default();
        crowd.add(5, NEW_CONN | NO_COOKIE | NEW_PREFIX);
        for _ in 0..7 {
            crowd.add(5, 0);
        }
        crowd.add(5, SUBRESOURCE);
        assert!(crowd.score() < 0.3, "{}", crowd.score());
        assert!(flood.describe().contains("100% without User-Agent"));
        // Browser-like requests, each for a page of its own and never an asset: no
        // person's browsing. A shopper's requests (assets, pages again) are.
        let mut bot = Window::default();
        for i in 0..12u64 {
            bot.add(5, 0);
            bot.saw_target(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7);
        }
        assert!(bot.automated(8));
        let mut person = Window::default();
        for i in 0..12u64 {
            person.add(5, if i % 4 == 1 { SUBRESOURCE } else { 0 });
            person.saw_target(i % 5);
        }
        assert!(!person.automated(8));
        let mut reader = Window::default();
        for i in 0..12u64 {
            reader.add(5, 0);
            reader.saw_target(i % 3);
        }
        assert!(!reader.automated(8), "the same few pages again: a person reading");
        // Found so, a source stays so in the next window from its first request, until it
        // fetches a sub-resource.
        bot.add(6, 0);
        assert!(bot.automated(8), "carried into the next window");
        bot.add(6, SUBRESOURCE);
        assert!(!bot.automated(8), "a sub-resource clears it");
        bot.add(8, 0);
        assert!(!bot.automated(8), "not carried over a window with none of its requests");
        flood.add(6, 0);
        assert_eq!(flood.n, 1, "a new window starts over");
    }
}
