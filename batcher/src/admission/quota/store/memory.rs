//! Counters in this daemon's memory (`store = "memory"`, one node): records in a map per shard,
//! the shard chosen by caller, so one admission (every record of one caller) takes one lock and,
//! usually, one lookup.
//!
//! Memory stays bounded twice over: every field expires (see [`Check::expires_us`]) and a
//! background task sweeps the expired ones shard by shard; and `memory_max_keys` caps the
//! records held at once, beyond which a new record is a store failure (`on_store_failure`
//! decides) rather than more memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::StoreError;
use crate::admission::quota::decide::{decide, Admission, Check, Decision, Rule};

const SHARDS: usize = 64;
/// How often every shard is swept of expired counters.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// One field of a record.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    /// The window counted (its end), 0 for a bucket.
    window_end: u64,
    value: u64,
    expires_us: u64,
}

type Shard = HashMap<String, Vec<Field>>;

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// Per shard: `memory_max_keys / SHARDS`, at least 1 (a reload may change it).
    shard_cap: AtomicUsize,
    hasher: RandomState,
}

impl MemoryStore {
    pub fn new(max_keys: usize) -> MemoryStore {
        let store = MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_cap: AtomicUsize::new(1),
            hasher: RandomState::new(),
        };
        store.set_max_keys(max_keys);
        store
    }

    pub fn set_max_keys(&self, max_keys: usize) {
        self.shard_cap.store((max_keys / SHARDS).max(1), Ordering::Relaxed);
    }

    /// Decides on `admission` (whose records are all `caller`'s) at `now_us` and, if admitted,
    /// counts it.
    pub fn apply(&self, caller: &str, admission: &Admission, now_us: u64) -> Result<Decision, StoreError> {
        let mut shard = self.shard(caller);
        // Most admissions have one record, which exists already: one lookup.
        if let [key] = &admission.records[..] {
            if let Some(fields) = shard.get_mut(key) {
                let priors: Vec<u64> = admission.checks.iter().map(|check| prior(fields, check, now_us)).collect();
                let decision = decide(&admission.checks, &priors, now_us);
                for (check, &value) in admission.checks.iter().zip(&decision.writes) {
                    write(fields, check, value);
                }
                return Ok(decision);
            }
        }
        let priors: Vec<u64> = admission
            .checks
            .iter()
            .map(|check| {
                let fields = admission.records.get(check.record).and_then(|key| shard.get(key));
                fields.map_or(0, |fields| prior(fields, check, now_us))
            })
            .collect();
        let decision = decide(&admission.checks, &priors, now_us);
        if !decision.admitted {
            return Ok(decision);
        }
        let new_records = admission.records.iter().filter(|key| !shard.contains_key(*key)).count();
        let cap = self.shard_cap.load(Ordering::Relaxed);
        if new_records > 0 && shard.len() + new_records > cap {
            sweep(&mut shard, now_us);
            if shard.len() + new_records > cap {
                return Err(StoreError::Full);
            }
        }
        for (index, key) in admission.records.iter().enumerate() {
            let writes = admission.checks.iter().zip(&decision.writes).filter(|(check, _)| check.record == index);
            match shard.get_mut(key) {
                Some(fields) => writes.for_each(|(check, &value)| write(fields, check, value)),
                None => {
                    let mut fields = Vec::with_capacity(admission.checks.len());
                    writes.for_each(|(check, &value)| write(&mut fields, check, value));
                    shard.insert(key.clone(), fields);
                }
            }
        }
        Ok(decision)
    }

    /// Drops the expired fields (and emptied records) of one shard; returns the records dropped.
    pub fn sweep(&self, shard: usize, now_us: u64) -> usize {
        self.shards.get(shard).map_or(0, |shard| sweep(&mut lock(shard), now_us))
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, caller: &str) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.hasher.hash_one(caller) as usize % SHARDS])
    }
}

fn write(fields: &mut Vec<Field>, check: &Check, value: u64) {
    let field = Field { name: check.field, window_end: check.window_end(), value, expires_us: check.expires_us(value) };
    match fields.iter_mut().find(|f| f.name == check.field) {
        Some(slot) => *slot = field,
        None => fields.push(field),
    }
}

