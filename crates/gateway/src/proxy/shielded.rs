//! The shield's answers on the request path: the challenge page and its verification, 429
//! over a rate limit, 403 for a blocked client, 503 for a shed request, a silent close, and
//! the visitor cookie on the way out.

use super::body::RespBody;
use super::{local_response, RequestCtx, Stop};
use crate::pages::{self, Problem};
use crate::shield::{self, challenge, Action, Shield};
use crate::snapshot::SiteRt;
use crate::util::query_param;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use std::time::Duration;

/// Says which of the shield's answers a response is (challenge, rate-limit, block, shed),
/// as Cloudflare's `cf-mitigated` does, so clients and tools can tell it from the origin's.
pub(crate) const MITIGATED: &str = "holdfast-mitigated";

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseSilently;

impl std::fmt::Display for CloseSilently {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("closed by the shield")
    }
}
impl std::error::Error for CloseSilently {}

/// The answer for a shield action ([`Stop::Close`] for "close": no answer, the connection
/// is dropped).
pub(crate) fn act(cx: &RequestCtx, site: &SiteRt, action: &Action, client: &shield::Client, target: &str) -> Stop {
    Stop::Answer(match action {
        Action::Reject { retry_after, .. } => {
            let mut r = cx.page(site, Problem::TooMany, false);
            r.headers_mut().insert(header::RETRY_AFTER, secs(*retry_after));
            r.headers_mut().insert(MITIGATED, HeaderValue::from_static("rate-limit"));
            r
        }
        Action::Block { .. } => {
            let mut r = cx.page(site, Problem::Blocked, true);
            r.headers_mut().insert(MITIGATED, HeaderValue::from_static("block"));
            r
        }
        Action::Close { .. } => return Stop::Close,
        Action::Challenge { difficulty, .. } => challenge_page(&cx.edge.shield, site, client, *difficulty, target),
    })
}

fn secs(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs().max(1))
}

/// The proof-of-work page (403), for the target the client asked for.
fn challenge_page(
    shield: &Shield,
    site: &SiteRt,
    client: &shield::Client,
    difficulty: u8,
    target: &str,
) -> Response<RespBody> {
    let keys = shield.keys();
    let token = keys.1.token(&client.prefix.to_string(), difficulty, crate::clock::unix_secs(), shield.random());
    let html = pages::challenge_page(&site.language, &site.name, &token, difficulty, challenge::VERIFY_PATH, target);
    let mut r = local_response(StatusCode::FORBIDDEN, html, false);
    r.headers_mut().insert(MITIGATED, HeaderValue::from_static("challenge"));
    r
}

/// `GET /.holdfast/challenge?t=TOKEN&n=NONCE&r=BACK`: a solved challenge earns the
/// clearance cookie and a redirect back; anything else gets a new challenge.
pub(crate) fn verify(cx: &RequestCtx, site: &SiteRt, uri: &http::Uri, client: &shield::Client) -> Response<RespBody> {
    let (shield, snap, https) = (&cx.edge.shield, &cx.snap, cx.conn.https);
    let query = uri.query().unwrap_or("");
    let back = challenge::safe_return(query_param(query, "r"));
    let token = query_param(query, "t").unwrap_or_default();
    let nonce = query_param(query, "n").unwrap_or_default();
    let prefix = client.prefix.to_string();
    let now = crate::clock::unix_secs();
    let checked = shield.keys().1.verify(&token, &nonce, &prefix, now);
    match checked {
        Ok(()) => {
            cx.edge.telemetry.metrics.shield.action("pass", "challenge_solved", &site.name);
            let ttl = snap.file.shield.challenge.clearance_ttl.get().as_secs();
            let value = shield.keys().1.clearance(&prefix, now.saturating_add(ttl));
            let cookie = cookie_header(challenge::CLEARANCE, &value, ttl, https);
            let mut r = local_response(StatusCode::SEE_OTHER, String::new(), false);
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
            cx.edge.telemetry.metrics.shield.action("challenge", why.as_str(), &site.name);
            let d = snap.file.shield.challenge.difficulty;
            challenge_page(shield, site, client, d, &back)
        }
    }
}

fn cookie_header(name: &str, value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")).ok()
}

/// Adds the visitor cookie the shield made for this client, if it made one, to a response.
pub(crate) fn give_visitor_cookie(value: Option<&str>, resp: &mut Response<RespBody>, https: bool) {
    let Some(value) = value else { return };
    if let Some(c) = cookie_header(challenge::VISITOR, value, challenge::VISITOR_TTL, https) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
}

/// A request shed by adaptive admission: 503 with Retry-After.
pub(crate) fn shed(cx: &RequestCtx, site: &SiteRt, retry_after: Duration) -> Response<RespBody> {
    let mut r = cx.page(site, Problem::Busy, false);
    r.headers_mut().insert(header::RETRY_AFTER, secs(retry_after));
    r.headers_mut().insert(MITIGATED, HeaderValue::from_static("shed"));
    r
}
