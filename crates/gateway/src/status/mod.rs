//! The public status page, on a listener of its own (`[listen] status`): each site's state
//! now and the incident history in plain words (HTML, [`page`]), Atlassian Statuspage's
//! public API so that existing widgets and clients work unchanged ([`api`]), and an Atom
//! feed of incidents ([`feed`]).
//!
//! Read-only and public: it shows sites, data centers and what happened to shoppers, never
//! origin or client addresses, prefixes, admin paths or configuration. GET and HEAD only.

mod api;
mod feed;
mod page;

use crate::incident::text::LANGUAGES;
use crate::incident::view::Page;
use crate::incident::Incidents;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the status listener reads.
pub(crate) struct Status {
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) incidents: Arc<Incidents>,
    /// When the gateway started (unix ms): the components' creation time.
    pub(crate) started: u64,
}

/// Connections the status page serves at once at most; more are closed on accept. During
/// an incident a crowd refreshes the page: a CDN in front takes most of it (the answers are
/// cacheable for five seconds), and this bounds what reaches holdfast.
const MAX_CONNECTIONS: usize = 1024;

/// Serves the status page on `listener` until shutdown.
pub(crate) async fn serve(status: Arc<Status>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    while let Some(tcp) = crate::util::accept_until(&listener, &mut shutdown).await {
        // The permit lives as long as the connection's task, however it ends.
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let status = status.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let status = status.clone();
                async move { Ok::<_, Infallible>(route(&status, &req)) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .max_buf_size(16 * 1024);
            builder.http2().max_concurrent_streams(32);
            let serve = builder.serve_connection(TokioIo::new(tcp), svc);
            // A status page visitor gets a minute per connection at most.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), serve).await;
        });
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=5"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, header::HeaderValue::from_static("*"));
    h.insert("x-content-type-options", header::HeaderValue::from_static("nosniff"));
    r
}

fn route(status: &Status, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "GET or HEAD only\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let snap = status.snapshot.load();
    let now = crate::clock::unix_ms();
    let page = page_of(&snap, req, now);
    let components = status.incidents.components(&snap, status.started);
    let incidents = status.incidents.all();
    let lang = language(&snap, req);
    let path = req.uri().path();
    let json = "application/json; charset=utf-8";
    let body = match path {
        "/" | "/index.html" => {
            return respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                page::html(&page, &components, &incidents, &lang),
            )
        }
        "/history.atom" => {
            return respond(StatusCode::OK, "application/atom+xml; charset=utf-8", feed::atom(&page, &incidents))
        }
        "/api/v2/summary.json" => api::summary(&page, &components, &incidents, status.started, &lang),
        "/api/v2/status.json" => api::status(&page, &components, &incidents),
        "/api/v2/components.json" => api::components(&page, &components, status.started),
        "/api/v2/incidents.json" => api::incidents(&page, &components, &incidents, status.started, &lang, false),
        "/api/v2/incidents/unresolved.json" => {
            api::incidents(&page, &components, &incidents, status.started, &lang, true)
        }
        _ => return respond(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n"),
    };
    respond(StatusCode::OK, json, serde_json::to_vec_pretty(&body).unwrap_or_default())
}

/// The page's identity: its name and public URL from `[status]` (the URL from the request
/// when none is configured).
fn page_of(snap: &Snapshot, req: &Request<Incoming>, now: u64) -> Page {
    let cfg = &snap.file.status;
    let url = if cfg.url.is_empty() {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        format!("http://{host}")
    } else {
        cfg.url.trim_end_matches('/').to_string()
    };
    Page { id: "holdfast".into(), name: cfg.title.clone(), url, updated_at: now }
}

/// The language: `?lang=`, else the best of `Accept-Language`, else the language of the
/// site whose host the page was asked for by, else `[status] language`.
fn language(snap: &Snapshot, req: &Request<Incoming>) -> String {
    if let Some(l) = req.uri().query().and_then(|q| crate::util::query_param(q, "lang")) {
        if LANGUAGES.contains(&l.as_str()) {
            return l;
        }
    }
    if let Some(l) = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(best_language) {
        return l.to_string();
    }
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h).to_ascii_lowercase();
    if let Some(site) = snap.site_for_host(&host) {
        if LANGUAGES.contains(&&*site.language) {
            return site.language.to_string();
        }
    }
    snap.file.status.language.clone()
}

/// The language of ours that an `Accept-Language` value prefers most (q-values honoured).
fn best_language(value: &str) -> Option<&'static str> {
    let mut best: Option<(&'static str, f32)> = None;
    for part in value.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        if let Some(l) = LANGUAGES.iter().find(|l| **l == primary) {
            if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((l, q));
            }
        }
    }
    best.map(|(l, _)| l)
}

#[cfg(test)]
mod tests {
    use super::best_language;

    #[test]
    fn accept_language_picks_the_most_preferred_of_ours() {
        assert_eq!(best_language("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7"), Some("fr"));
        assert_eq!(best_language("da, en-GB;q=0.8, en;q=0.7"), Some("en"));
        assert_eq!(best_language("it;q=0.2, de;q=0.5"), Some("de"));
        assert_eq!(best_language("ja, zh"), None);
        assert_eq!(best_language("de;q=0"), None);
    }
}
