//! The challenge and the signed cookies: proof-of-work tokens, the clearance cookie that
//! passing one earns (bound to the client's prefix, expiring), and the visitor cookie every
//! client gets (its issue time says whether the client was here before a surge).
//!
//! Everything is stateless: tokens and cookies carry their times, the id of the key that
//! signed them, and an HMAC-SHA-256 over them (ring), so any instance with that key can
//! check them, and nothing is stored per client. [`Keys`] is a keyring: one key signs,
//! every key still valid verifies (a fleet rotates its shared keys without rejecting a
//! cookie signed before).

use crate::util::hex;
use ring::hmac;

pub(crate) const CLEARANCE: &str = "holdfast_clearance";
pub(crate) const VISITOR: &str = "holdfast_visitor";
/// Where the challenge page sends its answer.
pub const VERIFY_PATH: &str = "/.holdfast/challenge";
/// A token must be answered within this many seconds.
const TOKEN_TTL: u64 = 300;
/// Visitor cookies last this long.
pub(crate) const VISITOR_TTL: u64 = 30 * 24 * 3600;

/// Why an answer to a challenge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a token, or a nonce that is not a number.
    Malformed,
    /// Not signed by us, or issued to another network.
    NotOurs,
    Expired,
    NotEnoughWork,
}

impl Refused {
    /// The metric reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::Malformed | Refused::NotOurs => "challenge_invalid",
            Refused::Expired => "challenge_expired",
            Refused::NotEnoughWork => "challenge_wrong",
        }
    }
}

/// The keyring: the key that signs (its id first in every token and cookie) and the keys
/// that verify (the signing one among them). The secrets are kept beside the keys, so that
/// a new binary can be handed the ring ([`Keys::export`]) and cookies stay valid across an
/// upgrade.
pub(crate) struct Keys {
    signing: (String, hmac::Key),
    verifying: Vec<(String, hmac::Key)>,
    secrets: Vec<(String, Vec<u8>)>,
}

/// A keyring as it crosses to a new binary: the signing key's id, and every key's id and
/// secret (hex).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct KeysState {
    pub(crate) signing: String,
    pub(crate) keys: Vec<(String, String)>,
}

impl Keys {
    /// From the configured secret (every instance with the same secret has the same key,
    /// and the same id), or a random key of this process when it is empty.
    pub(crate) fn new(secret: &str) -> Keys {
        let (id, secret) = if secret.is_empty() {
            let rng = ring::rand::SystemRandom::new();
            let (mut id, mut key) = ([0u8; 4], [0u8; 32]);
            let _ = ring::rand::SecureRandom::fill(&rng, &mut id);
            if ring::rand::SecureRandom::fill(&rng, &mut key).is_err() {
                key = random_fallback();
            }
            (format!("l{}", hex(&id)), key.to_vec())
        } else {
            (format!("s{}", &hex(&sha256(secret.as_bytes()))[..8]), secret.as_bytes().to_vec())
        };
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        Keys { signing: (id.clone(), key.clone()), verifying: vec![(id.clone(), key)], secrets: vec![(id, secret)] }
    }

