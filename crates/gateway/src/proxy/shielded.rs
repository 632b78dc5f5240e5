//! The shield's answers on the request path: the challenge page and its verification, 429
//! over a rate limit, 403 for a blocked client, 503 for a shed request, a silent close, and
//! the visitor cookie on the way out.

use super::body::RespBody;
use super::{local_response, site_page};
use crate::gateway::Shared;
use crate::pages::{self, Problem};
use crate::record::Finished;
use crate::shield::{self, challenge, Action};
use crate::snapshot::{SiteRt, Snapshot};
use crate::util::query_param;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use std::time::Duration;

/// Says which of the shield's answers a response is (challenge, rate-limit, block, shed),
/// as Cloudflare's `cf-mitigated` does, so clients and tools can tell it from the origin's.
pub const MITIGATED: &str = "holdfast-mitigated";

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
pub struct CloseSilently;

impl std::fmt::Display for CloseSilently {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("closed by the shield")
    }
}
impl std::error::Error for CloseSilently {}

/// The answer for a shield action; Err for "close": no answer, the connection is dropped.
pub fn act(
    shared: &Shared,
    site: &SiteRt,
    fin: Box<Finished>,
    action: &Action,
    client: &shield::Client,
    target: &str,
) -> Result<Response<RespBody>, CloseSilently> {
    Ok(match action {
        Action::Reject { retry_after, .. } => {
            let mut r = site_page(fin, site, Problem::TooMany, false);
            r.headers_mut().insert(header::RETRY_AFTER, secs(*retry_after));
            r.headers_mut().insert(MITIGATED, HeaderValue::from_static("rate-limit"));
            r
        }
        Action::Block { .. } => {
            let mut r = site_page(fin, site, Problem::Blocked, true);
            r.headers_mut().insert(MITIGATED, HeaderValue::from_static("block"));
            r
        }
        Action::Close { .. } => {
            // Recorded (access log, metrics) as a 403 that was never sent.
            drop(local_response(fin, StatusCode::FORBIDDEN, String::new(), true));
            return Err(CloseSilently);
        }
        Action::Challenge { difficulty, .. } => challenge_page(shared, site, fin, client, *difficulty, target),
    })
}

fn secs(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs().max(1))
}

/// The proof-of-work page (403), for the target the client asked for.
fn challenge_page(
    shared: &Shared,
    site: &SiteRt,
    mut fin: Box<Finished>,
    client: &shield::Client,
    difficulty: u8,
    target: &str,
) -> Response<RespBody> {
    let keys = shared.shield.keys();
    let token = keys.1.token(&client.prefix.to_string(), difficulty, crate::clock::unix_secs(), shared.shield.random());
    let html = pages::challenge_page(&site.language, &site.name, &token, difficulty, challenge::VERIFY_PATH, target);
    fin.status = 403;
    let mut r = local_response(fin, StatusCode::FORBIDDEN, html, false);
    r.headers_mut().insert(MITIGATED, HeaderValue::from_static("challenge"));
    r
}

/// `GET /.holdfast/challenge?t=TOKEN&n=NONCE&r=BACK`: a solved challenge earns the
/// clearance cookie and a redirect back; anything else gets a new challenge.
pub fn verify(
    shared: &Shared,
    snap: &Snapshot,
    site: &SiteRt,
    https: bool,
    mut fin: Box<Finished>,
    uri: &http::Uri,
    client: &shield::Client,
) -> Response<RespBody> {
    let query = uri.query().unwrap_or("");
    let back = challenge::safe_return(query_param(query, "r"));
    let token = query_param(query, "t").unwrap_or_default();
    let nonce = query_param(query, "n").unwrap_or_default();
    let prefix = client.prefix.to_string();
    let now = crate::clock::unix_secs();
    let checked = shared.shield.keys().1.verify(&token, &nonce, &prefix, now);
    match checked {
        Ok(()) => {
            shared.metrics.shield.action("pass", "challenge_solved", &site.name);
            let ttl = snap.file.shield.challenge.clearance_ttl.get().as_secs();
            let value = shared.shield.keys().1.clearance(&prefix, now.saturating_add(ttl));
            let cookie = cookie_header(challenge::CLEARANCE, &value, ttl, https);
            fin.status = 303;
            let mut r = local_response(fin, StatusCode::SEE_OTHER, String::new(), false);
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&back) {
                h.insert(header::LOCATION, v);
            }
            if let Some(c) = cookie {
                h.append(header::SET_COOKIE, c);
            }
            r
        }
        Err(why) => {
            tracing::debug!(client = %client.ip, ?why, "challenge answer refused");
            shared.metrics.shield.action("challenge", why.as_str(), &site.name);
            let d = snap.file.shield.challenge.difficulty;
            challenge_page(shared, site, fin, client, d, &back)
        }
    }
}

fn cookie_header(name: &str, value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")).ok()
}

/// Adds the visitor cookie to a response.
pub fn give_visitor_cookie(shared: &Shared, resp: &mut Response<RespBody>, https: bool) {
    let value = shared.shield.keys().1.visitor(crate::clock::unix_secs(), shared.shield.random());
    if let Some(c) = cookie_header(challenge::VISITOR, &value, challenge::VISITOR_TTL, https) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
}

/// A request shed by adaptive admission: 503 with Retry-After.
pub fn shed(fin: Box<Finished>, site: &SiteRt, retry_after: Duration) -> Response<RespBody> {
    let mut r = site_page(fin, site, Problem::Busy, false);
    r.headers_mut().insert(header::RETRY_AFTER, secs(retry_after));
    r.headers_mut().insert(MITIGATED, HeaderValue::from_static("shed"));
    r
}
