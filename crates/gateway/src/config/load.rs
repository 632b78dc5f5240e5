//! Loading a config file: TOML parsing and semantic validation, both reported as
//! `file:line:column: what was expected`.

use super::File;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// A config error with its position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file's name as given.
    pub file: String,
    /// 1-based; 0 when the error has no position (e.g. the file could not be read).
    pub line: usize,
    /// 1-based column; 0 when the error has no position.
    pub column: usize,
    /// What was wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Positions of byte offsets in one source text.
pub(super) struct Source<'a> {
    pub(super) name: &'a str,
    pub(super) text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let (line, column) = match span {
            Some(span) => {
                let at = span.start.min(self.text.len());
                let before = &self.text[..at];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (line, column)
            }
            None => (0, 0),
        };
        ConfigError { file: self.name.to_string(), line, column, message: message.into() }
    }

    pub(super) fn at<T>(&self, v: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(Some(v.span()), message)
    }

    /// An error about the value of the key at dotted `path` (`incidents.surge_factor`), at
    /// the key's line, or at its table's when the key is not written (a default that
    /// conflicts with another key).
    pub(super) fn key(&self, path: &str, message: impl Into<String>) -> ConfigError {
        self.error(self.key_span(path), message)
    }

    fn key_span(&self, path: &str) -> Option<Range<usize>> {
        let doc = toml_edit::ImDocument::parse(self.text).ok()?;
        let mut table: &dyn toml_edit::TableLike = doc.as_table();
        let mut found = None;
        for seg in path.split('.') {
            let Some((k, item)) = table.get_key_value(seg) else { break };
            found = k.span().or(found);
            match item.as_table_like() {
                Some(t) => table = t,
                None => break,
            }
        }
        found
    }
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<File, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: name.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read the config file: {e}"),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_with_base(&name, &text, base)
}

/// Parses and validates config text; `name` is used in error messages.
/// Relative paths in it are resolved against the current directory.
pub fn parse_str(name: &str, text: &str) -> Result<File, ConfigError> {
    parse_with_base(name, text, std::path::PathBuf::new())
}

fn parse_with_base(name: &str, text: &str, base_dir: std::path::PathBuf) -> Result<File, ConfigError> {
    let src = Source { name, text };
    let mut file: File = toml::from_str(text).map_err(|e| src.error(e.span(), e.message().trim_end()))?;
    file.base_dir = base_dir;
    file.source = Some(std::sync::Arc::new((name.to_string(), text.to_string())));
    validate(&src, &file)?;
    Ok(file)
}

