//! A value that a reload replaces as a whole. Readers take a snapshot (an `Arc`) and keep it for
//! the whole of their work, so a reload never changes anything under a request in progress: a
//! backend call started on the old pool finishes on it, and the old pool goes away with its
//! last call.

use std::sync::{Arc, RwLock};

pub struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    pub fn new(value: T) -> Swap<T> {
        Swap::from_arc(Arc::new(value))
    }

    pub fn from_arc(value: Arc<T>) -> Swap<T> {
        Swap(RwLock::new(value))
    }

    /// The current value. The lock is held only for the `Arc` clone; a poisoned lock still
    /// holds a whole `Arc` (nothing is ever half-written under it), so it is used as is.
    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs `value` for every later `get`; returns the previous one.
    pub fn replace(&self, value: Arc<T>) -> Arc<T> {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_outlive_a_replacement() {
        let swap = Swap::new(1);
        let before = swap.get();
        let old = swap.replace(Arc::new(2));
        assert_eq!((*before, *old, *swap.get()), (1, 1, 2));
    }
}
