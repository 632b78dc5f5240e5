//! The admin listener: /metrics (Prometheus), /healthz, /status.json, and
//! POST /admin/reload (with a bearer token when `listen.admin_token` is set).

use crate::listen::Front;
use crate::proxy::Edge;
use crate::reload::Reloader;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the admin listener reads and acts on.
pub(crate) struct Admin {
    pub(crate) edge: Arc<Edge>,
    pub(crate) front: Arc<Front>,
    pub(crate) reloader: Arc<Reloader>,
    pub(crate) incidents: Arc<crate::incident::Incidents>,
    pub(crate) started: SystemTime,
}

pub(crate) async fn serve(shared: Arc<Admin>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    while let Some(tcp) = crate::util::accept_until(&listener, &mut shutdown).await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Operator alerts (never on the public page): each site's certificate that expires within
/// seven days, or has expired.
fn certificate_alerts(snap: &crate::snapshot::Snapshot, now: u64) -> Vec<serde_json::Value> {
    let mut expiry: std::collections::BTreeMap<String, u64> = snap.cert_expiry.iter().cloned().collect();
    for (site, _, not_after) in snap.acme.validity() {
        expiry.insert(site, not_after); // an ACME certificate, once issued, is the one served
    }
    expiry
        .into_iter()
        .filter(|(_, not_after)| *not_after <= now + crate::acme::ALERT_BEFORE_SECS)
        .map(|(site, not_after)| {
            let left = not_after.saturating_sub(now);
            serde_json::json!({
                "kind": "certificate_expiring",
                "site": site,
                "expires_at": crate::util::rfc3339_seconds(not_after * 1000),
                "seconds_left": left,
                "summary": if left == 0 {
                    format!("the certificate of {site} has expired")
                } else {
                    format!("the certificate of {site} expires in {}", humantime::format_duration(std::time::Duration::from_secs(left)))
                },
            })
        })
        .collect()
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

fn json(status: StatusCode, v: &impl Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(v) {
        Ok(b) => respond(status, "application/json", b),
        Err(_) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "cannot encode status\n"),
    }
}

async fn route(shared: &Admin, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let metrics = &shared.edge.telemetry.metrics;
            for site in &shared.edge.snapshot.load().sites {
                if let Some(c) = &site.cache {
                    let (bytes, entries, evicted) = c.sizes();
                    metrics.cache_sizes(&site.name, bytes, entries, evicted);
                }
            }
            respond(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.encode())
        }
        (&Method::POST, "/admin/purge") => {
            if !authorized(shared, &req) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({"ok": false, "error": "missing or wrong bearer token"}),
                );
            }
            purge(shared, req.uri().query().unwrap_or(""))
        }
        (&Method::POST, "/admin/block" | "/admin/unblock") => {
            if !authorized(shared, &req) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({"ok": false, "error": "missing or wrong bearer token"}),
                );
            }
            block(shared, req.uri().path() == "/admin/block", req.uri().query().unwrap_or(""))
        }
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/incidents.json") => {
            let list: Vec<serde_json::Value> =
                shared.incidents.all().iter().map(crate::incident::view::admin).collect();
            let alerts = certificate_alerts(&shared.edge.snapshot.load(), crate::clock::unix_secs());
            json(StatusCode::OK, &serde_json::json!({ "incidents": list, "alerts": alerts }))
        }
        (&Method::GET, path) if path.starts_with("/incidents/") => incident(shared, &path["/incidents/".len()..]),
        (&Method::GET, "/status.json") => json(StatusCode::OK, &status(shared)),
        (&Method::POST, "/admin/reload") => {
            if !authorized(shared, &req) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({"ok": false, "error": "missing or wrong bearer token"}),
                );
            }
            match shared.reloader.reload().await {
                Ok(()) => json(StatusCode::OK, &serde_json::json!({"ok": true})),
                Err(e) => json(StatusCode::UNPROCESSABLE_ENTITY, &serde_json::json!({"ok": false, "error": e})),
            }
        }
        (
            _,
            "/metrics" | "/healthz" | "/status.json" | "/admin/reload" | "/admin/purge" | "/admin/block"
            | "/admin/unblock",
        ) => respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n"),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// `/incidents/{id}`: the post-incident report (HTML); `/incidents/{id}.json`: the incident.
