//! TLS for the https listeners: loading each site's certificate, and the rustls server
//! config that chooses one by SNI (exact names and `*.` wildcards, like routing), with ALPN
//! h2 and http/1.1. Loaded when a snapshot is built (start, reload) and by `holdfast check`;
//! the config loader itself reads no certificates.

use crate::config::{ConfigError, File};
use crate::route::Routes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;

/// A PEM certificate chain (at least one `CERTIFICATE` block); the error says what was
/// wrong, without the file's name. Shared with TLS to origins' client certificates.
pub(crate) fn pem_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found: expected a PEM \"CERTIFICATE\" block".into());
    }
    Ok(certs)
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn pem_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("invalid PEM key: {e}"))?
        .ok_or_else(|| "no private key found: expected a PEM PKCS#8, PKCS#1 or SEC1 key".into())
}

/// Loads a PEM certificate chain and private key.
fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let certs = pem_chain(&read(cert)?).map_err(|why| format!("{}: {why}", cert.display()))?;
    let key_der = pem_key(&read(key)?).map_err(|why| format!("{}: {why}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{}: unsupported private key: {e}", key.display()))?;
    Ok(CertifiedKey::new(certs, signing))
}

/// Loads every site's certificate and key, with the site's host patterns (lowercase); an
/// error names the site and where its certificate is configured.
pub(crate) fn site_keys(file: &File) -> Result<Vec<(Vec<String>, CertifiedKey)>, ConfigError> {
    let mut keys = Vec::new();
    for site in &file.sites {
        let Some(tls) = &site.tls else { continue };
        let key = load_certified_key(&file.path(tls.cert.get_ref()), &file.path(tls.key.get_ref()))
            .map_err(|why| file.error_at(&tls.cert, format!("site {:?}: {why}", site.name.get_ref())))?;
        keys.push((site.hosts.iter().map(|h| h.get_ref().to_ascii_lowercase()).collect(), key));
    }
    Ok(keys)
}

/// Chooses the certificate by SNI; without SNI (or no match) the first site's.
#[derive(Debug)]
struct SniResolver {
    names: Routes,
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let idx = hello.server_name().and_then(|n| self.names.lookup(&n.to_ascii_lowercase())).unwrap_or(0);
        self.keys.get(idx).cloned()
    }
}

/// Builds the server TLS config from (host patterns, key) per site.
pub(crate) fn server_config(sites: Vec<(Vec<String>, CertifiedKey)>) -> Option<Arc<rustls::ServerConfig>> {
    if sites.is_empty() {
        return None;
    }
    let mut keys = Vec::with_capacity(sites.len());
    let mut patterns = Vec::new();
    for (i, (hosts, key)) in sites.into_iter().enumerate() {
        keys.push(Arc::new(key));
        patterns.extend(hosts.into_iter().map(move |h| (h, i)));
    }
    let names = Routes::new(patterns.iter().map(|(h, i)| (h.as_str(), *i)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { names, keys }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(Arc::new(cfg))
}
