//! TLS for the https and QUIC listeners: loading each site's certificate, and the rustls
//! server configs that choose one by SNI (exact names and `*.` wildcards, like routing),
//! with ALPN h2 and http/1.1 over TCP, h3 over QUIC. Loaded when a snapshot is built (start, reload) and by `holdfast check`;
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
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("{}: unsupported private key: {e}", key.display()))?;
    Ok(CertifiedKey::new(certs, signing))
}

/// The cryptography of clients' TLS (handshakes, records, the certificates' keys): ring,
/// or AWS-LC with the `aws-lc-rs` feature. Measured against each other (docs/benchmarks.md)
/// they tie; ring is the default, as it needs no C toolchain to build.
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    rustls::crypto::ring::default_provider()
}

/// One site's certificate: from files, by ACME (named by the site), or both (the files
/// serve until the ACME certificate is issued).
#[derive(Debug)]
pub(crate) struct SiteCert {
    pub(crate) name: String,
    pub(crate) hosts: Vec<String>,
    /// When the files' certificate expires (Unix seconds).
    pub(crate) file_expiry: Option<u64>,
    pub(crate) file: Option<Arc<CertifiedKey>>,
    pub(crate) acme: Option<String>,
}

/// Loads every site's certificate files, with the site's host patterns (lowercase); an
/// error names the site and where its certificate is configured.
pub(crate) fn site_keys(file: &File) -> Result<Vec<SiteCert>, ConfigError> {
    let mut keys = Vec::new();
    for site in &file.sites {
        let Some(tls) = &site.tls else { continue };
        let from_files = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some(Arc::new(
                load_certified_key(&file.path(cert.get_ref()), &file.path(key.get_ref()))
                    .map_err(|why| file.error_at(cert, format!("site {:?}: {why}", site.name.get_ref())))?,
            )),
            _ => None,
        };
        let file_expiry = from_files
            .as_ref()
            .and_then(|k| k.cert.first())
            .and_then(|c| crate::acme::validity(c).ok())
            .map(|(_, not_after)| not_after);
        keys.push(SiteCert {
            name: site.name.get_ref().clone(),
            file_expiry,
            hosts: site.hosts.iter().map(|h| h.get_ref().to_ascii_lowercase()).collect(),
            file: from_files,
            acme: tls.acme.then(|| site.name.get_ref().clone()),
        });
    }
    Ok(keys)
}

/// Chooses the certificate by SNI; without SNI (or no match) the first site's. A site's
/// ACME certificate, once issued, wins over its files; a TLS-ALPN-01 handshake gets the
/// challenge's answer.
#[derive(Debug)]
struct SniResolver {
    names: Routes,
    sites: Vec<SiteCert>,
    acme: Arc<crate::acme::Certs>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let challenge = hello.alpn().is_some_and(|mut p| p.any(|p| p == crate::acme::ACME_TLS_ALPN));
        if challenge {
            return self.acme.alpn_answer(name.as_deref()?);
        }
        let idx = name.and_then(|n| self.names.lookup(&n)).unwrap_or(0);
        let site = self.sites.get(idx)?;
        site.acme.as_deref().and_then(|s| self.acme.for_site(s)).or_else(|| site.file.clone())
    }
}

/// The server TLS configs, both choosing certificates by SNI through one resolver: for
/// the https listeners (TLS 1.2 and 1.3; ALPN h2, http/1.1, and acme-tls/1 when a site
/// uses ACME), and for QUIC (TLS 1.3 only, ALPN h3, no early data: 0-RTT is off).
pub(crate) struct ServerConfigs {
    pub(crate) tcp: Arc<rustls::ServerConfig>,
    pub(crate) quic: Option<Arc<quinn::crypto::rustls::QuicServerConfig>>,
}

/// Builds the server TLS configs from the sites' certificates (None: no site has one).
pub(crate) fn server_configs(sites: Vec<SiteCert>, acme: &Arc<crate::acme::Certs>) -> Option<ServerConfigs> {
    if sites.is_empty() {
        return None;
    }
    let names = Routes::new(sites.iter().enumerate().flat_map(|(i, s)| s.hosts.iter().map(move |h| (h.as_str(), i))));
    let with_acme = sites.iter().any(|s| s.acme.is_some());
    let resolver: Arc<dyn ResolvesServerCert> = Arc::new(SniResolver { names, sites, acme: acme.clone() });
    let provider = Arc::new(provider());
    let mut tcp = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    tcp.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if with_acme {
        tcp.alpn_protocols.push(crate::acme::ACME_TLS_ALPN.to_vec());
    }
    let quic = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .ok()
        .map(|b| {
            let mut cfg = b.with_no_client_auth().with_cert_resolver(resolver);
            cfg.alpn_protocols = vec![b"h3".to_vec()];
            // 0-RTT off: a replayed early request could repeat an order (RFC 9001 §9.2).
            cfg.max_early_data_size = 0;
            cfg
        })
        .and_then(|cfg| quinn::crypto::rustls::QuicServerConfig::try_from(cfg).ok())
        .map(Arc::new);
    Some(ServerConfigs { tcp: Arc::new(tcp), quic })
}
