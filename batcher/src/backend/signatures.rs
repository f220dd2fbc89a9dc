//! Signatures per model version, fetched with GetModelMetadata and kept in memory.
//!
//! `Latest` and labels can start pointing at another version when TF Serving loads one, so an
//! entry is refreshed when a Predict answer names a version other than the one its metadata
//! came from ([`SignatureCache::observe_version`]), when the backend refuses a Predict as
//! malformed ([`SignatureCache::invalidate`]), and after a TTL in any case. Concurrent misses
//! for one target share a single fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tokio::sync::OnceCell;

use super::{BackendError, Pool};
use crate::convert::Signatures;
use crate::target::ModelTarget;

/// How long a fetched signature is trusted.
pub const SIGNATURE_TTL: Duration = Duration::from_secs(60);

pub struct SignatureCache {
    ttl: Duration,
    entries: Mutex<HashMap<ModelTarget, Arc<Slot>>>,
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
        SignatureCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The signatures of `target`, from memory or from the backend.
    pub async fn get(
        &self,
        pool: &Pool,
        target: &ModelTarget,
        timeout: Duration,
    ) -> Result<Arc<Signatures>, BackendError> {
        let slot = self.slot(target);
        let fetched = slot
            .cell
            .get_or_try_init(|| async {
                pool.metrics.signature_fetches.inc(&[&target.model]);
                let response = pool.model_metadata(target, timeout).await?;
                let signatures =
                    Signatures::from_metadata(&response).map_err(|e| BackendError::malformed(e.message))?;
                let version = match response.model_spec.and_then(|s| s.version_choice) {
                    Some(VersionChoice::Version(v)) => Some(v),
                    _ => None,
                };
                Ok::<_, BackendError>(Fetched { signatures: Arc::new(signatures), version })
            })
            .await;
        match fetched {
            Ok(fetched) => Ok(fetched.signatures.clone()),
            Err(e) => {
                // Failures are not cached: the next request asks again.
                self.remove_if_same(target, &slot);
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

    pub fn invalidate(&self, target: &ModelTarget) {
        self.lock().remove(target);
    }

    pub fn clear(&self) {
        self.lock().clear();
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
