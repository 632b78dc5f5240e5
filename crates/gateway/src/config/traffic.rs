//! The keys of a shop's traffic beyond its pools: path routes (`[[site.route]]`),
//! compression (`[site.compression]`) and HTTPS (`[site.https]`).

use super::{ByteSize, Pool};
use serde::Deserialize;
use toml::Spanned;

/// `[[site.route]]`: a path prefix of the site served by its own pools, in failover order.
/// They get the site's health checks, outlier ejection, retries, failover and slow start;
/// the cache, shield and pages are the site's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Starts with `/`; the longest prefix that matches a request's path wins.
    pub path_prefix: Spanned<String>,
    /// Its name in incidents, metrics and the access log; default: the prefix without its
    /// slashes (`/checkout/` is `checkout`).
    #[serde(default)]
    pub name: Option<String>,
    /// Its pools in failover order (the keys of `[[site.pool]]`).
    #[serde(default, rename = "pool")]
    pub pools: Vec<Pool>,
}

impl Route {
    /// The route's name: as given, or its prefix without slashes (`/` alone is `root`).
    pub fn name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => {
                let n = self.path_prefix.get_ref().trim_matches('/');
                if n.is_empty() {
                    "root".into()
                } else {
                    n.to_string()
                }
            }
        }
    }
}

/// A content coding holdfast can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    /// Zstandard (RFC 8878).
    Zstd,
    /// Brotli (RFC 7932).
    Br,
    /// gzip (RFC 1952).
    Gzip,
}

impl Coding {
    /// Its name in `Accept-Encoding` and `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// `[site.compression]`: responses are compressed by the client's `Accept-Encoding`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compression {
    /// Compress when true.
    pub enabled: bool,
    /// The codings offered, in the order preferred when the client's q-values tie.
    pub algorithms: Vec<Coding>,
    /// Smaller responses (by Content-Length) are sent as they are.
    pub min_bytes: ByteSize,
    /// Media types compressed (`text/*` for a whole family); others are sent as they are.
    pub types: Vec<String>,
}

/// Media types worth compressing: text, and the structured formats shops serve.
pub const COMPRESSIBLE_TYPES: [&str; 10] = [
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/manifest+json",
    "application/wasm",
    "image/svg+xml",
];

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enabled: true,
            algorithms: vec![Coding::Zstd, Coding::Br, Coding::Gzip],
            min_bytes: ByteSize(256),
            types: COMPRESSIBLE_TYPES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// `[site.https]`: moving visitors to https.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Https {
    /// Plain-HTTP requests get a `308` to the same host, path and query over https (not
    /// ACME's `/.well-known/acme-challenge/`).
    pub redirect: bool,
    /// `Strict-Transport-Security` on the site's TLS responses (`max-age=31536000`); none
    /// by default.
    pub hsts: Option<Spanned<String>>,
    /// The port redirects name, when the https listeners are reached on another port than
    /// 443; default: none in the URL (443).
    pub port: Option<u16>,
}
