//! Sets of addresses and prefixes (the allow list, the static and the dynamic block lists),
//! looked up with one hash probe per distinct prefix length present.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub(crate) struct CidrSet<V = ()> {
    /// (prefix length, is IPv6) -> networks of that length.
    by_len: Vec<((u8, bool), HashMap<IpNet, V>)>,
}

impl<V> Default for CidrSet<V> {
    fn default() -> Self {
        CidrSet { by_len: Vec::new() }
    }
}

impl<V> CidrSet<V> {
    pub(crate) fn insert(&mut self, net: IpNet, v: V) {
        let net = net.trunc();
        let k = (net.prefix_len(), matches!(net, IpNet::V6(_)));
        match self.by_len.iter_mut().find(|(len, _)| *len == k) {
            Some((_, m)) => {
                m.insert(net, v);
            }
            None => {
                self.by_len.push((k, HashMap::from([(net, v)])));
                // Longest prefixes first: the most specific entry wins.
                self.by_len.sort_by_key(|e| std::cmp::Reverse(e.0 .0));
            }
        }
    }

    /// The most specific entry containing `ip`.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<(IpNet, &V)> {
        let v6 = ip.is_ipv6();
        for ((len, is_v6), m) in &self.by_len {
            if *is_v6 != v6 {
                continue;
            }
            let Ok(net) = IpNet::new(ip, *len) else { continue };
            let net = net.trunc();
            if let Some(v) = m.get(&net) {
                return Some((net, v));
            }
        }
        None
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.lookup(ip).is_some()
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&IpNet, &V) -> bool) {
        for (_, m) in &mut self.by_len {
            m.retain(|k, v| keep(k, v));
        }
        self.by_len.retain(|(_, m)| !m.is_empty());
    }

    pub(crate) fn remove(&mut self, net: &IpNet) -> Option<V> {
        let net = net.trunc();
        self.by_len.iter_mut().find_map(|(_, m)| m.remove(&net))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&IpNet, &V)> {
        self.by_len.iter().flat_map(|(_, m)| m.iter())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }
}

impl FromIterator<IpNet> for CidrSet<()> {
    fn from_iter<T: IntoIterator<Item = IpNet>>(iter: T) -> Self {
        let mut s = CidrSet::default();
        for n in iter {
            s.insert(n, ());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_wins_and_families_are_apart() {
        let mut s: CidrSet<&str> = CidrSet::default();
        s.insert("10.0.0.0/8".parse().unwrap(), "wide");
        s.insert("10.1.2.0/24".parse().unwrap(), "narrow");
        s.insert("2001:db8::/32".parse().unwrap(), "v6");
        assert_eq!(s.lookup("10.1.2.3".parse().unwrap()).unwrap().1, &"narrow");
        assert_eq!(s.lookup("10.9.2.3".parse().unwrap()).unwrap().1, &"wide");
        assert!(s.lookup("11.0.0.1".parse().unwrap()).is_none());
        assert_eq!(s.lookup("2001:db8::1".parse().unwrap()).unwrap().1, &"v6");
        assert!(s.lookup("::ffff:10.1.2.3".parse().unwrap()).is_none());
        s.retain(|_, v| *v != "narrow");
        assert_eq!(s.lookup("10.1.2.3".parse().unwrap()).unwrap().1, &"wide");
    }
}
