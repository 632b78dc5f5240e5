//! Client connections from a chosen loopback source address (many simulated machines).

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

/// Opens a TCP connection from `src` (port chosen by the kernel) to `dst`.
pub(crate) async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((src, 0)))?;
    let stream = socket.connect(dst).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An HTTP/1.1 keep-alive connection from `src` to `dst`.
pub(crate) async fn http1_from(src: Ipv4Addr, dst: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = connect_from(src, dst).await?;
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

/// The i-th address of a /16 in 127.0.0.0/8 (`net` = second octet), skipping .0 and .255.
pub(crate) fn source_addr(net: u8, i: u32) -> Ipv4Addr {
    let i = i % (254 * 256);
    Ipv4Addr::new(127, net, (i / 254) as u8, (i % 254 + 1) as u8)
}

/// A browser's cookie jar: what `Set-Cookie` gave, sent back in `Cookie`.
#[derive(Debug, Default)]
pub(crate) struct Jar(BTreeMap<String, String>);

impl Jar {
    /// The `Cookie` field value, if there is anything to send.
    pub(crate) fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
    }

    /// Keeps the cookies a response sets (and forgets those it expires).
    pub(crate) fn take(&mut self, headers: &http::HeaderMap) {
        for c in headers.get_all(http::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let pair = c.split(';').next().unwrap_or("").trim();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.0.remove(k);
                } else {
                    self.0.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
}
