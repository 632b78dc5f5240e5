//! Host to site: exact names first, then the longest matching `*.` wildcard.

use std::collections::HashMap;

/// The routing table of one config snapshot. Values are indexes into the snapshot's sites.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    exact: HashMap<String, usize>,
    /// (".shop.de", site), longest suffix first.
    wildcard: Vec<(String, usize)>,
}

impl Routes {
    /// `patterns` are lowercase host names or `*.suffix` wildcards, already validated.
    pub(crate) fn new<'a>(patterns: impl IntoIterator<Item = (&'a str, usize)>) -> Routes {
        let mut r = Routes::default();
        for (p, site) in patterns {
            match p.strip_prefix('*') {
                Some(suffix) => r.wildcard.push((suffix.to_string(), site)),
                None => {
                    r.exact.insert(p.to_string(), site);
                }
            }
        }
        r.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        r
    }

    /// `host` must be lowercase, without port. A wildcard matches one or more labels before
    /// its suffix (`*.shop.de` matches `a.shop.de` and `a.b.shop.de`, not `shop.de`).
    pub(crate) fn lookup(&self, host: &str) -> Option<usize> {
        if let Some(&s) = self.exact.get(host) {
            return Some(s);
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(&s) = self.exact.get(host) {
            return Some(s);
        }
        self.wildcard
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|&(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::Routes;

    #[test]
    fn exact_then_longest_wildcard() {
        let r = Routes::new([("shop.de", 0), ("*.shop.de", 1), ("*.eu.shop.de", 2), ("de.shop.localhost", 3)]);
        assert_eq!(r.lookup("shop.de"), Some(0));
        assert_eq!(r.lookup("shop.de."), Some(0));
        assert_eq!(r.lookup("www.shop.de"), Some(1));
        assert_eq!(r.lookup("a.b.shop.de"), Some(1));
        assert_eq!(r.lookup("x.eu.shop.de"), Some(2));
        assert_eq!(r.lookup("de.shop.localhost"), Some(3));
        assert_eq!(r.lookup(".shop.de"), None);
        assert_eq!(r.lookup("evilshop.de"), None);
        assert_eq!(r.lookup("shop.fr"), None);
    }
}
