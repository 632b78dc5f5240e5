//! The Cache-Control directives holdfast acts on itself (http-cache-semantics does not
//! expose them): stale-if-error and stale-while-revalidate (RFC 5861), and whether a stored
//! response may ever be served stale (must-revalidate, proxy-revalidate, no-cache).

use http::HeaderMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) stale_if_error: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    /// must-revalidate, proxy-revalidate or no-cache: never served stale.
    pub(crate) must_revalidate: bool,
}

impl Directives {
    pub(crate) fn of(headers: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        for v in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for item in v.split(',') {
                let item = item.trim();
                let (name, value) = match item.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (item, None),
                };
                let secs = value.and_then(|v| v.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "stale-if-error" => d.stale_if_error = secs,
                    "stale-while-revalidate" => d.stale_while_revalidate = secs,
                    "must-revalidate" | "proxy-revalidate" | "no-cache" => d.must_revalidate = true,
                    _ => {}
                }
            }
        }
        d
    }

    /// A response with validators is worth storing even when it is stale at once
    /// (it can be revalidated with a conditional request).
    pub(crate) fn revalidatable(headers: &HeaderMap) -> bool {
        headers.contains_key(http::header::ETAG) || headers.contains_key(http::header::LAST_MODIFIED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_needs() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", "public, max-age=60, stale-if-error=600".parse().unwrap());
        h.append("cache-control", "Stale-While-Revalidate=\"30\"".parse().unwrap());
        let d = Directives::of(&h);
        assert_eq!(d.stale_if_error, Some(600));
        assert_eq!(d.stale_while_revalidate, Some(30));
        assert!(!d.must_revalidate);
        h.insert("cache-control", "max-age=5, proxy-revalidate".parse().unwrap());
        assert!(Directives::of(&h).must_revalidate);
        h.insert("cache-control", "no-cache".parse().unwrap());
        assert!(Directives::of(&h).must_revalidate);
    }
}
