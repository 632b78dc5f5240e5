//! One stored response (one Vary variant of a URL): its freshness, its age, which requests
//! it answers, whether it may serve stale, and how a 304 updates it.
//!
//! Storability and the explicit freshness lifetime (s-maxage, max-age, Expires) are
//! http-cache-semantics', handed the response in a normal form ([`super::directives`]).
//! The rest is holdfast's, each against RFC 9111:
//! - heuristic freshness (§4.2.2): 10% of the time since Last-Modified, at least a second
//!   (http-cache-semantics rounds it down to whole seconds, so a page modified less than
//!   ten seconds ago got none and every request revalidated) and at most a day;
//! - which requests a variant answers (§4.1, Vary), checked on every hit without copying the
//!   request;
//! - the update of the stored header fields by a 304 (§3.2, §4.3.4): every field of the 304
//!   replaces the stored ones of its name, and new ones are added, except Content-Length,
//!   the fields the stored body depends on, and hop-by-hop fields.
//!
//! A variant also keeps its fields encoded as HTTP/1 field lines ([`Variant::wire`]), made
//! once when it is stored: a plain hit writes them as they are instead of copying the
//! header map and serializing it again on every request.

use super::Directives;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use http_cache_semantics::CachePolicy;
use std::time::{Duration, SystemTime};

/// Heuristic freshness: this share of the time since Last-Modified ...
const HEURISTIC_SHARE: f64 = 0.1;
/// ... at least this long (a page rewritten every second is still fresh for a second) ...
const HEURISTIC_MIN: Duration = Duration::from_secs(1);
/// ... and at most this long.
const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 3600);

/// Fields a 304 never updates: what the stored body depends on, and hop-by-hop fields.
const NOT_UPDATED: [&str; 12] = [
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// What a variant is selected by: each field its response's Vary names, with the values the
/// request that stored it had. None: `Vary: *`, which no request matches.
type Selection = Option<Vec<(HeaderName, Vec<HeaderValue>)>>;

/// One stored response.
#[derive(Debug)]
pub(crate) struct Variant {
    pub(crate) policy: CachePolicy,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: bytes::Bytes,
    /// When it was stored, or last revalidated.
    pub(crate) stored_at: SystemTime,
    /// When it stops being fresh.
    pub(crate) fresh_until: SystemTime,
    /// Its age when stored (from the Age it came with and the time it took).
    age_at_store: Duration,
    pub(crate) directives: Directives,
    selection: Selection,
    /// Its fields as HTTP/1 field lines (`name: value\r\n`...), for a plain hit: all but
    /// Age (each answer has its own), the framing fields (Content-Length, Transfer-Encoding:
    /// each hop's own) and Connection; and `Accept-Ranges: bytes` on a 200, whose ranges the
    /// cache answers.
    pub(crate) wire: Wire,
}

/// A stored response's fields, encoded once (see [`Variant::wire`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Wire {
    pub(crate) lines: bytes::Bytes,
    /// Whether they carry a Date (else each hop adds its own).
    pub(crate) has_date: bool,
}

