//! What the daemon tells operators: fed from the request path, never in its way.
//!
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.

pub mod metrics;

pub use metrics::Metrics;