    /// A keyring of `secrets` (id, secret) in which `current` signs; None if it is not
    /// among them.
    fn of(secrets: Vec<(String, Vec<u8>)>, current: &str) -> Option<Keys> {
        let key = |s: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, s);
        let (_, secret) = secrets.iter().find(|(id, _)| id == current)?;
        let signing = (current.to_string(), key(secret));
        let verifying = secrets.iter().map(|(id, s)| (id.clone(), key(s))).collect();
        Some(Keys { signing, verifying, secrets })
    }

    /// A keyring of shared keys: `current` signs, all of `ring` (id, secret) verify, and
    /// so do the keys of `also` (the local key cookies were signed with before the ring
    /// was known).
    pub(crate) fn from_ring(ring: &[(String, Vec<u8>)], current: &str, also: Option<&Keys>) -> Option<Keys> {
        let mut secrets = ring.to_vec();
        if let Some(old) = also {
            // This instance's own keys (`l…`, `s…`) go on verifying; the fleet's (`f…`) are
            // the ring's to keep or drop.
            for (id, s) in old.secrets.iter().filter(|(id, _)| !id.starts_with('f')) {
                if !secrets.iter().any(|(i, _)| i == id) {
                    secrets.push((id.clone(), s.clone()));
                }
            }
        }
        Keys::of(secrets, current)
    }

    /// The ring, for a new binary.
    pub(crate) fn export(&self) -> KeysState {
        KeysState {
            signing: self.signing.0.clone(),
            keys: self.secrets.iter().map(|(id, s)| (id.clone(), hex(s))).collect(),
        }
    }

    /// The ring a previous binary exported; None if it does not hold together.
    pub(crate) fn import(state: &KeysState) -> Option<Keys> {
        let secrets =
            state.keys.iter().map(|(id, s)| Some((id.clone(), crate::util::unhex(s)?))).collect::<Option<Vec<_>>>()?;
        Keys::of(secrets, &state.signing)
    }

    /// The id of the key that signs.
    pub(crate) fn id(&self) -> &str {
        &self.signing.0
    }

    fn mac_with(key: &hmac::Key, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(key);
        for p in parts {
            ctx.update(p.as_bytes());
            ctx.update(b"|");
        }
        hex(&ctx.sign().as_ref()[..16])
    }

    fn mac(&self, parts: &[&str]) -> String {
        Keys::mac_with(&self.signing.1, parts)
    }

    /// Does `mac` sign `parts` under the key `id`?
    fn check(&self, id: &str, parts: &[&str], mac: &str) -> bool {
        self.verifying
            .iter()
            .find(|(k, _)| k == id)
            .is_some_and(|(_, key)| crate::util::ct_eq(Keys::mac_with(key, parts).as_bytes(), mac.as_bytes()))
    }

    /// A challenge token for a client of `prefix`: `key.issued.difficulty.salt.mac`.
    pub(crate) fn token(&self, prefix: &str, difficulty: u8, now_unix: u64, salt: u64) -> String {
        let (issued, d, salt) = (now_unix.to_string(), difficulty.to_string(), format!("{salt:016x}"));
        let mac = self.mac(&["t", &issued, &d, &salt, prefix]);
        format!("{}.{issued}.{d}.{salt}.{mac}", self.id())
    }

    /// Checks an answer to a token; Ok when the token is ours, fresh, for this prefix, and
    /// `nonce` proves the work.
    pub(crate) fn verify(&self, token: &str, nonce: &str, prefix: &str, now_unix: u64) -> Result<(), Refused> {
        let mut it = token.split('.');
        let (Some(id), Some(issued), Some(d), Some(salt), Some(mac), None) =
            (it.next(), it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return Err(Refused::Malformed);
        };
        if !self.check(id, &["t", issued, d, salt, prefix], mac) {
            return Err(Refused::NotOurs);
        }
        let issued: u64 = issued.parse().map_err(|_| Refused::Malformed)?;
        if now_unix > issued.saturating_add(TOKEN_TTL) || issued > now_unix + 60 {
            return Err(Refused::Expired);
        }
        let d: u32 = d.parse().map_err(|_| Refused::Malformed)?;
        if nonce.is_empty() || nonce.len() > 20 || !nonce.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refused::Malformed);
        }
        if leading_zero_bits(&sha256(format!("{token}:{nonce}").as_bytes())) < d {
            return Err(Refused::NotEnoughWork);
        }
        Ok(())
    }

    /// A clearance cookie value valid until `expires_unix` for `prefix`.
    pub(crate) fn clearance(&self, prefix: &str, expires_unix: u64) -> String {
        let e = expires_unix.to_string();
        let mac = self.mac(&["c", &e, prefix]);
        format!("{}.{e}.{mac}", self.id())
    }

    pub(crate) fn clearance_ok(&self, value: &str, prefix: &str, now_unix: u64) -> bool {
        let mut it = value.split('.');
        let (Some(id), Some(e), Some(mac), None) = (it.next(), it.next(), it.next(), it.next()) else { return false };
        e.parse::<u64>().is_ok_and(|exp| exp > now_unix) && self.check(id, &["c", e, prefix], mac)
    }

    /// A visitor cookie value issued at `issued_unix` to a client of `prefix`:
    /// `key.issued.id.tag.mac`, where `id` names the visitor (64 random bits) and `tag` the
    /// prefix it was issued to (the first 32 bits of its SHA-256), both signed.
    pub(crate) fn visitor(&self, issued_unix: u64, id: u64, prefix: &str) -> String {
        let (i, id, tag) = (issued_unix.to_string(), format!("{id:016x}"), prefix_tag(prefix));
        let mac = self.mac(&["v", &i, &id, &tag]);
        format!("{}.{i}.{id}.{tag}.{mac}", self.id())
    }

    /// A valid, unexpired visitor cookie: when it was issued, whom it names, and whether it
    /// was issued to `prefix` (a cookie of ours issued elsewhere, or of the older form that
    /// named no prefix, is genuine but not bound here).
    pub(crate) fn visitor_check(&self, value: &str, prefix: &str, now_unix: u64) -> Option<VisitorCookie> {
        let mut it = value.split('.');
        let (Some(key), Some(i), Some(id), Some(fourth)) = (it.next(), it.next(), it.next(), it.next()) else {
            return None;
        };
        let (tag, mac) = match (it.next(), it.next()) {
            (Some(mac), None) => (Some(fourth), mac),
            (None, _) => (None, fourth),
            _ => return None,
        };
        let issued: u64 = i.parse().ok()?;
        if issued > now_unix + 60 || now_unix >= issued.saturating_add(VISITOR_TTL) {
            return None;
        }
        let signed = match tag {
            Some(tag) => self.check(key, &["v", i, id, tag], mac),
            None => self.check(key, &["v", i, id], mac),
        };
        if !signed || id.len() != 16 {
            return None;
        }
        let id = u64::from_str_radix(id, 16).ok()?;
        let here = tag.is_some_and(|t| crate::util::ct_eq(t.as_bytes(), prefix_tag(prefix).as_bytes()));
        Some(VisitorCookie { issued, id, here })
    }
}

