//! A model's `max_queue`, shared fairly between callers: one caller may hold at most
//! `max_queue / (callers + 1)` places, where `callers` counts those with requests queued, itself
//! included. So a caller flooding the queue hits its share while there is still room for the
//! others, and a newcomer always finds some: with n callers at their share, n/(n+1) of the queue
//! is taken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct QueueSlots {
    state: Mutex<State>,
}

struct State {
    limit: usize,
    total: usize,
    by_caller: HashMap<String, usize>,
}

/// Why a request could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every place is taken.
    Full,
    /// This caller holds its share already.
    Share,
}

/// One request's place; given back when dropped (the request left the queue).
pub struct QueueSlot {
    slots: Arc<QueueSlots>,
    caller: String,
}

impl QueueSlots {
    pub fn new(limit: usize) -> Arc<QueueSlots> {
        Arc::new(QueueSlots { state: Mutex::new(State { limit, total: 0, by_caller: HashMap::new() }) })
    }

    /// A new bound (a reload): requests queued stay; new ones see the new bound.
    pub fn set_limit(&self, limit: usize) {
        self.lock().limit = limit;
    }

    pub fn try_take(self: &Arc<Self>, caller: &str) -> Result<QueueSlot, Refusal> {
        let mut state = self.lock();
        if state.total >= state.limit {
            return Err(Refusal::Full);
        }
        let held = state.by_caller.get(caller).copied().unwrap_or(0);
        let others = state.by_caller.len() - usize::from(held > 0);
        let share = (state.limit / (others + 2)).max(1);
        if held >= share {
            return Err(Refusal::Share);
        }
        state.total += 1;
        *state.by_caller.entry(caller.to_string()).or_default() += 1;
        Ok(QueueSlot { slots: self.clone(), caller: caller.to_string() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the counts half-updated: each update is one statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(held) = state.by_caller.get_mut(&self.caller) {
            *held -= 1;
            if *held == 0 {
                state.by_caller.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_caller_hits_its_share_before_others_are_refused() {
        let slots = QueueSlots::new(200);
        // Alone, a caller may take half.
        let flood: Vec<QueueSlot> = std::iter::from_fn(|| slots.try_take("flood").ok()).collect();
        assert_eq!(flood.len(), 100);
        assert_eq!(slots.try_take("flood").err(), Some(Refusal::Share));
        // Two others arrive: each gets in, up to a third of the queue (the flooder is over its
        // share now and gets nothing more until it drains).
        let a: Vec<QueueSlot> = (0..40).map(|_| slots.try_take("a").unwrap()).collect();
        let b: Vec<QueueSlot> = (0..40).map(|_| slots.try_take("b").unwrap()).collect();
        assert_eq!(slots.try_take("flood").err(), Some(Refusal::Share));
        drop(flood);
        assert!(slots.try_take("flood").is_ok(), "after draining it gets its share again");
        assert_eq!((a.len(), b.len()), (40, 40));
    }

    #[test]
    fn the_bound_holds_and_places_come_back() {
        let slots = QueueSlots::new(4);
        let taken: Vec<QueueSlot> = ["a", "b", "c", "d", "e"].iter().filter_map(|c| slots.try_take(c).ok()).collect();
        assert_eq!(taken.len(), 4, "one place each, up to the bound");
        assert_eq!(slots.try_take("f").err(), Some(Refusal::Full));
        drop(taken);
        assert_eq!(slots.lock().total, 0);
        assert!(slots.lock().by_caller.is_empty());
        slots.set_limit(1);
        let one = slots.try_take("a").unwrap();
        assert_eq!(slots.try_take("b").err(), Some(Refusal::Full));
        drop(one);
    }
}
