//! Keep-alive connections to one origin, on hyper's HTTP/1.1 client connections.
//!
//! hyper-util's pooled client spawns a task per HTTP/1 request (to return the connection
//! when it is ready again) and hashes a pool key per request; at the edge that was a
//! third of our CPU per request. Here each origin owns its idle list, a connection is
//! handed back by the response body when it ends (see `proxy::body`), and a request
//! that could not be written on a pooled connection (closed by the origin meanwhile) is
//! retried on a fresh one, which is always safe.

use crate::proxy::body::ReqBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections kept per origin at most.
const MAX_IDLE: usize = 256;

pub type Sender = SendRequest<ReqBody>;

#[derive(Debug, Default)]
pub struct ConnPool {
    idle: Mutex<Vec<(Sender, Instant)>>,
}

/// Why sending to the origin failed.
#[derive(Debug)]
pub enum SendError {
    /// Nothing was sent; the request comes back whole, to be sent elsewhere.
    NotSent { kind: super::ErrorKind, request: Box<http::Request<ReqBody>> },
    /// The request was (at least partly) written; no response.
    Http(hyper::Error),
}

impl ConnPool {
    /// Takes a ready idle connection, dropping closed and expired ones.
    fn checkout(&self, max_idle_age: Duration, now: Instant) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((sender, since)) = idle.pop() {
            if sender.is_ready() && now.saturating_duration_since(since) < max_idle_age {
                return Some(sender);
            }
        }
        None
    }

    /// Returns a connection after its response body ended (`now`).
    pub fn checkin(&self, sender: Sender, now: Instant) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push((sender, now));
            }
        }
    }

    /// Sends `req` on a pooled or new connection. Returns the response and the connection,
    /// to be checked in again when the response body has been read to its end.
    pub async fn send(
        &self,
        authority: &http::uri::Authority,
        mut req: http::Request<ReqBody>,
        connect_timeout: Duration,
        max_idle_age: Duration,
        now: Instant,
    ) -> Result<(http::Response<Incoming>, Sender), SendError> {
        if let Some(mut sender) = self.checkout(max_idle_age, now) {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    // Not written: the pooled connection was closed under us; use a new one.
                    Some(r) => req = r,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        // Boxed: connecting is the rare case, and its futures would otherwise make every
        // request's future larger.
        Box::pin(send_on_new(authority, req, connect_timeout)).await
    }
}

/// Sends `req` on a new connection.
async fn send_on_new(
    authority: &http::uri::Authority,
    req: http::Request<ReqBody>,
    connect_timeout: Duration,
) -> Result<(http::Response<Incoming>, Sender), SendError> {
    let mut sender = match connect(authority, connect_timeout).await {
        Ok(s) => s,
        Err(kind) => return Err(SendError::NotSent { kind, request: Box::new(req) }),
    };
    match sender.try_send_request(req).await {
        Ok(resp) => Ok((resp, sender)),
        Err(mut e) => match e.take_message() {
            Some(request) => Err(SendError::NotSent { kind: super::ErrorKind::Reset, request: Box::new(request) }),
            None => Err(SendError::Http(e.into_error())),
        },
    }
}

async fn connect(authority: &http::uri::Authority, timeout: Duration) -> Result<Sender, super::ErrorKind> {
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
    let tcp = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(super::ErrorKind::of_connect(Some(&e))),
        Err(_) => return Err(super::ErrorKind::ConnectTimeout),
    };
    let (sender, conn) =
        http1::Builder::new().handshake(TokioIo::new(tcp)).await.map_err(|_| super::ErrorKind::Connect)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "origin connection ended with an error");
        }
    });
    Ok(sender)
}
