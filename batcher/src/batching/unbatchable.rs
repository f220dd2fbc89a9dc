//! Signatures whose requests TF Serving refused when joined but answered one by one: a model
//! whose first dimension is not really a batch dimension although its signature says -1 (or
//! whose outputs do not follow the rows). Requests for it go alone from then on, so that a
//! bisection per batch does not cost every later batch its budget of calls; the knowledge
//! holds until the model's signatures change (a new version may batch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::convert::Signatures;
use crate::target::ModelTarget;

#[derive(Default)]
pub(crate) struct Unbatchable {
    /// Per target, per signature name: the signatures in force when it was learnt.
    learnt: Mutex<HashMap<ModelTarget, HashMap<String, Arc<Signatures>>>>,
}

impl Unbatchable {
    pub fn remember(&self, target: &ModelTarget, signature_name: &str, signatures: &Arc<Signatures>) {
        tracing::warn!(%target, signature_name, "joined requests refused, alone accepted: no longer batching them");
        self.lock().entry(target.clone()).or_default().insert(signature_name.to_string(), signatures.clone());
    }

    /// Whether requests for `signature_name` of `target`, converted with `signatures`, must
    /// go alone. A change of signatures forgets what was learnt.
    pub fn applies(&self, target: &ModelTarget, signature_name: &str, signatures: &Arc<Signatures>) -> bool {
        let mut learnt = self.lock();
        let Some(names) = learnt.get_mut(target) else {
            return false;
        };
        let Some(known) = names.get_mut(signature_name) else {
            return false;
        };
        if Arc::ptr_eq(known, signatures) {
            return true;
        }
        if **known == **signatures {
            // Fetched again, unchanged (TTL): keep the new copy so the next check is cheap.
            *known = signatures.clone();
            return true;
        }
        names.remove(signature_name);
        false
    }

    /// A poisoned lock only means a panic elsewhere; the map is still sound.
    fn lock(&self) -> MutexGuard<'_, HashMap<ModelTarget, HashMap<String, Arc<Signatures>>>> {
        self.learnt.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::SignatureSpec;
    use crate::target::VersionRef;

    fn signatures(names: &[&str]) -> Arc<Signatures> {
        Arc::new(Signatures { by_name: names.iter().map(|n| (n.to_string(), SignatureSpec::default())).collect() })
    }

    #[test]
    fn learnt_until_the_signatures_change() {
        let target = ModelTarget { model: "m".to_string(), version: VersionRef::Latest };
        let learnt = Unbatchable::default();
        let v1 = signatures(&["serving_default"]);
        assert!(!learnt.applies(&target, "serving_default", &v1));
        learnt.remember(&target, "serving_default", &v1);
        assert!(learnt.applies(&target, "serving_default", &v1));
        assert!(!learnt.applies(&target, "other", &v1));
        // Refetched unchanged: still applies.
        assert!(learnt.applies(&target, "serving_default", &signatures(&["serving_default"])));
        // A new version with other signatures: batching is tried again.
        let v2 = signatures(&["serving_default", "extra"]);
        assert!(!learnt.applies(&target, "serving_default", &v2));
        assert!(!learnt.applies(&target, "serving_default", &v1));
    }
}