fn incident(shared: &Admin, id: &str) -> Response<Full<Bytes>> {
    let (id, as_json) = match id.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (id, false),
    };
    match shared.incidents.get(id) {
        Some(i) if as_json => json(StatusCode::OK, &crate::incident::view::admin(&i)),
        Some(i) => respond(StatusCode::OK, "text/html; charset=utf-8", crate::incident::report::html(&i)),
        None => respond(StatusCode::NOT_FOUND, "text/plain", "no such incident\n"),
    }
}

/// `site=NAME` empties a site's cache; `url=http://host/path?query` removes one URL.
fn purge(shared: &Admin, query: &str) -> Response<Full<Bytes>> {
    let snap = shared.edge.snapshot.load();
    let param = |name: &str| crate::util::query_param(query, name);
    if let Some(name) = param("site") {
        return match snap.sites.iter().find(|s| *s.name == *name) {
            Some(s) => {
                if let Some(c) = &s.cache {
                    c.clear();
                }
                json(StatusCode::OK, &serde_json::json!({"ok": true, "purged": {"site": name}}))
            }
            None => {
                json(StatusCode::NOT_FOUND, &serde_json::json!({"ok": false, "error": format!("no site {name:?}")}))
            }
        };
    }
    if let Some(url) = param("url") {
        let Ok(uri) = url.parse::<http::Uri>() else {
            return json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"ok": false, "error": "url: expected http://host/path"}),
            );
        };
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        return match snap.site_for_host(&host) {
            Some(s) => {
                if let Some(c) = &s.cache {
                    c.invalidate(&crate::cache::SiteCache::key(&host, target, &s.cfg.cache.ignore_params));
                }
                json(StatusCode::OK, &serde_json::json!({"ok": true, "purged": {"url": url}}))
            }
            None => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"ok": false, "error": format!("no site serves {host:?}")}),
            ),
        };
    }
    json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({"ok": false, "error": "expected ?site=NAME or ?url=http://host/path"}),
    )
}

/// `POST /admin/block?prefix=CIDR&for=10m` blocks an address or prefix (dynamic, expires);
/// `POST /admin/unblock?prefix=CIDR` lifts a dynamic block.
fn block(shared: &Admin, add: bool, query: &str) -> Response<Full<Bytes>> {
    let bad = |e: String| json(StatusCode::BAD_REQUEST, &serde_json::json!({"ok": false, "error": e}));
    let Some(text) = crate::util::query_param(query, "prefix") else {
        return bad("expected ?prefix=ADDRESS or ?prefix=CIDR".into());
    };
    let net: ipnet::IpNet = match text.parse::<ipnet::IpNet>() {
        Ok(n) => n,
        Err(_) => match text.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.into(),
            Err(_) => return bad(format!("{text:?} is not an address or CIDR prefix")),
        },
    };
    if !add {
        let removed = shared.edge.shield.unblock(&net);
        return json(
            StatusCode::OK,
            &serde_json::json!({"ok": true, "unblocked": net.to_string(), "was_blocked": removed}),
        );
    }
    let duration = match crate::util::query_param(query, "for") {
        None => std::time::Duration::from_secs(3600),
        Some(d) => match humantime::parse_duration(&d) {
            Ok(d) => d,
            Err(e) => return bad(format!("for={d:?}: {e}; expected a duration such as \"10m\"")),
        },
    };
    shared.edge.shield.block(
        net,
        tokio::time::Instant::now(),
        duration,
        "blocked by an operator",
        &shared.edge.telemetry,
    );
    json(StatusCode::OK, &serde_json::json!({"ok": true, "blocked": net.to_string(), "seconds": duration.as_secs()}))
}

fn authorized(shared: &Admin, req: &Request<Incoming>) -> bool {
    let snap = shared.edge.snapshot.load();
    let Some(token) = &snap.file.listen.admin_token else { return true };
    let given =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token must not leak through timing.
    given.is_some_and(|g| crate::util::ct_eq(g.as_bytes(), token.as_bytes()))
}

