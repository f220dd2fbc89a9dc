//! Counters in this daemon's memory (`store = "memory"`, one node): records in a map per shard,
//! the shard chosen by caller, so one admission (every record of one caller) takes one lock and,
//! usually, one lookup.
//!
//! Memory stays bounded twice over: every field expires (see [`Check::expires_us`]) and a
//! background task sweeps the expired ones shard by shard; and `memory_max_keys` caps the
//! records held at once, all shards together. A full store first drops every record that holds
//! no information any more (windows over, buckets full again: what the grace period keeps for
//! other nodes' clocks matters to no one here), and if that frees no room, a caller that needs a
//! new record is refused ([`StoreError::Full`], with how long until a record frees). It is never
//! admitted uncounted, or a stream of new callers (new IPv6 addresses cost nothing) would be a
//! way around every quota; and no live record is ever evicted, which would hand its caller a
//! fresh quota. Callers with records keep being counted as usual.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::StoreError;
use crate::admission::quota::decide::{decide, Admission, Check, Decision, Rule, EXPIRY_GRACE_US};
use crate::metrics::Metrics;

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

type Records = HashMap<String, Vec<Field>>;

struct Shard {
    records: Mutex<Records>,
    /// No record of the shard expires before this (`u64::MAX`: none held). A lower bound, not
    /// exact: a write only ever moves a record's expiry later (a bucket's TAT and a window's end
    /// never go back), so only new records lower it and only a sweep raises it. Read without the
    /// lock, so that a full store can tell which shards a sweep would free something in.
    soonest_expiry_us: AtomicU64,
}

pub struct MemoryStore {
    shards: Box<[Shard]>,
    max_keys: AtomicUsize,
    /// Records held, all shards together; a new record reserves its place here first.
    held: AtomicUsize,
    hasher: RandomState,
    metrics: Arc<Metrics>,
    /// A reload replaced the store: its gauge is no longer published.
    retired: AtomicBool,
}

/// What one attempt in the caller's shard came to.
enum Attempt {
    Decided(Decision),
    /// Admitted by its limits, but its new records do not fit.
    NoRoom,
}

impl MemoryStore {
    pub fn new(max_keys: usize, metrics: Arc<Metrics>) -> MemoryStore {
        metrics.quota_store_records.set(&[], 0);
        MemoryStore {
            shards: (0..SHARDS)
                .map(|_| Shard { records: Mutex::new(HashMap::new()), soonest_expiry_us: AtomicU64::new(u64::MAX) })
                .collect(),
            max_keys: AtomicUsize::new(max_keys),
            held: AtomicUsize::new(0),
            hasher: RandomState::new(),
            metrics,
            retired: AtomicBool::new(false),
        }
    }

