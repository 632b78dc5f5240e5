//! Webhooks: every incident change (opened, updated, resolved) POSTed to each
//! `[[incidents.webhook]]` receiver, in its format (the admin API's object, Alertmanager's
//! webhook version 4, or Statuspage's incident payload), signed with HMAC-SHA256 when it
//! has a secret (`X-Holdfast-Signature: sha256=HEX` over the body).
//!
//! Each receiver has its own task and its own bounded queue, so a dead or slow receiver
//! loses its own messages and nobody else's, and nothing waits for it: the incident task
//! only `try_send`s. A delivery that fails (no connection, a timeout, a 5xx, 408 or 429)
//! is tried again after 1, 2, 4, 8 and 16 s (with jitter), in order; any other answer
//! ends it. Deliveries are counted by receiver and result in `holdfast_webhook_deliveries_total`.

use super::record::Incident;
use super::store::Event;
use super::view;
use crate::config::incidents::{Webhook, WebhookFormat};
use crate::telemetry::Telemetry;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages waiting per receiver at most.
const QUEUE: usize = 256;
/// Tries of one message at most.
const TRIES: u32 = 6;

/// What a receiver is told.
#[derive(Debug, Clone)]
struct Message {
    event: Event,
    incident: Incident,
}

/// The receivers' queues.
pub(crate) struct Notifier {
    receivers: Vec<(String, mpsc::Sender<Message>)>,
    telemetry: Arc<Telemetry>,
    /// The configuration they were started from (a reload that changes it starts new ones).
    pub(crate) config: Vec<(String, WebhookFormat, Option<String>, Duration)>,
}

/// What every receiver's messages need besides the incident.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) page: view::Page,
    /// Where an incident's report is (the admin listener), for Alertmanager's links.
    pub(crate) admin_url: String,
}

impl Notifier {
    /// Starts a task per receiver (inside a tokio runtime).
    pub(crate) fn start(hooks: &[Webhook], cx: Context, telemetry: Arc<Telemetry>) -> Notifier {
        let tls = tls_config();
        let mut receivers = Vec::new();
        for h in hooks {
            let (tx, rx) = mpsc::channel(QUEUE);
            let url = h.url.get_ref().clone();
            let label =
                url.parse::<http::Uri>().ok().and_then(|u| u.authority().map(|a| a.to_string())).unwrap_or_default();
            tokio::spawn(deliver(h.clone(), rx, cx.clone(), tls.clone(), telemetry.clone(), label.clone()));
            receivers.push((label, tx));
        }
        Notifier { receivers, telemetry, config: Notifier::key(hooks) }
    }

    /// What identifies a set of receivers (to see whether a reload changed them).
    pub(crate) fn key(hooks: &[Webhook]) -> Vec<(String, WebhookFormat, Option<String>, Duration)> {
        hooks.iter().map(|h| (h.url.get_ref().clone(), h.format, h.secret.clone(), h.timeout.get())).collect()
    }

    /// Queues a change for every receiver (never waits).
    pub(crate) fn tell(&self, event: Event, incident: &Incident) {
        for (label, tx) in &self.receivers {
            if tx.try_send(Message { event, incident: incident.clone() }).is_err() {
                self.telemetry.metrics.webhook(label, "dropped");
            }
        }
    }
}

/// One receiver's task: its messages in order, each tried until delivered or given up.
async fn deliver(
    hook: Webhook,
    mut rx: mpsc::Receiver<Message>,
    cx: Context,
    tls: Arc<rustls::ClientConfig>,
    telemetry: Arc<Telemetry>,
    label: String,
) {
    let Ok(url) = hook.url.get_ref().parse::<http::Uri>() else { return };
    let mut seed = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    while let Some(m) = rx.recv().await {
        let body = Bytes::from(body(hook.format, &m, &cx));
        let signature = hook.secret.as_deref().map(|s| sign(s.as_bytes(), &body));
        let mut delivered = false;
        for attempt in 0..TRIES {
            if attempt > 0 {
                let jitter = crate::util::unit(crate::util::next_random_local(&mut seed)) * 0.5 + 0.75;
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1)).mul_f64(jitter)).await;
            }
            let sent =
                tokio::time::timeout(hook.timeout.get(), post(&url, body.clone(), signature.as_deref(), &tls)).await;
            match sent {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    delivered = true;
                    break;
                }
                Ok(Ok(status)) if !matches!(status, 408 | 429 | 500..=599) => {
                    tracing::warn!(receiver = %label, status, "webhook refused the notification; not retried");
                    break;
                }
                Ok(Ok(status)) => tracing::debug!(receiver = %label, status, attempt, "webhook failed; retrying"),
                Ok(Err(e)) => tracing::debug!(receiver = %label, error = %e, attempt, "webhook failed; retrying"),
                Err(_) => tracing::debug!(receiver = %label, attempt, "webhook timed out; retrying"),
            }
        }
        telemetry.metrics.webhook(&label, if delivered { "delivered" } else { "failed" });
        if !delivered {
            tracing::warn!(receiver = %label, incident = %m.incident.id, event = m.event.as_str(), "webhook notification lost after retries");
        }
    }
}

