//! Answers for repeated rows (`[models.NAME] row_cache`): a per-model cache of row answers, and
//! the rows being computed right now, so that a row seen before is answered without the
//! backend and identical rows arriving together are computed once.
//!
//! - [`key`]: a row's key (SHA-256 of model, requested version, signature and the row's
//!   inputs). [`plan`]: where each row of a call gets its answer. Both pure.
//! - [`RowCache`]: the store (moka's W-TinyLFU, bounded by bytes, with an optional TTL), the
//!   registry of rows in flight, and which version answers `latest` and labels now.
//!
//! The pipeline's `cached` stage drives it around the batcher.
//!
//! Versions: a key holds the version the call asked for. A number is exact. For `latest` and
//! labels (which TF Serving resolves), an entry answers only while the version that computed
//! it is the one the backend answered with for that choice, to a call sent within
//! [`VERSION_RECHECK`]; past that, rows are sent until an answer tells the version again, so a
//! newly loaded version is never answered from an older one's entries for longer than that.
//! One answer never mixes versions (the pipeline's `cached` stage sends again rows of another
//! version than the one its own rows came back with).

pub mod key;
pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use tokio::sync::watch;

use self::key::RowKey;
use self::plan::Plan;
use crate::batching::BatchFacts;
use crate::convert::Outputs;
use crate::metrics::Metrics;
use crate::swap::Swap;
use crate::target::{ModelTarget, VersionRef};

/// How long the version last seen answering `latest` (or a label) is trusted for cache hits.
pub const VERSION_RECHECK: Duration = Duration::from_secs(5);
/// What an entry costs besides its outputs' values: the key, the shared row, the map's node.
const ENTRY_OVERHEAD: u64 = 160;
/// Longest time between two runs of moka's pending bookkeeping while under the bound.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// `[models.NAME] row_cache` and `row_cache_ttl_s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCacheSettings {
    /// Bytes of answers kept; 0 keeps none (identical rows in flight are still computed once).
    pub bytes: u64,
    /// How long an entry answers after it was stored.
    pub ttl: Option<Duration>,
}

/// One row's answer: row `row` of `outputs`, as `facts`' backend call computed it.
#[derive(Clone)]
pub struct SharedRow {
    pub outputs: Arc<Outputs>,
    pub row: usize,
    pub facts: Arc<BatchFacts>,
}

/// A call's rows other calls are computing: resolved with the row, or closed when that call
/// failed or went away (the rows are then sent again).
pub type Follow = watch::Receiver<Option<SharedRow>>;

pub struct RowCache {
    model: String,
    settings: RowCacheSettings,
    store: Option<moka::sync::Cache<RowKey, SharedRow>>,
    /// The rows being computed, and the deadline of the call computing each.
    in_flight: Mutex<HashMap<RowKey, (Follow, Instant)>>,
    /// The version that last answered `latest` or a label, and when that call was sent.
    versions: Mutex<HashMap<VersionRef, (i64, Instant)>>,
    /// When moka's pending bookkeeping last ran.
    housekept: Mutex<Instant>,
    /// Bytes stored since then (moka counts them at its bookkeeping).
    unsettled: AtomicU64,
    /// Replaced or removed by a reload: its calls in flight no longer set the bytes gauge.
    retired: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
}

/// The rows a call computes for others too; dropped without [`Leads::complete`], its followers
/// are told it failed.
pub struct Leads {
    cache: Arc<RowCache>,
    rows: Vec<(RowKey, watch::Sender<Option<SharedRow>>, Follow)>,
}