#[derive(Serialize)]
struct QuicStatus {
    listeners: Vec<std::net::SocketAddr>,
    #[serde(flatten)]
    counts: crate::telemetry::quic::QuicView,
}

#[derive(Serialize)]
struct Status {
    version: &'static str,
    #[serde(with = "crate::util::rfc3339")]
    started_at: SystemTime,
    #[serde(with = "crate::util::rfc3339")]
    config_loaded_at: SystemTime,
    last_reload: Option<crate::reload::ReloadEvent>,
    /// The listening sockets open now: what each serves and where.
    listeners: Vec<crate::listen::set::Listening>,
    /// This process's id (it changes with a binary upgrade).
    pid: u32,
    open_connections: usize,
    /// Tunnels (WebSocket and other upgrades): open now, opened in all, closed for being
    /// quiet (`timeouts.tunnel_idle`) and by a drain.
    tunnels: TunnelsStatus,
    /// QUIC (HTTP/3): where it listens, connections open and attempts by outcome, streams.
    quic: QuicStatus,
    /// Client requests in flight now, by phase, and those cancelled by their clients.
    requests: crate::telemetry::RequestsView,
    /// The incident engine: incidents open and kept, each site's usual request rate.
    incidents: serde_json::Value,
    datacenters: Vec<DcStatus>,
    sites: Vec<SiteStatus>,
    /// Recent state changes (origins, data centers, floods, blocks, shedding), oldest first.
    events: Vec<crate::telemetry::Event>,
    shield: crate::shield::ShieldView,
    /// What is configured unsafely (`[site.pool.tls] verify = false`).
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct TunnelsStatus {
    open: u64,
    opened: u64,
    closed_idle: u64,
    closed_drain: u64,
}

#[derive(Serialize)]
struct DcStatus {
    name: String,
    sites: Vec<String>,
    origins: usize,
}

#[derive(Serialize)]
struct SiteStatus {
    name: String,
    hosts: Vec<String>,
    language: String,
    pools: Vec<PoolStatus>,
    /// Its path routes (`[[site.route]]`), longest prefix first.
    routes: Vec<RouteStatus>,
    /// The site's cache, when it has one.
    cache: Option<CacheStatus>,
}

#[derive(Serialize)]
struct RouteStatus {
    name: String,
    path_prefix: String,
    pools: Vec<PoolStatus>,
}

#[derive(Serialize)]
struct CacheStatus {
    /// Bytes stored, and entries.
    bytes: u64,
    entries: u64,
    /// Bytes held by bodies on their way into the store (read from the origins at their
    /// pace, apart from the clients that asked; bounded by the cache's size).
    filling_bytes: u64,
}

#[derive(Serialize)]
struct PoolStatus {
    datacenter: String,
    /// Origins that may get traffic now, of all.
    available: usize,
    total: usize,
    origins: Vec<OriginStatus>,
}

#[derive(Serialize)]
struct OriginStatus {
    address: String,
    /// The DNS name (`host:port`) the address was resolved from.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// TLS to it: the name verified, handshakes and resumptions, the last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<crate::upstream::tls::TlsView>,
    weight: f64,
    /// available, probe (ejection over, one request allowed), ejected, down (health checks).
    state: &'static str,
    health_checks: &'static str,
    latency_ewma_ms: f64,
    in_flight: u64,
    requests: u64,
    errors: u64,
    /// Requests sent again on a new connection after the origin closed a reused one
    /// without answering (many: its keep-alive timeout is below `timeouts.origin_idle`).
    resent_after_close: u64,
    last_error: Option<crate::upstream::OriginErrorEvent>,
}

fn status(shared: &Admin) -> Status {
    let snap = shared.edge.snapshot.load();
    let now = crate::clock::now_ms();
    let sites: Vec<SiteStatus> = snap
        .sites
        .iter()
        .map(|s| SiteStatus {
            name: s.name.to_string(),
            hosts: s.hosts.clone(),
            language: s.language.to_string(),
            cache: s.cache.as_ref().map(|c| CacheStatus {
                bytes: c.weighted_size(),
                entries: c.entries(),
                filling_bytes: c.filling(),
            }),
            pools: s.pools.iter().map(|p| pool_status(s, p, now)).collect(),
            routes: s
                .routes
                .iter()
                .map(|(prefix, r)| RouteStatus {
                    name: r.route.as_deref().unwrap_or_default().to_string(),
                    path_prefix: prefix.clone(),
                    pools: r.pools.iter().map(|p| pool_status(r, p, now)).collect(),
                })
                .collect(),
        })
        .collect();
    let datacenters = snap
        .file
        .datacenters
        .iter()
        .map(|dc| {
            let name = dc.name.get_ref().clone();
            let mut dsites = Vec::new();
            let mut origins = 0;
            for s in &snap.sites {
                for p in s.pools.iter().filter(|p| *p.datacenter == *name) {
                    dsites.push(s.name.to_string());
                    origins += p.origins.len();
                }
            }
            DcStatus { name, sites: dsites, origins }
        })
        .collect();
    let mut warnings = Vec::new();
    for s in &snap.sites {
        for p in
            s.pools.iter().filter(|p| p.origins.iter().any(|o| o.tls.load().as_deref().is_some_and(|t| t.unverified())))
        {
            warnings.push(format!(
                "site {}: data center {}: [site.pool.tls] verify = false: origin certificates are not checked (test beds only)",
                s.name, p.datacenter
            ));
        }
    }
    Status {
        warnings,
        version: env!("CARGO_PKG_VERSION"),
        started_at: shared.started,
        config_loaded_at: snap.loaded_at,
        last_reload: shared.reloader.last(),
        listeners: shared.reloader.listeners.get().map_or_else(Vec::new, |l| l.listing()),
        pid: std::process::id(),
        open_connections: shared.front.open_connections(),
        quic: QuicStatus {
            listeners: shared.reloader.quic.get().map_or_else(Vec::new, |q| q.addrs()),
            counts: shared.edge.telemetry.metrics.quic.view(),
        },
        tunnels: {
            let t = &shared.edge.telemetry.tunnels;
            TunnelsStatus {
                open: shared.edge.telemetry.metrics.tunnels_open.get().max(0) as u64,
                opened: t.opened.load(Relaxed),
                closed_idle: t.closed_idle.load(Relaxed),
                closed_drain: t.closed_drain.load(Relaxed),
            }
        },
        requests: shared.edge.telemetry.requests.view(),
        incidents: shared.incidents.engine_view(),
        datacenters,
        sites,
        events: shared.edge.telemetry.events.recent(),
        shield: shared
            .edge
            .shield
            .view(&snap.file.shield, snap.sites.iter().map(|s| (s.name.to_string(), s.load.view())).collect()),
    }
}

/// One pool in `/status.json`.
fn pool_status(s: &crate::snapshot::SiteRt, p: &crate::upstream::Pool, now: u64) -> PoolStatus {
    use crate::upstream::health::State;
    PoolStatus {
        datacenter: p.datacenter.to_string(),
        available: p.origins.iter().filter(|o| o.health.state(now) != State::Down).count(),
        total: p.origins.len(),
        origins: p
            .origins
            .iter()
            .map(|o| OriginStatus {
                address: o.authority.to_string(),
                name: o.name.as_deref().map(str::to_string),
                tls: o.tls.load().as_deref().map(|t| t.view(&o.tls_notes)),
                weight: o.weight(),
                state: match o.health.state(now) {
                    State::Available => "available",
                    State::Probe => "probe",
                    State::Down if !o.health.checked_up() => "down",
                    State::Down => "ejected",
                },
                health_checks: if !s.cfg.health.enabled {
                    "off"
                } else if o.health.checked_up() {
                    "passing"
                } else {
                    "failing"
                },
                latency_ewma_ms: (o.health.ewma_us() / 10.0).round() / 100.0,
                in_flight: o.stats.in_flight.load(Relaxed),
                requests: o.stats.requests.load(Relaxed),
                errors: o.stats.errors.load(Relaxed),
                resent_after_close: o.stats.resent.load(Relaxed),
                last_error: o.stats.last_error.lock().ok().and_then(|l| l.clone()),
            })
            .collect(),
    }
}