/// HMAC-SHA256 of `body` under `secret`, as `sha256=HEX`.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let hex = crate::util::hex(tag.as_ref());
    format!("sha256={hex}")
}

/// The body of a message in a receiver's format.
fn body(format: WebhookFormat, m: &Message, cx: &Context) -> Vec<u8> {
    let i = &m.incident;
    let v = match format {
        WebhookFormat::Json => json!({"event": m.event.as_str(), "incident": view::admin(i)}),
        WebhookFormat::Statuspage => {
            let (indicator, description) = if i.is_open() {
                match view::statuspage_impact(i) {
                    "critical" => ("critical", "Major System Outage"),
                    "major" => ("major", "Partial System Outage"),
                    "minor" => ("minor", "Minor Service Outage"),
                    _ => ("none", "All Systems Operational"),
                }
            } else {
                ("none", "All Systems Operational")
            };
            json!({
                "meta": {"unsubscribe": "", "documentation": "https://doers.statuspage.io/customer-notifications/webhooks/"},
                "page": {"id": cx.page.id, "status_indicator": indicator, "status_description": description},
                "incident": view::statuspage(i, &cx.page, &[], i.detected_at, "en"),
            })
        }
        WebhookFormat::Alertmanager => {
            let firing = i.is_open();
            let labels = json!({
                "alertname": "HoldfastIncident",
                "kind": i.kind.as_str(),
                "scope": i.scope,
                "severity": i.severity.as_str(),
                "sites": i.sites.join(","),
                "datacenters": i.datacenters.join(","),
            });
            let status = if firing { "firing" } else { "resolved" };
            let ends = i.resolved_at.map_or_else(
                || "0001-01-01T00:00:00Z".to_string(),
                |r| humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(r)).to_string(),
            );
            let starts = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(i.started_at));
            json!({
                "version": "4",
                "groupKey": format!("{{}}:{{kind=\"{}\", scope=\"{}\"}}", i.kind.as_str(), i.scope),
                "truncatedAlerts": 0,
                "status": status,
                "receiver": "holdfast",
                "groupLabels": {"kind": i.kind.as_str(), "scope": i.scope},
                "commonLabels": labels,
                "commonAnnotations": {"summary": i.summary},
                "externalURL": cx.admin_url,
                "alerts": [{
                    "status": status,
                    "labels": labels,
                    "annotations": {"summary": i.summary, "event": m.event.as_str(), "incident": i.id},
                    "startsAt": starts.to_string(),
                    "endsAt": ends,
                    "generatorURL": format!("{}/incidents/{}", cx.admin_url, i.id),
                    "fingerprint": view::public_id(&i.id),
                }],
            })
        }
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The roots a receiver's certificate must chain to (Mozilla's, built in).
fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match cfg {
        Ok(c) => Arc::new(c),
        // Unreachable with ring's defaults; an empty config fails every https delivery.
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

/// POSTs `body` to `url`; the response's status.
async fn post(
    url: &http::Uri,
    body: Bytes,
    signature: Option<&str>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<u16, String> {
    let host = url.host().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']').to_string();
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let authority = url.authority().map_or(host.clone(), |a| a.to_string());
    let mut req = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, concat!("holdfast/", env!("CARGO_PKG_VERSION")));
    if let Some(s) = signature {
        req = req.header("x-holdfast-signature", s);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    if https {
        let name = rustls_pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let stream =
            tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| e.to_string())?;
        send(TokioIo::new(stream), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
}

async fn send<IO>(io: IO, req: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}
