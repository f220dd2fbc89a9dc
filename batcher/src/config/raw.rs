//! The config file exactly as written: serde structs that refuse unknown keys, so a typo is an
//! error instead of a silently ignored setting. Numbers are read as `i64` (TOML's integer) and
//! range-checked in [`RawBatching::apply_to`] to give messages that name the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{err, BatchSettings, ConfigError, Dispatch};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    pub socket_mode: Option<String>,
    pub allowed_peers: Option<Vec<String>>,
    pub metrics_listen: Option<String>,
    pub grpc_listen: Option<String>,
    pub max_body_bytes_in_flight: Option<i64>,
    pub max_connections: Option<i64>,
    pub idle_timeout_ms: Option<i64>,
    pub body_timeout_ms: Option<i64>,
    pub worker_threads: Option<i64>,
    pub backend: Option<RawBackend>,
    pub batching: Option<RawBatching>,
    pub models: Option<BTreeMap<String, RawBatching>>,
    pub quotas: Option<super::quotas::RawQuotas>,
    pub audit: Option<RawAudit>,
    pub prediction_log: Option<RawPredictionLog>,
    pub tracing: Option<super::tracing::RawTracing>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub path: String,
    pub queue_size: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPredictionLog {
    pub dir: String,
    pub format: Option<String>,
    pub sampling_rate: Option<f64>,
    pub max_file_bytes: Option<i64>,
    pub max_file_age_s: Option<i64>,
    pub max_files: Option<i64>,
    pub queue_size: Option<i64>,
    pub queue_bytes: Option<i64>,
    pub redact_drop: Option<Vec<String>>,
    pub redact_hash: Option<Vec<String>>,
    pub hash_key_file: Option<String>,
    pub hash_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub grpc: Vec<String>,
    pub protocol: Option<String>,
    pub rest: Option<String>,
    pub timeout_ms: Option<i64>,
    pub health_interval_ms: Option<i64>,
    pub resolver: Option<String>,
    pub resolve_interval_ms: Option<i64>,
    pub tls: Option<RawTls>,
}

/// `[backend.tls]`: the TLS client's files, and the name the servers' certificates carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
}

/// `[batching]` or `[models.NAME]`: every key optional, unset keys keep the base value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatching {
    pub max_batch_size: Option<i64>,
    pub dispatch: Option<String>,
    pub latency_budget_us: Option<i64>,
    pub max_delay_us: Option<i64>,
    pub max_inflight_batches: Option<i64>,
    pub max_queue: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub allowed_batch_sizes: Option<Vec<i64>>,
    /// `[models.NAME]` only: the model's share of requests in the prediction log.
    pub prediction_log_sampling_rate: Option<f64>,
    /// `[models.NAME]` only: bytes of row answers kept (`"256MiB"`), and for how long.
    pub row_cache: Option<String>,
    pub row_cache_ttl_s: Option<i64>,
}

/// Upper bounds that catch unit mistakes (seconds typed as microseconds...) without getting in
/// the way of any real deployment.
const MAX_COUNT: i64 = 1 << 24;
const MAX_DELAY_US: i64 = 10_000_000;
pub const MAX_TIMEOUT_MS: i64 = 3_600_000;

impl RawBatching {
    /// Applies these overrides to `base`; `table` names the TOML table in messages.
    pub fn apply_to(&self, base: BatchSettings, table: &str) -> Result<BatchSettings, ConfigError> {
        let count = |value: Option<i64>, key: &str, default: u32| -> Result<u32, ConfigError> {
            match value {
                None => Ok(default),
                Some(v) if (1..=MAX_COUNT).contains(&v) => Ok(v as u32),
                Some(v) => err(format!("{table}.{key}: must be between 1 and {MAX_COUNT}, got {v}")),
            }
        };
        let micros = |value: Option<i64>, key: &str| -> Result<Option<Duration>, ConfigError> {
            match value {
                None => Ok(None),
                Some(v) if (0..=MAX_DELAY_US).contains(&v) => Ok(Some(Duration::from_micros(v as u64))),
                Some(v) => err(format!("{table}.{key}: must be between 0 and {MAX_DELAY_US}, got {v}")),
            }
        };
        let max_delay = micros(self.max_delay_us, "max_delay_us")?.or(base.max_delay);
        let latency_budget = micros(self.latency_budget_us, "latency_budget_us")?.unwrap_or(base.latency_budget);
        let dispatch = match self.dispatch.as_deref() {
            None => base.dispatch,
            Some(name) => match Dispatch::parse(name) {
                Some(dispatch) => dispatch,
                None => return err(format!("{table}.dispatch: must be \"adaptive\" or \"fixed\", got {name:?}")),
            },
        };
        let timeout = match self.timeout_ms {
            None => base.timeout,
            Some(v) if (1..=MAX_TIMEOUT_MS).contains(&v) => Duration::from_millis(v as u64),
            Some(v) => return err(format!("{table}.timeout_ms: must be between 1 and {MAX_TIMEOUT_MS}, got {v}")),
        };
        let max_batch_size = count(self.max_batch_size, "max_batch_size", base.max_batch_size)?;
        let allowed_batch_sizes = match &self.allowed_batch_sizes {
            None => base.allowed_batch_sizes,
            Some(sizes) => {
                sizes.iter().map(|&v| count(Some(v), "allowed_batch_sizes", 0)).collect::<Result<Vec<u32>, _>>()?
            }
        };
        check_allowed_sizes(&allowed_batch_sizes, max_batch_size, table)?;
        Ok(BatchSettings {
            max_batch_size,
            dispatch,
            latency_budget,
            max_delay,
            max_inflight_batches: count(self.max_inflight_batches, "max_inflight_batches", base.max_inflight_batches)?,
            max_queue: count(self.max_queue, "max_queue", base.max_queue)?,
            timeout,
            allowed_batch_sizes,
        })
    }
}

/// TF Serving's rule for padding sizes: strictly increasing, and the last one is the largest
/// batch (so every batch has a size to pad to). An empty list means no padding.
fn check_allowed_sizes(sizes: &[u32], max_batch_size: u32, table: &str) -> Result<(), ConfigError> {
    if sizes.windows(2).any(|w| w[0] >= w[1]) {
        return err(format!("{table}.allowed_batch_sizes: must be strictly increasing, got {sizes:?}"));
    }
    match sizes.last() {
        Some(&last) if last != max_batch_size => err(format!(
            "{table}.allowed_batch_sizes: the last size ({last}) must equal max_batch_size ({max_batch_size}); \
             set both in [{table}]"
        )),
        _ => Ok(()),
    }
}