impl RowCache {
    pub fn new(model: &str, settings: RowCacheSettings, metrics: Arc<Metrics>) -> RowCache {
        let store = (settings.bytes > 0).then(|| {
            let (name, evictions) = (model.to_string(), metrics.clone());
            let mut builder = moka::sync::Cache::builder()
                .max_capacity(settings.bytes)
                .weigher(|_: &RowKey, row: &SharedRow| u32::try_from(weight(row)).unwrap_or(u32::MAX))
                .eviction_listener(move |_, _, cause| {
                    let reason = match cause {
                        RemovalCause::Size => "size",
                        RemovalCause::Expired => "expired",
                        RemovalCause::Explicit | RemovalCause::Replaced => return,
                    };
                    evictions.row_cache_evictions.inc(&[&name, reason]);
                });
            if let Some(ttl) = settings.ttl {
                builder = builder.time_to_live(ttl);
            }
            builder.build()
        });
        RowCache {
            model: model.to_string(),
            settings,
            store,
            in_flight: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            housekept: Mutex::new(Instant::now().checked_sub(HOUSEKEEPING).unwrap_or_else(Instant::now)),
            unsettled: AtomicU64::new(0),
            retired: std::sync::atomic::AtomicBool::new(false),
            metrics,
        }
    }

    pub fn settings(&self) -> &RowCacheSettings {
        &self.settings
    }

    /// Decides each row's source, and registers the rows this call will send as in flight. A row
    /// is followed only from a call due no later than this one (`deadline`): a call never waits
    /// past its deadline for a row it could have sent itself.
    pub fn plan(
        self: &Arc<Self>,
        target: &ModelTarget,
        keys: &[RowKey],
        deadline: Instant,
        now: Instant,
    ) -> (Plan<SharedRow, Follow>, Leads) {
        let current = lock(&self.versions)
            .get(&target.version)
            .filter(|(_, seen)| now.saturating_duration_since(*seen) < VERSION_RECHECK)
            .map(|(version, _)| *version);
        // A number is in the key. Otherwise an entry of another version than the one answering
        // now is never served.
        let numbered = matches!(target.version, VersionRef::Number(_));
        let mut in_flight = lock(&self.in_flight);
        let plan = plan::plan(
            keys,
            |key| {
                let row = self.store.as_ref()?.get(key)?;
                (numbered || (current.is_some() && row.facts.version == current)).then_some(row)
            },
            |key| in_flight.get(key).filter(|(_, due)| *due <= deadline).map(|(follow, _)| follow.clone()),
        );
        // A row another call computes but would finish too late for this one is computed here
        // too; later calls follow whichever registered last.
        let mut rows = Vec::with_capacity(plan.leads.len());
        for (_, key) in &plan.leads {
            let (sender, receiver) = watch::channel(None);
            in_flight.insert(*key, (receiver.clone(), deadline));
            rows.push((*key, sender, receiver));
        }
        drop(in_flight);
        let hits = plan.rows.iter().filter(|s| matches!(s, plan::Source::Hit(_))).count();
        let model = [self.model.as_str()];
        self.metrics.row_cache_hits.add(&model, hits as u64);
        self.metrics.row_cache_misses.add(&model, (plan.rows.len() - hits) as u64);
        // Neither found nor sent: shared with a row another call, or this one, computes.
        self.metrics.rows_deduplicated.add(&model, (plan.rows.len() - hits - plan.leads.len()) as u64);
        (plan, Leads { cache: self.clone(), rows })
    }

    /// The backend answered `target` with `version`, for a call sent at `sent`. An answer to a
    /// call sent before the last one known changes nothing (a slow call of the old version
    /// must not bring its entries back).
    pub fn saw_version(&self, target: &ModelTarget, version: Option<i64>, sent: Instant) {
        if let (Some(version), false) = (version, matches!(target.version, VersionRef::Number(_))) {
            let mut versions = lock(&self.versions);
            match versions.get(&target.version) {
                Some((_, known)) if *known > sent => {}
                _ => {
                    versions.insert(target.version.clone(), (version, sent));
                }
            }
        }
    }

    /// Bytes the store holds now (after moka's pending bookkeeping).
    pub fn bytes(&self) -> u64 {
        self.store.as_ref().map_or(0, |store| {
            store.run_pending_tasks();
            store.weighted_size()
        })
    }
}

