//! The config file exactly as written: serde structs that refuse unknown keys, so a typo is an
//! error instead of a silently ignored setting. Numbers are read as `i64` (TOML's integer) and
//! range-checked in [`RawBatching::apply_to`] to give messages that name the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{err, BatchSettings, ConfigError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    pub socket_mode: Option<String>,
    pub metrics_listen: Option<String>,
    pub backend: Option<RawBackend>,
    pub batching: Option<RawBatching>,
    pub models: Option<BTreeMap<String, RawBatching>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub grpc: Vec<String>,
    pub rest: Option<String>,
}

/// `[batching]` or `[models.NAME]`: every key optional, unset keys keep the base value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatching {
    pub max_batch_size: Option<i64>,
    pub max_delay_us: Option<i64>,
    pub max_inflight_batches: Option<i64>,
    pub max_queue: Option<i64>,
    pub timeout_ms: Option<i64>,
}

/// Upper bounds that catch unit mistakes (seconds typed as microseconds...) without getting in
/// the way of any real deployment.
const MAX_COUNT: i64 = 1 << 24;
const MAX_DELAY_US: i64 = 10_000_000;
const MAX_TIMEOUT_MS: i64 = 3_600_000;

impl RawBatching {
    /// Applies these overrides to `base`; `table` names the TOML table in messages.
    pub fn apply_to(&self, base: BatchSettings, table: &str) -> Result<BatchSettings, ConfigError> {
        let count = |value: Option<i64>, key: &str, default: u32| -> Result<u32, ConfigError> {
            match value {
                None => Ok(default),
                Some(v) if (1..=MAX_COUNT).contains(&v) => Ok(v as u32),
                Some(v) => err(format!(
                    "{table}.{key}: must be between 1 and {MAX_COUNT}, got {v}"
                )),
            }
        };
        let max_delay = match self.max_delay_us {
            None => base.max_delay,
            Some(v) if (0..=MAX_DELAY_US).contains(&v) => Duration::from_micros(v as u64),
            Some(v) => {
                return err(format!(
                    "{table}.max_delay_us: must be between 0 and {MAX_DELAY_US}, got {v}"
                ))
            }
        };
        let timeout = match self.timeout_ms {
            None => base.timeout,
            Some(v) if (1..=MAX_TIMEOUT_MS).contains(&v) => Duration::from_millis(v as u64),
            Some(v) => {
                return err(format!(
                    "{table}.timeout_ms: must be between 1 and {MAX_TIMEOUT_MS}, got {v}"
                ))
            }
        };
        Ok(BatchSettings {
            max_batch_size: count(self.max_batch_size, "max_batch_size", base.max_batch_size)?,
            max_delay,
            max_inflight_batches: count(
                self.max_inflight_batches,
                "max_inflight_batches",
                base.max_inflight_batches,
            )?,
            max_queue: count(self.max_queue, "max_queue", base.max_queue)?,
            timeout,
        })
    }
}
