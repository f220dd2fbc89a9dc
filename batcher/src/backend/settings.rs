//! The backend's settings (`[backend]`), as the configuration resolved them: where TF Serving
//! is (fixed URLs and `dns://` names), which API it speaks, how long a call may take, how targets
//! are checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;

use super::tls_connector::TargetTls;
use crate::tls::ClientTls;

/// One entry of `backend.grpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcTarget {
    /// `http://HOST:PORT` or `https://HOST:PORT`: one target, connected to as written.
    Url(Uri),
    /// `dns://NAME:PORT`: one target per address NAME resolves to, re-resolved while running.
    Dns(DnsName),
}

/// A `dns://NAME:PORT` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName {
    /// As written (lower-cased), a trailing dot kept: it tells the resolver the name is fully
    /// qualified, so no search domain is tried.
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for DnsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dns://{}:{}", self.host, self.port)
    }
}

/// `backend.protocol`: the API every target of the backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// TF Serving's `PredictionService` and `ModelService`.
    #[default]
    TfServing,
    /// The Open Inference Protocol's `inference.GRPCInferenceService` (Triton, MLServer, KServe
    /// runtimes): the daemon's TF Serving calls are translated (see `backend::v2`).
    V2,
}

impl Protocol {
    /// Every protocol, in the order the documentation lists them.
    pub const ALL: [Protocol; 2] = [Protocol::TfServing, Protocol::V2];

    /// The value of `backend.protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::TfServing => "tfserving",
            Protocol::V2 => "v2",
        }
    }

    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `backend.resolve_interval_ms` default: a new replica gets traffic within 5 s (sooner when the
/// record's TTL is shorter), for one small query per name and interval.
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(5);
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// TF Serving gRPC targets, at least one entry: fixed URLs and `dns://` names, in the
    /// order written.
    pub grpc: Vec<GrpcTarget>,
    /// `backend.protocol`: the API all of `grpc`'s targets speak.
    pub protocol: Protocol,
    /// TF Serving REST base (`http://host:port`) for classify/regress passthrough.
    pub rest: Option<Uri>,
    /// Longest a single backend call may take (a batch's call is also bounded by the latest
    /// deadline of the requests in it).
    pub timeout: Duration,
    /// How often every target is asked for GetModelStatus; `None` turns active checks off
    /// (failed calls still mark a target down).
    pub health_interval: Option<Duration>,
    /// `backend.resolver`: the DNS server asked about `dns://` names; `None`: the system's
    /// (`/etc/resolv.conf`, `/etc/hosts`).
    pub resolver: Option<SocketAddr>,
    /// `backend.resolve_interval_ms`: longest time between two resolutions of a `dns://` name
    /// (a shorter record TTL brings the next one forward).
    pub resolve_interval: Duration,
    /// The TLS client of the `https://` targets (and of the `dns://` ones when `[backend.tls]` is
    /// set): `[backend.tls]`'s files, or the system's CA store for `https://` without it.
    pub tls: Option<Arc<ClientTls>>,
    /// `backend.tls.server_name`: the name every target's certificate must carry; `None`: the
    /// host of the URL, or the `dns://` name.
    pub tls_server_name: Option<String>,
    /// `[backend.tls]` is set: the `dns://` names' addresses are reached over TLS too.
    pub dns_over_tls: bool,
}

impl BackendConfig {
    /// How `uri` is secured: `None` for plaintext (`http://`); for `https://`, the TLS client
    /// and the name the server's certificate must carry (`dns_name`: the name the address
    /// came from).
    pub fn target_tls(&self, uri: &Uri, dns_name: Option<&DnsName>) -> Option<TargetTls> {
        if uri.scheme_str() != Some("https") {
            return None;
        }
        let client = self.tls.clone()?;
        let host = match dns_name {
            Some(name) => name.host.trim_end_matches('.'),
            None => uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']'),
        };
        Some(TargetTls { client, server_name: self.tls_server_name.clone().unwrap_or_else(|| host.to_string()) })
    }

    /// The `dns://` entries, each once.
    pub fn dns_names(&self) -> Vec<&DnsName> {
        let mut names: Vec<&DnsName> = Vec::new();
        for target in &self.grpc {
            if let GrpcTarget::Dns(name) = target {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }
}

/// Default of `backend.timeout_ms`.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `backend.health_interval_ms`.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
