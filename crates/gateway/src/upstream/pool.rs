//! Keep-alive connections to one origin ([`http1::Conn`]): each origin owns its idle list,
//! a connection is handed back by the response body when it ends (see `proxy::body`), and
//! a request that could not be written on a pooled connection (closed by the origin
//! meanwhile) is sent on a fresh one, which is always safe.

use super::http1::{Conn, OriginBody, SendError};
use crate::proxy::body::ReqBody;
use bytes::Bytes;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections kept per origin at most.
const MAX_IDLE: usize = 256;

#[derive(Debug, Default)]
pub struct ConnPool {
    idle: Mutex<Vec<(Conn, Instant)>>,
}

impl ConnPool {
    /// Takes a usable idle connection, dropping closed and expired ones.
    fn checkout(&self, max_idle_age: Duration, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((mut conn, since)) = idle.pop() {
            if now.saturating_duration_since(since) < max_idle_age && conn.is_reusable_idle() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after its response body ended (`now`).
    pub fn checkin(&self, conn: Conn, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push((conn, now));
            }
        }
    }

    /// Sends a request on a pooled or new connection, answered by `deadline`. The response
    /// body holds the connection; it comes back here when the body has been read to its end.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        authority: &http::uri::Authority,
        head: &http::request::Parts,
        mut body: ReqBody,
        forwarding: &Bytes,
        connect_timeout: Duration,
        max_idle_age: Duration,
        now: Instant,
        deadline: Instant,
    ) -> Result<http::Response<OriginBody>, SendError> {
        if let Some(conn) = self.checkout(max_idle_age, now) {
            match conn.send(head, body, forwarding, deadline).await {
                // Not written: the pooled connection was closed under us; use a new one.
                Err(SendError::NotSent { body: back, .. }) => body = back,
                done => return done,
            }
        }
        // Boxed: connecting is the rare case, and its futures would otherwise make every
        // request's future larger.
        let connect_timeout = connect_timeout.min(deadline.saturating_duration_since(now));
        Box::pin(send_on_new(authority, head, body, forwarding, connect_timeout, deadline)).await
    }
}

/// Sends a request on a new connection.
async fn send_on_new(
    authority: &http::uri::Authority,
    head: &http::request::Parts,
    body: ReqBody,
    forwarding: &Bytes,
    connect_timeout: Duration,
    deadline: Instant,
) -> Result<http::Response<OriginBody>, SendError> {
    match connect(authority, connect_timeout).await {
        Ok(conn) => conn.send(head, body, forwarding, deadline).await,
        Err(kind) => Err(SendError::NotSent { kind, body }),
    }
}

/// Opens a connection to `authority` within `timeout`.
pub async fn connect(authority: &http::uri::Authority, timeout: Duration) -> Result<Conn, super::ErrorKind> {
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let connecting = async {
        let tcp = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => TcpStream::connect((ip, port)).await?,
            Err(_) => TcpStream::connect((host, port)).await?,
        };
        tcp.set_nodelay(true)?;
        Ok::<_, std::io::Error>(tcp)
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(tcp)) => Ok(Conn::new(tcp)),
        Ok(Err(e)) => Err(super::ErrorKind::of_connect(Some(&e))),
        Err(_) => Err(super::ErrorKind::ConnectTimeout),
    }
}
