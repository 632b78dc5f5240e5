//! The shield's judgement of one request (after routing, before the cache): client
//! identity, blocks, rate limits by class, address and prefix, the prefix's flood
//! signature, the challenge rule, and the request's admission priority.

use super::*;
use visitors::Standing;

impl Shield {
    /// Judges one request (after routing, before the cache).
    pub(crate) fn check(&self, rt: &ShieldRt, f: &Facts, rep: &Telemetry, now: Instant) -> Verdict {
        let client = rt.client(f.peer, f.headers);
        let ip = client.ip;
        if !rt.cfg.enabled || rt.exempt(ip) {
            // Allowed networks are never shed either: first in line for the origins.
            return Verdict {
                action: None,
                client,
                priority: Priority::Critical,
                visitor_cookie: None,
                suspicious: false,
            };
        }
        let cfg = &rt.cfg;
        let dry = cfg.mode == ShieldMode::DryRun;
        let unix = crate::clock::unix_secs();
        let keys = self.keys.load();
        // The prefix in words, made only when a cookie is checked or given.
        let prefix_text = std::cell::OnceCell::new();
        let prefix = || prefix_text.get_or_init(|| client.prefix.to_string()).as_str();
        let cleared =
            challenge::cookie(f.headers, challenge::CLEARANCE).is_some_and(|c| keys.1.clearance_ok(c, prefix(), unix));
        let cookie =
            challenge::cookie(f.headers, challenge::VISITOR).and_then(|c| keys.1.visitor_check(c, prefix(), unix));
        let at = self.at(rt, client, now);
        let standing = match cookie {
            Some(v) if cfg.visitors.enabled => {
                let sub = signature::is_subresource(f.path_and_query, f.headers);
                self.visitors.note(v.id, v.here, sub, at, cfg.visitors.max_prefixes)
            }
            _ => Standing::Unknown,
        };
        // A bot's cookie (seen from too many prefixes) earns nothing, priority included.
        let visitor_since = cookie.filter(|_| standing != Standing::Bot).map(|v| v.issued);
        let visitor_cookie = self.visitor_cookie(rt, cookie, standing, prefix, at, unix, &keys.1);
        let surge = self.surge_start(f.site_load);
        // When the client's prefix was first seen (seconds since the shield's epoch); read
        // while judging, under the prefix cell's lock the judgement takes anyway.
        let mut seen = Seen::default();
        let verdict = match self.blocked(rt, ip, now) {
            // A blocked client's request counts as the flood traffic it was blocked for.
            Some(reason) => {
                seen.suspicious = true;
                Some((Kind::Block, reason))
            }
            None => self.judge(&Judging { rt, f, client, cleared, standing, at, rep, now }, &mut seen),
        };
        let (first_seen, suspicious) = (seen.first_seen, seen.suspicious);
        let path = f.path_and_query;
        let critical = cleared
            || cfg.admission.priority_paths.iter().any(|p| path_in(path, p))
            || visitor_since.is_some_and(|v| surge.is_none_or(|s| v < s));
        let priority = if critical {
            Priority::Critical
        } else if surge.is_none_or(|s| first_seen.is_some_and(|f| self.epoch_unix + u64::from(f) < s)) {
            Priority::Known
        } else {
            Priority::Other
        };
        let Some((action, reason)) = verdict else {
            return Verdict { action: None, client, priority, visitor_cookie, suspicious };
        };
        self.top.add(client.prefix, 1);
        let (name, action) = match action {
            Kind::Block => ("block", Action::Block { reason }),
            Kind::Close => ("close", Action::Close { reason }),
            Kind::Reject(retry_after) => ("reject", Action::Reject { reason, retry_after }),
            Kind::Challenge => ("challenge", Action::Challenge { reason, difficulty: self.difficulty(cfg) }),
        };
        if dry {
            rep.metrics.shield.action(&format!("dry_run_{name}"), reason, f.site);
            return Verdict { action: None, client, priority, visitor_cookie, suspicious };
        }
        rep.metrics.shield.action(name, reason, f.site);
        Verdict { action: Some(action), client, priority, visitor_cookie, suspicious }
    }

