//! Cache-Control as holdfast reads it (RFC 9111 §5.2): directive names in any case, a
//! directive given twice with different values making the response's freshness invalid
//! (stale), and the rules http-cache-semantics does not expose: stale-if-error and
//! stale-while-revalidate (RFC 5861), and whether a stored response may ever be served
//! stale (must-revalidate, proxy-revalidate, no-cache, and s-maxage, which implies
//! proxy-revalidate for a shared cache, §5.2.2.10).
//!
//! http-cache-semantics matches directive names as written and reads an `Age` that is not a
//! number as 0, so the cache hands it the response in a normal form first ([`normalize`]):
//! directive names in lowercase, and an invalid `Age` as a very old one (§5.1: such a
//! response is stale).

use http::header::{HeaderValue, AGE, CACHE_CONTROL, PRAGMA};
use http::HeaderMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) stale_if_error: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    /// must-revalidate, proxy-revalidate, no-cache or s-maxage (or a directive given twice
    /// with different values): never served stale.
    pub(crate) must_revalidate: bool,
    /// no-cache: every use needs a revalidation.
    pub(crate) no_cache: bool,
}

/// The directives of Cache-Control fields: (lowercase name, value without quotes).
fn items(headers: &HeaderMap) -> impl Iterator<Item = (String, Option<&str>)> {
    headers
        .get_all(CACHE_CONTROL)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((n, v)) => (n.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"'))),
            None => (item.to_ascii_lowercase(), None),
        })
}

impl Directives {
    pub(crate) fn of(headers: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        let mut seen: Vec<(String, Option<&str>)> = Vec::new();
        for (name, value) in items(headers) {
            // The same directive twice with different values: its freshness is invalid.
            if seen.iter().any(|(n, v)| *n == name && *v != value) {
                d.must_revalidate = true;
            }
            let secs = value.and_then(|v| v.parse::<u64>().ok());
            match name.as_str() {
                "stale-if-error" => d.stale_if_error = secs,
                "stale-while-revalidate" => d.stale_while_revalidate = secs,
                "no-cache" => {
                    d.no_cache = true;
                    d.must_revalidate = true;
                }
                "must-revalidate" | "proxy-revalidate" | "s-maxage" => d.must_revalidate = true,
                _ => {}
            }
            seen.push((name, value));
        }
        d
    }

    /// A response with validators is worth storing even when it is stale at once
    /// (it can be revalidated with a conditional request).
    pub(crate) fn revalidatable(headers: &HeaderMap) -> bool {
        headers.contains_key(http::header::ETAG) || headers.contains_key(http::header::LAST_MODIFIED)
    }

    /// Does a request carry directives of its own (Cache-Control, or Pragma: no-cache)?
    pub(crate) fn in_request(headers: &HeaderMap) -> bool {
        headers.contains_key(CACHE_CONTROL) || headers.contains_key(PRAGMA)
    }
}

/// `Age` as RFC 9111 §5.1 allows it: one non-negative integer (repeated with the same
/// value, at most). None when absent; Err when anything else.
pub(crate) fn age(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut age = None;
    for v in headers.get_all(AGE) {
        let s = v.to_str().map_err(|_| ())?.trim();
        // One value per field line; a list ("5, 6") or a parameter is not one.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let n = s.parse::<u64>().unwrap_or(u64::MAX);
        if age.is_some_and(|a| a != n) {
            return Err(());
        }
        age = Some(n);
    }
    Ok(age)
}

/// An `Age` older than any freshness lifetime (about 68 years).
const VERY_OLD: &str = "2147483648";

/// The headers as http-cache-semantics must see them: Cache-Control directive names in
/// lowercase (it compares them as written), and an invalid Age replaced by a very old one
/// (it reads anything but a number as 0). None when nothing needs to change.
pub(crate) fn normalize(headers: &HeaderMap) -> Option<HeaderMap> {
    let mixed_case =
        headers.get_all(CACHE_CONTROL).into_iter().any(|v| v.as_bytes().iter().any(u8::is_ascii_uppercase));
    let bad_age = age(headers).is_err();
    if !mixed_case && !bad_age {
        return None;
    }
    let mut out = headers.clone();
    if mixed_case {
        out.remove(CACHE_CONTROL);
        for v in headers.get_all(CACHE_CONTROL) {
            let lowered = lowercase_names(v.to_str().unwrap_or(""));
            if let Ok(v) = HeaderValue::from_str(&lowered) {
                out.append(CACHE_CONTROL, v);
            }
        }
    }
    if bad_age {
        out.insert(AGE, HeaderValue::from_static(VERY_OLD));
    }
    Some(out)
}

/// "Max-Age=60, No-Cache" → "max-age=60, no-cache": names lowercased, values as they are.
fn lowercase_names(value: &str) -> String {
    value
        .split(',')
        .map(|item| match item.split_once('=') {
            Some((n, v)) => format!("{}={v}", n.trim().to_ascii_lowercase()),
            None => item.trim().to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn parses_what_it_needs_in_any_case() {
        let h = headers(&[
            ("cache-control", "public, max-age=60, stale-if-error=600"),
            ("cache-control", "Stale-While-Revalidate=\"30\""),
        ]);
        let d = Directives::of(&h);
        assert_eq!(d.stale_if_error, Some(600));
        assert_eq!(d.stale_while_revalidate, Some(30));
        assert!(!d.must_revalidate);
        for cc in ["max-age=5, proxy-revalidate", "No-Cache", "NO-CACHE, max-age=60", "s-maxage=60", "Must-Revalidate"]
        {
            assert!(Directives::of(&headers(&[("cache-control", cc)])).must_revalidate, "{cc}");
        }
        assert!(Directives::of(&headers(&[("cache-control", "No-Cache")])).no_cache);
        // The same directive twice, different values: invalid freshness, never stale.
        assert!(
            Directives::of(&headers(&[("cache-control", "max-age=60"), ("cache-control", "max-age=5")]))
                .must_revalidate
        );
        assert!(!Directives::of(&headers(&[("cache-control", "max-age=60, max-age=60")])).must_revalidate);
    }

    #[test]
    fn age_must_be_one_non_negative_integer() {
        assert_eq!(age(&headers(&[])), Ok(None));
        assert_eq!(age(&headers(&[("age", "100")])), Ok(Some(100)));
        assert_eq!(age(&headers(&[("age", "100"), ("age", "100")])), Ok(Some(100)));
        for bad in ["abc", "-5", "1.5", "10s", "10;x=1", "5, 6", ""] {
            assert_eq!(age(&headers(&[("age", bad)])), Err(()), "{bad:?}");
        }
        assert_eq!(age(&headers(&[("age", "5"), ("age", "6")])), Err(()));
    }

    #[test]
    fn normalizes_for_http_cache_semantics() {
        assert_eq!(normalize(&headers(&[("cache-control", "max-age=60")])), None);
        let n = normalize(&headers(&[("cache-control", "Max-Age=60, No-Cache"), ("age", "x")])).unwrap();
        assert_eq!(n.get("cache-control").unwrap(), "max-age=60, no-cache");
        assert_eq!(n.get("age").unwrap(), VERY_OLD);
    }
}
