//! `[audit]`, `[prediction_log]` and the models' `prediction_log_sampling_rate`, checked into
//! the logs' settings. The HMAC key of `redact_hash` is read here, from `hash_key_file`, so a
//! reload reads it again and `check-config` checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawAudit, RawPredictionLog};
use super::{err, ConfigError};
use crate::observe::audit::AuditSettings;
use crate::observe::log_file::Destination;
use crate::observe::prediction_log::{Format, HashKey, PredictionLogSettings, Rates, RedactSettings, Rotation};
use crate::observe::LogsConfig;

pub const DEFAULT_AUDIT_QUEUE: usize = 8192;
pub const DEFAULT_SAMPLING_RATE: f64 = 0.01;
pub const DEFAULT_MAX_FILE_BYTES: u64 = 128 << 20;
pub const DEFAULT_MAX_FILE_AGE: Duration = Duration::from_secs(3600);
pub const DEFAULT_MAX_FILES: usize = 100;
pub const DEFAULT_PREDICTION_QUEUE: usize = 1024;
pub const DEFAULT_PREDICTION_QUEUE_BYTES: usize = 64 << 20;
/// The shortest HMAC key accepted (RFC 2104 advises at least the hash's output, 32 bytes; 16
/// catches an empty or truncated file without refusing reasonable keys).
const MIN_KEY_BYTES: usize = 16;
const MAX_QUEUE: i64 = 1_000_000;

pub fn resolve(
    audit: Option<RawAudit>,
    prediction_log: Option<RawPredictionLog>,
    model_rates: BTreeMap<String, f64>,
) -> Result<LogsConfig, ConfigError> {
    let audit = audit.map(resolve_audit).transpose()?;
    let prediction_log = match prediction_log {
        Some(raw) => Some(resolve_prediction_log(raw, model_rates)?),
        None => {
            if let Some(model) = model_rates.keys().next() {
                return err(format!(
                    "models.{model}.prediction_log_sampling_rate: there is no [prediction_log] table (with dir) to log to"
                ));
            }
            None
        }
    };
    Ok(LogsConfig { audit, prediction_log })
}

/// Checks a sampling rate given under `key`.
pub fn check_rate(rate: f64, key: &str) -> Result<f64, ConfigError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        err(format!("{key}: must be between 0 and 1 (a share of requests), got {rate}"))
    }
}

fn resolve_audit(raw: RawAudit) -> Result<AuditSettings, ConfigError> {
    if raw.path.is_empty() {
        return err("audit.path: a file path, or \"-\" for stdout");
    }
    Ok(AuditSettings {
        destination: Destination::parse(&raw.path),
        queue_size: count(raw.queue_size, "audit.queue_size", DEFAULT_AUDIT_QUEUE, 1, MAX_QUEUE)?,
    })
}

fn resolve_prediction_log(
    raw: RawPredictionLog,
    models: BTreeMap<String, f64>,
) -> Result<PredictionLogSettings, ConfigError> {
    if raw.dir.is_empty() {
        return err("prediction_log.dir: the directory for the log files cannot be empty");
    }
    let format = match raw.format.as_deref() {
        None => Format::TfRecord,
        Some(name) => match Format::parse(name) {
            Some(format) => format,
            None => return err(format!("prediction_log.format: must be \"tfrecord\" or \"jsonl\", got {name:?}")),
        },
    };
    let default = match raw.sampling_rate {
        None => DEFAULT_SAMPLING_RATE,
        Some(rate) => check_rate(rate, "prediction_log.sampling_rate")?,
    };
    let max_file_bytes = match raw.max_file_bytes {
        None => DEFAULT_MAX_FILE_BYTES,
        Some(n) if (4096..=1 << 40).contains(&n) => n as u64,
        Some(n) => return err(format!("prediction_log.max_file_bytes: must be between 4096 and 2^40, got {n}")),
    };
    let max_file_age = match raw.max_file_age_s {
        None => Some(DEFAULT_MAX_FILE_AGE),
        Some(0) => None,
        Some(s) if (1..=366 * 86_400).contains(&s) => Some(Duration::from_secs(s as u64)),
        Some(s) => {
            return err(format!(
                "prediction_log.max_file_age_s: must be 0 (no rotation by age) or between 1 and 31622400, got {s}"
            ))
        }
    };
    let max_files = match raw.max_files {
        None => DEFAULT_MAX_FILES,
        Some(n) if (0..=1_000_000).contains(&n) => n as usize,
        Some(n) => return err(format!("prediction_log.max_files: must be 0 (keep all) or up to 1000000, got {n}")),
    };
    let queue_size = count(raw.queue_size, "prediction_log.queue_size", DEFAULT_PREDICTION_QUEUE, 1, MAX_QUEUE)?;
    let queue_bytes = match raw.queue_bytes {
        None => DEFAULT_PREDICTION_QUEUE_BYTES,
        Some(n) if ((1 << 20)..=(1 << 40)).contains(&n) => n as usize,
        Some(n) => return err(format!("prediction_log.queue_bytes: must be between 1048576 and 2^40, got {n}")),
    };
    let redact = resolve_redaction(&raw)?;
    Ok(PredictionLogSettings {
        dir: PathBuf::from(raw.dir),
        format,
        rates: Rates { default, models },
        rotation: Rotation { max_file_bytes, max_file_age, max_files },
        redact,
        queue_size,
        queue_bytes,
    })
}

