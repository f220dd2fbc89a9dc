//! What the daemon tells operators: fed from the request path, never in its way.
//!
//! - [`logs`]: the request logs, [`audit`] (one JSON line per request) and [`prediction_log`]
//!   (sampled requests and answers as TF Serving `PredictionLog` records), each written by a
//!   thread of its own fed through a bounded [`queue`] that a request never waits on; their
//!   files are [`log_file`]s, their timestamps from [`crate::clock`].

pub mod audit;
pub mod call_log;
pub mod log_file;
pub mod logs;
pub mod prediction_log;
pub mod queue;

pub use logs::{Logs, LogsConfig};
