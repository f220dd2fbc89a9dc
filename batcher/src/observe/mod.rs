//! What the daemon tells operators: fed from the request path, never in its way.
//!
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`log_limit`]: warnings that could repeat at any rate, logged at a bounded one.
//! - [`logs`]: the request logs, [`audit`] (one JSON line per request) and [`prediction_log`]
//!   (sampled requests and answers as TF Serving `PredictionLog` records), each written by a
//!   thread of its own fed through a bounded [`queue`] that a request never waits on; their
//!   files are [`log_file`]s, their timestamps from [`clock`].

pub mod audit;
pub mod call_log;
pub mod clock;
pub mod log_file;
pub mod log_limit;
pub mod logs;
pub mod metrics;
pub mod prediction_log;
pub mod queue;

pub use logs::{Logs, LogsConfig};
pub use metrics::Metrics;
