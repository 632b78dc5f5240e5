//! Where ACME's state is kept: `STATE_DIR/account.json` (the account's credentials) and, per
//! site, `SITE.crt` (the chain, PEM) and `SITE.key` (its key, PEM). The directory is made
//! with mode 0700 and every file with 0600, written to a temporary name and renamed, so a
//! crash never leaves half a key.

use super::Issued;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Makes `dir` (0700) if it is not there, and narrows it to 0700 if it is.
pub(super) fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes `contents` to `path` (0600) through a temporary file renamed over it.
pub(super) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.{n}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A site name as a file name (letters, digits, `-`, `_`, `.`; the rest `_`).
fn file_name(site: &str) -> String {
    site.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

fn paths(dir: &Path, site: &str) -> (PathBuf, PathBuf) {
    let name = file_name(site);
    (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")))
}

/// The site's stored certificate, if there is one that loads.
pub(super) fn load(dir: &Path, site: &str) -> Option<Issued> {
    let (crt, key) = paths(dir, site);
    let (chain, key) = (std::fs::read(&crt).ok()?, std::fs::read(&key).ok()?);
    match parse(&chain, &key) {
        Ok(issued) => Some(issued),
        Err(e) => {
            tracing::warn!(site, error = %e, path = %crt.display(), "stored ACME certificate ignored");
            None
        }
    }
}

/// Stores a new certificate for the site; returns it ready to serve.
pub(super) fn save(dir: &Path, site: &str, chain: &str, key: &str) -> Result<Issued, String> {
    let issued = parse(chain.as_bytes(), key.as_bytes())?;
    let (crt_path, key_path) = paths(dir, site);
    write_private(&key_path, key.as_bytes()).map_err(|e| format!("cannot keep {}: {e}", key_path.display()))?;
    write_private(&crt_path, chain.as_bytes()).map_err(|e| format!("cannot keep {}: {e}", crt_path.display()))?;
    Ok(issued)
}

/// A PEM chain and key as served, with the leaf's validity.
pub(super) fn parse(chain: &[u8], key: &[u8]) -> Result<Issued, String> {
    let certs = crate::tls::pem_chain(chain)?;
    let key_der = crate::tls::pem_key(key)?;
    let (not_before, not_after) = validity(&certs[0])?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    Ok(Issued { key: Arc::new(rustls::sign::CertifiedKey::new(certs, signing)), not_before, not_after })
}

/// A certificate's validity (Unix seconds).
pub(crate) fn validity(der: &[u8]) -> Result<(u64, u64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("invalid certificate: {e}"))?;
    let v = cert.validity();
    let secs = |t: i64| u64::try_from(t).unwrap_or(0);
    Ok((secs(v.not_before.timestamp()), secs(v.not_after.timestamp())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_kept_private_and_read_back_with_its_validity() {
        let dir = std::env::temp_dir().join(format!("holdfast-acme-store-{}", std::process::id()));
        ensure_dir(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["shop.de".to_string()]).unwrap();
        let issued = save(&dir, "shop-de", &ck.cert.pem(), &ck.key_pair.serialize_pem()).unwrap();
        assert!(issued.not_after > issued.not_before);
        let back = load(&dir, "shop-de").unwrap();
        assert_eq!((back.not_before, back.not_after), (issued.not_before, issued.not_after));
        for f in ["shop-de.crt", "shop-de.key"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(load(&dir, "nowhere").is_none());
        std::fs::write(dir.join("broken.crt"), "not a certificate").unwrap();
        std::fs::write(dir.join("broken.key"), "not a key").unwrap();
        assert!(load(&dir, "broken").is_none(), "a broken file is ignored, not a panic");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
