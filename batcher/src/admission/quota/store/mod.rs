//! Where counters live: thin shells around [`decide`](super::decide::decide), which they call
//! with the values they hold (memory) or the script read (Redis).

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use self::memory::MemoryStore;
use self::redis::RedisStore;
use super::decide::{Admission, Decision};
use super::settings::{QuotaSettings, StoreSetting};
use crate::metrics::Metrics;

/// Why a store gave no decision; `on_store_failure` then decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No connection (Redis down, refused, being reconnected).
    Unreachable(String),
    /// No answer within `timeout_ms`.
    Timeout,
    /// Redis answered with an error.
    Failed(String),
    /// `memory_max_keys` live records are held already, and the request needs a new one. Not a
    /// failure `on_store_failure` decides on: the request is refused (see `memory`).
    Full {
        /// Until a record is expected to free, as far as the store knows.
        retry_after_us: u64,
    },
    /// Too many requests already waiting for Redis.
    Overloaded,
}

impl StoreError {
    /// The `reason` label of `tfgate_quota_store_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Unreachable(_) => "unreachable",
            StoreError::Timeout => "timeout",
            StoreError::Failed(_) => "error",
            StoreError::Full { .. } => "full",
            StoreError::Overloaded => "overloaded",
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unreachable(e) => write!(f, "unreachable ({e})"),
            StoreError::Timeout => f.write_str("no answer in time (timeout_ms)"),
            StoreError::Failed(e) => write!(f, "error: {e}"),
            StoreError::Full { .. } => f.write_str("memory_max_keys records held already, none of them expired"),
            StoreError::Overloaded => f.write_str("too many requests waiting for it"),
        }
    }
}

pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(RedisStore),
}

impl Store {
    /// The store `settings` name (inside the tokio runtime: its tasks start here).
    pub fn open(settings: &QuotaSettings, metrics: &Arc<Metrics>) -> Store {
        match &settings.store {
            StoreSetting::Memory => {
                let store = Arc::new(MemoryStore::new(settings.memory_max_keys, metrics.clone()));
                memory::spawn_sweeper(&store);
                metrics.quota_store_up.set(&[], 1);
                Store::Memory(store)
            }
            StoreSetting::Redis(target) => Store::Redis(RedisStore::open(target, settings.timeout, metrics.clone())),
        }
    }

    /// Whether this store can go on serving after a reload to `settings` (then the counters
    /// stay); a memory store takes a new `memory_max_keys` as it is.
    pub fn serves(&self, settings: &QuotaSettings) -> bool {
        match (self, &settings.store) {
            (Store::Memory(store), StoreSetting::Memory) => {
                store.set_max_keys(settings.memory_max_keys);
                true
            }
            (Store::Redis(store), StoreSetting::Redis(target)) => {
                store.target == *target && store.timeout == settings.timeout
            }
            _ => false,
        }
    }

    /// What an operator must fix for this store to work, if anything.
    pub fn problem(&self) -> Option<String> {
        match self {
            Store::Memory(_) => None,
            Store::Redis(store) => store.problem(),
        }
    }

    /// A reload replaced this store (its tasks end with its last request).
    pub fn retire(&self) {
        match self {
            Store::Memory(store) => store.retire(),
            Store::Redis(store) => store.retire(),
        }
    }

    /// Decides on `admission` (counters of `caller`) at `now_us`, counting it if admitted.
    pub async fn apply(&self, caller: &str, admission: Admission, now_us: u64) -> Result<Decision, StoreError> {
        match self {
            Store::Memory(store) => store.apply(caller, &admission, now_us),
            Store::Redis(store) => store.apply(admission, now_us).await,
        }
    }
}

/// The wall clock, in microseconds since the epoch (calendar windows are UTC dates).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}
