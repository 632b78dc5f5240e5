//! Small shared helpers.

/// Serde helper: `SystemTime` as an RFC 3339 UTC timestamp with milliseconds.
pub(crate) mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}

/// Unix milliseconds in RFC 3339 to the second: "2026-12-02T19:00:00Z".
pub(crate) fn rfc3339_seconds(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Serializes an optional `SystemTime` as an RFC 3339 timestamp or null.
pub(crate) mod rfc3339_opt {
    use serde::Serializer;
    use std::time::SystemTime;

    pub(crate) fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
            None => s.serialize_none(),
        }
    }
}

/// Serde helper: unix milliseconds as an RFC 3339 UTC timestamp with milliseconds, and back.
pub(crate) mod rfc3339_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, UNIX_EPOCH};

    pub(crate) fn serialize<S: Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(*ms)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub(crate) fn parse(text: &str) -> Result<u64, String> {
        let t = humantime::parse_rfc3339(text).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
    }
}

/// As [`rfc3339_ms`], for an optional timestamp (null when absent).
pub(crate) mod rfc3339_ms_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => super::rfc3339_ms::serialize(ms, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::rfc3339_ms::parse(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Compares secrets in time that does not depend on where they differ.
/// Lowercase hex of `b`.
pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// The bytes of a hex string (None: odd length or not hex).
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A query parameter's value, percent-decoded (and `+` as space); None when absent, badly
/// escaped or not UTF-8.
/// `target` without the query parameters `ignored` names (an entry ending in `*` names
/// every parameter it begins: `utm_*`); borrowed when there is nothing to take out. The
/// order of what is left is kept.
pub(crate) fn without_params<'a>(target: &'a str, ignored: &[String]) -> std::borrow::Cow<'a, str> {
    let Some((path, query)) = target.split_once('?') else { return target.into() };
    let drop = |pair: &str| {
        let name = pair.split('=').next().unwrap_or("");
        ignored.iter().any(|i| match i.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == i,
        })
    };
    if ignored.is_empty() || !query.split('&').any(drop) {
        return target.into();
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !drop(p)).collect();
    if kept.is_empty() {
        path.to_string().into()
    } else {
        format!("{path}?{}", kept.join("&")).into()
    }
}

pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A small, fast random source (xorshift64*) for choices on the request path. Races
/// between threads only make it a little less random, which is harmless here.
pub(crate) fn next_random(state: &std::sync::atomic::AtomicU64) -> u64 {
    let mut x = state.load(std::sync::atomic::Ordering::Relaxed);
    let r = next_random_local(&mut x);
    state.store(x, std::sync::atomic::Ordering::Relaxed);
    r
}

/// A uniform draw in [0, 1) from [`next_random`].
pub(crate) fn uniform(state: &std::sync::atomic::AtomicU64) -> f64 {
    unit(next_random(state))
}

/// The top 53 bits of `x` as a float in [0, 1).
pub(crate) fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

pub(crate) fn next_random_local(x: &mut u64) -> u64 {
    if *x == 0 {
        *x = 0x9E37_79B9_7F4A_7C15;
    }
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The next connection on a side listener (admin, status), or None once `shutdown` says
/// so. An accept error (out of file descriptors) waits a moment rather than spinning.
pub(crate) async fn accept_until(
    listener: &tokio::net::TcpListener,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::net::TcpStream> {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return None,
            r = listener.accept() => match r {
                Ok((tcp, _)) => return Some(tcp),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_parameters_are_taken_out_of_a_target() {
        let ignored = vec!["utm_*".to_string(), "gclid".to_string()];
        assert_eq!(without_params("/?utm_source=nl&utm_id=7", &ignored), "/");
        assert_eq!(without_params("/p/1?a=1&utm_campaign=x&b=2&gclid=z", &ignored), "/p/1?a=1&b=2");
        assert_eq!(without_params("/p/1?gclidx=1", &ignored), "/p/1?gclidx=1", "a name, not a prefix");
        assert!(matches!(without_params("/search?q=bear", &ignored), std::borrow::Cow::Borrowed(_)));
        assert_eq!(without_params("/x?utm_a=1", &[]), "/x?utm_a=1");
    }
}
