//! `[fleet]`: points of presence that act as one, sharing their state through Redis. Every
//! key is in docs/config.md; what is shared and how is docs/fleet.md.

use super::Dur;
use serde::Deserialize;
use toml::Spanned;

/// `[fleet]`: this instance's place in a fleet. Without it, holdfast runs alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Where the fleet's Redis is: `redis://[user:password@]host:port[/db]`, `rediss://…`
    /// (TLS), `redis+sentinel://[user:password@]host:port,host:port/master[/db]`, or a list
    /// of `redis://` nodes of a Redis Cluster.
    pub redis: Spanned<RedisAddr>,
    /// This instance's name (a point of presence); default: the host name.
    #[serde(default = "default_instance")]
    pub instance: String,
    /// How often the instance syncs with Redis (one pipelined round trip).
    #[serde(default = "default_sync_interval")]
    pub sync_interval: Dur,
    /// What shared limits do while Redis cannot be reached.
    #[serde(default)]
    pub on_redis_down: OnRedisDown,
    /// The per-address rate limit is a fleet total too (the per-prefix and per-class ones
    /// always are).
    #[serde(default)]
    pub shared_per_address: bool,
    /// How often the shared keys (challenges, clearances, visitor cookies) are rotated.
    #[serde(default = "default_key_rotation")]
    pub key_rotation: Dur,
}

fn default_instance() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "holdfast".into())
}

fn default_sync_interval() -> Dur {
    Dur::millis(100)
}

fn default_key_rotation() -> Dur {
    Dur::secs(24 * 3600)
}

/// One Redis (a URL), or the nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RedisAddr {
    /// `redis://`, `rediss://` or `redis+sentinel://`.
    One(String),
    /// The nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

/// What shared limits do while Redis cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRedisDown {
    /// Each instance enforces its share of a limit, from its last observed share of the
    /// traffic, and never less than the limit divided by the live instances.
    #[default]
    Local,
    /// No fleet-wide limits: each instance enforces the whole limit on its own.
    Open,
    /// Requests under a shared limit are refused.
    Closed,
}

/// Where to reach Redis, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis://`, `rediss://`): the URL as redis-rs reads it.
    Single(String),
    /// Sentinels watching a master.
    Sentinel {
        /// Each a `redis://host:port` URL.
        sentinels: Vec<String>,
        /// The master's name, as the sentinels know it.
        master: String,
        /// Reaching the master: its ACL user ...
        user: Option<String>,
        /// ... password ...
        password: Option<String>,
        /// ... and database.
        db: i64,
    },
    /// The nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

impl RedisAddr {
    /// The target, or what is wrong with the address.
    pub fn target(&self) -> Result<RedisTarget, String> {
        match self {
            RedisAddr::Cluster(nodes) => {
                if nodes.is_empty() {
                    return Err("a Redis Cluster needs at least one node".into());
                }
                for n in nodes {
                    plain_url(n)?;
                }
                Ok(RedisTarget::Cluster(nodes.clone()))
            }
            RedisAddr::One(url) => match url.strip_prefix("redis+sentinel://") {
                Some(rest) => sentinel(rest),
                None => plain_url(url).map(|()| RedisTarget::Single(url.clone())),
            },
        }
    }
}

/// `redis://` or `rediss://` with a host.
fn plain_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("redis://").or_else(|| url.strip_prefix("rediss://")).ok_or_else(|| {
        format!("{url:?}: expected redis://host:port, rediss://…, redis+sentinel://… or a list of cluster nodes")
    })?;
    let host = rest.rsplit('@').next().unwrap_or("").split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(())
}

/// `[user:password@]host:port,host:port/master[/db]`.
fn sentinel(rest: &str) -> Result<RedisTarget, String> {
    let bad = |why: &str| {
        format!(
            "redis+sentinel://{rest}: {why}; expected redis+sentinel://[user:password@]host:port,host:port/master[/db]"
        )
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let mut parts = rest.split('/');
    let hosts = parts.next().unwrap_or("");
    let master = parts.next().filter(|m| !m.is_empty()).ok_or_else(|| bad("no master name"))?;
    let db = match parts.next() {
        None | Some("") => 0,
        Some(d) => d.parse().map_err(|_| bad("the database is not a number"))?,
    };
    let sentinels: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(|h| format!("redis://{h}")).collect();
    if sentinels.is_empty() {
        return Err(bad("no sentinel"));
    }
    let (user, password) = match auth.map(|a| a.split_once(':')) {
        Some(Some((u, p))) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
        Some(None) => (None, auth.map(str::to_string)),
        None => (None, None),
    };
    Ok(RedisTarget::Sentinel { sentinels, master: master.to_string(), user, password, db })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_addresses_are_read_or_explained() {
        let one = |s: &str| RedisAddr::One(s.into()).target();
        assert_eq!(one("redis://127.0.0.1:6379/0"), Ok(RedisTarget::Single("redis://127.0.0.1:6379/0".into())));
        assert!(one("rediss://u:p@redis.example:6380").is_ok());
        assert_eq!(
            one("redis+sentinel://app:secret@10.0.0.1:26379,10.0.0.2:26379/mymaster/2"),
            Ok(RedisTarget::Sentinel {
                sentinels: vec!["redis://10.0.0.1:26379".into(), "redis://10.0.0.2:26379".into()],
                master: "mymaster".into(),
                user: Some("app".into()),
                password: Some("secret".into()),
                db: 2,
            })
        );
        assert!(one("redis+sentinel://10.0.0.1:26379").unwrap_err().contains("no master name"));
        assert!(one("http://127.0.0.1:6379").unwrap_err().contains("expected redis://"));
        assert!(one("redis://").unwrap_err().contains("no host"));
        let cluster = RedisAddr::Cluster(vec!["redis://127.0.0.1:7000".into(), "redis://127.0.0.1:7001".into()]);
        assert!(matches!(cluster.target(), Ok(RedisTarget::Cluster(n)) if n.len() == 2));
        assert!(RedisAddr::Cluster(vec![]).target().is_err());
    }
}
