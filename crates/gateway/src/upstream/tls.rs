//! TLS to origins (`[site.pool.tls]`): the rustls client config of a pool, built when a
//! snapshot is built (start, reload, `holdfast check`) so that a bad CA file, PEM or key
//! is a config error at its key; the per-origin config (its own session cache, so a new
//! connection resumes instead of paying a full handshake); and what a failed handshake
//! says, as a [`TlsFailure`] the incident engine can name ("expired at ...").
//!
//! Roots: the file in `ca`, else the system's (`rustls-native-certs`: `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`, else the distribution's bundle such as Debian's
//! `/etc/ssl/certs/ca-certificates.crt`). A system without any (a `scratch` container) gets
//! the Mozilla roots built into holdfast (`webpki-roots`), with a warning.

use crate::config::{self, File};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

/// Sessions (TLS 1.3 tickets, TLS 1.2 ids) kept per origin for resumption.
const SESSIONS_PER_ORIGIN: usize = 32;

/// The TLS settings of one pool, as configured.
#[derive(Debug)]
pub(crate) struct PoolTls {
    base: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    verify: bool,
    /// Of everything it was built from (the files' bytes too): an origin kept across a
    /// reload keeps its TLS, session cache and idle connections while this is unchanged.
    fingerprint: u64,
}

/// The TLS of one origin: the pool's settings with the origin's own session cache.
#[derive(Debug)]
pub(crate) struct OriginTls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) verify: bool,
    fingerprint: u64,
}

/// An origin's TLS in `/status.json`.
#[derive(Debug, Serialize)]
pub(crate) struct TlsView {
    server_name: String,
    verify: bool,
    /// Handshakes completed, and how many of them resumed a session.
    handshakes: u64,
    resumed: u64,
    last_failure: Option<TlsFailure>,
}

impl OriginTls {
    /// What `/status.json` shows of it.
    pub(crate) fn view(&self, notes: &TlsNotes) -> TlsView {
        use std::sync::atomic::Ordering::Relaxed;
        TlsView {
            server_name: self.server_name.to_str().into_owned(),
            verify: self.verify,
            handshakes: notes.handshakes.load(Relaxed),
            resumed: notes.resumed.load(Relaxed),
            last_failure: notes.last(),
        }
    }

    /// Whether its certificates go unchecked (`verify = false`).
    pub(crate) fn unverified(&self) -> bool {
        !self.verify
    }

    /// Whether both were built from the same settings.
    pub(crate) fn same_settings(&self, other: &OriginTls) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl PoolTls {
    /// The TLS for an origin of `host` (its DNS name or IP address).
    pub(crate) fn for_origin(&self, host: &str) -> Result<OriginTls, String> {
        let server_name = match &self.server_name {
            Some(n) => n.clone(),
            None => server_name(host)?,
        };
        let mut config = (*self.base).clone();
        config.resumption = Resumption::in_memory_sessions(SESSIONS_PER_ORIGIN);
        Ok(OriginTls { config: Arc::new(config), server_name, verify: self.verify, fingerprint: self.fingerprint })
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| format!("{host:?} is not a DNS name or IP address"))
}

/// Builds a pool's TLS from its config, reading the files it names; an error names the
/// key (file:line:col) and what was wrong.
pub(crate) fn build(file: &File, site: &str, tls: &config::PoolTls) -> Result<PoolTls, config::ConfigError> {
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    let at = |s: &toml::Spanned<std::path::PathBuf>, why: String| {
        file.error_at(s, format!("site {site:?}: [site.pool.tls] {why}"))
    };
    let read = |s: &toml::Spanned<std::path::PathBuf>, what: &str| {
        let path = file.path(s.get_ref());
        std::fs::read(&path).map_err(|e| at(s, format!("{what}: cannot read {}: {e}", path.display())))
    };
    let server_name = match &tls.server_name {
        Some(n) => {
            n.get_ref().hash(&mut hash);
            Some(
                server_name(n.get_ref())
                    .map_err(|why| file.error_at(n, format!("site {site:?}: [site.pool.tls] server_name {why}")))?,
            )
        }
        None => None,
    };
    tls.verify.hash(&mut hash);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config::ConfigError { file: String::new(), line: 0, column: 0, message: format!("TLS: {e}") })?;
    let builder = if !tls.verify {
        tracing::warn!(
            site,
            "[site.pool.tls] verify = false: origin certificates are NOT checked; anyone on the path can read \
             and change this traffic (for test beds only)"
        );
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else if let Some(ca) = &tls.ca {
        let pem = read(ca, "ca")?;
        pem.hash(&mut hash);
        let mut roots = RootCertStore::empty();
        for cert in crate::tls::pem_chain(&pem).map_err(|why| at(ca, format!("ca: {why}")))? {
            roots.add(cert).map_err(|e| at(ca, format!("ca: not a usable CA certificate: {e}")))?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder.with_root_certificates(system_roots())
    };
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), None) => return Err(at(c, "client_cert needs client_key".into())),
        (None, Some(k)) => return Err(at(k, "client_key needs client_cert".into())),
        (Some(c), Some(k)) => {
            let (cert_pem, key_pem) = (read(c, "client_cert")?, read(k, "client_key")?);
            cert_pem.hash(&mut hash);
            key_pem.hash(&mut hash);
            let certs = crate::tls::pem_chain(&cert_pem).map_err(|why| at(c, format!("client_cert: {why}")))?;
            let key = crate::tls::pem_key(&key_pem).map_err(|why| at(k, format!("client_key: {why}")))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => at(k, "client_key does not match client_cert".into()),
                e => at(k, format!("client_key: unusable: {e}")),
            })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(PoolTls { base: Arc::new(config), server_name, verify: tls.verify, fingerprint: hash.finish() })
}

