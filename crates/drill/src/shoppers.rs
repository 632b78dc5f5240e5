//! Shoppers: sessions from distinct source addresses (127.1.x.y) on keep-alive connections,
//! with cookies, that browse (home with its CSS, a category, a product with its image, a
//! search), and a share of which put something in the cart and check out with an
//! Idempotency-Key. Think times between pages. How many are active follows a watch channel
//! (a surge multiplies them). Like browsers, they keep every cookie they are given and pass
//! holdfast's proof-of-work challenge when they get one (its script would run in a browser;
//! here the same work is done in Rust).

use crate::client;
use crate::measure::{Outcome, Recorder};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where a site's shoppers send their requests.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) site: String,
    pub(crate) host: String,
    /// Shopper i uses `addrs[i % len]`.
    pub(crate) addrs: Vec<SocketAddr>,
}

pub(crate) struct Plan {
    pub(crate) targets: Vec<Target>,
    /// Shoppers share this many source addresses (a carrier's NAT), each in a /24 of its
    /// own; None: every shopper has its own address.
    pub(crate) addresses: Option<u32>,
    /// Shoppers from this number on (those a surge brings) land from a newsletter: the
    /// home page with a `utm_…` query of their own on every visit.
    pub(crate) newsletter_from: Option<u32>,
    pub(crate) think: Duration,
    pub(crate) checkout_share: f64,
    pub(crate) timeout: Duration,
}

/// Runs shopper `id` until `stop`; it is active while `id < active`.
pub(crate) async fn shopper(
    id: u32,
    plan: Arc<Plan>,
    rec: Arc<Recorder>,
    mut active: watch::Receiver<u32>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = SmallRng::seed_from_u64(u64::from(id) * 7919 + 17);
    let target = &plan.targets[id as usize % plan.targets.len()];
    let dst = target.addrs[(id as usize / plan.targets.len()) % target.addrs.len()];
    let src = match plan.addresses {
        Some(n) => client::source_addr(1, (id % n.max(1)) * 254),
        None => client::source_addr(1, id),
    };
    let newsletter = plan.newsletter_from.is_some_and(|from| id >= from);
    let mut session =
        Session { target, dst, src, conn: None, cookies: client::Jar::default(), rec: &rec, timeout: plan.timeout };
    let mut order = 0u32;
    let mut visit = 0u32;
    // Stagger the start so sessions do not all begin in the same millisecond.
    tokio::time::sleep(plan.think.mul_f64(rng.gen::<f64>())).await;
    loop {
        if *stop.borrow() {
            return;
        }
        if id >= *active.borrow() {
            session.conn = None;
            let mut stop = stop.clone();
            tokio::select! {
                _ = active.changed() => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        let product = rng.gen_range(1..=12);
        let category = ["toys", "books", "electronics", "christmas"][rng.gen_range(0..4)];
        visit += 1;
        let landing = if newsletter {
            format!("?utm_source=newsletter&utm_campaign=advent&utm_id={id}-{visit}")
        } else {
            String::new()
        };
        let pages: [(&str, String); 6] = [
            ("/", landing),
            ("/static/shop.css", String::new()),
            ("/c/", category.to_string()),
            ("/p/", product.to_string()),
            ("/img/", format!("{product}.svg")),
            ("/search?q=", ["train", "bear", "atlas", "star"][rng.gen_range(0..4)].to_string()),
        ];
        for (i, (prefix, rest)) in pages.iter().enumerate() {
            session.get(&format!("{prefix}{rest}")).await;
            // Sub-resources (CSS, image) follow their page at once, like a browser.
            if i != 0 && i != 3 {
                think(&mut rng, plan.think, &stop).await;
            }
            if *stop.borrow() {
                return;
            }
        }
        if rng.gen::<f64>() < plan.checkout_share {
            session.post("/cart", format!("id={product}"), None).await;
            think(&mut rng, plan.think, &stop).await;
            order += 1;
            let key = format!("drill-{id}-{order}");
            session.post("/checkout", String::new(), Some(key)).await;
        }
        think(&mut rng, plan.think * 2, &stop).await;
    }
}

async fn think(rng: &mut SmallRng, mean: Duration, stop: &watch::Receiver<bool>) {
    // Exponential think time, capped at 5x the mean.
    let f = -(1.0 - rng.gen::<f64>()).ln();
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(mean.mul_f64(f.min(5.0))) => {}
        _ = stop.changed() => {}
    }
}

struct Session<'a> {
    target: &'a Target,
    dst: SocketAddr,
    src: std::net::Ipv4Addr,
    conn: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    cookies: client::Jar,
    rec: &'a Recorder,
    timeout: Duration,
}

