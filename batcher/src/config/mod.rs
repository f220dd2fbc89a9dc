//! The daemon's configuration: TOML read into raw serde structs ([`raw`]), then checked and
//! resolved here into [`Config`], whose fields are already valid and typed, so that nothing past
//! start-up has to re-check them.
//!
//! Per-model `[models.NAME]` tables override single `[batching]` keys; [`Config::batching_for`]
//! gives the resolved [`BatchSettings`] the batcher works with.

mod logs;
mod peers;
mod quotas;
mod raw;
mod reload;
mod targets;
#[cfg(test)]
mod tests;
mod tracing;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Uri;

pub use crate::admission::quota::QuotaSettings;
pub use crate::backend::{
    BackendConfig, DnsName, GrpcTarget, Protocol, DEFAULT_BACKEND_TIMEOUT, DEFAULT_HEALTH_INTERVAL,
    DEFAULT_RESOLVE_INTERVAL,
};
pub use crate::batching::{BatchSettings, Dispatch, DEFAULT_LATENCY_BUDGET};
pub use crate::trace::TracingSettings;

pub use crate::observe::LogsConfig;
pub use crate::row_cache::RowCacheSettings;
pub use peers::{open_socket_warning, AllowedPeers};
pub use reload::ReloadPlan;

/// Longest Unix socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// `max_body_bytes_in_flight` default: 128 MiB of bodies (a few GiB once parsed).
pub const DEFAULT_BODY_BYTES_IN_FLIGHT: usize = 128 << 20;
const MIN_BODY_BYTES_IN_FLIGHT: i64 = 1024;
const MAX_BODY_BYTES_IN_FLIGHT: i64 = 1 << 40;
const MAX_WORKER_THREADS: i64 = 1024;

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Unix socket nginx sends requests to.
    pub listen: PathBuf,
    /// Permission bits given to the socket file after binding.
    pub socket_mode: u32,
    /// `allowed_peers`: the uids served on the Unix sockets (checked with SO_PEERCRED once per
    /// connection); `None`: anyone who can open them. A reload applies it to new connections.
    pub allowed_peers: Option<AllowedPeers>,
    /// TCP address for `/healthz` (and later `/metrics`).
    pub metrics_listen: Option<SocketAddr>,
    /// Unix socket for TF Serving's gRPC API (nginx's `grpc_pass`).
    pub grpc_listen: Option<PathBuf>,
    /// Request bytes held at once across all requests, as read and once parsed (429 beyond).
    pub max_body_bytes_in_flight: usize,
    /// Limits on the connections to the API socket.
    pub connections: ConnectionLimits,
    /// Threads of the async runtime: 1 (the default) serves everything from one thread, with the
    /// fewest wake-ups and hand-offs per request; large bodies are parsed aside regardless.
    pub worker_threads: usize,
    pub backend: BackendConfig,
    /// `[batching]`: what every model gets unless overridden.
    pub batching: BatchSettings,
    /// `[models.NAME]`, resolved: the defaults with that model's overrides applied.
    pub models: BTreeMap<String, BatchSettings>,
    /// `[models.NAME] row_cache`: the models whose rows are cached (and shared in flight).
    pub row_caches: BTreeMap<String, RowCacheSettings>,
    /// `[audit]` and `[prediction_log]`.
    pub logs: LogsConfig,
    /// `[quotas]`; `None`: no caller is limited.
    pub quotas: Option<QuotaSettings>,
    /// `[tracing]`: request spans over OTLP (off by default). A restart applies a change.
    pub tracing: TracingSettings,
}

