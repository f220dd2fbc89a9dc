//! `[quotas]` as written, and its check into [`QuotaSettings`]: every message names the key.
//!
//! ```toml
//! [quotas]
//! store = "memory"                  # or "redis://HOST:PORT[/DB]"
//! [quotas.plans.default]            # required once [quotas] is there (may be empty)
//! rate = "20/s"
//! burst = 40
//! requests = "10000/day"            # or an array: ["600/minute", "10000/day"]
//! rows = "100000/day"
//! compute = "60s/hour"              # accelerator time (learnt cost, apportioned by rows)
//! priority = 0                      # higher classes are served first (-10 to 10)
//! weight = 1                        # share against callers of the same priority (1 to 1000)
//! [quotas.plans.gold.models.resnet] # this model's own limits under plan gold
//! rate = "5/s"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::{err, ConfigError};
use crate::admission::quota::decide::Bucket;
use crate::admission::quota::limits::{parse_compute, parse_quota, parse_rate, QuotaSpec, MAX_COUNT};
use crate::admission::quota::plan::{is_plan_name, Counted, Limit, LimitKind, LimitSet, Plan, DEFAULT_PLAN};
use crate::admission::quota::settings::{
    OnStoreFailure, Password, QuotaSettings, RedisTarget, StoreSetting, DEFAULT_KEY_PREFIX, DEFAULT_MEMORY_MAX_KEYS,
    DEFAULT_TIMEOUT,
};
use crate::tls::{ClientTls, TlsFiles};

const MAX_TIMEOUT_MS: i64 = 10_000;
const MAX_KEY_PREFIX: usize = 128;
const MAX_MEMORY_KEYS: i64 = 1_000_000_000;
/// A bucket must refill within this (microseconds, about 142 years): keeps its arithmetic
/// exact in Redis's Lua, and catches a burst typed in the wrong unit.
const MAX_BUCKET_US: u64 = 1 << 52;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotas {
    store: Option<String>,
    on_store_failure: Option<String>,
    timeout_ms: Option<i64>,
    key_prefix: Option<String>,
    memory_max_keys: Option<i64>,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    username: Option<String>,
    password_file: Option<String>,
    plans: Option<BTreeMap<String, RawPlan>>,
}

/// `[quotas.plans.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    rate: Option<String>,
    burst: Option<i64>,
    requests: Option<Specs>,
    rows: Option<Specs>,
    compute: Option<Specs>,
    priority: Option<i64>,
    weight: Option<i64>,
    models: Option<BTreeMap<String, RawLimits>>,
}

/// `[quotas.plans.NAME.models.MODEL]`: the plan's keys, for one model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    rate: Option<String>,
    burst: Option<i64>,
    requests: Option<Specs>,
    rows: Option<Specs>,
    compute: Option<Specs>,
}

/// Priorities a plan may have: a few classes, below and above the default 0.
const PRIORITIES: std::ops::RangeInclusive<i64> = -10..=10;
const MAX_WEIGHT: i64 = 1000;

/// One `"COUNT/WINDOW"` or an array of them.
#[derive(Debug, Clone)]
struct Specs(Vec<String>);

