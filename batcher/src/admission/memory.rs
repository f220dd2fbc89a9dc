//! The daemon-wide budget of request memory (`max_body_bytes_in_flight`). A request reserves its
//! body's bytes as they arrive (so a client announcing a large body and sending nothing holds
//! nothing), then, once parsed, what its tensors really take; the reservation is held until the
//! answer is built. `max_queue` counts requests, not bytes: this bounds the memory a burst of
//! large uploads can take.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::request::CoreError;

pub struct MemoryBudget {
    bytes: Arc<Semaphore>,
    capacity: usize,
}

/// One request's share of the budget; given back when dropped.
pub struct Reservation {
    budget: Arc<Semaphore>,
    capacity: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> MemoryBudget {
        let capacity = bytes.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        MemoryBudget { bytes: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// An empty reservation for a new request.
    pub fn reservation(&self) -> Reservation {
        Reservation { budget: self.bytes.clone(), capacity: self.capacity, permit: None }
    }

    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

impl Reservation {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Holds `bytes` more; when the budget is spent, answers RESOURCE_EXHAUSTED (429) at once
    /// (backpressure nginx and clients understand) rather than queueing memory. A request that
    /// would need more than the whole budget can never be served: 413.
    pub fn grow(&mut self, bytes: usize) -> Result<(), CoreError> {
        if bytes == 0 {
            return Ok(());
        }
        if self.held().saturating_add(bytes) > self.capacity {
            return Err(CoreError::too_large(format!(
                "the request needs {} bytes of memory, more than max_body_bytes_in_flight ({})",
                self.held().saturating_add(bytes),
                self.capacity
            ))
            .with_reason("memory"));
        }
        let more = u32::try_from(bytes)
            .ok()
            .and_then(|n| self.budget.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                CoreError::exhausted("too many request bytes in flight in tfgate-batcher; retry shortly", 1)
                    .with_reason("memory")
            })?;
        match &mut self.permit {
            Some(permit) => permit.merge(more),
            None => self.permit = Some(more),
        }
        Ok(())
    }

    /// Holds exactly `bytes` (what the request takes now), giving back any excess.
    pub fn resize(&mut self, bytes: usize) -> Result<(), CoreError> {
        let held = self.held();
        if bytes > held {
            return self.grow(bytes - held);
        }
        if let Some(permit) = &mut self.permit {
            drop(permit.split(held - bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn reservations_grow_shrink_and_are_returned_when_dropped() {
        let budget = MemoryBudget::new(100);
        let mut first = budget.reservation();
        first.grow(30).unwrap();
        first.grow(30).unwrap();
        assert_eq!((first.held(), budget.available()), (60, 40));
        let mut second = budget.reservation();
        assert_eq!(second.grow(60).unwrap_err().code, Code::ResourceExhausted);
        second.grow(40).unwrap();
        first.resize(10).unwrap();
        assert_eq!((first.held(), budget.available()), (10, 50));
        drop(first);
        drop(second);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn a_request_larger_than_the_budget_is_refused_not_stuck() {
        let budget = MemoryBudget::new(10);
        let mut reservation = budget.reservation();
        let never = reservation.grow(11).unwrap_err();
        assert_eq!((never.code, never.http_status()), (Code::ResourceExhausted, 413));
        reservation.grow(6).unwrap();
        assert_eq!(reservation.grow(5).unwrap_err().http_status(), 413, "held and asked together");
        let mut other = budget.reservation();
        assert_eq!(other.grow(5).unwrap_err().http_status(), 429, "would fit once others are done");
        drop(reservation);
        other.grow(5).unwrap();
        assert!(other.grow(0).is_ok());
        assert_eq!(other.held(), 5);
    }
}
