//! holdfast-shop: a small, fast simulated regional web shop, used as an origin by holdfast's
//! demo, drill and tests. It serves a localized catalogue (home, categories, products with
//! images and CSS, search), a cart kept in a cookie, and a checkout that records orders
//! (an `Idempotency-Key` returns the first order instead of placing a second). Every
//! response names the data center that served it in `X-Datacenter`. An optional capacity
//! limit queues requests and then answers 503, as an overloaded origin does.

#![forbid(unsafe_code)]

mod capacity;
mod catalog;
pub mod control;
mod fault;
mod live;
mod orders;
mod pages;

use capacity::Capacity;
pub use fault::{Fault, FaultSwitch};
pub use orders::{Order, Orders, Summary};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How one shop origin behaves.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    /// Site name, e.g. "shop-de".
    pub site: String,
    /// de, en, fr, it (others fall back to en).
    pub language: String,
    /// The data center it runs in (its `X-Datacenter` header, its order ids).
    pub datacenter: String,
    /// Requests per second it can serve; beyond it requests queue up to `queue_limit`,
    /// then get 503. None = unlimited.
    pub capacity: Option<u32>,
    /// How long a request may queue for capacity before it gets 503.
    pub queue_limit: Duration,
    /// Added to every response.
    pub latency: Duration,
    /// Serve TLS (and plain HTTP, told apart by the first byte) with these certificates.
    pub tls: Option<ShopTls>,
}

/// A shop's TLS: its certificate, and the expired one `Fault::ExpiredCertificate` shows.
#[derive(Debug, Clone)]
pub struct ShopTls {
    /// The certificate in force.
    pub valid: Arc<rustls::ServerConfig>,
    /// The same name's certificate, past its end.
    pub expired: Arc<rustls::ServerConfig>,
}

impl ShopConfig {
    /// A shop of `site` in `language` and `datacenter`: unlimited capacity, no added latency.
    pub fn new(site: &str, language: &str, datacenter: &str) -> ShopConfig {
        ShopConfig {
            site: site.into(),
            language: language.into(),
            datacenter: datacenter.into(),
            capacity: None,
            queue_limit: Duration::from_secs(1),
            latency: Duration::ZERO,
            tls: None,
        }
    }
}

/// A running shop's shared state.
pub struct Shop {
    /// How it was configured.
    pub config: ShopConfig,
    /// The orders it placed.
    pub orders: Orders,
    /// Its failure injection.
    pub faults: FaultSwitch,
    /// Requests answered, and requests whose client (peer or X-Forwarded-For) is in
    /// `flood_sources` (set by the drill to count flood traffic that reached the origin).
    pub stats: Stats,
    capacity: Option<Capacity>,
    datacenter: HeaderValue,
    texts: &'static catalog::Texts,
}

impl Shop {
    /// A shop's state (not yet listening: see [`spawn`]).
    pub fn new(config: ShopConfig) -> Arc<Shop> {
        let datacenter = HeaderValue::from_str(&config.datacenter).unwrap_or(HeaderValue::from_static("unknown"));
        Arc::new(Shop {
            faults: FaultSwitch::default(),
            stats: Stats::default(),
            capacity: config.capacity.map(|rps| Capacity::new(rps, config.queue_limit)),
            orders: Orders::new(&config.datacenter),
            texts: catalog::texts(&config.language),
            datacenter,
            config,
        })
    }
}

/// Counters kept by a shop.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered.
    pub requests: std::sync::atomic::AtomicU64,
    /// Requests answered whose client is in `flood_sources`.
    pub flood_requests: std::sync::atomic::AtomicU64,
    /// Flood traffic comes from this address range (the drill's attackers).
    pub flood_sources: std::sync::OnceLock<(std::net::Ipv4Addr, u8)>,
}

impl Stats {
    fn is_flood(&self, ip: std::net::IpAddr) -> bool {
        match (self.flood_sources.get(), ip) {
            (Some((net, prefix)), std::net::IpAddr::V4(v4)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(v4) & mask == u32::from(*net) & mask
            }
            _ => false,
        }
    }
}