impl<'de> Deserialize<'de> for Specs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Specs, D::Error> {
        struct SpecsVisitor;
        impl<'de> Visitor<'de> for SpecsVisitor {
            type Value = Specs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string such as \"10000/day\", or an array of them")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Specs, E> {
                Ok(Specs(vec![value.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Specs, A::Error> {
                let mut specs = Vec::new();
                while let Some(spec) = seq.next_element::<String>()? {
                    specs.push(spec);
                }
                Ok(Specs(specs))
            }
        }
        deserializer.deserialize_any(SpecsVisitor)
    }
}

pub fn resolve(raw: Option<RawQuotas>) -> Result<Option<QuotaSettings>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let store = match raw.store.as_deref() {
        None | Some("memory") => StoreSetting::Memory,
        Some(url) => StoreSetting::Redis(redis_target(url, &raw)?),
    };
    let on_store_failure = match raw.on_store_failure.as_deref() {
        None | Some("allow") => OnStoreFailure::Allow,
        Some("deny") => OnStoreFailure::Deny,
        Some(other) => return err(format!("quotas.on_store_failure: must be \"allow\" or \"deny\", got {other:?}")),
    };
    let timeout = match raw.timeout_ms {
        None => DEFAULT_TIMEOUT,
        Some(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms as u64),
        Some(ms) => return err(format!("quotas.timeout_ms: must be between 1 and {MAX_TIMEOUT_MS}, got {ms}")),
    };
    let key_prefix = raw.key_prefix.unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
    if key_prefix.len() > MAX_KEY_PREFIX || key_prefix.chars().any(char::is_control) {
        return err(format!(
            "quotas.key_prefix: at most {MAX_KEY_PREFIX} bytes without control characters, got {key_prefix:?}"
        ));
    }
    let memory_max_keys = match raw.memory_max_keys {
        None => DEFAULT_MEMORY_MAX_KEYS,
        Some(n) if (1..=MAX_MEMORY_KEYS).contains(&n) => n as usize,
        Some(n) => return err(format!("quotas.memory_max_keys: must be between 1 and {MAX_MEMORY_KEYS}, got {n}")),
    };
    let mut plans = BTreeMap::new();
    for (name, raw) in raw.plans.unwrap_or_default() {
        if !is_plan_name(&name) {
            return err(format!(
                "quotas.plans.{name}: a plan name is 1 to 64 letters, digits, '_', '-' or '.' (it is matched against X-Tfgate-Plan)"
            ));
        }
        let plan = resolve_plan(&name, raw)?;
        plans.insert(name, plan);
    }
    if !plans.contains_key(DEFAULT_PLAN) {
        return err("quotas.plans.default: missing; it applies to every caller whose X-Tfgate-Plan names no plan \
             (an empty [quotas.plans.default] table means no limits for them)");
    }
    Ok(Some(QuotaSettings { store, on_store_failure, timeout, key_prefix, memory_max_keys, plans }))
}

/// `redis://` or `rediss://` (TLS) `[[USER]:PASSWORD@]HOST:PORT[/DB]`, with `[quotas]`'s TLS
/// files and credentials.
fn redis_target(url: &str, raw: &RawQuotas) -> Result<RedisTarget, ConfigError> {
    let bad = |why: &str| {
        err(format!(
            "quotas.store: {why}; expected \"memory\" or \"redis://HOST:PORT[/DB]\" (\"rediss://\" for TLS), got {:?}",
            shown(url)
        ))
    };
    let (tls, rest) = match (url.strip_prefix("redis://"), url.strip_prefix("rediss://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return bad("unknown store"),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let (address, db) = match rest.split_once('/') {
        Some((address, db)) => (address, Some(db)),
        None => (rest, None),
    };
    let port = address.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(port))) if !host.is_empty() && port > 0 && !host.contains(['/', '?', '#']) => {}
        _ => return bad("HOST:PORT is required"),
    }
    if db.is_some_and(|db| db.parse::<u32>().is_err()) {
        return bad("the database is a number");
    }
    if userinfo.is_some_and(|u| u.is_empty()) || redis::Client::open(url).is_err() {
        return bad("not a valid Redis URL");
    }
    let path = |value: &Option<String>, key: &str| -> Result<Option<PathBuf>, ConfigError> {
        match value.as_deref() {
            None => Ok(None),
            Some("") => err(format!("quotas.{key}: empty path")),
            Some(_) if !tls => err(format!("quotas.{key}: only for a TLS store (rediss://)")),
            Some(p) => Ok(Some(PathBuf::from(p))),
        }
    };
    let files = TlsFiles {
        ca_file: path(&raw.ca_file, "ca_file")?,
        cert_file: path(&raw.cert_file, "cert_file")?,
        key_file: path(&raw.key_file, "key_file")?,
    };
    let tls = match tls {
        true => Some(Arc::new(ClientTls::load(&files, "quotas", &[]).map_err(ConfigError)?)),
        false => None,
    };
    let username = match raw.username.as_deref() {
        None => None,
        Some(name)
            if !name.is_empty()
                && name.len() <= 256
                && !name.contains(|c: char| c.is_whitespace() || c.is_control()) =>
        {
            Some(name.to_string())
        }
        Some(_) => return err("quotas.username: 1 to 256 characters, no spaces"),
    };
    let password = match raw.password_file.as_deref() {
        None => None,
        Some(file) => Some(read_password(file)?),
    };
    if userinfo.is_some_and(|u| u.contains(':')) && password.is_some() {
        return err(
            "quotas.password_file: the store URL has a password too; keep one (password_file keeps it out of the TOML)",
        );
    }
    Ok(RedisTarget { url: url.to_string(), shown: shown(url), tls, username, password })
}

/// `quotas.password_file`: one line, the password (a trailing newline is not part of it).
fn read_password(file: &str) -> Result<Password, ConfigError> {
    let bytes =
        std::fs::read(file).map_err(|e| ConfigError(format!("quotas.password_file: cannot read {file}: {e}")))?;
    if bytes.len() > 4096 {
        return err(format!("quotas.password_file: {file} is longer than 4096 bytes: not a password file"));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| ConfigError(format!("quotas.password_file: {file} is not UTF-8")))?;
    let password = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if password.is_empty() || password.contains(['\n', '\r']) {
        return err(format!("quotas.password_file: {file} must hold the password alone, on one line"));
    }
    Ok(Password(password.to_string()))
}

/// The URL without its password, for logs and messages.
fn shown(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_string(),
    }
}

