//! The pure side of discovery: which addresses of an answer become targets, the pool's target
//! list from `backend.grpc` and what each name resolved to last, and what changed between two
//! answers (for the log; an unchanged answer builds no new pool).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use hyper::Uri;

use crate::backend::Backend;
use crate::backend::{DnsName, GrpcTarget};

/// Most targets one name may bring: each is a connection, a health probe per interval and a few
/// metric series; an answer beyond this (a misconfigured record set) is cut, lowest addresses
/// kept, so that every daemon keeps the same ones.
pub const MAX_TARGETS_PER_NAME: usize = 256;

/// The targets of one answer: sorted, each once, at most [`MAX_TARGETS_PER_NAME`]. Addresses
/// that cannot be a backend (0.0.0.0 would reach the local host, multicast and broadcast no
/// server) are left out.
pub fn answer_addresses(ips: impl IntoIterator<Item = IpAddr>, port: u16) -> Vec<SocketAddr> {
    let mut addresses: Vec<SocketAddr> =
        ips.into_iter().map(|ip| ip.to_canonical()).filter(usable).map(|ip| SocketAddr::new(ip, port)).collect();
    addresses.sort();
    addresses.dedup();
    addresses.truncate(MAX_TARGETS_PER_NAME);
    addresses
}

fn usable(ip: &IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !(ip.is_unspecified() || ip.is_multicast() || broadcast)
}

/// The URL a resolved address is connected to (and named by, in logs and metrics): the same as
/// the `http://` (or, over TLS, `https://`) entry an operator would have written for it.
pub fn address_uri(address: SocketAddr, tls: bool) -> Uri {
    let scheme = if tls { "https" } else { "http" };
    // An address from DNS has no IPv6 zone, so this always parses; the fallback is unreachable.
    format!("{scheme}://{address}").parse().unwrap_or_else(|_| Uri::from_static("http://0.0.0.0:0"))
}

/// The pool's targets, in `backend.grpc` order, each `dns://` entry standing for its addresses
/// (from `addresses`), each with the name it came from. A target listed twice (an address two
/// names share, or also written as a URL) is kept once, where it first appears.
pub fn pool_targets(
    grpc: &[GrpcTarget],
    dns_over_tls: bool,
    addresses: impl Fn(&DnsName) -> Vec<SocketAddr>,
) -> Vec<(Uri, Option<&DnsName>)> {
    let mut seen = HashSet::new();
    let mut targets = Vec::new();
    for entry in grpc {
        let expanded: Vec<(Uri, Option<&DnsName>)> = match entry {
            GrpcTarget::Url(uri) => vec![(uri.clone(), None)],
            GrpcTarget::Dns(name) => {
                addresses(name).into_iter().map(|a| (address_uri(a, dns_over_tls), Some(name))).collect()
            }
        };
        for (uri, name) in expanded {
            if seen.insert(Backend::target_name(&uri)) {
                targets.push((uri, name));
            }
        }
    }
    targets
}

/// What a new answer changes for a name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<SocketAddr>,
    pub removed: Vec<SocketAddr>,
}