/// What one connection to the API socket may hold: the daemon's defence against clients that
/// open connections and send slowly (the socket is normally nginx's alone, see `socket_mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the socket's backlog.
    pub max_connections: usize,
    /// A connection that sends no complete request headers for this long (idle keep-alive
    /// included) is closed. Longer than nginx's upstream `keepalive_timeout` (60 s by default),
    /// so that nginx, not the daemon, closes idle connections: never one nginx is writing to.
    pub idle_timeout: Duration,
    /// A request whose body stalls for this long between two reads is answered 408.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// A configuration problem, worded for the operator (it names the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_string()))?;
        Config::resolve(raw)
    }

    /// The settings that apply to `model`.
    pub fn batching_for(&self, model: &str) -> &BatchSettings {
        self.models.get(model).unwrap_or(&self.batching)
    }

    /// What this config sets up, for `check-config`: one line, then one per batching table.
    pub fn summary(&self) -> String {
        let url = |uri: &Uri| uri.to_string().trim_end_matches('/').to_string();
        let grpc: Vec<String> = self
            .backend
            .grpc
            .iter()
            .map(|target| match target {
                GrpcTarget::Url(uri) => url(uri),
                GrpcTarget::Dns(name) => name.to_string(),
            })
            .collect();
        let models: Vec<&str> = self.models.keys().map(String::as_str).collect();
        let mut text = format!(
            "config ok: listen={} grpc_listen={} socket_mode={:04o} metrics_listen={} backend.grpc=[{}] backend.rest={} models=[{}]",
            self.listen.display(),
            self.grpc_listen.as_ref().map_or_else(|| "off".to_string(), |p| p.display().to_string()),
            self.socket_mode,
            self.metrics_listen.map_or_else(|| "off".to_string(), |a| a.to_string()),
            grpc.join(", "),
            self.backend.rest.as_ref().map_or_else(|| "off".to_string(), url),
            models.join(", "),
        );
        if self.backend.protocol != Protocol::default() {
            text.push_str(&format!("\n  [backend] protocol={}", self.backend.protocol));
        }
        if !self.backend.dns_names().is_empty() {
            text.push_str(&format!(
                "\n  [backend] resolver={} resolve_interval_ms={} (names are resolved by the running daemon, not here)",
                self.backend.resolver.map_or_else(|| "system".to_string(), |a| a.to_string()),
                self.backend.resolve_interval.as_millis(),
            ));
        }
        text.push_str(&format!("\n  [batching] {}", self.batching.describe()));
        for (name, settings) in &self.models {
            text.push_str(&format!("\n  [models.{name}] {}", settings.describe()));
        }
        text.push_str(&logs::describe(&self.logs));
        if let Some(quotas) = &self.quotas {
            text.push_str(&format!("\n  {}", quotas.describe()));
        }
        if let Some(endpoint) = &self.tracing.otlp_endpoint {
            text.push_str(&format!(
                "\n  [tracing] otlp_endpoint={endpoint} sampling_ratio={}",
                self.tracing.sampling_ratio
            ));
        }
        text
    }

    fn resolve(raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let listen = check_listen(&raw.listen)?;
        let grpc_listen = raw.grpc_listen.as_deref().map(|path| check_socket_path(path, "grpc_listen")).transpose()?;
        if grpc_listen.as_ref() == Some(&listen) {
            return err("grpc_listen: must be another socket than listen");
        }
        let connections = resolve_connections(&raw)?;
        let socket_mode = parse_socket_mode(raw.socket_mode.as_deref().unwrap_or("0660"))?;
        let allowed_peers = peers::resolve(raw.allowed_peers)?;
        let metrics_listen = match raw.metrics_listen {
            None => None,
            Some(addr) => Some(addr.parse::<SocketAddr>().or_else(|_| {
                err(format!(
                    "metrics_listen: expected HOST:PORT with an IP address (e.g. \"127.0.0.1:9464\"), got {addr:?}"
                ))
            })?),
        };
        let max_body_bytes_in_flight = match raw.max_body_bytes_in_flight {
            None => DEFAULT_BODY_BYTES_IN_FLIGHT,
            Some(n) if (MIN_BODY_BYTES_IN_FLIGHT..=MAX_BODY_BYTES_IN_FLIGHT).contains(&n) => n as usize,
            Some(n) => {
                return err(format!(
                    "max_body_bytes_in_flight: must be between {MIN_BODY_BYTES_IN_FLIGHT} and {MAX_BODY_BYTES_IN_FLIGHT}, got {n}"
                ))
            }
        };
        let worker_threads = match raw.worker_threads {
            None => 1,
            Some(n) if (1..=MAX_WORKER_THREADS).contains(&n) => n as usize,
            Some(n) => return err(format!("worker_threads: must be between 1 and {MAX_WORKER_THREADS}, got {n}")),
        };
        let backend = resolve_backend(raw.backend)?;
        let raw_batching = raw.batching.unwrap_or_default();
        if raw_batching.prediction_log_sampling_rate.is_some() {
            return err(
                "batching.prediction_log_sampling_rate: set it per model in [models.NAME], or for every model as [prediction_log] sampling_rate",
            );
        }
        if raw_batching.row_cache.is_some() || raw_batching.row_cache_ttl_s.is_some() {
            return err(
                "batching.row_cache: set it per model in [models.NAME]: only a deterministic model's answers may be reused",
            );
        }
        let batching = raw_batching.apply_to(BatchSettings::default(), "batching")?;
        let mut models = BTreeMap::new();
        let mut sampling_rates = BTreeMap::new();
        let mut row_caches = BTreeMap::new();
        for (name, overrides) in raw.models.unwrap_or_default() {
            if name.is_empty() {
                return err("models: a model name cannot be empty");
            }
            let table = format!("models.{name}");
            if let Some(rate) = overrides.prediction_log_sampling_rate {
                let rate = logs::check_rate(rate, &format!("{table}.prediction_log_sampling_rate"))?;
                sampling_rates.insert(name.clone(), rate);
            }
            if let Some(settings) = resolve_row_cache(&overrides, &table)? {
                row_caches.insert(name.clone(), settings);
            }
            let settings = overrides.apply_to(batching.clone(), &table)?;
            models.insert(name, settings);
        }
        let logs = logs::resolve(raw.audit, raw.prediction_log, sampling_rates)?;
        let quotas = quotas::resolve(raw.quotas)?;
        let tracing = tracing::resolve(raw.tracing)?;
        Ok(Config {
            listen,
            socket_mode,
            allowed_peers,
            metrics_listen,
            grpc_listen,
            max_body_bytes_in_flight,
            connections,
            worker_threads,
            backend,
            batching,
            models,
            row_caches,
            logs,
            quotas,
            tracing,
        })
    }
}

