//! The connection to the fleet's Redis, through redis-rs: one server (its
//! `ConnectionManager`, which reconnects by itself), the master that Redis Sentinel names
//! (asked again after an error: a failover moves it), or a Redis Cluster (its own client,
//! which follows the slots). Every command goes in a pipeline, and every pipeline has a
//! deadline: a Redis that hangs costs the sync task that much, and never a request.

use crate::config::fleet::RedisTarget;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, Pipeline, RedisResult, Value};
use std::time::Duration;

enum Conn {
    Single(ConnectionManager),
    Sentinel(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A connection to the fleet's Redis, made when first needed and made again after a
/// failure.
pub(crate) struct Link {
    target: RedisTarget,
    timeout: Duration,
    conn: Option<Conn>,
    sentinel: Option<SentinelClient>,
}

/// `host:port` of a `redis://host:port` URL, as redis-rs's address.
fn addr(url: &str) -> RedisResult<ConnectionAddr> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest).split('/').next().unwrap_or("");
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "26379"));
    let port: u16 =
        port.parse().map_err(|_| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad port")))?;
    Ok(ConnectionAddr::Tcp(host.trim_matches(['[', ']']).to_string(), port))
}

impl Link {
    /// `timeout`: for connecting, and for each answer.
    pub(crate) fn new(target: RedisTarget, timeout: Duration) -> Link {
        Link { target, timeout, conn: None, sentinel: None }
    }

    async fn connect(&mut self) -> RedisResult<Conn> {
        match &self.target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(2));
                Ok(Conn::Single(ConnectionManager::new_with_config(client, cfg).await?))
            }
            RedisTarget::Sentinel { sentinels, master, user, password, db } => {
                if self.sentinel.is_none() {
                    let addrs = sentinels.iter().map(|s| addr(s)).collect::<RedisResult<Vec<_>>>()?;
                    let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
                        .set_client_to_redis_db(*db);
                    if let Some(u) = user {
                        b = b.set_client_to_redis_username(u);
                    }
                    if let Some(p) = password {
                        b = b.set_client_to_redis_password(p);
                    }
                    self.sentinel = Some(b.build()?);
                }
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                match &mut self.sentinel {
                    Some(s) => Ok(Conn::Sentinel(s.get_async_connection_with_config(&cfg).await?)),
                    None => Err((redis::ErrorKind::InvalidClientConfig, "no sentinel").into()),
                }
            }
            RedisTarget::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(self.timeout)
                    .response_timeout(self.timeout)
                    .retries(1)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Sends a pipeline; its answers, one per command.
    pub(crate) async fn send(&mut self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        if self.conn.is_none() {
            let c = tokio::time::timeout(self.timeout, self.connect())
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
            self.conn = Some(c);
        }
        let answer = match &mut self.conn {
            Some(Conn::Single(c)) => pipe.query_async(c).await,
            Some(Conn::Sentinel(c)) => pipe.query_async(c).await,
            Some(Conn::Cluster(c)) => pipe.query_async(c).await,
            None => Err((redis::ErrorKind::Io, "not connected").into()),
        };
        if answer.is_err() {
            // A sentinel's master may have moved: ask again next time. A cluster or a
            // connection manager finds its way by itself, but a fresh one costs nothing.
            self.conn = None;
        }
        answer
    }
}
