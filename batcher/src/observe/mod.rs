//! What the daemon tells operators: fed from the request path, never in its way.
//!
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`log_limit`]: warnings that could repeat at any rate, logged at a bounded one.

pub mod log_limit;
pub mod metrics;

pub use metrics::Metrics;
