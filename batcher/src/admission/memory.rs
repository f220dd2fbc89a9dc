//! The daemon-wide budget of request-body bytes held at once (`max_body_bytes_in_flight`), from
//! reading a body to answering it. A parsed body takes many times its size (a JSON number
//! becomes a 32-byte value, then a tensor), and `max_queue` counts requests, not bytes: this
//! bounds the memory a burst of large uploads can take.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::request::CoreError;

pub struct MemoryBudget {
    bytes: Arc<Semaphore>,
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> MemoryBudget {
        MemoryBudget { bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))) }
    }

    /// Reserves `len` bytes until the returned permit is dropped; when the budget is spent,
    /// answers 429 at once (backpressure nginx and clients understand) rather than queueing
    /// memory.
    pub fn reserve(&self, len: usize) -> Result<OwnedSemaphorePermit, CoreError> {
        let permits = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
        self.bytes
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| CoreError::exhausted("too many request bytes in flight in tfgate-batcher; retry shortly", 1))
    }

    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_returned_when_dropped() {
        let budget = MemoryBudget::new(100);
        let first = budget.reserve(60).unwrap();
        assert_eq!(budget.reserve(60).unwrap_err().code, tonic::Code::ResourceExhausted);
        let small = budget.reserve(40).unwrap();
        drop(first);
        drop(small);
        assert_eq!(budget.available(), 100);
        assert!(budget.reserve(100).is_ok());
    }

    #[test]
    fn a_request_larger_than_the_budget_is_refused_not_stuck() {
        let budget = MemoryBudget::new(10);
        assert_eq!(budget.reserve(11).unwrap_err().code, tonic::Code::ResourceExhausted);
        assert!(budget.reserve(0).is_ok());
    }
}