fn resolve_redaction(raw: &RawPredictionLog) -> Result<RedactSettings, ConfigError> {
    let names = |list: &Option<Vec<String>>, key: &str| -> Result<BTreeSet<String>, ConfigError> {
        let list = list.clone().unwrap_or_default();
        if list.iter().any(String::is_empty) {
            return err(format!("prediction_log.{key}: a tensor name cannot be empty"));
        }
        Ok(list.into_iter().collect())
    };
    let drop = names(&raw.redact_drop, "redact_drop")?;
    let hash = names(&raw.redact_hash, "redact_hash")?;
    if let Some(both) = drop.intersection(&hash).next() {
        return err(format!("prediction_log.redact_hash: {both:?} is also in redact_drop; name it in one list"));
    }
    let key = match (&raw.hash_key_file, &raw.hash_key) {
        (Some(_), Some(_)) => return err("prediction_log.hash_key: set hash_key_file or hash_key, not both"),
        (Some(path), None) => {
            let bytes = std::fs::read(path)
                .map_err(|e| ConfigError(format!("prediction_log.hash_key_file: cannot read {path}: {e}")))?;
            Some(check_key(trim_newline(bytes), "prediction_log.hash_key_file")?)
        }
        (None, Some(key)) => Some(check_key(key.as_bytes().to_vec(), "prediction_log.hash_key")?),
        (None, None) => None,
    };
    if !hash.is_empty() && key.is_none() {
        return err("prediction_log.redact_hash: needs a key, hash_key_file (or hash_key)");
    }
    Ok(RedactSettings { drop, hash, key })
}

/// A key file written with `echo` or `openssl rand -hex 32 >` ends in a newline that is not
/// part of the key.
fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    bytes
}

fn check_key(bytes: Vec<u8>, key: &str) -> Result<HashKey, ConfigError> {
    if bytes.len() < MIN_KEY_BYTES {
        return err(format!("{key}: the key must be at least {MIN_KEY_BYTES} bytes, got {}", bytes.len()));
    }
    Ok(HashKey(bytes))
}

fn count(value: Option<i64>, key: &str, default: usize, min: i64, max: i64) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(n) if (min..=max).contains(&n) => Ok(n as usize),
        Some(n) => err(format!("{key}: must be between {min} and {max}, got {n}")),
    }
}

/// The logs' part of `check-config`'s summary.
pub fn describe(logs: &LogsConfig) -> String {
    let audit = match &logs.audit {
        None => "off".to_string(),
        Some(a) => format!("{} queue_size={}", a.destination, a.queue_size),
    };
    let predictions = match &logs.prediction_log {
        None => "off".to_string(),
        Some(p) => {
            let models: Vec<String> = p.rates.models.iter().map(|(m, r)| format!("{m}={r}")).collect();
            format!(
                "{} format={} sampling_rate={} models=[{}] max_file_bytes={} max_file_age_s={} max_files={} redact_drop={:?} redact_hash={:?}",
                p.dir.display(),
                p.format.extension(),
                p.rates.default,
                models.join(", "),
                p.rotation.max_file_bytes,
                p.rotation.max_file_age.map_or(0, |d| d.as_secs()),
                p.rotation.max_files,
                p.redact.drop,
                p.redact.hash,
            )
        }
    };
    format!("\n  [audit] {audit}\n  [prediction_log] {predictions}")
}
