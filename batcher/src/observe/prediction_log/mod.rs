//! The prediction log (`[prediction_log]`): a sample of Predict calls, each written with its
//! own inputs and its own rows of the outputs as a `tensorflow.serving.PredictionLog` in
//! TFRecord files (or as JSON lines), for TensorFlow's tooling (`tf.data.TFRecordDataset`,
//! `prediction_log_pb2`): model analysis, warm-up data, replay.
//!
//! - [`sampling`]: which requests, decided by a hash of the request id, up front, so that the
//!   inputs of a request that is not kept are never copied.
//! - [`redact`]: tensors dropped or replaced by keyed hashes, by name.
//! - [`entry`]: the record built from what the request path handed over.
//! - [`tfrecord`]: the framing; [`rotation`]: file names, sizes, ages, retention.
//! - `writer`: the thread that does the work.

pub mod entry;
pub mod redact;
pub mod rotation;
pub mod sampling;
pub mod tfrecord;
mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use entry::{OutputRows, PredictionEntry};
pub use redact::{HashKey, RedactSettings, Redaction};
pub use rotation::{Format, Rotation};
pub use sampling::Rates;
pub use writer::{PredictionCommand, PredictionWriter, WriterSettings};

use super::queue::{LogQueue, Refused};
use crate::convert::Tensor;
use crate::metrics::Metrics;

/// How long the daemon waits at shutdown for the queued records to be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// What an entry holds besides its tensors, roughly.
const ENTRY_BYTES: usize = 512;

/// `[prediction_log]` (and the models' `prediction_log_sampling_rate`), checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionLogSettings {
    pub dir: PathBuf,
    pub format: Format,
    pub rates: Rates,
    pub rotation: Rotation,
    pub redact: RedactSettings,
    /// Entries waiting to be written, at most ...
    pub queue_size: usize,
    /// ... holding at most this many bytes of tensors.
    pub queue_bytes: usize,
}

impl PredictionLogSettings {
    fn writer(&self) -> WriterSettings {
        WriterSettings {
            dir: self.dir.clone(),
            format: self.format,
            rotation: self.rotation.clone(),
            redaction: Redaction::from_settings(&self.redact),
        }
    }
}

pub struct PredictionLog {
    queue: Arc<LogQueue<PredictionWriter>>,
    metrics: Arc<Metrics>,
    redaction: Redaction,
    pub settings: PredictionLogSettings,
}

impl PredictionLog {
    /// Opens the first file and starts the writer thread.
    pub fn start(settings: &PredictionLogSettings, metrics: Arc<Metrics>) -> Result<PredictionLog, String> {
        let writer = PredictionWriter::open(settings.writer(), metrics.clone())
            .map_err(|e| format!("prediction_log.dir: cannot write files in {}: {e}", settings.dir.display()))?;
        let queue = LogQueue::start("tfgate-predlog", writer, settings.queue_size, settings.queue_bytes)
            .map_err(|e| format!("prediction log: cannot start its thread: {e}"))?;
        Ok(PredictionLog::with_queue(Arc::new(queue), settings, metrics))
    }

    fn with_queue(
        queue: Arc<LogQueue<PredictionWriter>>,
        settings: &PredictionLogSettings,
        metrics: Arc<Metrics>,
    ) -> PredictionLog {
        PredictionLog {
            queue,
            metrics,
            redaction: Redaction::from_settings(&settings.redact),
            settings: settings.clone(),
        }
    }

    /// The same writer with reloaded settings: it closes its file and goes on with them in a
    /// new one. `None` when the queue's size changed (a new log must be started).
    pub fn reopen(&self, settings: &PredictionLogSettings) -> Option<PredictionLog> {
        if settings.queue_size != self.settings.queue_size || settings.queue_bytes != self.settings.queue_bytes {
            return None;
        }
        self.queue.command(PredictionCommand::Reopen(Box::new(settings.writer())));
        Some(PredictionLog::with_queue(self.queue.clone(), settings, self.metrics.clone()))
    }

    /// Whether the request is kept: the rate it was kept at.
    pub fn sample(&self, model: &str, request_id: &str) -> Option<f64> {
        self.settings.rates.decide(model, request_id)
    }

    /// The inputs the log will record (those redaction drops are dropped now).
    pub fn keep_inputs(&self, mut inputs: BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
        inputs.retain(|name, _| self.redaction.keeps(name));
        inputs
    }

    /// Queues an entry; never waits.
    pub fn submit(&self, entry: PredictionEntry) {
        let tensors: usize = entry.inputs.values().map(|t| t.values.heap_bytes()).sum();
        let bytes = ENTRY_BYTES + tensors + entry.outputs.bytes();
        match self.queue.try_push(entry, bytes) {
            Ok(()) => {}
            Err(Refused::Full) => self.metrics.prediction_log_dropped.inc(&["queue_full"]),
            Err(Refused::Closed) => self.metrics.prediction_log_dropped.inc(&["closed"]),
        }
    }

    /// Writes what is queued and closes the file.
    pub fn close(&self) {
        self.queue.close(CLOSE_TIMEOUT);
    }
}
