//! Signatures per model version, fetched with GetModelMetadata and kept in memory.
//!
//! `Latest` and labels can start pointing at another version when TF Serving loads one, so an
//! entry is refreshed when a Predict answer names a version other than the one its metadata
//! came from ([`SignatureCache::observe_version`]), when the backend refuses a Predict as
//! malformed ([`SignatureCache::invalidate`], at most once a second per target: the first
//! refusal after a new version is loaded is picked up at once, but a stream of bad requests
//! must not cost a GetModelMetadata each), and after a TTL in any case. Concurrent misses
//! for one target share a single fetch, and a model TF Serving does not know is remembered as
//! unknown for [`NOT_FOUND_TTL`], so a stream of requests for it costs one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tokio::sync::OnceCell;

use super::{malformed, Pool};
use crate::convert::Signatures;
use crate::request::CoreError;
use crate::target::ModelTarget;

/// How long a fetched signature is trusted.
pub const SIGNATURE_TTL: Duration = Duration::from_secs(60);
/// Least time between two refusals that drop a target's signatures: a refusal is far more
/// often a bad request than a new version, and the bisection of one bad batch alone brings
/// several.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);
/// How long a NOT_FOUND answer stands for a target (a model being loaded shows up soon after).
pub const NOT_FOUND_TTL: Duration = Duration::from_secs(1);

pub struct SignatureCache {
    ttl: Duration,
    entries: Mutex<HashMap<ModelTarget, Arc<Slot>>>,
    /// When a refusal last dropped each target's signatures.
    last_dropped: Mutex<HashMap<ModelTarget, Instant>>,
    /// Targets TF Serving answered NOT_FOUND for, and when.
    not_found: Mutex<HashMap<ModelTarget, (Instant, CoreError)>>,
}

/// One target's signatures, filled once by whichever request gets there first.
struct Slot {
    created: Instant,
    cell: OnceCell<Fetched>,
}

#[derive(Clone)]
struct Fetched {
    signatures: Arc<Signatures>,
    /// The version the metadata answer named.
    version: Option<i64>,
}