/// The system's roots, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    errors = ?found.errors,
                    "no system root certificates found (install ca-certificates, or set SSL_CERT_FILE): \
                     origins are verified against the Mozilla roots built into holdfast"
                );
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

/// `verify = false`: every certificate is accepted. The handshake's signatures are still
/// checked (they prove the peer holds the key of the certificate it sent, whatever that is).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why TLS with an origin failed, for the incident engine and `/status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TlsFailure {
    /// `expired`, `not_yet_valid`, `name_mismatch`, `unknown_issuer`, `bad_certificate`,
    /// `refused` (the origin ended the handshake with an alert), `protocol`.
    pub(crate) reason: String,
    /// The certificate's end of validity (unix ms), for `expired`.
    #[serde(with = "crate::util::rfc3339_ms_opt", skip_serializing_if = "Option::is_none", default)]
    pub(crate) not_after: Option<u64>,
    /// rustls's words.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub(crate) detail: String,
}

impl TlsFailure {
    /// What a rustls error says, if the error is one.
    pub(crate) fn of(e: &std::io::Error) -> Option<TlsFailure> {
        let e = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        let (reason, not_after) = match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::Expired => ("expired", None),
                CertificateError::ExpiredContext { not_after, .. } => ("expired", Some(not_after.as_secs() * 1000)),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => ("not_yet_valid", None),
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    ("name_mismatch", None)
                }
                CertificateError::UnknownIssuer => ("unknown_issuer", None),
                _ => ("bad_certificate", None),
            },
            rustls::Error::AlertReceived(_) => ("refused", None),
            _ => ("protocol", None),
        };
        Some(TlsFailure { reason: reason.into(), not_after, detail: e.to_string() })
    }

    /// In a few English words: "certificate expired at 2026-12-02T19:00:00Z".
    pub(crate) fn words(&self) -> String {
        match self.reason.as_str() {
            "expired" => match self.not_after {
                Some(ms) => format!("certificate expired at {}", crate::util::rfc3339_seconds(ms)),
                None => "certificate expired".into(),
            },
            "not_yet_valid" => "certificate not valid yet".into(),
            "name_mismatch" => "certificate for another name".into(),
            "unknown_issuer" => "certificate from an unknown issuer".into(),
            "bad_certificate" => "certificate not acceptable".into(),
            "refused" => "handshake refused by the origin".into(),
            _ => "TLS handshake failed".into(),
        }
    }
}

/// An origin's TLS record: handshakes, how many were resumed, the last failure. Shared
/// (an `Arc`) with its connections, which note a failure seen after the handshake (a
/// TLS 1.3 origin refuses a client certificate only after the client's handshake ended).
#[derive(Debug, Default)]
pub(crate) struct TlsNotes {
    pub(crate) handshakes: std::sync::atomic::AtomicU64,
    pub(crate) resumed: std::sync::atomic::AtomicU64,
    /// The last failure (the incident engine reads it when a `tls` failure was counted).
    last: Mutex<Option<TlsFailure>>,
}

impl TlsNotes {
    pub(crate) fn failed(&self, f: TlsFailure) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(f);
        }
    }

    pub(crate) fn last(&self) -> Option<TlsFailure> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}
