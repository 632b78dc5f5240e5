//! Client identity: who sent a request. The peer address, or, when the peer is a trusted
//! proxy, the address it names (PROXY protocol v2 on the connection, else the nearest
//! untrusted hop of `Forwarded` / `X-Forwarded-For`). Addresses are grouped into prefixes.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The prefix an address belongs to (IPv4 /v4_len, IPv6 /v6_len; IPv4-mapped IPv6
/// addresses count as IPv4).
pub(crate) fn prefix(ip: IpAddr, v4_len: u8, v6_len: u8) -> IpNet {
    let ip = canonical(ip);
    let len = if ip.is_ipv4() { v4_len } else { v6_len };
    IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
}

/// `::ffff:a.b.c.d` is the IPv4 client a.b.c.d (a dual-stack socket).
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address for a request from `peer`. Only a trusted peer's forwarding headers
/// are believed; walking them from the nearest hop back, trusted proxies are skipped and the
/// first address not trusted is the client. `Forwarded` (RFC 7239) is preferred over
/// `X-Forwarded-For`.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
    let Some(hops) = hops else { return peer };
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(*ip) => continue,
            Some(ip) => return canonical(*ip),
            // An unknown or obfuscated hop that is not ours to trust: stop at the last
            // trusted proxy.
            None => break,
        }
    }
    peer
}

fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let s = v.to_str().ok()?;
        hops.extend(s.split(',').map(|p| parse_node(p.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for v in headers.get_all(http::header::FORWARDED) {
        let s = v.to_str().ok()?;
        for element in s.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"').to_string())
            });
            if let Some(node) = node {
                hops.push(parse_node(&node));
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let peer = "198.51.100.7".parse().unwrap();
        let headers = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(peer, &headers, &[]), peer);
        assert_eq!(client_ip(peer, &headers, &["10.0.0.0/8".parse().unwrap()]), peer);
    }

    #[test]
    fn trusted_chain_is_walked_from_the_nearest_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = "10.0.0.1".parse().unwrap();
        let headers = h(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.9")]);
        assert_eq!(client_ip(peer, &headers, &trusted), "1.2.3.4".parse::<IpAddr>().unwrap());
        let headers =
            h(&[("forwarded", "for=\"[2001:db8::5]:80\";proto=https, for=10.1.1.1"), ("x-forwarded-for", "9.9.9.9")]);
        assert_eq!(client_ip(peer, &headers, &trusted), "2001:db8::5".parse::<IpAddr>().unwrap());
        let headers = h(&[("forwarded", "for=unknown, for=10.1.1.1")]);
        assert_eq!(client_ip(peer, &headers, &trusted), peer);
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix("203.0.113.77".parse().unwrap(), 24, 64).to_string(), "203.0.113.0/24");
        assert_eq!(prefix("2001:db8:1:2:3:4:5:6".parse().unwrap(), 24, 64).to_string(), "2001:db8:1:2::/64");
        assert_eq!(prefix("::ffff:203.0.113.77".parse().unwrap(), 16, 64).to_string(), "203.0.0.0/16");
    }
}
