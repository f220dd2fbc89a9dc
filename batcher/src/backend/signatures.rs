//! Signatures per model version, fetched with GetModelMetadata and kept in memory.
//!
//! Entries expire after a TTL, because `Latest` and labels can start pointing at a version with
//! another signature when TF Serving loads a new version; [`SignatureCache::invalidate`] drops
//! one at once (done when the backend refuses a Predict as malformed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backend, BackendError};
use crate::convert::Signatures;
use crate::target::ModelTarget;

/// How long a fetched signature is trusted.
pub const SIGNATURE_TTL: Duration = Duration::from_secs(60);

pub struct SignatureCache {
    ttl: Duration,
    entries: Mutex<HashMap<ModelTarget, Entry>>,
}

struct Entry {
    fetched_at: Instant,
    signatures: Arc<Signatures>,
}

impl SignatureCache {
    pub fn new(ttl: Duration) -> SignatureCache {
        SignatureCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The signatures of `target`, from memory or from the backend. Concurrent misses may each
    /// fetch; the result is the same and the cost is one extra metadata call.
    pub async fn get(
        &self,
        backend: &Backend,
        target: &ModelTarget,
        timeout: Duration,
    ) -> Result<Arc<Signatures>, BackendError> {
        if let Some(signatures) = self.cached(target) {
            return Ok(signatures);
        }
        let response = backend.model_metadata(target, timeout).await?;
        let signatures =
            Signatures::from_metadata(&response).map_err(|e| BackendError::malformed(e.message))?;
        let signatures = Arc::new(signatures);
        self.lock().insert(
            target.clone(),
            Entry {
                fetched_at: Instant::now(),
                signatures: signatures.clone(),
            },
        );
        Ok(signatures)
    }

    pub fn invalidate(&self, target: &ModelTarget) {
        self.lock().remove(target);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn cached(&self, target: &ModelTarget) -> Option<Arc<Signatures>> {
        let entries = self.lock();
        let entry = entries.get(target)?;
        (entry.fetched_at.elapsed() < self.ttl).then(|| entry.signatures.clone())
    }

    /// A poisoned lock only means another request panicked mid-insert; the map is still sound.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ModelTarget, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