    /// The signature, the rate limits and the challenge rule, in that order; None passes.
    /// Notes in `seen` when the client's prefix was first seen, if it is tracked, and
    /// whether the request looks like a flood's.
    fn judge(&self, j: &Judging, seen: &mut Seen) -> Option<(Kind, &'static str)> {
        let Judging { rt, f, client, cleared, standing, at, rep, now } = *j;
        let cfg = &rt.cfg;
        // The tick and window were read once, for the visitors' table.
        let (t, window_id) = (at.t, at.window);
        let secs = self.secs(now);
        let sig = &cfg.signatures;
        let mut feats = signature::features(f.version, f.path_and_query, f.headers, f.new_connection);
        // A newsletter's landing (`?utm_…`) is not a page of its own, nor cache-busting.
        let page = crate::util::without_params(f.path_and_query, f.ignored_params);
        if standing == Standing::Bot {
            feats |= signature::SHARED_COOKIE;
        }
        if sig.enabled && signature::request_score(feats) >= 0.3 {
            let stem = signature::stem(&page);
            let key = self.stems.key(&(f.site, &stem));
            let target = self.stems.key(&page);
            let busting =
                self.stems.with(key, signature::StemCell::default, |c| c.add(window_id, target)).unwrap_or(false);
            if busting {
                feats |= signature::BUSTING;
            }
        }
        let mut suspicious = !cleared && signature::request_score(feats) >= 0.5;
        seen.suspicious = suspicious;
        if suspicious {
            self.witness.saw(client.ip, client.prefix, u16::from(feats));
        }
        let mut flood = if suspicious { self.flood.suspicious(sig.flood_rate, t) } else { self.flood.active() }
            // Another point of presence of the fleet is in a flood: so is this one.
            || self.shared.fleet_flood.load(std::sync::atomic::Ordering::Relaxed);

        // Rate limits, tightest first: the path class, the address, the prefix. A request
        // over one limit takes no token from the next.
        let mut over: Option<(RateAction, Duration, &'static str)> = None;
        if let Some(class) = rt.classes.iter().find(|c| {
            c.paths.iter().any(|p| path_in(f.path_and_query, p))
                && (c.sites.is_empty() || c.sites.iter().any(|s| s == f.site))
        }) {
            if let Some(g) = &class.gcra {
                let key = self.classes.key(&(client.ip, class.index));
                let fresh = ClassCell { tat: t, last: t };
                let share = self.share_of(shared::LimitKey::Class(class.index as u16, client.ip), true);
                let wait = self.classes.with(
                    key,
                    || fresh,
                    |c| {
                        c.last = t;
                        g.check_share(&mut c.tat, t, share).err()
                    },
                );
                if let Some(Some(wait)) = wait {
                    tracing::debug!(class = %class.name, client = %client.ip, "rate class limit");
                    over = Some((class.action, wait, "rate_class"));
                }
            }
        }
        if over.is_none() {
            let action = cfg.rate.action;
            over = match (standing, &rt.per_visitor) {
                // A visitor: its own limit, then its address's limit for visitors.
                (Standing::Visitor(id), Some(one)) => match self.visitors.check_visitor(id, one, t) {
                    Err(wait) => Some((action, wait, "rate_visitor")),
                    Ok(()) => self
                        .visitors
                        .check_address(one, rt.per_address.as_ref(), cfg.visitors.max_per_address, at)
                        .and_then(Result::err)
                        .map(|wait| (action, wait, "rate_address")),
                },
                _ => self.address_limit(rt, client, t).map(|wait| (action, wait, "rate_address")),
            };
        }

        // The prefix: its signature window, and its rate.
        let pkey = at.prefix_key;
        // Counted for the fleet only when it is checked here (a request over a tighter limit
        // takes no token from the prefix, here or in the fleet's count).
        let prefix_share = if over.is_none() && rt.per_prefix.is_some() {
            self.share_of(shared::LimitKey::Prefix(client.prefix), true)
        } else {
            1.0
        };
        let dry = sig.dry_run || cfg.mode == ShieldMode::DryRun;
        let (mut block, mut report, mut automated) = (None, None, false);
        self.prefixes.with(
            pkey,
            || self.new_prefix_cell(client.prefix, t, secs),
            |cell| {
                cell.last = t;
                seen.first_seen = Some(cell.first_seen);
                if sig.enabled {
                    let extra = if cell.new_in_burst
                        && cell.first_seen.saturating_add(sig.window.get().as_secs().min(u64::from(u32::MAX)) as u32)
                            > secs
                    {
                        signature::NEW_PREFIX
                    } else {
                        0
                    };
                    cell.window.add(window_id, feats | extra);
                    cell.window.saw_target(signature::target_hash(&page));
                    automated = cell.window.automated(sig.min_requests);
                    let w = &cell.window;
                    if u32::from(w.n) >= sig.min_requests && w.score() >= sig.threshold {
                        if flood && !dry {
                            block = Some(w.describe());
                        } else if cell.reported != window_id {
                            cell.reported = window_id;
                            report = Some(w.describe());
                        }
                    }
                }
                if let (None, Some(g)) = (over, &rt.per_prefix) {
                    if let Err(wait) = g.check_share(&mut cell.req_tat, t, prefix_share) {
                        over = Some((cfg.rate.action, wait, "rate_prefix"));
                    }
                }
            },
        );
        if automated && !suspicious && !cleared {
            // Browser headers, kept cookies and connections, but no person's browsing: a
            // flood's request all the same (a residential botnet's), never a shopper's.
            suspicious = true;
            seen.suspicious = true;
            self.witness.saw(client.ip, client.prefix, u16::from(feats) | witness::AUTOMATED);
            flood = self.flood.suspicious(sig.flood_rate, t) || flood;
        }
        if let Some(evidence) = report {
            tracing::info!(prefix = %client.prefix, flood, %evidence, "flood signature matched (reported only)");
            rep.metrics.shield.action("report", "flood_signature", "-");
        }
        if let Some(evidence) = block {
            return Some(self.block_flood_source(rt, client.prefix, evidence, rep, now));
        }
        if let Some((action, wait, reason)) = over {
            return Some(rate_action(action, wait, reason, f.method));
        }

        // The challenge.
        let mode = cfg.challenge.mode;
        let exempt = cleared
            || path_in(f.path_and_query, challenge::VERIFY_PATH)
            || cfg.challenge.exempt_paths.iter().any(|p| path_in(f.path_and_query, p));
        if mode == ChallengeMode::Off || exempt {
            return None;
        }
        let challengeable = matches!(*f.method, http::Method::GET | http::Method::HEAD);
        let on = mode == ChallengeMode::On;
        if challengeable && (on || (flood && suspicious)) {
            return Some((Kind::Challenge, if on { "under_attack_mode" } else { "suspicious_in_flood" }));
        }
        if suspicious && (flood || on) {
            // A request that cannot be challenged (a POST) and looks like the flood.
            return Some((Kind::Reject(cfg.admission.retry_after.get()), "suspicious_in_flood"));
        }
        None
    }

    /// A prefix's traffic matched the flood signature during a flood: block it.
    fn block_flood_source(
        &self,
        rt: &ShieldRt,
        net: IpNet,
        evidence: String,
        rep: &Telemetry,
        now: Instant,
    ) -> (Kind, &'static str) {
        let already = self.dynamic.read().ok().and_then(|d| d.lookup(net.addr()).map(|(_, b)| b.until > now));
        if already != Some(true) {
            let why = format!("flood signature: {evidence}");
            self.block(net, now, rt.cfg.signatures.block_for.get(), &why, rep);
        }
        (Kind::Close, "flood_signature")
    }

    /// The share of a shared limit this instance enforces for `key` (counting the request
    /// for the fleet); 1 without a fleet, or when the limit is not shared.
    fn share_of(&self, key: shared::LimitKey, shared_limit: bool) -> f32 {
        if shared_limit && self.shared.enabled() {
            self.shared.count(key)
        } else {
            1.0
        }
    }

    /// The address's plain limit (a request without a visitor's cookie): how long to wait,
    /// if it is over.
    fn address_limit(&self, rt: &ShieldRt, client: Client, t: Tick) -> Option<Duration> {
        let g = rt.per_address.as_ref()?;
        let akey = self.addrs.key(&client.ip);
        let fresh = AddrCell { req_tat: t, conn_tat: t, conns: 0, last: t };
        let share = self.share_of(shared::LimitKey::Address(client.ip), self.shared.per_address());
        self.addrs
            .with(
                akey,
                || fresh,
                |cell| {
                    cell.last = t;
                    g.check_share(&mut cell.req_tat, t, share).err()
                },
            )
            .flatten()
    }

    /// Where and when a request of `client` is judged, for the visitors' table.
    fn at(&self, rt: &ShieldRt, client: Client, now: Instant) -> visitors::At {
        let window = self.secs(now) / (rt.cfg.signatures.window.get().as_secs().max(1) as u32);
        visitors::At { ip: client.ip, prefix_key: self.prefixes.key(&client.prefix), t: self.tick(now), window }
    }

    /// The visitor cookie to give with the answer, if any: to a client without a valid one
    /// (within the address's bound on new cookies), and to a visitor who moved (bound to
    /// its new prefix, keeping when it was first issued); never to a bot's.
    #[allow(clippy::too_many_arguments)]
    fn visitor_cookie<'p>(
        &self,
        rt: &ShieldRt,
        cookie: Option<challenge::VisitorCookie>,
        standing: Standing,
        prefix: impl FnOnce() -> &'p str,
        at: visitors::At,
        unix: u64,
        keys: &challenge::Keys,
    ) -> Option<String> {
        let cfg = &rt.cfg;
        if !cfg.challenge.visitor_cookie {
            return None;
        }
        let issued = match (cookie, standing) {
            (_, Standing::Bot | Standing::Visitor(_)) => return None,
            // Without the visitors' limits a valid cookie anywhere is enough, as before.
            (Some(_), _) if !cfg.visitors.enabled => return None,
            (Some(v), Standing::Moved) => v.issued,
            (Some(v), _) if v.here => return None,
            _ => unix,
        };
        if cfg.visitors.enabled && !self.visitors.may_issue(rt.new_visitors.as_ref(), at) {
            return None;
        }
        Some(keys.visitor(issued, self.random(), prefix()))
    }