impl Session<'_> {
    async fn get(&mut self, path: &str) {
        self.send(Method::GET, path, String::new(), None).await;
    }

    async fn post(&mut self, path: &str, body: String, key: Option<String>) {
        self.send(Method::POST, path, body, key).await;
    }

    async fn send(&mut self, method: Method, path: &str, body: String, key: Option<String>) {
        let checkout = path == "/checkout";
        let is_post = method == Method::POST;
        let started = Instant::now();
        let result =
            tokio::time::timeout(self.timeout, self.visit(method, path, Bytes::from(body), key.as_deref())).await;
        let (answer, challenged) = match result {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => {
                self.conn = None; // a broken or timed-out connection is not reused
                (Answer::default(), false)
            }
        };
        let status = answer.status;
        // A checkout counts only with an order id in the answer.
        let status =
            if checkout && !answer.order { status.filter(|s| !(200..400).contains(s)).or(Some(599)) } else { status };
        let kind = match (checkout, path.starts_with("/cart"), is_post) {
            (true, _, _) => "checkout",
            (false, true, true) => "cart-add (POST, no Idempotency-Key)",
            (false, true, false) => "cart",
            _ => "catalogue",
        };
        let o = Outcome {
            site: &self.target.site,
            status,
            latency: started.elapsed(),
            datacenter: answer.datacenter,
            checkout,
            stale: answer.stale,
            kind,
            challenged,
            mitigated: answer.mitigated.is_some_and(|m| m != "challenge") || status == Some(429),
        };
        self.rec.record(started, &o);
    }

    /// One page as a browser gets it: the request, and when holdfast answers with its
    /// challenge, the work, the verification and the request again. True when challenged.
    async fn visit(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        key: Option<&str>,
    ) -> anyhow::Result<(Answer, bool)> {
        let first = self.exchange(method.clone(), path, body.clone(), key).await?;
        if first.mitigated.as_deref() != Some("challenge") {
            return Ok((first, false));
        }
        let token = first.body.split("solve(\"").nth(1).and_then(|t| t.split('"').next()).unwrap_or_default();
        let token = token.to_string();
        let nonce = tokio::task::spawn_blocking({
            let token = token.clone();
            move || holdfast_gateway::challenge::solve(&token)
        })
        .await?
        .ok_or_else(|| anyhow::anyhow!("no nonce for the challenge"))?;
        let verify = format!("{}?t={token}&n={nonce}&r=%2F", holdfast_gateway::challenge::VERIFY_PATH);
        self.exchange(Method::GET, &verify, Bytes::new(), None).await?;
        Ok((self.exchange(method, path, body, key).await?, true))
    }

    async fn exchange(&mut self, method: Method, path: &str, body: Bytes, key: Option<&str>) -> anyhow::Result<Answer> {
        let mut conn = match self.conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => client::http1_from(self.src, self.dst).await?,
        };
        conn.ready().await?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.target.host)
            .header(header::USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .header(header::ACCEPT_LANGUAGE, "de-DE,de;q=0.9,en;q=0.5")
            .header(header::ACCEPT_ENCODING, "gzip, deflate");
        if let Some(jar) = self.cookies.header() {
            req = req.header(header::COOKIE, jar);
        }
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        if method == Method::POST {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let resp = conn.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let h = resp.headers();
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let cache = text("cache-status").unwrap_or_default();
        let stale = cache.contains("stale");
        // Who answered: a data center, or holdfast's cache (a hit that asked no origin; the
        // stored X-Datacenter is the one that answered long ago).
        let datacenter = if cache.contains("; hit") && !cache.contains("fwd=") {
            Some(CACHE.to_string())
        } else if stale && !cache.contains("fwd-status=304") {
            Some(CACHE_STALE.to_string())
        } else {
            text("x-datacenter")
        };
        let mut answer = Answer {
            status: Some(status),
            datacenter,
            stale,
            order: h.contains_key("x-order-id"),
            mitigated: text("holdfast-mitigated"),
            body: String::new(),
        };
        self.cookies.take(h);
        let close = h.get(header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let bytes = resp.into_body().collect().await?.to_bytes();
        if answer.mitigated.is_some() {
            answer.body = String::from_utf8_lossy(&bytes).into_owned();
        }
        if !close {
            self.conn = Some(conn);
        }
        Ok(answer)
    }
}

/// The "data center" of answers from holdfast's cache, fresh and stale.
pub(crate) const CACHE: &str = "cache";
pub(crate) const CACHE_STALE: &str = "cache (stale)";

/// What a shopper got back.
#[derive(Default)]
struct Answer {
    status: Option<u16>,
    datacenter: Option<String>,
    stale: bool,
    order: bool,
    /// holdfast's `holdfast-mitigated` header: challenge, rate-limit, block, shed.
    mitigated: Option<String>,
    /// Kept only for holdfast's own pages.
    body: String,
}
