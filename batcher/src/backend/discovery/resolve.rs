//! Asking DNS about a `dns://` name, through hickory-resolver: A and AAAA records together, with
//! the shortest TTL among them, from `backend.resolver` or the system's configuration.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use super::plan::answer_addresses;
use crate::backend::DnsName;

/// Longest one resolution may take, retries over UDP and TCP included; the task then goes on with
/// the last good addresses.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Per query to `backend.resolver` (hickory's default is 5 s): a lost UDP datagram costs this
/// much. The system's configuration keeps its own (`options timeout:` in resolv.conf).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The result of one resolution.
#[derive(Debug)]
pub enum Answer {
    /// Usable addresses, and how long the records are valid.
    Addresses { addresses: Vec<SocketAddr>, ttl: Duration },
    /// The server answered, with nothing usable (NXDOMAIN, no A/AAAA record, only unusable
    /// addresses).
    Empty(String),
    /// No answer (no server reachable, timeout, SERVFAIL, no resolver configuration...).
    Failed(String),
}

pub struct DnsResolver(TokioResolver);

impl DnsResolver {
    /// A resolver asking `server`, or the servers, search domains and options of
    /// `/etc/resolv.conf` (and `/etc/hosts`) when `None`.
    pub fn new(server: Option<SocketAddr>) -> Result<DnsResolver, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            None => TokioResolver::builder(provider)
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
            Some(server) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let config =
                    ResolverConfig::from_name_servers(vec![NameServerConfig::new(server.ip(), true, vec![udp, tcp])]);
                let mut builder = TokioResolver::builder_with_config(config, provider);
                // The operator named the server to ask: /etc/hosts is not consulted.
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder.options_mut().timeout = QUERY_TIMEOUT;
                builder
            }
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // The task asks again when the TTL runs out or the interval passes, whichever is first; a
        // cache would hand back the old answer when the interval is the shorter.
        options.cache_size = 0;
        builder.build().map(DnsResolver).map_err(|e| format!("cannot set up the DNS resolver: {e}"))
    }

    pub async fn resolve(&self, name: &DnsName) -> Answer {
        let lookup = match tokio::time::timeout(LOOKUP_TIMEOUT, self.0.lookup_ip(name.host.as_str())).await {
            Err(_) => return Answer::Failed(format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs())),
            Ok(Err(e)) if e.is_nx_domain() => return Answer::Empty("no such name (NXDOMAIN)".to_string()),
            Ok(Err(e)) if e.is_no_records_found() => return Answer::Empty("no A or AAAA record".to_string()),
            Ok(Err(e)) => return Answer::Failed(e.to_string()),
            Ok(Ok(lookup)) => lookup,
        };
        let addresses = answer_addresses(lookup.iter(), name.port);
        if addresses.is_empty() {
            return Answer::Empty("only addresses that cannot be a backend (0.0.0.0, multicast...)".to_string());
        }
        let ttl = lookup.valid_until().saturating_duration_since(Instant::now());
        Answer::Addresses { addresses, ttl }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use tokio::net::UdpSocket;

    use super::*;

    /// A DNS server on loopback: A queries get `records` with `ttl`, AAAA queries no record;
    /// with no records at all, every query gets NXDOMAIN. Just enough of RFC 1035 to answer.
    pub async fn fake_server(records: Vec<Ipv4Addr>, ttl: u32) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(&reply(&buf[..n], &records, ttl), peer).await;
            }
        });
        address
    }

    fn reply(query: &[u8], records: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
        // The question follows the 12-byte header: labels up to the root, then type and class.
        let mut end = 12;
        while query[end] != 0 {
            end += 1 + usize::from(query[end]);
        }
        end += 5;
        let is_a = query[end - 4..end - 2] == [0, 1];
        let answers: &[Ipv4Addr] = if is_a { records } else { &[] };
        let nxdomain = records.is_empty();
        // Header and question as asked (the EDNS record is dropped): a response, authoritative,
        // recursion desired as asked, available, and NXDOMAIN or no error.
        let mut out = query[..end].to_vec();
        out[2] = 0x80 | 0x04 | (query[2] & 0x01);
        out[3] = 0x80 | if nxdomain { 3 } else { 0 };
        out[6..12].copy_from_slice(&[0, answers.len() as u8, 0, 0, 0, 0]);
        for ip in answers {
            out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&[0, 4]);
            out.extend_from_slice(&ip.octets());
        }
        out
    }

    fn name() -> DnsName {
        DnsName { host: "tfs.test".to_string(), port: 8500 }
    }

    #[tokio::test]
    async fn a_records_become_addresses_with_their_ttl() {
        let ips = vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 1)];
        let server = fake_server(ips, 7).await;
        let resolver = DnsResolver::new(Some(server)).unwrap();
        match resolver.resolve(&name()).await {
            Answer::Addresses { addresses, ttl } => {
                let expected: Vec<SocketAddr> =
                    vec!["10.0.0.1:8500".parse().unwrap(), "10.0.0.2:8500".parse().unwrap()];
                assert_eq!(addresses, expected);
                assert!(ttl > Duration::from_secs(5) && ttl <= Duration::from_secs(7), "{ttl:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn nxdomain_and_nothing_usable_are_empty_answers() {
        let resolver = DnsResolver::new(Some(fake_server(Vec::new(), 7).await)).unwrap();
        assert!(matches!(resolver.resolve(&name()).await, Answer::Empty(why) if why.contains("NXDOMAIN")));
        let resolver = DnsResolver::new(Some(fake_server(vec![Ipv4Addr::UNSPECIFIED], 7).await)).unwrap();
        assert!(matches!(resolver.resolve(&name()).await, Answer::Empty(why) if why.contains("0.0.0.0")));
    }
}