impl Wire {
    fn encode(status: StatusCode, headers: &HeaderMap) -> Wire {
        let mut lines =
            Vec::with_capacity(headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>() + 24);
        let mut has_date = false;
        for (name, value) in headers {
            if matches!(*name, header::AGE | header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::CONNECTION)
                || (status == StatusCode::OK && name == header::ACCEPT_RANGES)
            {
                continue;
            }
            has_date |= name == header::DATE;
            lines.extend_from_slice(name.as_str().as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        if status == StatusCode::OK {
            lines.extend_from_slice(b"accept-ranges: bytes\r\n");
        }
        Wire { lines: lines.into(), has_date }
    }
}

impl Variant {
    /// A response to store, received at `now` for request `req` (the cache's view of it).
    pub(crate) fn new(
        policy: CachePolicy,
        status: StatusCode,
        headers: HeaderMap,
        body: bytes::Bytes,
        req: &http::request::Parts,
        now: SystemTime,
    ) -> Variant {
        let directives = Directives::of(&headers);
        let valid_age = super::directives::age(&headers).is_ok();
        let age_at_store = if valid_age { policy.age(now) } else { Duration::ZERO };
        let lifetime = if !valid_age || directives.no_cache {
            Duration::ZERO
        } else if has_explicit_expiry(&headers) {
            policy.time_to_live(now)
        } else {
            heuristic(&headers, now).map_or(Duration::ZERO, |h| h.saturating_sub(age_at_store))
        };
        let selection = selection(&headers, &req.headers);
        let wire = Wire::encode(status, &headers);
        Variant {
            policy,
            status,
            headers,
            body,
            stored_at: now,
            fresh_until: now + lifetime,
            age_at_store,
            directives,
            selection,
            wire,
        }
    }

    /// Does it answer a request with these header fields (Vary)?
    pub(crate) fn selected_by(&self, req: &HeaderMap) -> bool {
        let Some(fields) = &self.selection else { return false };
        fields.iter().all(|(name, stored)| req.get_all(name).iter().eq(stored.iter()))
    }

    /// Bytes it takes: body, headers (as a map and encoded), and a fixed share for the
    /// policy and bookkeeping.
    pub(crate) fn weight(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        self.body.len() + headers + self.wire.lines.len() + 256
    }

    /// Its age at `now` (RFC 9111 §4.2.3).
    pub(crate) fn age(&self, now: SystemTime) -> Duration {
        self.age_at_store + now.duration_since(self.stored_at).unwrap_or_default()
    }

    /// The stored response's head as of `now` (Age updated).
    pub(crate) fn parts(&self, now: SystemTime) -> http::response::Parts {
        let mut r = http::Response::new(());
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r.headers_mut().insert(header::AGE, HeaderValue::from(self.age(now).as_secs()));
        r.into_parts().0
    }

    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
    }

    /// Seconds past freshness (negative while fresh).
    pub(crate) fn staleness(&self, now: SystemTime) -> i64 {
        match now.duration_since(self.fresh_until) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    /// How long it has been stale (zero while fresh), exactly: a lifetime of "0s" allows
    /// no staleness at all, not the rest of a second.
    fn stale_for(&self, now: SystemTime) -> Duration {
        now.duration_since(self.fresh_until).unwrap_or(Duration::ZERO)
    }

    /// May it answer when every origin failed (stale-if-error, or the operator's
    /// `serve_stale_on_error`)? Never when it forbids stale (§4.2.4).
    pub(crate) fn serves_on_error(&self, now: SystemTime, operator_max: Duration) -> bool {
        if self.directives.must_revalidate {
            return false;
        }
        let allowed = self.directives.stale_if_error.map_or(operator_max, |s| operator_max.max(Duration::from_secs(s)));
        self.stale_for(now) <= allowed
    }

    /// May it answer now while a fresh copy is fetched (stale-while-revalidate, or the
    /// operator's `stale_while_revalidate`)?
    pub(crate) fn serves_while_revalidating(&self, now: SystemTime, operator_max: Duration) -> bool {
        if self.directives.must_revalidate {
            return false;
        }
        let allowed =
            self.directives.stale_while_revalidate.map_or(operator_max, |s| operator_max.max(Duration::from_secs(s)));
        !allowed.is_zero() && self.stale_for(now) <= allowed
    }

    /// Its validators, for a conditional request of the cache's own.
    pub(crate) fn validators(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let etag = self.headers.get(header::ETAG).map(|v| (header::IF_NONE_MATCH, v.clone()));
        let modified = self.headers.get(header::LAST_MODIFIED).map(|v| (header::IF_MODIFIED_SINCE, v.clone()));
        etag.into_iter().chain(modified)
    }

    /// Does a 304 with these fields validate it (RFC 9111 §4.3.4)? A strong ETag must be
    /// the stored one; a weak one must match it weakly; without an ETag, Last-Modified must
    /// be the stored one; without either, it validates a response that has neither.
    pub(crate) fn validated_by(&self, resp: &HeaderMap) -> bool {
        let text =
            |h: &HeaderMap, n: HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim).map(str::to_string);
        let (old_etag, new_etag) = (text(&self.headers, header::ETAG), text(resp, header::ETAG));
        let (old_lm, new_lm) = (text(&self.headers, header::LAST_MODIFIED), text(resp, header::LAST_MODIFIED));
        let weak = |e: &str| e.trim_start_matches("W/").to_string();
        match (&new_etag, &old_etag) {
            (Some(new), Some(old)) if !new.starts_with("W/") => !old.starts_with("W/") && new == old,
            (Some(new), Some(old)) => weak(new) == weak(old),
            (Some(_), None) => false,
            // Last-Modified as the validator; or none at all, on both sides.
            (None, _) => old_lm == new_lm && (new_lm.is_some() || old_etag.is_none()),
        }
    }

    /// The stored response updated by a 304 received at `now`: the 304's fields replace or
    /// join the stored ones (§3.2), except those in [`NOT_UPDATED`]; the body is kept; its
    /// freshness starts again.
    pub(crate) fn updated_by(
        &self,
        not_modified: &http::response::Parts,
        req: &http::request::Parts,
        now: SystemTime,
    ) -> Variant {
        let mut headers = self.headers.clone();
        for name in not_modified.headers.keys() {
            if NOT_UPDATED.contains(&name.as_str()) {
                continue;
            }
            headers.remove(name);
            for v in not_modified.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        let mut resp = http::Response::new(());
        *resp.status_mut() = self.status;
        *resp.headers_mut() = headers;
        let (parts, ()) = resp.into_parts();
        let policy = super::policy(req, &parts, now);
        Variant::new(policy, self.status, parts.headers, self.body.clone(), req, now)
    }
}

/// Does the response state its freshness (s-maxage, max-age, Expires)?
fn has_explicit_expiry(headers: &HeaderMap) -> bool {
    headers.contains_key(header::EXPIRES)
        || headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).any(|v| {
            v.split(',').any(|d| {
                let name = d.split('=').next().unwrap_or("").trim();
                name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage")
            })
        })
}

/// Heuristic freshness (§4.2.2): a share of the time between Last-Modified and Date
/// (or `now`), bounded. None without a usable Last-Modified.
fn heuristic(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let date_of =
        |name| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|s| httpdate::parse_http_date(s).ok());
    let modified = date_of(header::LAST_MODIFIED)?;
    let date = date_of(header::DATE).unwrap_or(now);
    let since = date.duration_since(modified).ok()?;
    Some(since.mul_f64(HEURISTIC_SHARE).clamp(HEURISTIC_MIN, HEURISTIC_MAX))
}