    /// A reload replaced the store (its sweeper ends once requests in flight let it go).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.metrics.quota_store_records.remove(&[]);
    }

    /// Sets `tfgate_quota_store_records`, unless a reload retired the store (checked after
    /// setting, so that a retirement in between still leaves no series behind).
    fn publish_len(&self) {
        self.metrics.quota_store_records.set(&[], self.len() as i64);
        if self.retired.load(Ordering::Relaxed) {
            self.metrics.quota_store_records.remove(&[]);
        }
    }

    /// A reload's new `memory_max_keys`. Lowered below what is held, nothing is evicted: new
    /// callers wait until records expire.
    pub fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys, Ordering::Relaxed);
    }

    /// Decides on `admission` (whose records are all `caller`'s) at `now_us` and, if admitted,
    /// counts it. [`StoreError::Full`] when it needs a record and none can be made room for.
    pub fn apply(&self, caller: &str, admission: &Admission, now_us: u64) -> Result<Decision, StoreError> {
        let shard = &self.shards[self.hasher.hash_one(caller) as usize % SHARDS];
        if let Attempt::Decided(decision) = self.attempt(shard, admission, now_us) {
            return Ok(decision);
        }
        // Full: every record that holds nothing any more goes, in every shard (the caller's
        // included), not just enough of them for this caller, so the next new callers find room
        // without another round. The locks are taken one at a time, none held here: no lock
        // order to get wrong.
        for any in self.shards.iter() {
            if any.soonest_expiry_us.load(Ordering::Relaxed) <= pressure_horizon(now_us) {
                self.sweep_shard(any, pressure_horizon(now_us));
            }
        }
        // Decided again: the counters may have moved while the lock was not held.
        match self.attempt(shard, admission, now_us) {
            Attempt::Decided(decision) => Ok(decision),
            Attempt::NoRoom => {
                self.publish_len();
                Err(StoreError::Full { retry_after_us: self.until_room(now_us) })
            }
        }
    }

    fn attempt(&self, shard: &Shard, admission: &Admission, now_us: u64) -> Attempt {
        let mut records = lock(&shard.records);
        // Most admissions have one record, which exists already: one lookup.
        if let [key] = &admission.records[..] {
            if let Some(fields) = records.get_mut(key) {
                let priors: Vec<u64> = admission.checks.iter().map(|check| prior(fields, check, now_us)).collect();
                let decision = decide(&admission.checks, &priors, now_us);
                for (check, &value) in admission.checks.iter().zip(&decision.writes) {
                    write(fields, check, value);
                }
                return Attempt::Decided(decision);
            }
        }
        let priors: Vec<u64> = admission
            .checks
            .iter()
            .map(|check| {
                let fields = admission.records.get(check.record).and_then(|key| records.get(key));
                fields.map_or(0, |fields| prior(fields, check, now_us))
            })
            .collect();
        let decision = decide(&admission.checks, &priors, now_us);
        if !decision.admitted {
            return Attempt::Decided(decision);
        }
        let new_records = admission.records.iter().filter(|key| !records.contains_key(*key)).count();
        if new_records > 0 && !self.reserve(new_records) {
            // The caller (`apply`) sweeps every shard, then tries again.
            return Attempt::NoRoom;
        }
        for (index, key) in admission.records.iter().enumerate() {
            let writes = admission.checks.iter().zip(&decision.writes).filter(|(check, _)| check.record == index);
            match records.get_mut(key) {
                Some(fields) => writes.for_each(|(check, &value)| write(fields, check, value)),
                None => {
                    let mut fields = Vec::with_capacity(admission.checks.len());
                    writes.for_each(|(check, &value)| write(&mut fields, check, value));
                    shard.soonest_expiry_us.fetch_min(record_expiry(&fields), Ordering::Relaxed);
                    records.insert(key.clone(), fields);
                }
            }
        }
        Attempt::Decided(decision)
    }

    /// Takes `n` places under `memory_max_keys`, or none.
    fn reserve(&self, n: usize) -> bool {
        let max = self.max_keys.load(Ordering::Relaxed);
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| (held + n <= max).then_some(held + n))
            .is_ok()
    }

    /// Microseconds until some record stops holding information and a new caller fits (as far
    /// as the shards' lower bounds tell).
    fn until_room(&self, now_us: u64) -> u64 {
        let soonest = self.shards.iter().map(|s| s.soonest_expiry_us.load(Ordering::Relaxed)).min().unwrap_or(u64::MAX);
        soonest.saturating_sub(EXPIRY_GRACE_US).saturating_sub(now_us)
    }

    /// Drops the expired fields (and emptied records) of one shard; returns the records dropped.
    pub fn sweep(&self, shard: usize, now_us: u64) -> usize {
        self.shards.get(shard).map_or(0, |shard| self.sweep_shard(shard, now_us))
    }

    fn sweep_shard(&self, shard: &Shard, horizon_us: u64) -> usize {
        self.sweep_locked(shard, &mut lock(&shard.records), horizon_us)
    }

    /// Drops the fields expired at `horizon_us` and the records left empty.
    fn sweep_locked(&self, shard: &Shard, records: &mut Records, horizon_us: u64) -> usize {
        let before = records.len();
        let mut soonest = u64::MAX;
        records.retain(|_, fields| {
            fields.retain(|field| field.expires_us > horizon_us);
            soonest = soonest.min(record_expiry(fields));
            !fields.is_empty()
        });
        shard.soonest_expiry_us.store(soonest, Ordering::Relaxed);
        let dropped = before - records.len();
        self.held.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sweeping at this horizon drops what holds no information at `now_us`: a field matters until
/// its expiry less the grace, which only lets other nodes' clocks lag (one node here).
fn pressure_horizon(now_us: u64) -> u64 {
    now_us.saturating_add(EXPIRY_GRACE_US)
}

/// When a record expires: with its last field (`u64::MAX` for none, which a sweep drops anyway).
fn record_expiry(fields: &[Field]) -> u64 {
    fields.iter().map(|f| f.expires_us).max().unwrap_or(u64::MAX)
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

fn lock(records: &Mutex<Records>) -> MutexGuard<'_, Records> {
    // A panic elsewhere cannot leave a field half-written: the map is used as it is.
    records.lock().unwrap_or_else(|e| e.into_inner())
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
            let Some(store) = store.upgrade() else { return };
            store.publish_len();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::quota::decide::Bucket;

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
        let store = store(1000);
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
        let store = store(1000);
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
    fn a_full_store_refuses_new_callers_and_keeps_counting_the_others() {
        let store = store(3);
        let end = T0 + 60 * S;
        let request = |key: &str| admission(&[key], vec![window(0, "requests_minute", 2, end, 1)]);
        for caller in ["a", "b", "c"] {
            assert!(store.apply(caller, &request(caller), T0).unwrap().admitted);
        }
        // Refused, never admitted uncounted, as often as it comes; told when a window ends.
        for _ in 0..3 {
            let full = store.apply("d", &request("d"), T0 + S);
            assert_eq!(full.unwrap_err(), StoreError::Full { retry_after_us: 59 * S });
        }
        // Callers already counted go on being counted, and limited: nobody was evicted.
        for caller in ["a", "b", "c"] {
            assert!(store.apply(caller, &request(caller), T0 + S).unwrap().admitted);
            assert!(!store.apply(caller, &request(caller), T0 + S).unwrap().admitted, "{caller} still limited");
        }
        assert_eq!(store.len(), 3);
        assert!(store.metrics.render().contains("tfgate_quota_store_records 3\n"));
        // The windows ended: their records hold nothing any more, and make room at once
        // (without waiting for the grace other nodes' clocks get, or for the sweeper).
        let next = |key: &str| admission(&[key], vec![window(0, "requests_minute", 2, end + 60 * S, 1)]);
        assert!(store.apply("d", &next("d"), end).unwrap().admitted);
        assert_eq!(store.len(), 1, "the three ended windows were dropped, wherever their shard");
    }

    #[test]
    fn memory_max_keys_counts_records_across_shards() {
        let store = store(50);
        let request = |key: &str| admission(&[key], vec![window(0, "requests_day", 5, T0 + 3600 * S, 1)]);
        for n in 0..50 {
            let caller = format!("2001:db8::{n:x}");
            assert!(store.apply(&caller, &request(&caller), T0).unwrap().admitted, "caller {n} of 50");
        }
        assert!(matches!(store.apply("2001:db8::ffff", &request("2001:db8::ffff"), T0), Err(StoreError::Full { .. })));
        assert_eq!(store.len(), 50);
        // A reload raising the cap makes room; lowering it evicts nobody.
        store.set_max_keys(51);
        assert!(store.apply("2001:db8::ffff", &request("2001:db8::ffff"), T0).unwrap().admitted);
        store.set_max_keys(10);
        assert_eq!(store.len(), 51);
        assert!(store.apply("2001:db8::0", &request("2001:db8::0"), T0).unwrap().admitted);
    }

    #[test]
    fn full_buckets_and_ended_windows_make_room_live_ones_do_not() {
        let store = store(2);
        // 1 request per second, burst 2: the bucket is full again 2 s after two requests.
        let rate = Rule::Bucket(Bucket { interval_us: S, burst: 2 });
        let bucket = |key: &str| admission(&[key], vec![Check { record: 0, field: "rate", rule: rate, cost: 1 }]);
        let day = |key: &str| admission(&[key], vec![window(0, "requests_day", 5, T0 + 3600 * S, 1)]);
        assert!(store.apply("burst", &bucket("burst"), T0).unwrap().admitted);
        assert!(store.apply("burst", &bucket("burst"), T0).unwrap().admitted);
        assert!(store.apply("daily", &day("daily"), T0).unwrap().admitted);
        assert_eq!(store.apply("new", &day("new"), T0 + S).unwrap_err(), StoreError::Full { retry_after_us: S });
        // The bucket is full again: that record says nothing any more, and goes.
        assert!(store.apply("new", &day("new"), T0 + 2 * S).unwrap().admitted);
        // "burst" is a new caller again (a full bucket is what a new caller gets anyway), and
        // the two live day windows stay.
        assert!(matches!(store.apply("burst", &bucket("burst"), T0 + 2 * S), Err(StoreError::Full { .. })));
        assert!(store.apply("daily", &day("daily"), T0 + 2 * S).unwrap().admitted);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_caller_whose_model_record_does_not_fit_is_refused_whole() {
        let store = store(1);
        let end = T0 + 60 * S;
        let plain = admission(&["a"], vec![window(0, "requests_minute", 5, end, 1)]);
        let with_model = admission(
            &["a", "a:m"],
            vec![window(0, "requests_minute", 5, end, 1), window(1, "rows_minute", 5, end, 1)],
        );
        assert!(store.apply("a", &plain, T0).unwrap().admitted);
        assert!(matches!(store.apply("a", &with_model, T0), Err(StoreError::Full { .. })));
        // Nothing of the refused request was counted.
        assert_eq!(store.apply("a", &plain, T0).unwrap().limits[0].remaining, 3);
    }

    #[test]
    fn the_periodic_sweep_keeps_the_grace_and_the_count() {
        let store = store(10);
        let end = T0 + 60 * S;
        assert!(
            store.apply("a", &admission(&["a"], vec![window(0, "requests_minute", 1, end, 1)]), T0).unwrap().admitted
        );
        let swept: usize = (0..SHARDS).map(|shard| store.sweep(shard, end)).sum();
        assert_eq!((swept, store.len()), (0, 1), "other nodes may still count this window");
        let swept: usize = (0..SHARDS).map(|shard| store.sweep(shard, end + EXPIRY_GRACE_US)).sum();
        assert_eq!((swept, store.len()), (1, 0));
    }

    #[test]
    fn a_retired_store_publishes_no_gauge() {
        let store = store(10);
        assert!(store.metrics.render().contains("tfgate_quota_store_records 0"));
        store.retire();
        store.publish_len();
        let text = store.metrics.render();
        assert!(!text.lines().any(|l| l.starts_with("tfgate_quota_store_records ")), "{text}");
    }

    fn store(max_keys: usize) -> MemoryStore {
        MemoryStore::new(max_keys, Arc::new(Metrics::default()))
    }
}