fn validate(src: &Source, file: &File) -> Result<(), ConfigError> {
    let mut dcs: HashMap<&str, ()> = HashMap::new();
    for dc in &file.datacenters {
        let name = dc.name.get_ref();
        check_name(src, &dc.name, "data center")?;
        if dcs.insert(name, ()).is_some() {
            return Err(src.at(&dc.name, format!("data center {name:?} is defined twice")));
        }
    }
    let dns = &file.dns;
    if dns.min_ttl.get() < std::time::Duration::from_millis(100) {
        return Err(src.key("dns.min_ttl", "dns.min_ttl must be at least 100ms"));
    }
    if dns.max_ttl.get() < dns.min_ttl.get() {
        return Err(src.key("dns.max_ttl", "dns.max_ttl must be at least dns.min_ttl"));
    }
    if dns.timeout.get().is_zero() {
        return Err(src.key("dns.timeout", "dns.timeout must be more than 0"));
    }
    if file.limits.max_header_bytes.get() < 8192 {
        return Err(src.key("limits.max_header_bytes", "limits.max_header_bytes must be at least 8192"));
    }
    if file.limits.max_headers == 0 {
        return Err(src.key("limits.max_headers", "limits.max_headers must be at least 1"));
    }
    validate_shield(src, &file.shield)?;
    validate_incidents(src, &file.incidents, &file.status)?;
    if let Some(f) = &file.fleet {
        validate_fleet(src, f)?;
    }
    let mut site_names: HashMap<&str, ()> = HashMap::new();
    let mut hosts: HashMap<String, &str> = HashMap::new();
    for site in &file.sites {
        let sname = site.name.get_ref().as_str();
        check_name(src, &site.name, "site")?;
        if site_names.insert(sname, ()).is_some() {
            return Err(src.at(&site.name, format!("site {sname:?} is defined twice")));
        }
        if site.hosts.is_empty() {
            return Err(src.at(&site.name, format!("site {sname:?} has no hosts: expected at least one host name")));
        }
        for host in &site.hosts {
            let h = host.get_ref().to_ascii_lowercase();
            if !valid_host_pattern(&h) {
                return Err(src.at(
                    host,
                    format!("invalid host {:?}: expected a DNS name such as \"shop.de\" or a wildcard such as \"*.shop.de\"", host.get_ref()),
                ));
            }
            if let Some(other) = hosts.insert(h.clone(), sname) {
                return Err(src.at(host, format!("host {h:?} is already served by site {other:?}")));
            }
        }
        if !site.health.path.starts_with('/') {
            return Err(src.at(&site.name, format!("site {sname:?}: health.path must start with '/'")));
        }
        let h = &site.health;
        if h.expect_status[0] > h.expect_status[1] || h.unhealthy_after == 0 || h.healthy_after == 0 {
            return Err(src.at(&site.name, format!("site {sname:?}: health.expect_status must be [low, high] and unhealthy_after/healthy_after at least 1")));
        }
        if h.interval.get().is_zero() || h.timeout.get().is_zero() {
            return Err(
                src.at(&site.name, format!("site {sname:?}: health.interval and health.timeout must be more than 0"))
            );
        }
        if !(0.0..=1.0).contains(&site.failover.min_healthy_share) {
            return Err(src.at(&site.name, format!("site {sname:?}: failover.min_healthy_share must be from 0 to 1")));
        }
        if site.outlier.max_ejected_percent > 100 {
            return Err(
                src.at(&site.name, format!("site {sname:?}: outlier.max_ejected_percent must be from 0 to 100"))
            );
        }
        if site.retry.attempts == 0 || site.retry.attempts > 10 || !(0.0..=1.0).contains(&site.retry.budget_ratio) {
            return Err(src.at(
                &site.name,
                format!("site {sname:?}: retry.attempts must be from 1 to 10 and retry.budget_ratio from 0 to 1"),
            ));
        }
        if site.pools.is_empty() {
            return Err(
                src.at(&site.name, format!("site {sname:?} has no [[site.pool]]: expected at least one origin pool"))
            );
        }
        validate_pools(src, file, &dcs, sname, &site.pools)?;
        let mut prefixes: HashMap<&str, ()> = HashMap::new();
        let mut names: HashMap<String, ()> = HashMap::new();
        for route in &site.routes {
            let prefix = route.path_prefix.get_ref().as_str();
            if !prefix.starts_with('/') || prefix.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                return Err(src.at(
                    &route.path_prefix,
                    format!("site {sname:?}: route path_prefix {prefix:?} must start with '/' (e.g. \"/checkout/\")"),
                ));
            }
            if prefixes.insert(prefix, ()).is_some() {
                return Err(src.at(&route.path_prefix, format!("site {sname:?}: route {prefix:?} is defined twice")));
            }
            let name = route.name();
            let name_ok = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
            if !name_ok {
                return Err(src.at(
                    &route.path_prefix,
                    format!("site {sname:?}: route name {name:?}: 1 to 64 letters, digits, '-', '_', '.', '/' (set name = \"...\")"),
                ));
            }
            if names.insert(name.clone(), ()).is_some() {
                return Err(src.at(&route.path_prefix, format!("site {sname:?}: two routes are named {name:?}")));
            }
            if route.pools.is_empty() {
                return Err(src.at(
                    &route.path_prefix,
                    format!("site {sname:?}: route {prefix:?} has no [[site.route.pool]]: expected at least one origin pool"),
                ));
            }
            validate_pools(src, file, &dcs, sname, &route.pools)?;
        }
        if let Some(hsts) = &site.https.hsts {
            let v = hsts.get_ref();
            let ok =
                http::HeaderValue::from_str(v).is_ok() && v.trim_start().to_ascii_lowercase().starts_with("max-age=");
            if !ok {
                return Err(src.at(
                    hsts,
                    format!("site {sname:?}: https.hsts {v:?}: expected \"max-age=SECONDS\" and optional directives"),
                ));
            }
        }
        if site.compression.enabled && site.compression.algorithms.is_empty() {
            return Err(src.at(&site.name, format!("site {sname:?}: compression.algorithms is empty: expected some of \"zstd\", \"br\", \"gzip\" (or enabled = false)")));
        }
    }
    for site in &file.sites {
        let Some(tls) = &site.tls else { continue };
        let sname = site.name.get_ref();
        match (&tls.cert, &tls.key) {
            (Some(_), Some(_)) => {}
            (None, None) if tls.acme => {}
            (Some(c), None) => {
                return Err(src.at(c, format!("site {sname:?}: tls.cert without tls.key: expected both")))
            }
            (None, Some(k)) => {
                return Err(src.at(k, format!("site {sname:?}: tls.key without tls.cert: expected both")))
            }
            (None, None) => {
                return Err(src.at(&site.name, format!("site {sname:?}: tls needs cert and key, or acme = true")))
            }
        }
        if tls.acme && file.acme.is_none() {
            return Err(src.at(&site.name, format!("site {sname:?}: tls.acme = true needs an [acme] section")));
        }
    }
    if let Some(acme) = &file.acme {
        if !(0.0..1.0).contains(&acme.renewal_window) || acme.renewal_window <= 0.0 {
            let window = acme.renewal_window;
            return Err(src.key(
                "acme.renewal_window",
                format!("renewal_window = {window}: expected a share of the lifetime between 0 and 1"),
            ));
        }
    }
    if !file.listen.https.is_empty() && !file.sites.iter().any(|s| s.tls.is_some()) {
        return Err(src.at(&file.listen.https[0], "https listener configured but no site has a [site.tls] certificate"));
    }
    if !file.listen.quic.is_empty() && !file.sites.iter().any(|s| s.tls.is_some()) {
        return Err(src.at(&file.listen.quic[0], "quic listener configured but no site has a [site.tls] certificate"));
    }
    Ok(())
}