    /// When the current surge began (unix seconds): a flood, or the site shedding.
    fn surge_start(&self, load: &SiteLoad) -> Option<u64> {
        let a = self.flood.since_unix_ms().map(|ms| ms / 1000);
        let b = load.shedding_since().map(|ms| ms / 1000);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Challenge difficulty: the configured one, plus a bit for every doubling of the flood
    /// beyond its threshold, up to the maximum.
    fn difficulty(&self, cfg: &Cfg) -> u8 {
        let c = &cfg.challenge;
        let ratio = self.flood.rate() / f64::from(cfg.signatures.flood_rate.max(1));
        let extra = if ratio > 1.0 { ratio.log2().floor() as u8 } else { 0 };
        c.difficulty.saturating_add(extra).min(c.max_difficulty)
    }
}

/// What judging a request learnt besides the verdict.
#[derive(Debug, Default)]
struct Seen {
    /// When the client's prefix was first seen (seconds since the shield's epoch).
    first_seen: Option<u32>,
    /// The request looks like a flood's (its signature score).
    suspicious: bool,
}

/// One request as the shield judges it: the config it is judged by, its facts, its client
/// and whether that client holds a clearance, where to report, and when.
#[derive(Clone, Copy)]
struct Judging<'a> {
    rt: &'a ShieldRt,
    f: &'a Facts<'a>,
    client: Client,
    cleared: bool,
    /// How the request's visitor cookie stands.
    standing: Standing,
    at: visitors::At,
    rep: &'a Telemetry,
    now: Instant,
}

enum Kind {
    Block,
    Close,
    Reject(Duration),
    Challenge,
}

fn rate_action(
    action: RateAction,
    wait: Duration,
    reason: &'static str,
    method: &http::Method,
) -> (Kind, &'static str) {
    let wait = wait.max(Duration::from_secs(1));
    match action {
        RateAction::Reject => (Kind::Reject(wait), reason),
        RateAction::Close => (Kind::Close, reason),
        RateAction::Challenge if matches!(*method, http::Method::GET | http::Method::HEAD) => (Kind::Challenge, reason),
        RateAction::Challenge => (Kind::Reject(wait), reason),
    }
}
