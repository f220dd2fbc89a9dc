//! Admission: whether the daemon takes a request on now, before it costs anything more.
//!
//! - [`memory`]: the daemon-wide budget of request bytes held at once.

pub mod memory;

pub use memory::{MemoryBudget, Reservation};