/// A site's or a route's pools: known data centers, one pool per data center, origins
/// that parse with weights in range.
fn validate_pools(
    src: &Source,
    file: &File,
    dcs: &HashMap<&str, ()>,
    sname: &str,
    pools: &[super::Pool],
) -> Result<(), ConfigError> {
    if let Some(pool) = pools.get(super::MAX_POOLS) {
        return Err(src.at(&pool.datacenter, format!("site {sname:?}: more than {} pools", super::MAX_POOLS)));
    }
    let mut seen_dc: HashMap<&str, ()> = HashMap::new();
    for pool in pools {
        let dc = pool.datacenter.get_ref().as_str();
        if !dcs.contains_key(dc) {
            let known: Vec<&str> = file.datacenters.iter().map(|d| d.name.get_ref().as_str()).collect();
            return Err(src.at(
                &pool.datacenter,
                format!("unknown data center {dc:?}: expected one of the [[datacenter]] names {known:?}"),
            ));
        }
        if seen_dc.insert(dc, ()).is_some() {
            return Err(src.at(&pool.datacenter, format!("site {sname:?} has two pools in data center {dc:?}")));
        }
        if pool.origins.is_empty() {
            return Err(src.at(&pool.datacenter, "pool has no origins: expected at least one \"host:port\""));
        }
        for origin in &pool.origins {
            if let Err(why) = parse_origin(&origin.get_ref().address) {
                return Err(src.at(origin, why));
            }
            if !(1..=1000).contains(&origin.get_ref().weight) {
                return Err(src.at(origin, "origin weight must be from 1 to 1000"));
            }
        }
    }
    Ok(())
}

fn validate_incidents(
    src: &Source,
    i: &super::incidents::Incidents,
    status: &super::incidents::StatusPage,
) -> Result<(), ConfigError> {
    if !(1.5..=100.0).contains(&i.surge_factor) {
        return Err(src.key("incidents.surge_factor", "incidents.surge_factor must be from 1.5 to 100"));
    }
    if !(i.surge_min_rps >= 0.0 && i.surge_min_rps.is_finite()) {
        return Err(src.key("incidents.surge_min_rps", "incidents.surge_min_rps must be 0 or more"));
    }
    if i.max_incidents == 0 {
        return Err(src.key("incidents.max_incidents", "incidents.max_incidents must be at least 1"));
    }
    for w in &i.webhooks {
        let url = w.url.get_ref();
        let ok = url.parse::<http::Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
        });
        if !ok {
            return Err(src.at(&w.url, format!("webhook url {url:?}: expected http://host[:port]/path or https://…")));
        }
        if w.timeout.get().is_zero() {
            return Err(src.at(&w.url, "webhook timeout must be more than 0"));
        }
    }
    if !matches!(status.language.as_str(), "de" | "en" | "fr" | "it") {
        return Err(src.key("status.language", "status.language must be one of de, en, fr, it"));
    }
    Ok(())
}

