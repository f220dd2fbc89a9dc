//! A model's batching settings (`[batching]`, `[models.NAME]`), as the configuration resolved
//! them.

use std::time::Duration;

use super::Dispatch;

/// Default of `latency_budget_us`.
pub const DEFAULT_LATENCY_BUDGET: Duration = Duration::from_millis(5);

/// Batching settings of one model (or the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most rows in one backend Predict call.
    pub max_batch_size: u32,
    /// How batches are released: learnt (adaptive) or TF Serving's fixed delay.
    pub dispatch: Dispatch,
    /// Adaptive: the most a partial batch waits for more rows while the backend could run it.
    pub latency_budget: Duration,
    /// Adaptive: a hard cap on that wait, where set. Fixed: the delay (unset: 0).
    pub max_delay: Option<Duration>,
    /// Backend calls in flight at once for this model.
    pub max_inflight_batches: u32,
    /// Requests waiting for this model beyond which new ones get 429.
    pub max_queue: u32,
    /// How long a request may wait before it gets 504; also bounds each backend call.
    pub timeout: Duration,
    /// Batch sizes a batch is padded up to (ascending, the last equals `max_batch_size`);
    /// empty: no padding.
    pub allowed_batch_sizes: Vec<u32>,
}

impl BatchSettings {
    /// The settings as `key=value` pairs, in the config's own units.
    pub fn describe(&self) -> String {
        format!(
            "max_batch_size={} dispatch={} latency_budget_us={} max_delay_us={} max_inflight_batches={} max_queue={} \
             timeout_ms={} allowed_batch_sizes={:?}",
            self.max_batch_size,
            self.dispatch.as_str(),
            self.latency_budget.as_micros(),
            self.max_delay.map_or("unset".to_string(), |d| d.as_micros().to_string()),
            self.max_inflight_batches,
            self.max_queue,
            self.timeout.as_millis(),
            self.allowed_batch_sizes,
        )
    }
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_batch_size: 64,
            dispatch: Dispatch::Adaptive,
            latency_budget: DEFAULT_LATENCY_BUDGET,
            max_delay: None,
            max_inflight_batches: 2,
            max_queue: 4096,
            timeout: Duration::from_millis(10_000),
            allowed_batch_sizes: Vec::new(),
        }
    }
}
