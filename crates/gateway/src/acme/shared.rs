//! ACME in a fleet: one instance orders and renews each site's certificate, under a Redis
//! lock, and every instance serves the result. The certificate and its key are kept in the
//! fleet's Redis beside the lock (a hash, `acme:cert:SITE`: `chain`, `key`); an instance
//! whose certificate is due looks there first, takes a newer one it finds, and orders only
//! if it wins the lock (`SET acme:lock:SITE INSTANCE NX PX`, five minutes, released when the
//! order ends). The key is in Redis as it is on disk: protect the fleet's Redis as the
//! certificates' storage it is (ACL users, TLS), as certmagic's Redis storage asks.

use crate::fleet::link::Link;
use redis::{Pipeline, Value};
use std::time::Duration;

/// How long a lock holds if its holder dies mid-order.
const LOCK_MS: u64 = 5 * 60 * 1000;

pub(super) struct Shared {
    link: tokio::sync::Mutex<Link>,
    instance: String,
}

fn cert_key(site: &str) -> String {
    crate::fleet::key(&format!("acme:cert:{site}"))
}

/// The fleet's HTTP-01 answers (token → key authorization): the ACME server may validate at
/// any point of presence, so every one must know them. The hash expires ten minutes after
/// its last answer was added; a stale token answers nothing but its own spent challenge.
fn answers_key() -> String {
    crate::fleet::key("acme:http01")
}

const ANSWERS_MS: u64 = 10 * 60 * 1000;
/// How often every instance reads the fleet's answers.
pub(super) const ANSWERS_EVERY: Duration = Duration::from_millis(250);

fn lock_key(site: &str) -> String {
    crate::fleet::key(&format!("acme:lock:{site}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

impl Shared {
    pub(super) fn new(cfg: &crate::config::fleet::Fleet) -> Option<Shared> {
        let target = cfg.redis.get_ref().target().ok()?;
        let link = Link::new(target, Duration::from_secs(2));
        Some(Shared { link: tokio::sync::Mutex::new(link), instance: cfg.instance.clone() })
    }

    async fn send(&self, pipe: &Pipeline) -> Result<Vec<Value>, String> {
        self.link.lock().await.send(pipe).await.map_err(|e| format!("the fleet's Redis: {e}"))
    }

    /// The site's certificate in the fleet's Redis: (chain, key) PEM.
    pub(super) async fn fetch(&self, site: &str) -> Result<Option<(String, String)>, String> {
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(cert_key(site)).arg("chain").arg("key");
        let answer = self.send(&pipe).await?;
        let Some(Value::Array(fields)) = answer.first() else { return Ok(None) };
        match (fields.first().and_then(text), fields.get(1).and_then(text)) {
            (Some(chain), Some(key)) => Ok(Some((chain, key))),
            _ => Ok(None),
        }
    }

    /// Takes the site's lock: true when this instance is to order.
    pub(super) async fn lock(&self, site: &str) -> Result<bool, String> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(lock_key(site)).arg(&self.instance).arg("NX").arg("PX").arg(LOCK_MS);
        let answer = self.send(&pipe).await?;
        Ok(matches!(answer.first(), Some(Value::Okay)) || answer.first().and_then(text).as_deref() == Some("OK"))
    }

    /// Publishes a new certificate and lets the lock go.
    pub(super) async fn publish(&self, site: &str, chain: &str, key: &str) -> Result<(), String> {
        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg(cert_key(site)).arg("chain").arg(chain).arg("key").arg(key).ignore();
        pipe.cmd("DEL").arg(lock_key(site)).ignore();
        self.send(&pipe).await.map(drop)
    }

    /// Tells the fleet an HTTP-01 answer.
    pub(super) async fn publish_answer(&self, token: &str, key_auth: &str) -> Result<(), String> {
        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg(answers_key()).arg(token).arg(key_auth).ignore();
        pipe.cmd("PEXPIRE").arg(answers_key()).arg(ANSWERS_MS).ignore();
        self.send(&pipe).await.map(drop)
    }

    /// The fleet's HTTP-01 answers.
    pub(super) async fn answers(&self) -> Result<std::collections::HashMap<String, String>, String> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(answers_key());
        let answer = self.send(&pipe).await?;
        let mut out = std::collections::HashMap::new();
        match answer.first() {
            Some(Value::Array(items)) => {
                for pair in items.chunks(2) {
                    if let [k, v] = pair {
                        if let (Some(k), Some(v)) = (text(k), text(v)) {
                            out.insert(k, v);
                        }
                    }
                }
            }
            Some(Value::Map(items)) => {
                for (k, v) in items {
                    if let (Some(k), Some(v)) = (text(k), text(v)) {
                        out.insert(k, v);
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// Lets the lock go after a failed order (the next instance may try).
    pub(super) async fn unlock(&self, site: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(lock_key(site)).ignore();
        let _ = self.send(&pipe).await;
    }
}