fn validate_fleet(src: &Source, f: &super::fleet::Fleet) -> Result<(), ConfigError> {
    f.redis.get_ref().target().map_err(|e| src.at(&f.redis, format!("fleet.redis {e}")))?;
    let name_ok = |n: &str| {
        (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !name_ok(&f.instance) {
        return Err(src.key("fleet.instance", "fleet.instance: 1 to 64 letters, digits, '-', '_', '.'"));
    }
    let sync = f.sync_interval.get();
    if sync < std::time::Duration::from_millis(10) || sync > std::time::Duration::from_secs(10) {
        return Err(src.key("fleet.sync_interval", "fleet.sync_interval must be from 10ms to 10s"));
    }
    if f.key_rotation.get() < std::time::Duration::from_secs(1) {
        return Err(src.key("fleet.key_rotation", "fleet.key_rotation must be at least 1s"));
    }
    Ok(())
}

fn validate_shield(src: &Source, s: &super::shield::Shield) -> Result<(), ConfigError> {
    let path_lists = [
        ("shield.admission.priority_paths", &s.admission.priority_paths),
        ("shield.challenge.exempt_paths", &s.challenge.exempt_paths),
    ];
    for (key, paths) in
        path_lists.into_iter().chain(s.rate.classes.iter().map(|c| ("shield.rate.class.paths", &c.paths)))
    {
        if let Some(p) = paths.iter().find(|p| !p.starts_with('/')) {
            return Err(src.key(key, format!("{key}: {p:?} must start with '/'")));
        }
    }
    if s.challenge.max_difficulty < s.challenge.difficulty {
        return Err(src.key(
            "shield.challenge.max_difficulty",
            "shield.challenge.max_difficulty must be at least shield.challenge.difficulty",
        ));
    }
    if s.signatures.window.get().is_zero() {
        return Err(src.key("shield.signatures.window", "shield.signatures.window must be more than 0"));
    }
    if s.idle.get().is_zero() {
        return Err(src.key("shield.idle", "shield.idle must be more than 0"));
    }
    Ok(())
}

fn check_name(src: &Source, name: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
    let n = name.get_ref();
    let ok = !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(src.at(name, format!("invalid {what} name {n:?}: expected 1 to 64 letters, digits, '-', '_' or '.'")))
    }
}

/// `shop.de`, `de.shop.localhost`, `*.shop.de`; lowercase expected.
fn valid_host_pattern(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Parses an origin `host:port` into an authority.
pub fn parse_origin(s: &str) -> Result<http::uri::Authority, String> {
    let expected = "expected \"host:port\" with an IP address or DNS name and a port, such as \"127.0.0.1:9101\"";
    let auth: http::uri::Authority = s.parse().map_err(|_| format!("invalid origin address {s:?}: {expected}"))?;
    if auth.port_u16().is_none() || auth.host().is_empty() || s.contains('@') {
        return Err(format!("invalid origin address {s:?}: {expected}"));
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[listen]
http = ["127.0.0.1:8080"]

[[datacenter]]
name = "eu-west"
[[datacenter]]
name = "eu-central"

[[site]]
name = "shop-de"
hosts = ["shop.de", "*.shop.de"]
language = "de"
  [[site.pool]]
  datacenter = "eu-west"
  origins = ["127.0.0.1:9101"]
  [[site.pool]]
  datacenter = "eu-central"
  origins = ["localhost:9201"]
"#;

    fn err(text: &str) -> ConfigError {
        parse_str("test.toml", text).expect_err("config should be rejected")
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let f = parse_str("test.toml", GOOD).unwrap();
        assert_eq!(f.sites.len(), 1);
        assert_eq!(f.sites[0].pools.len(), 2);
        assert_eq!(f.timeouts.connect.get().as_secs(), 2);
        assert_eq!(f.sites[0].health.path, "/healthz");
        assert!(f.listen.admin.is_some());
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = err(&GOOD.replace("language = \"de\"", "language = \"de\"\ncolour = \"blue\""));
        assert_eq!((e.line, e.column), (14, 1), "{e}");
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        assert!(e.to_string().starts_with("test.toml:14:1: "), "{e}");
    }

    #[test]
    fn visitors_prefixes_out_of_range_are_explained() {
        for bad in ["0", "5"] {
            let e = err(&format!("{GOOD}\n[shield.visitors]\nmax_prefixes = {bad}\n"));
            assert!(e.message.contains("expected a number of prefixes from 1 to 4"), "{e}");
        }
        let f = parse_str("test.toml", &format!("{GOOD}\n[shield.visitors]\nmax_prefixes = 4\n")).unwrap();
        assert_eq!(f.shield.visitors.max_prefixes, 4);
    }

    #[test]
    fn unknown_datacenter_is_reported_at_its_use() {
        let e = err(&GOOD.replace("datacenter = \"eu-central\"", "datacenter = \"us-west\""));
        assert_eq!(e.line, 18, "{e}");
        assert!(e.message.contains("unknown data center \"us-west\""), "{e}");
        assert!(e.message.contains("eu-west"), "{e}");
    }

    #[test]
    fn duplicate_host_across_sites() {
        let text = format!(
            "{GOOD}\n[[site]]\nname = \"other\"\nhosts = [\"SHOP.de\"]\n[[site.pool]]\ndatacenter = \"eu-west\"\norigins = [\"127.0.0.1:1\"]\n"
        );
        let e = err(&text);
        assert!(e.message.contains("already served by site \"shop-de\""), "{e}");
        assert_eq!(e.line, 23, "{e}");
    }

    #[test]
    fn bad_address_and_duration() {
        let e = err(&GOOD.replace("127.0.0.1:8080", "127.0.0.1:99999"));
        assert_eq!((e.line, e.column), (3, 9), "{e}");
        let e = err(&format!("[timeouts]\nconnect = \"5 parsecs\"\n{GOOD}"));
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("expected a number with a unit"), "{e}");
        let e = err(&GOOD.replace("127.0.0.1:9101", "127.0.0.1"));
        assert!(e.message.contains("invalid origin address"), "{e}");
    }

    #[test]
    fn shield_values_are_checked_where_they_are_written() {
        let e = err(&format!("[shield]\nipv4_prefix = 40\n{GOOD}"));
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("expected an IPv4 prefix length from 0 to 32"), "{e}");
        let e = err(&format!("[shield.rate]\nper_address = {{ rate = 10, burst = 0 }}\n{GOOD}"));
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("burst 0"), "{e}");
        let e = err(&format!("[shield.signatures]\nthreshold = 1.5\n{GOOD}"));
        assert!(e.line == 2 && e.message.contains("from 0.0 to 1.0"), "{e}");
        let e = err(&format!("[shield.challenge]\nmode = \"sometimes\"\n{GOOD}"));
        assert!(e.line == 2 && e.message.contains("off"), "{e}");
        let e = err(&format!("[shield]\nblock = [\"10.0.0.0/33\"]\n{GOOD}"));
        assert_eq!(e.line, 2, "{e}");
        let e = err(&format!("[shield.admission]\npriority_paths = [\"checkout\"]\n{GOOD}"));
        assert!(e.line == 2 && e.message.contains("must start with '/'"), "{e}");
        let e = err(&format!("[shield.challenge]\n\ndifficulty = 22\n{GOOD}"));
        assert!(
            e.line == 1 && e.message.contains("max_difficulty must be at least"),
            "the table, as max_difficulty is not written: {e}"
        );
    }

    #[test]
    fn incident_and_status_values_are_checked_where_they_are_written() {
        let e = err(&format!("[incidents]\nresolve_after = \"5s\"\nsurge_factor = 1.1\n{GOOD}"));
        assert!(e.line == 3 && e.message.contains("from 1.5 to 100"), "{e}");
        let e = err(&format!("[incidents]\nmax_incidents = 0\n{GOOD}"));
        assert!(e.line == 2 && e.message.contains("at least 1"), "{e}");
        let e = err(&format!("[status]\ntitle = \"x\"\nlanguage = \"nl\"\n{GOOD}"));
        assert!(e.line == 3 && e.message.contains("de, en, fr, it"), "{e}");
        let e = err(&format!("[[incidents.webhook]]\nurl = \"ftp://x\"\n{GOOD}"));
        assert!(e.line == 2 && e.message.contains("expected http://"), "{e}");
        let e = err(&format!("[[incidents.webhook]]\nurl = \"http://127.0.0.1:1/\"\nformat = \"slack\"\n{GOOD}"));
        assert!(e.line == 3 && e.message.contains("json"), "{e}");
    }

    #[test]
    fn syntax_error_has_position() {
        let e = err("[listen\nhttp = []");
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn host_patterns() {
        assert!(valid_host_pattern("shop.de"));
        assert!(valid_host_pattern("*.shop.de"));
        assert!(valid_host_pattern("de.shop.localhost"));
        assert!(!valid_host_pattern("shop..de"));
        assert!(!valid_host_pattern("sh op.de"));
        assert!(!valid_host_pattern("*"));
        assert!(!valid_host_pattern("a.*.de"));
    }
}
