//! `backend.grpc` entries and the keys that steer `dns://` ones: a fixed `http://` URL, or a DNS
//! name whose every address is a target (see `backend::discovery`). Parsing only: nothing here
//! resolves anything, so `check-config` gives the same answer on any machine.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use std::path::PathBuf;
use std::sync::Arc;

use super::{err, parse_url, raw, ConfigError};
use crate::backend::{DnsName, GrpcTarget, DEFAULT_RESOLVE_INTERVAL, GRPC_ALPN};
use crate::tls::{ClientTls, TlsFiles};

const MIN_RESOLVE_INTERVAL_MS: i64 = 100;
/// Port of `backend.resolver` when none is written.
const DNS_PORT: u16 = 53;
/// RFC 1035: 253 characters without the trailing dot, labels of 1 to 63.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Parses one `backend.grpc` entry.
pub fn parse_grpc_target(entry: &str) -> Result<GrpcTarget, ConfigError> {
    // Schemes are case-insensitive (RFC 3986); `http://` ones are checked by the URL parser.
    match entry.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("dns:") => {
            parse_dns_target(entry, &entry[4..]).map(GrpcTarget::Dns)
        }
        _ => parse_url(entry, "backend.grpc", &["http", "https"]).map(GrpcTarget::Url),
    }
}

/// `[backend.tls]` resolved against the targets.
pub struct BackendTls {
    pub client: Option<Arc<ClientTls>>,
    pub server_name: Option<String>,
    pub dns_over_tls: bool,
}

/// `[backend.tls]`: when present, every target speaks TLS (`https://` URLs and `dns://` names;
/// an `http://` URL is refused rather than silently left in plaintext). Without it, `https://`
/// targets are checked against the system's CA store. The files are read here, so that
/// `check-config` and a reload report a missing or mismatched file before anything connects.
pub fn resolve_tls(raw: Option<raw::RawTls>, grpc: &[GrpcTarget]) -> Result<BackendTls, ConfigError> {
    let https = grpc.iter().any(|t| matches!(t, GrpcTarget::Url(u) if u.scheme_str() == Some("https")));
    let Some(raw) = raw else {
        let client = match https {
            true => {
                Some(Arc::new(ClientTls::load(&TlsFiles::default(), "backend.tls", GRPC_ALPN).map_err(ConfigError)?))
            }
            false => None,
        };
        return Ok(BackendTls { client, server_name: None, dns_over_tls: false });
    };
    if let Some(GrpcTarget::Url(plain)) =
        grpc.iter().find(|t| matches!(t, GrpcTarget::Url(u) if u.scheme_str() == Some("http")))
    {
        let shown = plain.to_string();
        let shown = shown.trim_end_matches('/');
        return err(format!(
            "backend.grpc: {shown:?} is plaintext, but [backend.tls] says every target speaks TLS: write {}",
            shown.replacen("http://", "https://", 1)
        ));
    }
    if let Some(name) = &raw.server_name {
        check_server_name(name).map_err(|why| ConfigError(format!("backend.tls.server_name: {name:?}: {why}")))?;
    }
    let path = |value: &Option<String>, key: &str| -> Result<Option<PathBuf>, ConfigError> {
        match value.as_deref() {
            None => Ok(None),
            Some("") => err(format!("backend.tls.{key}: empty path")),
            Some(p) => Ok(Some(PathBuf::from(p))),
        }
    };
    let files = TlsFiles {
        ca_file: path(&raw.ca_file, "ca_file")?,
        cert_file: path(&raw.cert_file, "cert_file")?,
        key_file: path(&raw.key_file, "key_file")?,
    };
    let client = ClientTls::load(&files, "backend.tls", GRPC_ALPN).map_err(ConfigError)?;
    Ok(BackendTls { client: Some(Arc::new(client)), server_name: raw.server_name, dns_over_tls: true })
}

/// A name a certificate can carry: a DNS name or an IP address.
fn check_server_name(name: &str) -> Result<(), String> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_host_name(name)
}

/// `rest` is what follows `dns:` in `entry`.
fn parse_dns_target(entry: &str, rest: &str) -> Result<DnsName, ConfigError> {
    let expected = "expected dns://NAME:PORT (e.g. \"dns://tf-serving.internal:8500\")";
    let Some(authority) = rest.strip_prefix("//") else {
        return err(format!("backend.grpc: {entry:?}: {expected}"));
    };
    if authority.starts_with('/') || authority.contains('/') {
        // gRPC's own syntax, dns://SERVER/NAME:PORT or dns:///NAME:PORT, would read NAME as a
        // path here: say how to write it instead of guessing.
        return err(format!(
            "backend.grpc: {entry:?}: {expected}; the DNS server to ask goes in backend.resolver, not in the URL"
        ));
    }
    let Some((host, port_text)) = authority.rsplit_once(':') else {
        return err(format!("backend.grpc: {entry:?} has no port: {expected}"));
    };
    let port = match port_text.parse::<u16>() {
        Ok(port) if port > 0 && port_text.bytes().all(|b| b.is_ascii_digit()) => port,
        _ => return err(format!("backend.grpc: {entry:?}: the port must be 1 to 65535, got {port_text:?}")),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return err(format!(
            "backend.grpc: {entry:?} names an IP address, which has nothing to resolve: write http://{host}:{port}"
        ));
    }
    check_host_name(host).map_err(|why| ConfigError(format!("backend.grpc: {entry:?}: {why}")))?;
    Ok(DnsName { host: host.to_ascii_lowercase(), port })
}

/// A host name as DNS carries it: dot-separated labels of letters, digits, `-` and `_` (SRV-style
/// and some internal names use it), none empty, none starting or ending with `-`.
fn check_host_name(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err("the name is empty".to_string());
    }
    if name.len() > MAX_NAME {
        return Err(format!("the name is longer than {MAX_NAME} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("the name has an empty label (two dots in a row, or a leading dot)".to_string());
        }
        if label.len() > MAX_LABEL {
            return Err(format!("the label {label:?} is longer than {MAX_LABEL} characters"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!("{c:?} cannot appear in a DNS name (letters, digits, '-', '_' and dots)"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

/// `backend.resolver`: an IP address, with a port or 53. A name is refused: resolving the
/// resolver would need a resolver.
pub fn parse_resolver(value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return err(format!("backend.resolver: the port must be 1 to 65535, got {value:?}"));
        }
        return Ok(addr);
    }
    match value.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, DNS_PORT)),
        Err(_) => err(format!(
            "backend.resolver: expected IP:PORT of a DNS server (e.g. \"10.96.0.10:53\", \"[fd00::10]:53\"), got {value:?}"
        )),
    }
}

/// `backend.resolve_interval_ms`.
pub fn resolve_interval(value: Option<i64>) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(DEFAULT_RESOLVE_INTERVAL),
        Some(ms) if (MIN_RESOLVE_INTERVAL_MS..=raw::MAX_TIMEOUT_MS).contains(&ms) => {
            Ok(Duration::from_millis(ms as u64))
        }
        Some(ms) => err(format!(
            "backend.resolve_interval_ms: must be between {MIN_RESOLVE_INTERVAL_MS} and {}, got {ms}",
            raw::MAX_TIMEOUT_MS
        )),
    }
}
