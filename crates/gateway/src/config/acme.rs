//! `[acme]`: where certificates by ACME (RFC 8555) come from, and where they are kept.

use super::values::Dur;
use serde::Deserialize;
use std::path::PathBuf;

/// `[acme]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// The ACME server's directory URL.
    pub directory: String,
    /// Contact URLs for the account (`mailto:ops@shop.de`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// PEM roots for the ACME server itself (a test CA such as Pebble's); default: the
    /// system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The account key and the certificates, kept across restarts (relative to the config
    /// file's directory; made with mode 0700, files 0600).
    pub state_dir: PathBuf,
    /// A certificate is renewed once this share of its lifetime is left (one third: at two
    /// thirds of its life, as Caddy and certbot do).
    #[serde(default = "default_window")]
    pub renewal_window: f64,
    /// The first wait after a failed order; it doubles with each failure, up to a day.
    #[serde(default = "default_retry")]
    pub retry: Dur,
}

fn default_window() -> f64 {
    1.0 / 3.0
}

fn default_retry() -> Dur {
    Dur::secs(60)
}