impl Change {
    pub fn between(old: &[SocketAddr], new: &[SocketAddr]) -> Change {
        Change {
            added: new.iter().filter(|a| !old.contains(a)).copied().collect(),
            removed: old.iter().filter(|a| !new.contains(a)).copied().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl fmt::Display for Change {
    /// `+10.0.0.3:8500 -10.0.0.1:8500`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let added = self.added.iter().map(|a| format!("+{a}"));
        let removed = self.removed.iter().map(|a| format!("-{a}"));
        f.write_str(&added.chain(removed).collect::<Vec<_>>().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn answers_become_sorted_unique_usable_addresses() {
        let answer =
            ips(&["10.0.0.2", "fd00::1", "10.0.0.1", "10.0.0.2", "0.0.0.0", "::", "224.0.0.1", "255.255.255.255"]);
        assert_eq!(answer_addresses(answer, 8500), addrs(&["10.0.0.1:8500", "10.0.0.2:8500", "[fd00::1]:8500"]));
        assert!(answer_addresses(ips(&["0.0.0.0", "ff02::1", "::ffff:0.0.0.0"]), 1).is_empty());
        // An IPv4-mapped AAAA record is the IPv4 address (one target, not two).
        assert_eq!(answer_addresses(ips(&["::ffff:10.0.0.1", "10.0.0.1"]), 1), addrs(&["10.0.0.1:1"]));
    }

    #[test]
    fn a_huge_answer_is_cut_the_same_way_everywhere() {
        let many: Vec<IpAddr> =
            (0..300u32).rev().map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i))).collect();
        let kept = answer_addresses(many, 1);
        assert_eq!(kept.len(), MAX_TARGETS_PER_NAME);
        assert_eq!(kept[0], "10.0.0.0:1".parse().unwrap());
        assert_eq!(kept[MAX_TARGETS_PER_NAME - 1], "10.0.0.255:1".parse().unwrap());
    }

    #[test]
    fn addresses_get_the_urls_an_operator_would_write() {
        assert_eq!(Backend::target_name(&address_uri("10.0.0.1:8500".parse().unwrap(), false)), "http://10.0.0.1:8500");
        assert_eq!(
            Backend::target_name(&address_uri("[fd00::1]:8500".parse().unwrap(), false)),
            "http://[fd00::1]:8500"
        );
        assert_eq!(Backend::target_name(&address_uri("10.0.0.1:8500".parse().unwrap(), true)), "https://10.0.0.1:8500");
    }

    #[test]
    fn the_target_list_follows_the_config_order_without_duplicates() {
        let a = DnsName { host: "a".into(), port: 1 };
        let b = DnsName { host: "b".into(), port: 1 };
        let grpc = vec![
            GrpcTarget::Url("http://10.0.0.9:1".parse().unwrap()),
            GrpcTarget::Dns(a.clone()),
            GrpcTarget::Dns(b.clone()),
            GrpcTarget::Url("http://10.0.0.1:1".parse().unwrap()),
        ];
        let resolved = BTreeMap::from([
            (a.clone(), addrs(&["10.0.0.1:1", "10.0.0.2:1"])),
            (b.clone(), addrs(&["10.0.0.2:1", "10.0.0.3:1"])),
        ]);
        let targets = pool_targets(&grpc, false, |name| resolved.get(name).cloned().unwrap_or_default());
        let shown: Vec<(String, Option<&str>)> =
            targets.iter().map(|(uri, name)| (Backend::target_name(uri), name.map(|n| n.host.as_str()))).collect();
        assert_eq!(
            shown,
            [
                ("http://10.0.0.9:1".to_string(), None),
                ("http://10.0.0.1:1".to_string(), Some("a")),
                ("http://10.0.0.2:1".to_string(), Some("a")),
                ("http://10.0.0.3:1".to_string(), Some("b")),
            ]
        );
        // Nothing resolved yet: only the URLs.
        assert_eq!(pool_targets(&grpc, false, |_| Vec::new()).len(), 2);
    }

    #[test]
    fn changes_between_answers() {
        let old = addrs(&["10.0.0.1:1", "10.0.0.2:1"]);
        let new = addrs(&["10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"]);
        let change = Change::between(&old, &new);
        assert_eq!(change.added, addrs(&["10.0.0.3:1", "10.0.0.4:1"]));
        assert_eq!(change.removed, addrs(&["10.0.0.1:1"]));
        assert_eq!(change.to_string(), "+10.0.0.3:1 +10.0.0.4:1 -10.0.0.1:1");
        assert!(Change::between(&new, &new).is_empty());
        assert_eq!(Change::between(&[], &old).added, old);
        assert_eq!(Change::between(&old, &[]).removed, old);
    }
}