/// The stored value `check` reads: 0 when absent, expired, or counting another window.
fn prior(fields: &[Field], check: &Check, now_us: u64) -> u64 {
    let Some(field) = fields.iter().find(|f| f.name == check.field && f.expires_us > now_us) else { return 0 };
    match check.rule {
        Rule::Bucket(_) => field.value,
        Rule::Window { end_us, .. } if field.window_end == end_us => field.value,
        Rule::Window { .. } => 0,
    }
}

fn sweep(shard: &mut Shard, now_us: u64) -> usize {
    let before = shard.len();
    shard.retain(|_, fields| {
        fields.retain(|field| field.expires_us > now_us);
        !fields.is_empty()
    });
    before - shard.len()
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic elsewhere cannot leave a field half-written: the map is used as it is.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sweeps `store` every [`SWEEP_INTERVAL`], one shard at a time (never one long pause), until
/// the store is dropped (a reload that changes `store`).
pub fn spawn_sweeper(store: &Arc<MemoryStore>) {
    let store: Weak<MemoryStore> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            for shard in 0..SHARDS {
                let Some(store) = store.upgrade() else { return };
                store.sweep(shard, super::now_us());
                drop(store);
                tokio::task::yield_now().await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::quota::decide::EXPIRY_GRACE_US;

    const S: u64 = 1_000_000;
    const T0: u64 = 1_776_085_542 * S;

    fn window(record: usize, field: &'static str, limit: u64, end_us: u64, cost: u64) -> Check {
        Check { record, field, rule: Rule::Window { limit, end_us }, cost }
    }

    fn admission(records: &[&str], checks: Vec<Check>) -> Admission {
        Admission { records: records.iter().map(|r| r.to_string()).collect(), checks }
    }

    #[test]
    fn counts_what_it_admits_and_nothing_it_refuses() {
        let store = MemoryStore::new(1000);
        let end = T0 + 60 * S;
        let request = |rows| {
            admission(&["a", "a:m"], vec![window(0, "requests_day", 3, end, 1), window(1, "rows_day", 10, end, rows)])
        };
        assert!(store.apply("a", &request(8), T0).unwrap().admitted);
        // 8 + 5 rows > 10: refused, and neither counter moves.
        let refused = store.apply("a", &request(5), T0).unwrap();
        assert!(!refused.admitted);
        assert_eq!(refused.limits[0].remaining, 2);
        assert!(store.apply("a", &request(2), T0).unwrap().admitted);
        let d = store.apply("a", &request(0), T0).unwrap();
        assert_eq!((d.admitted, d.limits[0].remaining, d.limits[1].remaining), (true, 0, 0));
        assert!(!store.apply("a", &request(0), T0).unwrap().admitted);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_new_window_counts_from_zero_and_expired_fields_are_swept() {
        let store = MemoryStore::new(1000);
        let first = |end| admission(&["a"], vec![window(0, "requests_minute", 1, end, 1)]);
        assert!(store.apply("a", &first(T0 + S), T0).unwrap().admitted);
        assert!(!store.apply("a", &first(T0 + S), T0).unwrap().admitted);
        // The same field, the next window.
        assert!(store.apply("a", &first(T0 + 61 * S), T0 + S).unwrap().admitted);
        let expiry = T0 + 61 * S + EXPIRY_GRACE_US;
        let swept: usize = (0..SHARDS).map(|shard| store.sweep(shard, expiry - 1)).sum();
        assert_eq!((swept, store.len()), (0, 1));
        let swept: usize = (0..SHARDS).map(|shard| store.sweep(shard, expiry)).sum();
        assert_eq!((swept, store.len()), (1, 0));
    }

    #[test]
    fn the_record_cap_refuses_new_records_not_old_ones() {
        // One record per shard.
        let store = MemoryStore::new(SHARDS);
        let request = |key: &str| admission(&[key], vec![window(0, "requests_minute", 100, T0 + 60 * S, 1)]);
        assert!(store.apply("c", &request("one"), T0).unwrap().admitted);
        assert_eq!(store.apply("c", &request("two"), T0).unwrap_err(), StoreError::Full);
        assert!(store.apply("c", &request("one"), T0).unwrap().admitted);
        // Once the old record expired, there is room again.
        assert!(store.apply("c", &request("two"), T0 + 60 * S + EXPIRY_GRACE_US).unwrap().admitted);
    }
}