/// The fields a response's Vary names, with the request's values for them.
fn selection(resp: &HeaderMap, req: &HeaderMap) -> Selection {
    let mut fields: Vec<(HeaderName, Vec<HeaderValue>)> = Vec::new();
    for v in resp.get_all(header::VARY) {
        for name in v.to_str().unwrap_or("*").split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else { return None };
            if !fields.iter().any(|(n, _)| *n == name) {
                let values = req.get_all(&name).iter().cloned().collect();
                fields.push((name, values));
            }
        }
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&'static str, &'static str)]) -> http::request::Parts {
        let mut r = http::Request::get("/p").body(()).unwrap();
        for (k, v) in headers {
            r.headers_mut().append(*k, HeaderValue::from_static(v));
        }
        r.into_parts().0
    }

    fn stored(headers: &[(&str, String)], req: &http::request::Parts, now: SystemTime) -> Variant {
        let mut r = http::Response::new(());
        for (k, v) in headers {
            r.headers_mut().append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let (parts, ()) = r.into_parts();
        let policy = super::super::policy(req, &parts, now);
        Variant::new(policy, StatusCode::OK, parts.headers, bytes::Bytes::from_static(b"body"), req, now)
    }

    fn date(t: SystemTime) -> String {
        httpdate::fmt_http_date(t)
    }

    #[test]
    fn heuristic_freshness_is_a_tenth_of_the_age_of_last_modified_at_least_a_second() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let r = req(&[]);
        let lm = |ago: u64| vec![("date", date(now)), ("last-modified", date(now - Duration::from_secs(ago)))];
        assert_eq!(stored(&lm(1000), &r, now).fresh_until, now + Duration::from_secs(100));
        // Modified a second ago: http-cache-semantics says 0 s; a second here.
        assert_eq!(stored(&lm(1), &r, now).fresh_until, now + Duration::from_secs(1));
        assert_eq!(stored(&lm(100 * 24 * 3600), &r, now).fresh_until, now + HEURISTIC_MAX);
        // Explicit freshness wins; no-cache and an invalid Age leave none.
        let mut h = lm(1000);
        h.push(("cache-control", "max-age=7".into()));
        assert_eq!(stored(&h, &r, now).fresh_until, now + Duration::from_secs(7));
        let mut h = lm(1000);
        h.push(("cache-control", "No-Cache".into()));
        assert!(!stored(&h, &r, now).is_fresh(now));
        for age in ["abc", "-1", "1.5", "5, 6"] {
            let h = vec![("cache-control", "max-age=60".to_string()), ("age", age.to_string())];
            assert!(!stored(&h, &r, now).is_fresh(now), "Age: {age}");
        }
        // Upper-case directives are read: Max-Age as max-age.
        let h = vec![("cache-control", "Public, Max-Age=60".to_string())];
        assert_eq!(stored(&h, &r, now).fresh_until, now + Duration::from_secs(60));
    }

    #[test]
    fn vary_selects_by_the_stored_request_values() {
        let now = SystemTime::now();
        let v = stored(
            &[("cache-control", "max-age=60".into()), ("vary", "Accept-Language".into())],
            &req(&[("accept-language", "de")]),
            now,
        );
        assert!(v.selected_by(&req(&[("accept-language", "de")]).headers));
        assert!(!v.selected_by(&req(&[("accept-language", "fr")]).headers));
        assert!(!v.selected_by(&req(&[]).headers));
        let star = stored(&[("cache-control", "max-age=60".into()), ("vary", "*".into())], &req(&[]), now);
        assert!(!star.selected_by(&req(&[]).headers));
    }

    #[test]
    fn a_304_replaces_and_adds_fields_but_never_the_length_or_hop_by_hop_ones() {
        let now = SystemTime::now();
        let r = req(&[]);
        let v = stored(
            &[
                ("cache-control", "max-age=1".into()),
                ("etag", "\"v1\"".into()),
                ("content-length", "4".into()),
                ("x-a", "old".into()),
            ],
            &r,
            now,
        );
        let mut nm = http::Response::new(());
        *nm.status_mut() = StatusCode::NOT_MODIFIED;
        for (k, val) in [
            ("cache-control", "max-age=60"),
            ("etag", "\"v1\""),
            ("content-length", "0"),
            ("x-a", "new"),
            ("x-b", "added"),
            ("connection", "close"),
        ] {
            nm.headers_mut().append(k, HeaderValue::from_static(val));
        }
        let (nm, ()) = nm.into_parts();
        assert!(v.validated_by(&nm.headers));
        let u = v.updated_by(&nm, &r, now);
        assert_eq!(u.headers["x-a"], "new");
        assert_eq!(u.headers["x-b"], "added");
        assert_eq!(u.headers["content-length"], "4");
        assert!(!u.headers.contains_key("connection"));
        assert_eq!(u.fresh_until, now + Duration::from_secs(60));
        assert_eq!(u.body, v.body);
        // Another strong ETag does not validate it; a weak one matches weakly.
        let other = |etag: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("etag", HeaderValue::from_static(etag));
            h
        };
        assert!(!v.validated_by(&other("\"v2\"")));
        assert!(v.validated_by(&other("W/\"v1\"")));
    }

    #[test]
    fn the_encoded_fields_leave_out_age_framing_and_connection_and_follow_a_304() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let r = req(&[]);
        let v = stored(
            &[
                ("cache-control", "max-age=60".into()),
                ("etag", "\"v1\"".into()),
                ("date", date(now)),
                ("age", "3".into()),
                ("content-length", "4".into()),
                ("accept-ranges", "none".into()),
                ("x-two", "a".into()),
                ("x-two", "b".into()),
            ],
            &r,
            now,
        );
        let text = std::str::from_utf8(&v.wire.lines).unwrap();
        assert_eq!(
            text,
            format!(
                "cache-control: max-age=60\r\netag: \"v1\"\r\ndate: {}\r\nx-two: a\r\nx-two: b\r\naccept-ranges: bytes\r\n",
                date(now)
            )
        );
        assert!(v.wire.has_date);
        // A 304 that changes the ETag changes what a hit writes.
        let mut not_modified = http::Response::new(());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        not_modified.headers_mut().insert(header::ETAG, HeaderValue::from_static("\"v2\""));
        let updated = v.updated_by(&not_modified.into_parts().0, &r, now);
        let text = std::str::from_utf8(&updated.wire.lines).unwrap();
        assert!(text.contains("etag: \"v2\"\r\n") && !text.contains("v1"), "{text}");
    }
}
