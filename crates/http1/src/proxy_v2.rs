//! The PROXY protocol v2 header (the binary header HAProxy, AWS NLB and others put in front
//! of a connection to name the client), as pure functions over bytes: the 16 fixed bytes
//! say how many follow ([`fixed`]), and those name the addresses ([`addresses`]). The
//! gateway reads exactly that many bytes off the socket, so not a byte of the HTTP stream
//! behind the header is consumed. Hand-written: sixteen fixed bytes and two address layouts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The header's first twelve bytes.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest address block accepted.
pub const MAX_LEN: usize = 4096;

/// What the fixed part of a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// PROXY (true) or LOCAL (false: the proxy's own connection; the peer stands).
    pub proxied: bool,
    /// Address family and transport (0x11 TCP over IPv4, 0x21 TCP over IPv6, …).
    pub family: u8,
    /// Bytes that follow.
    pub len: usize,
}

/// Reads the 16 fixed bytes.
pub fn fixed(head: &[u8; 16]) -> Result<Fixed, String> {
    if head[..12] != SIGNATURE {
        return Err("connection from a trusted proxy does not start with a PROXY protocol v2 header".into());
    }
    let (version, command) = (head[12] >> 4, head[12] & 0x0f);
    if version != 2 || command > 1 {
        return Err(format!("unsupported PROXY protocol version {version} command {command}"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > MAX_LEN {
        return Err(format!("PROXY header of {len} bytes is too long"));
    }
    Ok(Fixed { proxied: command == 1, family: head[13], len })
}

/// The source address for TCP/UDP over IPv4 (0x11, 0x12) or IPv6 (0x21, 0x22); None for
/// UNSPEC or unix sockets (no client address to take).
pub fn addresses(family: u8, b: &[u8]) -> Result<Option<SocketAddr>, String> {
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
        _ => Ok(None),
    }
}

/// A whole header at the front of `bytes`: the client it names (None: LOCAL, or no IP) and
/// its length. Ok(None) when more bytes are needed.
pub fn parse(bytes: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, String> {
    let Some(head) = bytes.first_chunk::<16>() else {
        return if SIGNATURE.starts_with(&bytes[..bytes.len().min(12)]) {
            Ok(None)
        } else {
            fixed(&[0; 16]).map(|_| None)
        };
    };
    let f = fixed(head)?;
    let Some(rest) = bytes.get(16..16 + f.len) else { return Ok(None) };
    let client = if f.proxied { addresses(f.family, rest)? } else { None };
    Ok(Some((client, 16 + f.len)))
}

/// A v2 header naming `src` as the client of a TCP connection to `dst`.
pub fn encode(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
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

    #[test]
    fn round_trip_and_exact_lengths() {
        let src: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        let mut bytes = encode(src, "10.0.0.1:80".parse().unwrap());
        let n = bytes.len();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(parse(&bytes).unwrap(), Some((Some(src), n)), "nothing after the header is taken");
        assert_eq!(parse(&bytes[..n - 1]).unwrap(), None, "incomplete");
        assert_eq!(parse(&bytes[..5]).unwrap(), None);
        let v6: SocketAddr = "[2001:db8::7]:1".parse().unwrap();
        assert_eq!(parse(&encode(v6, "[2001:db8::1]:443".parse().unwrap())).unwrap().unwrap().0, Some(v6));
    }

    #[test]
    fn rejects_what_is_not_a_header() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
        assert!(parse(b"GET").is_err());
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap(), Some((None, 16)));
        let mut short = SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&short).is_err());
        let mut long = SIGNATURE.to_vec();
        long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(parse(&long).is_err());
    }
}