/// A visitor cookie that checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VisitorCookie {
    pub(crate) issued: u64,
    pub(crate) id: u64,
    /// Issued to the prefix it came from.
    pub(crate) here: bool,
}

/// The tag of a prefix in a visitor cookie.
fn prefix_tag(prefix: &str) -> String {
    hex(&sha256(prefix.as_bytes())[..4])
}

fn random_fallback() -> [u8; 32] {
    // Only if the system's random source fails: time and address entropy, still secret
    // enough for cookies that expire.
    let mut out = [0u8; 32];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let h = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), t);
    out[..8].copy_from_slice(&h.to_le_bytes());
    out[8..24].copy_from_slice(&t.to_le_bytes());
    out
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn leading_zero_bits(h: &[u8]) -> u32 {
    let mut n = 0;
    for &b in h {
        if b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Finds a nonce for `token` (what the page's script does; used by tests and the drill's
/// shoppers, who play browsers).
pub fn solve(token: &str) -> Option<u64> {
    // `key.issued.difficulty.salt.mac`
    let d: u32 = token.split('.').nth(2)?.parse().ok()?;
    if d > 64 {
        return None;
    }
    (0..u64::MAX).find(|n| leading_zero_bits(&sha256(format!("{token}:{n}").as_bytes())) >= d)
}

/// The value of cookie `name` in a request's Cookie headers.
pub(crate) fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').find_map(|pair| {
            let (k, val) = pair.trim().split_once('=')?;
            (k == name).then_some(val.trim())
        })
    })
}

