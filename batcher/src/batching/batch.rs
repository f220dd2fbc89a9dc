//! The policy's vocabulary: what comes in (an [`Arrival`]), what goes out (a [`Batch`] of
//! [`Part`]s, or when to look again), and why a batch was sent.

use std::ops::Range;
use std::time::{Duration, Instant};

pub use crate::request::Class;

pub type RequestId = u64;
pub type BatchId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_batch_size: usize,
    /// How batches are released.
    pub dispatch: Dispatch,
    /// Adaptive: the longest a partial batch may wait for more rows while the backend could take
    /// it (`None`: as long as waiting is expected to pay, at most one learnt launch cost).
    /// Fixed: how long a partial batch waits, from its oldest request.
    pub max_delay: Option<Duration>,
    pub max_inflight: usize,
    /// Ascending; empty means no padding.
    pub allowed_batch_sizes: Vec<usize>,
}

/// How batches are released (`dispatch` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatch {
    /// Learn the backend's costs and parallelism and the traffic's rhythm; send a partial batch
    /// when the backend can run it and more rows are not expected soon enough to pay for waiting.
    #[default]
    Adaptive,
    /// As TF Serving does: a batch goes when full, or `max_delay` after its oldest request, on a
    /// free slot.
    Fixed,
}

impl Dispatch {
    pub fn parse(name: &str) -> Option<Dispatch> {
        match name {
            "adaptive" => Some(Dispatch::Adaptive),
            "fixed" => Some(Dispatch::Fixed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dispatch::Adaptive => "adaptive",
            Dispatch::Fixed => "fixed",
        }
    }
}

/// Whether a request was taken into the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Queued,
    /// It cannot be answered before its deadline, by what the queue ahead of it and the
    /// backend's learnt cost say: refused now rather than when its caller gives up. `retry_after`:
    /// when the queue is expected to have room for it.
    Refused {
        retry_after: Duration,
    },
}

/// A request entering the queue.
#[derive(Debug, Clone)]
pub struct Arrival<G> {
    pub id: RequestId,
    pub group: G,
    /// False for a request that must be sent alone (e.g. columnar inputs without a shared
    /// dimension 0): it forms a group of its own and is never padded or split.
    pub mergeable: bool,
    pub subject: String,
    pub rows: usize,
    pub arrived: Instant,
    pub deadline: Instant,
    pub class: Class,
}

/// Why a batch was sent now (exported as a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// It reached `max_batch_size`.
    Full,
    /// The backend could run it and no more rows were expected soon enough to wait for.
    SlotFree,
    /// It waited for more rows that were expected, and went when they came or the wait ended.
    Waited,
    /// Fixed dispatch: `max_delay` passed since its oldest request arrived.
    DelayElapsed,
    /// A request that cannot share a batch.
    Alone,
    /// Sent beside the batches in flight to learn whether the backend runs them side by side.
    Probe,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Full => "full",
            Reason::SlotFree => "slot_free",
            Reason::Waited => "waited",
            Reason::DelayElapsed => "delay_elapsed",
            Reason::Alone => "alone",
            Reason::Probe => "probe",
        }
    }
}

/// Rows of one request in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub id: RequestId,
    /// The request's own row indices.
    pub rows: Range<usize>,
    /// These are its last rows: the request has left the queue.
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<G> {
    /// For [`ModelQueue::batch_done`](super::policy::ModelQueue::batch_done).
    pub id: BatchId,
    pub group: G,
    /// In batch order: part i's rows follow part i-1's.
    pub parts: Vec<Part>,
    pub rows: usize,
    /// `rows` rounded up to an allowed batch size (equal to `rows` without padding).
    pub padded_rows: usize,
    pub reason: Reason,
    /// Arrival of the oldest request in the batch, for the queue-delay metric.
    pub oldest_arrival: Instant,
    /// What the backend is expected to spend on it, by the learnt cost (`None` while nothing is
    /// known): the accelerator time its requests are metered.
    pub cost: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<G> {
    Dispatch(Batch<G>),
    /// Nothing to send before this instant (a delay or a deadline), unless something happens.
    WaitUntil(Instant),
    /// These requests (with the rows of each sent already) cannot finish before their deadline
    /// even if sent now: they leave the queue unsent.
    Late(Vec<(RequestId, usize)>),
    /// Nothing to do until something happens.
    Idle,
}

/// The smallest allowed size holding `rows` (or `rows` when none does or none are set).
pub fn padded_size(rows: usize, allowed: &[usize]) -> usize {
    allowed.iter().copied().find(|&size| size >= rows).unwrap_or(rows)
}