/// Largest `row_cache`: 1 TiB.
const MAX_ROW_CACHE_BYTES: u64 = 1 << 40;
/// Longest `row_cache_ttl_s`: a year.
const MAX_ROW_CACHE_TTL_S: i64 = 365 * 86_400;

fn resolve_row_cache(raw: &raw::RawBatching, table: &str) -> Result<Option<RowCacheSettings>, ConfigError> {
    let Some(size) = raw.row_cache.as_deref() else {
        if raw.row_cache_ttl_s.is_some() {
            return err(format!("{table}.row_cache_ttl_s: needs {table}.row_cache"));
        }
        return Ok(None);
    };
    let bytes = parse_bytes(size).ok_or_else(|| {
        ConfigError(format!(
            "{table}.row_cache: expected a size such as \"256MiB\" (B, KiB, MiB, GiB; KB, MB, GB), got {size:?}"
        ))
    })?;
    if bytes > MAX_ROW_CACHE_BYTES {
        return err(format!("{table}.row_cache: at most 1TiB, got {size:?}"));
    }
    let ttl = match raw.row_cache_ttl_s {
        None => None,
        Some(s) if (1..=MAX_ROW_CACHE_TTL_S).contains(&s) => Some(Duration::from_secs(s as u64)),
        Some(s) => {
            return err(format!("{table}.row_cache_ttl_s: must be between 1 and {MAX_ROW_CACHE_TTL_S}, got {s}"))
        }
    };
    Ok(Some(RowCacheSettings { bytes, ttl }))
}

/// `"256MiB"`, `"1GB"`, `"4096"` (bytes) as bytes.
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(unit)
}

fn resolve_connections(raw: &raw::RawConfig) -> Result<ConnectionLimits, ConfigError> {
    let defaults = ConnectionLimits::default();
    let millis = |value: Option<i64>, key: &str, default: Duration| match value {
        None => Ok(default),
        Some(ms) if (1..=raw::MAX_TIMEOUT_MS).contains(&ms) => Ok(Duration::from_millis(ms as u64)),
        Some(ms) => err(format!("{key}: must be between 1 and {}, got {ms}", raw::MAX_TIMEOUT_MS)),
    };
    let max_connections = match raw.max_connections {
        None => defaults.max_connections,
        Some(n) if (1..=1_000_000).contains(&n) => n as usize,
        Some(n) => return err(format!("max_connections: must be between 1 and 1000000, got {n}")),
    };
    Ok(ConnectionLimits {
        max_connections,
        idle_timeout: millis(raw.idle_timeout_ms, "idle_timeout_ms", defaults.idle_timeout)?,
        body_timeout: millis(raw.body_timeout_ms, "body_timeout_ms", defaults.body_timeout)?,
    })
}

fn check_listen(listen: &str) -> Result<PathBuf, ConfigError> {
    check_socket_path(listen, "listen")
}

fn check_socket_path(listen: &str, key: &str) -> Result<PathBuf, ConfigError> {
    if listen.is_empty() {
        return err(format!("{key}: the Unix socket path cannot be empty"));
    }
    if listen.len() > MAX_SOCKET_PATH {
        return err(format!("{key}: Unix socket paths are limited to {MAX_SOCKET_PATH} bytes, got {}", listen.len()));
    }
    if listen.contains('\0') {
        return err(format!("{key}: the path contains a NUL byte"));
    }
    if listen.ends_with('/') {
        return err(format!("{key}: {listen:?} names a directory, not a socket file"));
    }
    Ok(PathBuf::from(listen))
}

