//! `[incidents]` and `[status]`: the incident engine, where its history is kept, whom it
//! tells, and the public status page it feeds. Every key is in docs/config.md.

use super::Dur;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// `[incidents]`: naming incidents (data-center failure, origin failure, flood, flash
/// crowd, overload) from what the gateway sees.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Incidents {
    /// Name incidents at all.
    pub enabled: bool,
    /// Where the incident journal is kept (relative paths from the config file's
    /// directory); none: in memory only, history is lost on restart.
    pub state_dir: Option<PathBuf>,
    /// How long resolved incidents are kept and shown.
    pub retention: Dur,
    /// Most incidents kept (the oldest resolved ones go first).
    pub max_incidents: usize,
    /// An incident is resolved once its condition has been clear this long (it shows as
    /// `monitoring` meanwhile).
    pub resolve_after: Dur,
    /// A flash crowd: a site's request rate (flood traffic left out) at least this many
    /// times its usual rate ...
    pub surge_factor: f64,
    /// ... and at least this many requests per second above it.
    pub surge_min_rps: f64,
    /// `[[incidents.webhook]]`: receivers told when an incident opens, changes or resolves.
    #[serde(rename = "webhook")]
    pub webhooks: Vec<Webhook>,
}

impl Default for Incidents {
    fn default() -> Self {
        Incidents {
            enabled: true,
            state_dir: None,
            retention: Dur::secs(90 * 24 * 3600),
            max_incidents: 1000,
            resolve_after: Dur::secs(30),
            surge_factor: 3.0,
            surge_min_rps: 10.0,
            webhooks: Vec::new(),
        }
    }
}

/// `[[incidents.webhook]]`: one receiver of incident notifications.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://` URL the notifications are POSTed to.
    pub url: Spanned<String>,
    /// The body's format.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Signs each body with HMAC-SHA256 under this key, sent as
    /// `X-Holdfast-Signature: sha256=HEX`.
    #[serde(default)]
    pub secret: Option<String>,
    /// A delivery that takes longer has failed (and is retried).
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Dur,
}

fn default_webhook_timeout() -> Dur {
    Dur::secs(5)
}

/// The body of a webhook notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookFormat {
    /// The incident as `/incidents.json` shows it, with the event (`opened`, `updated`,
    /// `resolved`).
    #[default]
    Json,
    /// Prometheus Alertmanager's webhook (version 4): one alert, firing or resolved.
    Alertmanager,
    /// Atlassian Statuspage's incident webhook payload.
    Statuspage,
}

/// `[status]`: the public status page, served on `[listen] status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusPage {
    /// The page's name: its title, and `page.name` in the Statuspage API.
    pub title: String,
    /// The page's public URL (`page.url`, the Atom feed's links); empty: from the request.
    pub url: String,
    /// The language for a visitor who asks for none of the page's (de, en, fr, it).
    pub language: String,
}

impl Default for StatusPage {
    fn default() -> Self {
        StatusPage { title: "Shop status".into(), url: String::new(), language: "en".into() }
    }
}