impl Leads {
    /// The rows sent came back: handed to the calls waiting for them, and kept (`cached`, each
    /// row's own copy, so an entry holds its own bytes, not its batch's). `rows[i]` answers lead
    /// `i`. Storing runs after the answers (a task of its own, within the runtime): a batch's
    /// callers are answered first, and the rows stay registered until stored, so a call arriving
    /// meanwhile still finds them.
    pub fn complete(self, rows: &[SharedRow], cached: &[SharedRow]) {
        for ((_, sender, _), row) in self.rows.iter().zip(rows) {
            sender.send_replace(Some(row.clone()));
        }
        if self.cache.store.is_none() || cached.is_empty() {
            return; // Dropped: unregistered.
        }
        let cached = cached.to_vec();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    // Behind the callers' tasks the same answer woke (a task spawned from a
                    // worker would otherwise run next, ahead of them).
                    tokio::task::yield_now().await;
                    self.store(&cached)
                });
            }
            Err(_) => self.store(&cached),
        }
    }

    fn store(self, cached: &[SharedRow]) {
        let Some(store) = &self.cache.store else { return };
        let mut added = 0;
        for ((key, _, _), row) in self.rows.iter().zip(cached) {
            added += weight(row);
            store.insert(*key, row.clone());
        }
        // moka applies its bound (and counts weights) in batches: at once when what was stored
        // since may pass the bound, else at most every second, for the bytes gauge.
        let unsettled = self.cache.unsettled.fetch_add(added, Ordering::Relaxed) + added;
        let now = Instant::now();
        let mut last = lock(&self.cache.housekept);
        if store.weighted_size() + unsettled > self.cache.settings.bytes
            || now.saturating_duration_since(*last) >= HOUSEKEEPING
        {
            *last = now;
            self.cache.unsettled.store(0, Ordering::Relaxed);
            drop(last);
            store.run_pending_tasks();
        }
        if !self.cache.retired.load(Ordering::Relaxed) {
            self.cache.metrics.row_cache_bytes.set(&[&self.cache.model], store.weighted_size() as i64);
        }
    }

    /// Removes this call's rows from the registry (only its own: a later call may have become
    /// the lead of a key since).
    fn forget(&mut self) {
        let mut in_flight = lock(&self.cache.in_flight);
        for (key, _, receiver) in self.rows.drain(..) {
            if in_flight.get(&key).is_some_and(|(r, _)| r.same_channel(&receiver)) {
                in_flight.remove(&key);
            }
        }
    }
}

impl Drop for Leads {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Every model's row cache, by model name.
pub struct RowCaches {
    caches: Swap<BTreeMap<String, Arc<RowCache>>>,
    metrics: Arc<Metrics>,
}

impl RowCaches {
    pub fn new(settings: &BTreeMap<String, RowCacheSettings>, metrics: Arc<Metrics>) -> RowCaches {
        let caches = RowCaches { caches: Swap::new(BTreeMap::new()), metrics };
        caches.reconfigure(settings);
        caches
    }

    /// The model's cache, if it has one.
    pub fn get(&self, model: &str) -> Option<Arc<RowCache>> {
        self.caches.get().get(model).cloned()
    }

    /// A reloaded configuration's caches: a model whose settings did not change keeps its
    /// entries; one whose settings changed starts empty; one without `row_cache` has none.
    pub fn reconfigure(&self, settings: &BTreeMap<String, RowCacheSettings>) {
        let running = self.caches.get();
        let mut next = BTreeMap::new();
        for (model, wanted) in settings {
            let cache = match running.get(model) {
                Some(cache) if cache.settings == *wanted => cache.clone(),
                _ => Arc::new(RowCache::new(model, wanted.clone(), self.metrics.clone())),
            };
            next.insert(model.clone(), cache);
        }
        for (model, cache) in running.iter() {
            if !next.get(model).is_some_and(|kept| Arc::ptr_eq(kept, cache)) {
                cache.retired.store(true, Ordering::Relaxed);
            }
            if !next.contains_key(model) {
                self.metrics.row_cache_bytes.remove(&[model]);
            }
        }
        for (model, cache) in &next {
            self.metrics.row_cache_bytes.set(&[model], cache.bytes() as i64);
        }
        self.caches.replace(Arc::new(next));
    }
}

/// What an entry is counted as against `row_cache`.
fn weight(row: &SharedRow) -> u64 {
    let values: usize = row
        .outputs
        .iter()
        .map(|(name, tensor)| name.len() + tensor.shape.len() * 8 + tensor.values.heap_bytes() + 64)
        .sum();
    values as u64 + ENTRY_OVERHEAD
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
