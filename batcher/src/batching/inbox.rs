//! What a model task's inbox carries: requests, cancellations, finished batches and reloaded
//! limits, from the requests' side (`Batcher`, `answer`) and the batches' (`backend_call`).

use std::sync::Arc;
use std::time::Duration;

use super::batch::{Arrival, BatchId, Limits, RequestId};
use super::key::GroupKey;
use super::queue_slots::QueueSlot;
use super::RequestData;

pub(super) enum Msg {
    Submit(Box<Submission>),
    /// The client went away (`counted` in `rejected{cancelled}`), or the request failed: its
    /// rows not yet sent are dropped.
    Cancel {
        id: RequestId,
        counted: bool,
    },
    /// A batch finished; its backend slot is free. `latency` when it was one successful call
    /// (what the policy learns from), `None` when it was skipped, failed or split.
    Done {
        batch: BatchId,
        latency: Option<Duration>,
        /// Its call was given up (its deadline passed) while the backend may still run it.
        abandoned: bool,
    },
    /// A reload changed the model's batching limits.
    Reconfigure(Limits),
}

pub(super) struct Submission {
    pub arrival: Arrival<GroupKey>,
    pub data: Arc<RequestData>,
    /// Held while the request is queued: the queue bound.
    pub permit: QueueSlot,
}