/// Serves the shop on `listener` until the task is dropped, honouring injected faults.
pub async fn serve(shop: Arc<Shop>, listener: TcpListener) {
    let Ok(addr) = listener.local_addr() else { return };
    let mut faults = shop.faults.subscribe();
    let mut listener = Some(listener);
    loop {
        if *faults.borrow_and_update() == Fault::Refused {
            listener = None; // closed: connects are refused
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match bind_reuse(addr) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "shop cannot listen again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        loop {
            tokio::select! {
                changed = faults.changed() => {
                    if changed.is_err() { return; }
                    if *faults.borrow() == Fault::Refused { break; }
                }
                accepted = l.accept() => {
                    let Ok((tcp, peer)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    tokio::spawn(serve_conn(shop.clone(), tcp, peer));
                }
            }
        }
    }
}

fn bind_reuse(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve_conn(shop: Arc<Shop>, tcp: tokio::net::TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let tls = match shop.config.tls.clone() {
        // (A black hole answers no handshake either: held unread in `serve_io`.)
        Some(tls) if shop.faults.get() != Fault::Blackhole => tls,
        _ => return serve_io(shop, tcp, peer, false).await,
    };
    // TLS and plain HTTP on one port: a TLS client speaks first with a handshake record.
    let mut first = [0u8; 1];
    if !matches!(tcp.peek(&mut first).await, Ok(1)) {
        return;
    }
    let expired = shop.faults.get() == Fault::ExpiredCertificate;
    if first[0] != 0x16 {
        if !expired {
            serve_io(shop, tcp, peer, true).await;
        }
        return;
    }
    let config = if expired { tls.expired } else { tls.valid };
    if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
        serve_io(shop, stream, peer, false).await;
    }
}

/// Serves one connection; `plain_beside_tls`: a plain-HTTP client of a shop that serves
/// TLS (the drill's direct run), which loses its connection when the certificate expires,
/// as a browser would refuse the page.
async fn serve_io<I>(shop: Arc<Shop>, io: I, peer: SocketAddr, plain_beside_tls: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut faults = shop.faults.subscribe();
    if *faults.borrow_and_update() == Fault::Blackhole {
        // Hold the connection without reading from it, until the process "dies".
        while faults.changed().await.is_ok() {
            if *faults.borrow() == Fault::Refused {
                return;
            }
        }
        return;
    }
    let svc_shop = shop.clone();
    let svc = service_fn(move |req| {
        let shop = svc_shop.clone();
        async move { Ok::<_, Infallible>(handle(&shop, peer, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = faults.changed() => {
                let fault = *faults.borrow();
                if changed.is_err() || fault == Fault::Refused || (plain_beside_tls && fault == Fault::ExpiredCertificate) {
                    return; // dropped: the peer sees the connection reset/closed
                }
            }
        }
    }
}

/// Binds `addr` and serves the shop in a new task; returns the bound address.
pub async fn spawn(config: ShopConfig, addr: SocketAddr) -> std::io::Result<(SocketAddr, Arc<Shop>)> {
    let listener = bind_reuse(addr)?;
    let local = listener.local_addr()?;
    let shop = Shop::new(config);
    tokio::spawn(serve(shop.clone(), listener));
    Ok((local, shop))
}

type Resp = Response<Full<Bytes>>;

async fn handle(shop: &Shop, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    shop.stats.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if shop.stats.flood_sources.get().is_some() && shop.stats.is_flood(client_ip(&req, peer)) {
        shop.stats.flood_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    match shop.faults.get() {
        Fault::Blackhole => std::future::pending::<()>().await,
        Fault::Slow(d) => tokio::time::sleep(d).await,
        Fault::Errors(share) if rand::random::<f64>() < share => {
            let mut r = page(shop, StatusCode::INTERNAL_SERVER_ERROR, "no-store", shop.texts.busy.to_string());
            r.headers_mut().insert("x-datacenter", shop.datacenter.clone());
            return r;
        }
        _ => {}
    }
    if let Some(cap) = &shop.capacity {
        if !cap.admit().await {
            let mut r = page(shop, StatusCode::SERVICE_UNAVAILABLE, "no-store", shop.texts.busy.to_string());
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
    }
    if !shop.config.latency.is_zero() {
        tokio::time::sleep(shop.config.latency).await;
    }
    let mut resp = route(shop, req).await;
    resp.headers_mut().insert("x-datacenter", shop.datacenter.clone());
    resp
}

async fn route(shop: &Shop, mut req: Request<Incoming>) -> Resp {
    if req.uri().path() == live::SOCKET_PATH {
        return live::socket(&mut req);
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "no-store", "text/plain", "ok\n"),
        (&Method::GET | &Method::HEAD, "/") => page(shop, StatusCode::OK, "public, max-age=30", pages::home(shop)),
        (&Method::GET | &Method::HEAD, live::PAGE_PATH) => {
            text(StatusCode::OK, "no-store", "text/html; charset=utf-8", live::PAGE)
        }
        (&Method::GET | &Method::HEAD, "/static/shop.css") => {
            text(StatusCode::OK, "public, max-age=3600", "text/css", pages::CSS)
        }
        (&Method::GET | &Method::HEAD, "/search") => {
            let q = form_value(&query, "q").unwrap_or_default();
            page(shop, StatusCode::OK, "public, max-age=10", pages::search(shop, &q))
        }
        (&Method::GET | &Method::HEAD, "/cart") => {
            let cart = cart_from(&req);
            page(shop, StatusCode::OK, "private, no-store", pages::cart(shop, &cart))
        }
        (&Method::POST, "/cart") => {
            let mut cart = cart_from(&req);
            let body = read_form(req).await;
            if let Some(id) = body.and_then(|b| form_value(&b, "id")).and_then(|v| v.parse::<usize>().ok()) {
                if catalog::product(id).is_some() && cart.len() < 50 {
                    cart.push(id);
                }
            }
            let mut r = page(shop, StatusCode::SEE_OTHER, "no-store", String::new());
            r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/cart"));
            let cookie = format!("cart={}; Path=/; HttpOnly; SameSite=Lax", join_ids(&cart));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        (&Method::POST, "/checkout") => {
            let cart = cart_from(&req);
            let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
            let _ = read_form(req).await;
            let (order, repeated) = shop.orders.place(key, cart);
            let mut r = page(shop, StatusCode::OK, "no-store", pages::order_placed(shop, &order, repeated));
            if let Ok(v) = HeaderValue::from_str(&order.id) {
                r.headers_mut().insert("x-order-id", v);
            }
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static("cart=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
            );
            r
        }
        (&Method::GET, "/orders.json") => {
            let body = serde_json::to_vec(&shop.orders.summary()).unwrap_or_default();
            text(StatusCode::OK, "no-store", "application/json", body)
        }
        (&Method::GET | &Method::HEAD, p) => {
            if let Some(slug) = p.strip_prefix("/c/") {
                if let Some(cat) = catalog::category(slug) {
                    return page(shop, StatusCode::OK, "public, max-age=60", pages::category(shop, cat));
                }
            } else if let Some(id) = p.strip_prefix("/p/").and_then(|s| s.parse::<usize>().ok()) {
                if let Some(prod) = catalog::product(id) {
                    return page(shop, StatusCode::OK, "public, max-age=60", pages::product(shop, prod));
                }
            } else if let Some(id) =
                p.strip_prefix("/img/").and_then(|s| s.strip_suffix(".svg")).and_then(|s| s.parse().ok())
            {
                if let Some(prod) = catalog::product(id) {
                    return text(StatusCode::OK, "public, max-age=86400", "image/svg+xml", pages::image(prod));
                }
            }
            page(shop, StatusCode::NOT_FOUND, "public, max-age=10", pages::not_found(shop))
        }
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "no-store", "text/plain", "method not allowed\n");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            r
        }
    }
}

/// The client: the first X-Forwarded-For address (set by a gateway in front), else the peer.
fn client_ip<B>(req: &Request<B>, peer: SocketAddr) -> std::net::IpAddr {
    req.headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer.ip())
}

fn page(shop: &Shop, status: StatusCode, cache: &'static str, html: String) -> Resp {
    let mut r = text(status, cache, "text/html; charset=utf-8", html);
    if let Ok(v) = HeaderValue::from_str(&shop.config.language) {
        r.headers_mut().insert(header::CONTENT_LANGUAGE, v);
    }
    r
}

fn text(status: StatusCode, cache: &'static str, ctype: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// Reads a small form body (at most 64 KiB).
async fn read_form(req: Request<Incoming>) -> Option<String> {
    let body = Limited::new(req.into_body(), 64 * 1024).collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cart_from<B>(req: &Request<B>) -> Vec<usize> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("cart="))
        .map(|ids| {
            ids.split('.').filter_map(|i| i.parse().ok()).filter(|i| catalog::product(*i).is_some()).take(50).collect()
        })
        .unwrap_or_default()
}

fn join_ids(ids: &[usize]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(form_value("a=1&q=red+shoes%21", "q").as_deref(), Some("red shoes!"));
        assert_eq!(form_value("q=%zz%", "q").as_deref(), Some("%zz%"));
        assert_eq!(form_value("q=%4", "q").as_deref(), Some("%4"));
        assert_eq!(form_value("x=1", "q"), None);
    }
}
