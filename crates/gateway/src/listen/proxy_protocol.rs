//! PROXY protocol v2 (the binary header HAProxy, AWS NLB and others put in front of a
//! connection to name the client). Read only from trusted proxies, and exactly as many
//! bytes as the header says, so not a byte of the HTTP stream behind it is consumed.
//! Hand-written: the format is sixteen fixed bytes and two address layouts, and reading it
//! straight off the socket with exact lengths is simpler than buffering for a parser crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Reads the header; Ok(Some(client)) for a proxied connection, Ok(None) for a LOCAL one
/// (the proxy's own health check) or an address family without an IP (the peer stands).
pub(crate) async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<SocketAddr>, String> {
    let mut head = [0u8; 16];
    r.read_exact(&mut head).await.map_err(|e| format!("reading PROXY header: {e}"))?;
    if head[..12] != SIGNATURE {
        return Err("connection from a trusted proxy does not start with a PROXY protocol v2 header".into());
    }
    let (version, command) = (head[12] >> 4, head[12] & 0x0f);
    if version != 2 || command > 1 {
        return Err(format!("unsupported PROXY protocol version {version} command {command}"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > 4096 {
        return Err(format!("PROXY header of {len} bytes is too long"));
    }
    let mut rest = vec![0u8; len];
    r.read_exact(&mut rest).await.map_err(|e| format!("reading PROXY addresses: {e}"))?;
    if command == 0 {
        return Ok(None);
    }
    parse_addresses(head[13], &rest)
}

/// The source address for TCP/UDP over IPv4 (0x11, 0x12) or IPv6 (0x21, 0x22).
fn parse_addresses(family: u8, b: &[u8]) -> Result<Option<SocketAddr>, String> {
    match family >> 4 {
        1 if b.len() >= 12 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([b[8], b[9]]))))
        }
        2 if b.len() >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), u16::from_be_bytes([b[32], b[33]]))))
        }
        1 | 2 => Err("PROXY header too short for its addresses".into()),
        _ => Ok(None), // UNSPEC or unix sockets: no client address to take
    }
}

/// A v2 header naming `src` as the client (for the parser's tests).
#[cfg(test)]
fn encode(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_exact_reads() {
        let src: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        let dst: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let mut bytes = encode(src, dst);
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut r = &bytes[..];
        assert_eq!(read_header(&mut r).await.unwrap(), Some(src));
        assert_eq!(r, b"GET / HTTP/1.1\r\n", "nothing after the header is consumed");
        let v6: SocketAddr = "[2001:db8::7]:1".parse().unwrap();
        let bytes = encode(v6, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(read_header(&mut &bytes[..]).await.unwrap(), Some(v6));
    }

    #[tokio::test]
    async fn rejects_what_is_not_a_header() {
        let mut r: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(read_header(&mut r).await.is_err());
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read_header(&mut &local[..]).await.unwrap(), None);
        let mut short = SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(read_header(&mut &short[..]).await.is_err());
    }
}
