//! Dynamic batching of Predict calls, per model.
//!
//! Pure core first:
//! - [`policy`] (+ `decide`, `group`, [`learn`]): when a batch goes, which rows it takes (fair
//!   across callers), padding, splitting, expiry, what it learns of the backend and the traffic;
//!   no I/O, no clock. `sim_tests` runs it against a simulated accelerator and clients.
//! - [`key`]: which requests may share a batch. [`rows`]: joining tensors and checking outputs.
//!   `unbatchable`: the signatures found, by bisection, not to batch after all.
//!
//! Thin async shell:
//! - [`Batcher`]: the entry point for a request; one task per model (`model_task`) owns the
//!   queue; each batch runs in its own task (`backend_call`) through the backend pool in force
//!   when it is sent. `models` starts the tasks and hands them reloaded settings.
//!
//! A request's rows come back as [`Piece`]s on its own channel: one per batch it was part of
//! (a large request is split across several). When the client goes away, the request future
//! is dropped and a guard tells the model task, which drops the rows not sent yet.

mod answer;
mod backend_call;
mod batch;
mod decide;
mod group;
mod inbox;
pub mod key;
pub mod learn;
mod model_task;
mod models;
pub mod policy;
mod queue_slots;
pub mod rows;
mod settings;
#[cfg(test)]
mod sim;
mod timer;
mod unbatchable;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc::{self, UnboundedSender};

use self::answer::CancelOnDrop;
pub use self::answer::{BatchAnswer, BatchFacts, Piece, RowPiece, RowStream};
pub use self::batch::Dispatch;
use self::inbox::{Msg, Submission};
use self::models::{ModelHandle, Models};
use self::policy::Arrival;
use self::queue_slots::Refusal;
pub use self::settings::{BatchSettings, DEFAULT_LATENCY_BUDGET};
use self::unbatchable::Unbatchable;
use crate::backend::{Pool, SignatureCache};
use crate::convert::{Signatures, Tensor};
use crate::metrics::Metrics;
use crate::request::{CoreError, PredictCall};
use crate::swap::Swap;
use crate::target::ModelTarget;
use crate::trace::{CallSpan, QueueWait};

/// What batches need, shared by every model task.
pub(crate) struct Shared {
    /// The current backend pool (a reload may replace it; each call uses the one it started on).
    pub pool: Arc<Swap<Pool>>,
    pub signatures: Arc<SignatureCache>,
    pub metrics: Arc<Metrics>,
    pub unbatchable: Unbatchable,
    /// Numbers the backend calls (`BatchFacts::id`).
    pub calls: AtomicU64,
}

/// One request as the model task and the batches hold it.
pub(crate) struct RequestData {
    pub target: ModelTarget,
    pub signature_name: String,
    pub inputs: BTreeMap<String, Tensor>,
    pub signatures: Arc<Signatures>,
    /// Rows the request carries.
    pub rows: usize,
    pub arrived: Instant,
    pub deadline: Instant,
    pub request_id: String,
    /// The caller's `traceparent`, for the backend when tracing is off.
    pub traceparent: Option<String>,
    /// The call's span, which the batches carrying it link to.
    pub trace: CallSpan,
    /// The call's wait in the queue, ended when its first batch is sent.
    pub queued: QueueWait,
    pub reply: UnboundedSender<Result<Piece, CoreError>>,
}

pub struct Batcher {
    shared: Arc<Shared>,
    models: Mutex<Models>,
    next_id: AtomicU64,
}

impl Batcher {
    /// `defaults` (`[batching]`) apply to every model but those of `overrides` (`[models.NAME]`).
    pub fn new(
        defaults: &BatchSettings,
        overrides: &BTreeMap<String, BatchSettings>,
        pool: Arc<Swap<Pool>>,
        signatures: Arc<SignatureCache>,
        metrics: Arc<Metrics>,
    ) -> Batcher {
        Batcher {
            shared: Arc::new(Shared {
                pool,
                signatures,
                metrics,
                unbatchable: Unbatchable::default(),
                calls: AtomicU64::new(1),
            }),
            models: Mutex::new(Models::new(defaults, overrides)),
            next_id: AtomicU64::new(1),
        }
    }