/// Where the browser goes back to after the challenge: a path on this site only (no scheme,
/// no `//host`, no control characters), else `/`.
pub(crate) fn safe_return(r: Option<String>) -> String {
    match r {
        Some(r)
            if r.starts_with('/')
                && !r.starts_with("//")
                && !r.starts_with("/\\")
                && r.len() <= 2048
                && r.parse::<http::uri::PathAndQuery>().is_ok()
                && !r.bytes().any(|b| b.is_ascii_control()) =>
        {
            r
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solved_token_earns_clearance_for_its_prefix_only() {
        let k = Keys::new("secret");
        let t = k.token("203.0.113.0/24", 8, 1000, 42);
        let n = solve(&t).unwrap().to_string();
        assert_eq!(k.verify(&t, &n, "203.0.113.0/24", 1010), Ok(()));
        assert_eq!(k.verify(&t, &n, "198.51.100.0/24", 1010), Err(Refused::NotOurs), "bound to the prefix");
        assert_eq!(k.verify(&t, &n, "203.0.113.0/24", 2000), Err(Refused::Expired));
        let wrong = (n.parse::<u64>().unwrap() + 1..).find(|m| solve_check(&t, *m, 8).is_err()).unwrap();
        assert_eq!(k.verify(&t, &wrong.to_string(), "203.0.113.0/24", 1010), Err(Refused::NotEnoughWork));
        let forged = t.replace(".8.", ".0.");
        assert_eq!(k.verify(&forged, "0", "203.0.113.0/24", 1010), Err(Refused::NotOurs), "difficulty is signed");
        assert_eq!(Keys::new("other").verify(&t, &n, "203.0.113.0/24", 1010), Err(Refused::NotOurs));
        assert_eq!(k.verify("a.b", "1", "x", 1), Err(Refused::Malformed));
    }

    fn solve_check(t: &str, n: u64, d: u32) -> Result<(), ()> {
        (leading_zero_bits(&sha256(format!("{t}:{n}").as_bytes())) >= d).then_some(()).ok_or(())
    }

    #[test]
    fn the_page_script_and_the_verifier_agree_on_the_work() {
        // 6263 is the first nonce pages.rs's script finds for this token (computed with
        // node); the binary's browser test runs the whole exchange in headless Chromium.
        assert_eq!(solve("s1a2b3c4d.1700000000.12.abcdef.0123"), Some(6263));
        assert_eq!(solve("s1a2b3c4d.1700000000.99.abcdef.0123"), None, "more work than SHA-256 can show");
    }

    #[test]
    fn cookies() {
        let k = Keys::new("");
        let c = k.clearance("10.0.0.0/24", 5000);
        assert!(k.clearance_ok(&c, "10.0.0.0/24", 4999));
        assert!(!k.clearance_ok(&c, "10.0.0.0/24", 5000), "expired");
        assert!(!k.clearance_ok(&c, "10.0.1.0/24", 4000), "another prefix");
        assert!(!k.clearance_ok(&c.replace("5000", "9000"), "10.0.0.0/24", 4000), "tampered");
        let v = k.visitor(1000, 7, "10.0.0.0/24");
        let here = k.visitor_check(&v, "10.0.0.0/24", 2000).unwrap();
        assert_eq!((here.issued, here.id, here.here), (1000, 7, true));
        let moved = k.visitor_check(&v, "10.9.9.0/24", 2000).unwrap();
        assert!(!moved.here, "genuine, but issued to another prefix");
        assert_eq!(k.visitor_check(&v.replace(".1000.", ".0999."), "10.0.0.0/24", 2000), None);
        assert_eq!(k.visitor_check(&v, "10.0.0.0/24", 1000 + VISITOR_TTL), None);
        // The tag is signed: one cannot rebind a cookie to another prefix.
        let parts: Vec<&str> = v.split('.').collect();
        let other = prefix_tag("10.9.9.0/24");
        let rebound = format!("{}.{}.{}.{other}.{}", parts[0], parts[1], parts[2], parts[4]);
        assert_eq!(k.visitor_check(&rebound, "10.9.9.0/24", 2000), None);
        // The form before visitors were bound to prefixes: genuine, bound nowhere.
        let old = format!(
            "{}.1000.{:016x}.{}",
            k.id(),
            9,
            Keys::mac_with(&k.signing.1, &["v", "1000", &format!("{:016x}", 9)])
        );
        let o = k.visitor_check(&old, "10.0.0.0/24", 2000).unwrap();
        assert_eq!((o.issued, o.here), (1000, false));
    }

    #[test]
    fn a_keyring_signs_with_its_current_key_and_verifies_with_every_key() {
        let ring = vec![("k1".to_string(), b"one".to_vec()), ("k2".to_string(), b"two".to_vec())];
        let a = Keys::from_ring(&ring, "k1", None).unwrap();
        let b = Keys::from_ring(&ring, "k2", None).unwrap();
        let issued = |k: &Keys, v: &str| k.visitor_check(v, "p", 2000).map(|v| v.issued);
        let old = a.visitor(1000, 1, "p");
        assert!(old.starts_with("k1."));
        assert_eq!(issued(&b, &old), Some(1000), "signed before the rotation, still valid");
        let c = b.clearance("10.0.0.0/24", 5000);
        assert!(a.clearance_ok(&c, "10.0.0.0/24", 4000));
        // A key that left the ring no longer verifies; a local key kept beside it does.
        let local = Keys::new("");
        let mine = local.visitor(1000, 2, "p");
        let merged = Keys::from_ring(&ring[1..], "k2", Some(&local)).unwrap();
        assert_eq!(issued(&merged, &old), None);
        assert_eq!(issued(&merged, &mine), Some(1000));
        assert!(Keys::from_ring(&ring, "k9", None).is_none());
        // The same configured secret gives every instance the same key id.
        assert_eq!(Keys::new("shared").id(), Keys::new("shared").id());
        assert_ne!(Keys::new("").id(), Keys::new("").id());
    }

    #[test]
    fn parsing_helpers() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; holdfast_visitor=xyz".parse().unwrap());
        assert_eq!(cookie(&h, VISITOR), Some("xyz"));
        assert_eq!(cookie(&h, "holdfast"), None);
        let q = crate::util::query_param;
        assert_eq!(q("t=1.2&r=%2Fp%2F3%3Fx%3D1&n=5", "r").as_deref(), Some("/p/3?x=1"));
        assert_eq!(q("r=%zz", "r"), None);
        assert_eq!(safe_return(Some("/p/3?x=1".into())), "/p/3?x=1");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "/a\nb"] {
            assert_eq!(safe_return(Some(bad.into())), "/", "{bad:?}");
        }
    }
}