/// Parses an octal permission string such as "0660" or "660".
fn parse_socket_mode(mode: &str) -> Result<u32, ConfigError> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    match u32::from_str_radix(digits, 8) {
        Ok(bits) if !digits.is_empty() && digits.len() <= 4 && bits <= 0o777 => Ok(bits),
        _ => err(format!("socket_mode: expected octal permission bits such as \"0660\", got {mode:?}")),
    }
}

fn resolve_backend(raw: Option<raw::RawBackend>) -> Result<BackendConfig, ConfigError> {
    let Some(raw) = raw else {
        return err("backend: missing [backend] table with grpc = [\"http://HOST:PORT\"]");
    };
    if raw.grpc.is_empty() {
        return err("backend.grpc: at least one TF Serving gRPC target is required");
    }
    let grpc = raw.grpc.iter().map(|entry| targets::parse_grpc_target(entry)).collect::<Result<Vec<_>, _>>()?;
    let protocol = match raw.protocol.as_deref() {
        None => Protocol::default(),
        Some(name) => Protocol::parse(name).ok_or_else(|| {
            let names: Vec<String> = Protocol::ALL.iter().map(|p| format!("\"{p}\"")).collect();
            ConfigError(format!("backend.protocol: must be {}, got {name:?}", names.join(" or ")))
        })?,
    };
    if protocol == Protocol::V2 && raw.rest.is_some() {
        // `rest` forwards classify and regress to TF Serving's REST API, which a v2 server does
        // not have: those calls are UNIMPLEMENTED for a v2 backend, over REST as over gRPC.
        return err("backend.rest: classify and regress go to TF Serving's REST API, which a protocol = \"v2\" backend does not have; remove rest");
    }
    let rest = raw.rest.as_deref().map(|url| parse_http_url(url, "backend.rest")).transpose()?;
    let timeout = match raw.timeout_ms {
        None => DEFAULT_BACKEND_TIMEOUT,
        Some(ms) if (1..=raw::MAX_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms as u64),
        Some(ms) => return err(format!("backend.timeout_ms: must be between 1 and {}, got {ms}", raw::MAX_TIMEOUT_MS)),
    };
    let health_interval = match raw.health_interval_ms {
        None => Some(DEFAULT_HEALTH_INTERVAL),
        Some(0) => None,
        Some(ms) if (100..=raw::MAX_TIMEOUT_MS).contains(&ms) => Some(Duration::from_millis(ms as u64)),
        Some(ms) => {
            return err(format!(
                "backend.health_interval_ms: must be 0 (off) or between 100 and {}, got {ms}",
                raw::MAX_TIMEOUT_MS
            ))
        }
    };
    let resolver = raw.resolver.as_deref().map(targets::parse_resolver).transpose()?;
    let resolve_interval = targets::resolve_interval(raw.resolve_interval_ms)?;
    let tls = targets::resolve_tls(raw.tls, &grpc)?;
    Ok(BackendConfig {
        grpc,
        protocol,
        rest,
        timeout,
        health_interval,
        resolver,
        resolve_interval,
        dns_over_tls: tls.dns_over_tls,
        tls: tls.client,
        tls_server_name: tls.server_name,
    })
}

/// Accepts `http://host:port` (a trailing `/` is allowed).
fn parse_http_url(url: &str, key: &str) -> Result<Uri, ConfigError> {
    parse_url(url, key, &["http"])
}

/// Accepts `SCHEME://host:port` for one of `schemes` (a trailing `/` is allowed).
fn parse_url(url: &str, key: &str, schemes: &[&str]) -> Result<Uri, ConfigError> {
    let uri: Uri = url.parse().or_else(|e| err(format!("{key}: {url:?} is not a valid URL: {e}")))?;
    if !uri.scheme_str().is_some_and(|s| schemes.contains(&s)) {
        let allowed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return err(format!("{key}: {url:?} must start with {}", allowed.join(" or ")));
    }
    let Some(authority) = uri.authority() else {
        return err(format!("{key}: {url:?} has no host"));
    };
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return err(format!("{key}: {url:?} must be {}://HOST[:PORT]", schemes[0]));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return err(format!("{key}: {url:?} must not have a path or query"));
    }
    Ok(uri)
}