impl SignatureCache {
    pub fn new(ttl: Duration) -> SignatureCache {
        SignatureCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            last_dropped: Mutex::new(HashMap::new()),
            not_found: Mutex::new(HashMap::new()),
        }
    }

    /// The signatures of `target`, from memory or from the backend.
    pub async fn get(
        &self,
        pool: &Pool,
        target: &ModelTarget,
        timeout: Duration,
    ) -> Result<Arc<Signatures>, CoreError> {
        if let Some(error) = self.known_missing(target) {
            return Err(error);
        }
        let slot = self.slot(target);
        if let Some(fetched) = slot.cell.get() {
            return Ok(fetched.signatures.clone());
        }
        // Boxed: the fetch's future (a backend call) would otherwise make every call's future
        // that much larger, and every call's future is moved as it goes.
        Box::pin(self.fetch(pool, target, timeout, slot)).await
    }

    /// Asks the backend for the model's signatures once, however many calls wait for them.
    async fn fetch(
        &self,
        pool: &Pool,
        target: &ModelTarget,
        timeout: Duration,
        slot: Arc<Slot>,
    ) -> Result<Arc<Signatures>, CoreError> {
        let fetched = slot
            .cell
            .get_or_try_init(|| async {
                pool.metrics.signature_fetches.inc(&[&target.model]);
                let response = pool.model_metadata(target, timeout).await?;
                let signatures = Signatures::from_metadata(&response).map_err(|e| malformed(e.message))?;
                let version = match response.model_spec.and_then(|s| s.version_choice) {
                    Some(VersionChoice::Version(v)) => Some(v),
                    _ => None,
                };
                Ok::<_, CoreError>(Fetched { signatures: Arc::new(signatures), version })
            })
            .await;
        match fetched {
            Ok(fetched) => Ok(fetched.signatures.clone()),
            Err(e) => {
                // Failures are not cached (the next request asks again), except NOT_FOUND,
                // briefly: requests for a model that does not exist are a classic flood.
                self.remove_if_same(target, &slot);
                if e.code == tonic::Code::NotFound {
                    let mut missing = self.not_found.lock().unwrap_or_else(|e| e.into_inner());
                    let now = Instant::now();
                    missing.retain(|_, (at, _)| now.duration_since(*at) < NOT_FOUND_TTL);
                    missing.insert(target.clone(), (now, e.clone()));
                }
                Err(e)
            }
        }
    }

    /// A Predict for `target` was answered by `version`: if the cached signatures came from
    /// another version, they are dropped so the next request fetches the new ones.
    pub fn observe_version(&self, target: &ModelTarget, version: i64) {
        let mut entries = self.lock();
        let stale = entries
            .get(target)
            .and_then(|slot| slot.cell.get())
            .is_some_and(|f| f.version.is_some_and(|v| v != version));
        if stale {
            tracing::info!(%target, version, "model version changed: refreshing its signatures");
            entries.remove(target);
        }
    }

    /// The backend refused a Predict as malformed: maybe because a new version with another
    /// signature is loaded. The signatures are dropped unless a refusal already dropped them
    /// less than [`MIN_REFRESH_GAP`] ago; returns whether they were.
    pub fn invalidate(&self, target: &ModelTarget) -> bool {
        let now = Instant::now();
        {
            let mut last = self.last_dropped.lock().unwrap_or_else(|e| e.into_inner());
            if last.get(target).is_some_and(|at| now.duration_since(*at) < MIN_REFRESH_GAP) {
                return false;
            }
            // Bounded by the targets requested; forget old marks so the map cannot grow.
            last.retain(|_, at| now.duration_since(*at) < MIN_REFRESH_GAP);
            last.insert(target.clone(), now);
        }
        self.lock().remove(target).is_some()
    }

    pub fn clear(&self) {
        self.lock().clear();
        self.not_found.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The NOT_FOUND answer still standing for `target`, if any.
    fn known_missing(&self, target: &ModelTarget) -> Option<CoreError> {
        let missing = self.not_found.lock().unwrap_or_else(|e| e.into_inner());
        missing.get(target).filter(|(at, _)| at.elapsed() < NOT_FOUND_TTL).map(|(_, e)| e.clone())
    }

    fn slot(&self, target: &ModelTarget) -> Arc<Slot> {
        let mut entries = self.lock();
        if let Some(slot) = entries.get(target) {
            if slot.created.elapsed() < self.ttl {
                return slot.clone();
            }
        }
        let slot = Arc::new(Slot { created: Instant::now(), cell: OnceCell::new() });
        entries.insert(target.clone(), slot.clone());
        slot
    }

    fn remove_if_same(&self, target: &ModelTarget, slot: &Arc<Slot>) {
        let mut entries = self.lock();
        if entries.get(target).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            entries.remove(target);
        }
    }

    /// A poisoned lock only means another request panicked mid-insert; the map is still sound.
    fn lock(&self) -> MutexGuard<'_, HashMap<ModelTarget, Arc<Slot>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::VersionRef;

    fn target() -> ModelTarget {
        ModelTarget { model: "m".to_string(), version: VersionRef::Latest }
    }

    fn insert_slot(cache: &SignatureCache) -> Arc<Slot> {
        let slot = Arc::new(Slot { created: Instant::now(), cell: OnceCell::new() });
        cache.lock().insert(target(), slot.clone());
        slot
    }

    #[test]
    fn refusals_drop_the_signatures_at_most_once_a_second() {
        let cache = SignatureCache::new(SIGNATURE_TTL);
        insert_slot(&cache);
        // The first refusal drops them: it may be a new version.
        assert!(cache.invalidate(&target()));
        assert!(cache.lock().get(&target()).is_none());
        // Fetched again; a stream of refusals (bad requests, bisect sub-calls) keeps them.
        let fresh = insert_slot(&cache);
        for _ in 0..20 {
            assert!(!cache.invalidate(&target()));
        }
        assert!(Arc::ptr_eq(&cache.slot(&target()), &fresh));
        // Once the gap has passed, a refusal drops them again.
        let long_ago = Instant::now().checked_sub(MIN_REFRESH_GAP + Duration::from_millis(10)).unwrap();
        cache.last_dropped.lock().unwrap().insert(target(), long_ago);
        assert!(cache.invalidate(&target()));
        assert!(cache.lock().get(&target()).is_none());
    }
}
