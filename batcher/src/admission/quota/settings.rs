//! `[quotas]` once checked (config/quotas.rs reads the file into this): where counters live,
//! what happens when that store fails, and the plans.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::plan::{choose, Fallback, LimitSet, Plan};
use crate::request::Class;

/// Default of `timeout_ms`: far above a Redis round trip on a LAN (well under a millisecond),
/// far below what a client would notice as a stall.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// Default of `key_prefix`.
pub const DEFAULT_KEY_PREFIX: &str = "tfgate:quota:";
/// Default of `memory_max_keys`: about 150 MB of counters at most.
pub const DEFAULT_MEMORY_MAX_KEYS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings {
    pub store: StoreSetting,
    pub on_store_failure: OnStoreFailure,
    /// Longest an admission waits for the store before `on_store_failure` decides.
    pub timeout: Duration,
    /// Starts every counter key (several deployments may share one Redis).
    pub key_prefix: String,
    /// Most counters the memory store holds at once.
    pub memory_max_keys: usize,
    /// Always holds `default`.
    pub plans: BTreeMap<String, Plan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSetting {
    Memory,
    Redis(RedisTarget),
}

impl StoreSetting {
    /// `memory`, or the Redis URL without its password.
    pub fn shown(&self) -> &str {
        match self {
            StoreSetting::Memory => "memory",
            StoreSetting::Redis(target) => &target.shown,
        }
    }
}

/// A Redis server: the URL as written (for the client), and as shown in logs (no password);
/// for `rediss://`, the TLS files; the ACL user and password of `[quotas]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub url: String,
    pub shown: String,
    /// `rediss://`: `ca_file` (or the system's CA store), `cert_file` and `key_file`.
    pub tls: Option<std::sync::Arc<crate::tls::ClientTls>>,
    /// `username`: the ACL user (Redis 6+); `None`: `default`.
    pub username: Option<String>,
    /// Read from `password_file`.
    pub password: Option<Password>,
}

/// A password, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a request gets when its counters cannot be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreFailure {
    /// Admitted, uncounted.
    Allow,
    /// Refused with 503 (UNAVAILABLE).
    Deny,
}

impl OnStoreFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreFailure::Allow => "allow",
            OnStoreFailure::Deny => "deny",
        }
    }
}

impl QuotaSettings {
    /// The class (priority, weight) of the plan `named`, the default plan's when it names none.
    pub fn class(&self, named: Option<&str>) -> Class {
        choose(&self.plans, named).0.map_or_else(Class::default, |plan| plan.class)
    }

    /// The limits of the plan `named` (`X-Tfgate-Plan`) for `model`, and why the default plan
    /// was used instead of the one named, if it was.
    pub fn limits(&self, named: Option<&str>, model: &str) -> (Option<&Arc<LimitSet>>, Option<Fallback>) {
        let (plan, fallback) = choose(&self.plans, named);
        (plan.map(|plan| plan.for_model(model)), fallback)
    }

    /// Whether a reload to `new` keeps this store, and so the counters in it (see
    /// [`Store::serves`](super::store::Store::serves), which applies the same rule).
    pub fn keeps_store(&self, new: &QuotaSettings) -> bool {
        match (&self.store, &new.store) {
            (StoreSetting::Memory, StoreSetting::Memory) => true,
            (StoreSetting::Redis(old), StoreSetting::Redis(target)) => old == target && self.timeout == new.timeout,
            _ => false,
        }
    }

    /// The settings in one line, and one per plan (and model table), for `check-config`.
    pub fn describe(&self) -> String {
        let store = match &self.store {
            StoreSetting::Memory => format!("memory (memory_max_keys={})", self.memory_max_keys),
            StoreSetting::Redis(target) => target.shown.clone(),
        };
        let mut text = format!(
            "[quotas] store={store} on_store_failure={} timeout_ms={} key_prefix={:?}",
            self.on_store_failure.as_str(),
            self.timeout.as_millis(),
            self.key_prefix
        );
        let describe = |limits: &LimitSet| {
            let words: Vec<String> = limits.limits.iter().map(|l| l.describe()).collect();
            if words.is_empty() {
                "no limits".to_string()
            } else {
                words.join(", ")
            }
        };
        for (name, plan) in &self.plans {
            text.push_str(&format!("\n  [quotas.plans.{name}] {}", describe(&plan.limits)));
            for (model, limits) in &plan.models {
                text.push_str(&format!("\n  [quotas.plans.{name}.models.{model}] {}", describe(limits)));
            }
        }
        text
    }
}