fn resolve_plan(name: &str, raw: RawPlan) -> Result<Plan, ConfigError> {
    let table = format!("quotas.plans.{name}");
    let priority = match raw.priority {
        None => 0,
        Some(p) if PRIORITIES.contains(&p) => p as i32,
        Some(p) => return err(format!("{table}.priority: must be between -10 and 10, got {p}")),
    };
    let weight = match raw.weight {
        None => 1,
        Some(w) if (1..=MAX_WEIGHT).contains(&w) => w as u32,
        Some(w) => return err(format!("{table}.weight: must be between 1 and {MAX_WEIGHT}, got {w}")),
    };
    let class = crate::request::Class { priority, weight };
    let own =
        RawLimits { rate: raw.rate, burst: raw.burst, requests: raw.requests, rows: raw.rows, compute: raw.compute };
    let base = Parsed::from_raw(&own, &table)?;
    let limits = Arc::new(LimitSet::new(name, base.limits(None, None)));
    let mut models = BTreeMap::new();
    for (model, raw) in raw.models.unwrap_or_default() {
        if model.is_empty() {
            return err(format!("{table}.models: a model name cannot be empty"));
        }
        let parsed = Parsed::from_raw(&raw, &format!("{table}.models.{model}"))?;
        models.insert(model.clone(), Arc::new(LimitSet::new(name, parsed.limits(Some(&base), Some(&model)))));
    }
    Ok(Plan { limits, models, class })
}

/// One table's limits; `None`: the key is not set there.
struct Parsed {
    rate: Option<LimitKind>,
    requests: Option<Vec<QuotaSpec>>,
    rows: Option<Vec<QuotaSpec>>,
    compute: Option<Vec<QuotaSpec>>,
}

impl Parsed {
    fn from_raw(raw: &RawLimits, table: &str) -> Result<Parsed, ConfigError> {
        let rate = match (&raw.rate, raw.burst) {
            (None, None) => None,
            (None, Some(_)) => return err(format!("{table}.burst: needs rate in the same table")),
            (Some(text), burst) => {
                let rate = parse_rate(text).or_else(|e| err(format!("{table}.rate: {e}")))?;
                let burst = match burst {
                    None => rate.count,
                    Some(b) if (1..=MAX_COUNT as i64).contains(&b) => b as u64,
                    Some(b) => return err(format!("{table}.burst: must be between 1 and {MAX_COUNT}, got {b}")),
                };
                let bucket = Bucket::new(rate, burst);
                if bucket.capacity_us() > MAX_BUCKET_US {
                    return err(format!(
                        "{table}.burst: {burst} requests at {text} take too long to refill; lower burst"
                    ));
                }
                Some(LimitKind::Rate { rate, bucket })
            }
        };
        Ok(Parsed {
            rate,
            requests: raw.requests.as_ref().map(|s| quotas(s, &format!("{table}.requests"))).transpose()?,
            rows: raw.rows.as_ref().map(|s| quotas(s, &format!("{table}.rows"))).transpose()?,
            compute: raw.compute.as_ref().map(|s| specs(s, &format!("{table}.compute"), parse_compute)).transpose()?,
        })
    }

    /// The limits in their fixed order (rate, requests, rows; shorter windows first). A key
    /// this table sets is counted for `model` alone; the others come from `base` (the plan).
    fn limits(&self, base: Option<&Parsed>, model: Option<&str>) -> Vec<Limit> {
        let own = |set: bool| if set { model.map(str::to_string) } else { None };
        let mut limits = Vec::new();
        let rate = self.rate.map(|r| (r, true)).or_else(|| base.and_then(|b| b.rate).map(|r| (r, false)));
        if let Some((kind, set)) = rate {
            limits.push(Limit { kind, model: own(set) });
        }
        for (counted, mine, theirs) in [
            (Counted::Requests, &self.requests, base.and_then(|b| b.requests.as_ref())),
            (Counted::Rows, &self.rows, base.and_then(|b| b.rows.as_ref())),
            (Counted::Compute, &self.compute, base.and_then(|b| b.compute.as_ref())),
        ] {
            let (specs, set) = match (mine, theirs) {
                (Some(specs), _) => (specs, true),
                (None, Some(specs)) => (specs, false),
                (None, None) => continue,
            };
            for spec in specs {
                let kind = LimitKind::Quota { counted, count: spec.count, window: spec.window };
                limits.push(Limit { kind, model: own(set) });
            }
        }
        limits
    }
}

/// Each window at most once, sorted from minute to month.
fn quotas(specs_: &Specs, key: &str) -> Result<Vec<QuotaSpec>, ConfigError> {
    specs(specs_, key, parse_quota)
}

fn specs(
    specs: &Specs,
    key: &str,
    parse: fn(&str) -> Result<QuotaSpec, String>,
) -> Result<Vec<QuotaSpec>, ConfigError> {
    let mut parsed = Vec::with_capacity(specs.0.len());
    for text in &specs.0 {
        let spec = parse(text).or_else(|e| err(format!("{key}: {e}")))?;
        if parsed.iter().any(|p: &QuotaSpec| p.window == spec.window) {
            return err(format!("{key}: two limits per {}", spec.window.as_str()));
        }
        parsed.push(spec);
    }
    parsed.sort_by_key(|spec| spec.window);
    Ok(parsed)
}

#[cfg(test)]
#[path = "quotas_tests.rs"]
mod tests;
