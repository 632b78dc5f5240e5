//! Client connections from a chosen loopback source address (many simulated machines).

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
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
