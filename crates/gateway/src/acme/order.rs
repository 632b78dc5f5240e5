//! One order (RFC 8555 §7.4) with instant-acme: the account (created once, then read from
//! `account.json`), a new order for the site's hosts, each authorization's challenge
//! answered (HTTP-01 or TLS-ALPN-01, through [`Certs`](super::Certs)), the CSR of a new key
//! (rcgen), and the certificate chain.

use super::{store, Manager, Site};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

/// How long the server may take to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new().timeout(Duration::from_secs(60));

/// Orders a certificate for `site`: Ok((chain PEM, key PEM)).
pub(super) async fn order(m: &Manager, site: &Site) -> Result<(String, String), String> {
    let account = account(m).await?;
    let ids: Vec<Identifier> = site.hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&ids)).await.map_err(|e| format!("new order: {e}"))?;
    let mut answers = Answers { m, tokens: Vec::new(), hosts: Vec::new() };
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => return Err(format!("authorization for {:?} is {other:?}", authz.identifier())),
        }
        let kind = if m.http01 { ChallengeType::Http01 } else { ChallengeType::TlsAlpn01 };
        let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| format!("the server offers no {kind:?}"))?;
        let host = match challenge.identifier().identifier {
            Identifier::Dns(h) => h.clone(),
            other => return Err(format!("not a DNS name: {other:?}")),
        };
        let key_auth = challenge.key_authorization();
        if m.http01 {
            answers.http(challenge.token.clone(), key_auth.as_str().to_string());
            if let Some(shared) = &m.shared {
                // Every point of presence must know the answer before the server asks.
                shared.publish_answer(&challenge.token, key_auth.as_str()).await?;
                tokio::time::sleep(super::shared::ANSWERS_EVERY * 3).await;
            }
        } else {
            answers.alpn(&host, key_auth.digest().as_ref())?;
        }
        challenge.set_ready().await.map_err(|e| format!("challenge for {host}: {e}"))?;
    }
    let status = order.poll_ready(&POLL).await.map_err(|e| format!("validation: {e}"))?;
    if status != OrderStatus::Ready {
        let why = order.state().error.as_ref().map(|p| p.to_string()).unwrap_or_else(|| format!("{status:?}"));
        return Err(format!("the order was refused: {why}"));
    }
    drop(answers);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(site.hosts.clone()).map_err(|e| format!("CSR: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(|e| format!("CSR: {e}"))?;
    order.finalize_csr(csr.der()).await.map_err(|e| format!("finalize: {e}"))?;
    let chain = order.poll_certificate(&POLL).await.map_err(|e| format!("certificate: {e}"))?;
    Ok((chain, key.serialize_pem()))
}

/// The account: read from `account.json`, or created (and kept there); once per manager,
/// whichever site's task asks first (the others wait for it).
async fn account(m: &Manager) -> Result<Account, String> {
    let mut cached = m.account.lock().await;
    if let Some(a) = cached.as_ref() {
        return Ok(a.clone());
    }
    let account = read_or_create(m).await?;
    *cached = Some(account.clone());
    Ok(account)
}

async fn read_or_create(m: &Manager) -> Result<Account, String> {
    let path = m.dir.join("account.json");
    let builder = || match &m.cfg.ca {
        Some(ca) => Account::builder_with_root(ca).map_err(|e| format!("[acme] ca {}: {e}", ca.display())),
        None => Account::builder().map_err(|e| format!("ACME client: {e}")),
    };
    if let Ok(text) = std::fs::read(&path) {
        if let Ok(creds) = serde_json::from_slice::<AccountCredentials>(&text) {
            return builder()?.from_credentials(creds).await.map_err(|e| format!("account: {e}"));
        }
        tracing::warn!(path = %path.display(), "unreadable ACME account: a new one is created");
    }
    let contact: Vec<&str> = m.cfg.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let (account, creds) =
        builder()?.create(&new, m.cfg.directory.clone(), None).await.map_err(|e| format!("new account: {e}"))?;
    let json = serde_json::to_vec(&creds).map_err(|e| e.to_string())?;
    store::write_private(&path, &json).map_err(|e| format!("cannot keep {}: {e}", path.display()))?;
    Ok(account)
}

/// The challenges' answers while an order is on; taken back when it ends, however it ends.
struct Answers<'a> {
    m: &'a Manager,
    tokens: Vec<String>,
    hosts: Vec<String>,
}

impl Answers<'_> {
    fn http(&mut self, token: String, key_auth: String) {
        if let Ok(mut h) = self.m.certs.http.write() {
            h.insert(token.clone(), key_auth);
            self.tokens.push(token);
        }
    }

    /// A self-signed certificate for `host` with the acmeIdentifier extension (RFC 8737 §3).
    fn alpn(&mut self, host: &str, digest: &[u8]) -> Result<(), String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
        let ck = Arc::new(rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing));
        if let Ok(mut a) = self.m.certs.alpn.write() {
            a.insert(host.to_string(), ck);
            self.hosts.push(host.to_string());
        }
        Ok(())
    }
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        if let Ok(mut h) = self.m.certs.http.write() {
            self.tokens.iter().for_each(|t| drop(h.remove(t)));
        }
        if let Ok(mut a) = self.m.certs.alpn.write() {
            self.hosts.iter().for_each(|t| drop(a.remove(t)));
        }
    }
}
