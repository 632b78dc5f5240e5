//! PROXY protocol v2 (the binary header HAProxy, AWS NLB and others put in front of a
//! connection to name the client). Read only from trusted proxies, and exactly as many
//! bytes as the header says, so not a byte of the HTTP stream behind it is consumed.
//! The bytes are judged in the codec crate (`holdfast_http1::proxy_v2`, fuzzed); reading
//! them straight off the socket with exact lengths is here.

use holdfast_http1::proxy_v2;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads the header; Ok(Some(client)) for a proxied connection, Ok(None) for a LOCAL one
/// (the proxy's own health check) or an address family without an IP (the peer stands).
/// The bytes are judged by `holdfast_http1::proxy_v2`.
pub(crate) async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<SocketAddr>, String> {
    let mut head = [0u8; 16];
    r.read_exact(&mut head).await.map_err(|e| format!("reading PROXY header: {e}"))?;
    let fixed = proxy_v2::fixed(&head)?;
    let mut rest = vec![0u8; fixed.len];
    r.read_exact(&mut rest).await.map_err(|e| format!("reading PROXY addresses: {e}"))?;
    if !fixed.proxied {
        return Ok(None);
    }
    proxy_v2::addresses(fixed.family, &rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_exactly_the_header_off_the_stream() {
        let src: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        let mut bytes = proxy_v2::encode(src, "10.0.0.1:80".parse().unwrap());
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut r = &bytes[..];
        assert_eq!(read_header(&mut r).await.unwrap(), Some(src));
        assert_eq!(r, b"GET / HTTP/1.1\r\n", "nothing after the header is consumed");
        let mut r: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(read_header(&mut r).await.is_err());
    }
}
