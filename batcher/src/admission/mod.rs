//! Admission: whether the daemon takes a request on now, before it costs anything more.
//!
//! - [`memory`]: the daemon-wide budget of request bytes held at once.
//! - [`quota`]: per-caller plans of rate limits and quotas (`[quotas]`).

pub mod memory;
pub mod quota;

pub use memory::{MemoryBudget, Reservation};
pub use quota::{Quotas, StoreSetting};