    /// Applies the batching settings of a reloaded configuration (see [`Models::reconfigure`]).
    pub fn reconfigure(&self, defaults: &BatchSettings, overrides: &BTreeMap<String, BatchSettings>) {
        self.lock_models().reconfigure(defaults, overrides, &self.shared.metrics);
    }

    /// Queues the request and waits for all its rows (or the first error).
    pub async fn predict(&self, call: PredictCall) -> Result<BatchAnswer, CoreError> {
        let model = self.model(&call.target.model);
        let caller = call.info.caller.key();
        let permit = match model.queue_slots.try_take(&caller) {
            Ok(permit) => permit,
            Err(refusal) => {
                let (reason, why) = match refusal {
                    Refusal::Full => ("queue_full", format!("max_queue = {}", model.settings.max_queue)),
                    Refusal::Share => ("caller_share", "this caller's share of max_queue".to_string()),
                };
                self.shared.metrics.rejected.inc(&[&call.target.model, reason]);
                return Err(CoreError::exhausted(
                    format!("too many requests queued for model {} ({why}); retry later", call.target.model),
                    1,
                )
                .with_reason(reason));
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let signature = call.signatures.by_name.get(&call.signature_name);
        let grouping = match signature {
            Some(signature)
                if key::outputs_split_by_rows(&signature.outputs)
                    && !self.shared.unbatchable.applies(&call.target, &call.signature_name, &call.signatures) =>
            {
                key::grouping(id, &call.target.version, &call.signature_name, &call.inputs, &signature.inputs)
            }
            _ => key::alone(id),
        };
        let info = call.info;
        let deadline = info.deadline.min(info.received + model.settings.timeout);
        let (reply, mut answers) = mpsc::unbounded_channel();
        let data = Arc::new(RequestData {
            target: call.target,
            signature_name: call.signature_name,
            inputs: call.inputs,
            signatures: call.signatures,
            rows: grouping.rows,
            arrived: info.received,
            deadline,
            request_id: info.request_id,
            traceparent: info.traceparent,
            queued: QueueWait::begin(&info.trace),
            trace: info.trace,
            reply,
        });
        let rows = grouping.rows;
        let submission = Submission {
            arrival: Arrival {
                id,
                group: grouping.key,
                mergeable: grouping.mergeable,
                subject: caller,
                rows,
                arrived: info.received,
                deadline,
                class: call.class,
            },
            data,
            permit,
        };
        if model.inbox.send(Msg::Submit(Box::new(submission))).is_err() {
            return Err(CoreError::unavailable("the batcher is shutting down"));
        }
        let mut cancel = CancelOnDrop { inbox: model.inbox.clone(), id, armed: true, counts_as_cancelled: true };
        // The first piece decides the answer's form; a split request's later pieces are
        // handed over as they come (see `RowStream`).
        match answers.recv().await {
            Some(Ok(Piece::Whole(outputs, facts))) => {
                cancel.armed = false;
                Ok(BatchAnswer::Whole(outputs, facts))
            }
            Some(Ok(Piece::Rows { outputs, batch_rows, request_start, facts })) => {
                let mut stream = RowStream::new(answers, rows, cancel);
                stream.hold(RowPiece { outputs, rows: batch_rows, facts }, request_start);
                Ok(BatchAnswer::Rows(stream))
            }
            Some(Err(error)) => {
                cancel.counts_as_cancelled = false;
                Err(error)
            }
            None => Err(CoreError::internal("the batcher lost this request")),
        }
    }

    /// The model's task, started on first use.
    fn model(&self, name: &str) -> ModelHandle {
        self.lock_models().handle(name, &self.shared)
    }

    fn lock_models(&self) -> MutexGuard<'_, Models> {
        // Poisoned only by a panic elsewhere; the map of handles is still whole.
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }
}
