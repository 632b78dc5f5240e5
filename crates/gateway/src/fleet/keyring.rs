//! The fleet's shared keys for challenges, clearances and visitor cookies: a Redis hash with
//! one field per rotation epoch (`epoch:N` → `id:secret`), N = now ÷ `key_rotation`. The
//! first instance to need an epoch's key creates it with HSETNX, so every instance agrees
//! without a lock. The next epoch's key is created one epoch ahead, so every instance
//! verifies a key before any signs with it (two live keys at least); the current epoch's key
//! signs, and the keys of the epochs a visitor cookie can still be from (30 days) verify, so
//! rotation never rejects a valid cookie.

use crate::shield::challenge::VISITOR_TTL;
use crate::util::{hex, unhex};
use std::collections::HashMap;

/// Keys kept at most (the hash stays small whatever the rotation).
const MAX_EPOCHS: u64 = 1000;

/// What the keyring says: the keys by id, the one that signs, and what to write.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Ring {
    pub(crate) keys: Vec<(String, Vec<u8>)>,
    pub(crate) current: Option<String>,
    /// Fields and values of the current and next epochs' keys, when they have none yet
    /// (HSETNX).
    pub(crate) create: Vec<(String, String)>,
    /// Fields of epochs no cookie can be from any more (HDEL).
    pub(crate) expired: Vec<String>,
}

/// A new key: 8 hex digits of id, 32 random bytes.
fn new_key() -> String {
    let rng = ring::rand::SystemRandom::new();
    let (mut id, mut secret) = ([0u8; 4], [0u8; 32]);
    let _ = ring::rand::SecureRandom::fill(&rng, &mut id);
    let _ = ring::rand::SecureRandom::fill(&rng, &mut secret);
    format!("f{}:{}", hex(&id), hex(&secret))
}

/// Reads the hash (`fields`) at `now_ms`, with epochs of `rotation_ms`.
pub(crate) fn read(fields: &HashMap<String, String>, now_ms: u64, rotation_ms: u64) -> Ring {
    let rotation_ms = rotation_ms.max(1);
    let epoch = now_ms / rotation_ms;
    // The epochs a cookie signed then may still be shown from.
    // (At most MAX_EPOCHS: a rotation so short that they do not cover a visitor cookie's
    // life shortens it; docs/config.md says so.)
    let keep = ((VISITOR_TTL * 1000).div_ceil(rotation_ms) + 1).min(MAX_EPOCHS);
    let mut ring = Ring::default();
    let mut newest: Option<(u64, String)> = None;
    let mut next_there = false;
    for (field, value) in fields {
        let Some(n) = field.strip_prefix("epoch:").and_then(|n| n.parse::<u64>().ok()) else { continue };
        if n + keep < epoch {
            ring.expired.push(field.clone());
            continue;
        }
        let Some((id, secret)) = value.split_once(':').and_then(|(i, s)| Some((i.to_string(), unhex(s)?))) else {
            continue;
        };
        next_there |= n == epoch + 1;
        if n <= epoch && newest.as_ref().is_none_or(|(m, _)| n > *m) {
            newest = Some((n, id.clone()));
        }
        ring.keys.push((id, secret));
    }
    if newest.as_ref().is_none_or(|(n, _)| *n != epoch) {
        ring.create.push((format!("epoch:{epoch}"), new_key()));
    }
    if !next_there {
        ring.create.push((format!("epoch:{}", epoch + 1), new_key()));
    }
    ring.current = newest.map(|(_, id)| id);
    ring.keys.sort();
    ring
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_rotate_keep_what_cookies_need_and_drop_the_rest() {
        let day = 24 * 3600 * 1000;
        let empty = read(&HashMap::new(), 10 * day, day);
        assert_eq!(empty.current, None);
        let names: Vec<&str> = empty.create.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["epoch:10", "epoch:11"], "this epoch's key and the next's");
        let mut fields: HashMap<String, String> = empty.create.into_iter().collect();
        let ring = read(&fields, 10 * day + 5, day);
        assert!(ring.create.is_empty());
        let first = ring.current.clone().unwrap();
        assert_eq!(ring.keys.len(), 2, "the next key verifies before it signs");
        // The next day: the key made yesterday signs; the day after's is made.
        let next = read(&fields, 11 * day, day);
        assert_ne!(next.current.as_deref(), Some(first.as_str()));
        assert!(next.keys.iter().any(|(id, _)| *id == first), "yesterday's key still verifies");
        assert_eq!(next.create.len(), 1);
        fields.extend(next.create);
        assert_eq!(read(&fields, 11 * day, day).keys.len(), 3);
        // Far later: epochs 10 to 12 are older than any visitor cookie: dropped.
        let mut expired = read(&fields, 60 * day, day).expired;
        expired.sort();
        assert_eq!(expired, vec!["epoch:10".to_string(), "epoch:11".to_string(), "epoch:12".to_string()]);
        assert!(read(&HashMap::from([("epoch:10".to_string(), "bad".to_string())]), 10 * day, day).keys.is_empty());
    }
}
