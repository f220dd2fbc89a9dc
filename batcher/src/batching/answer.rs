//! A request's answer as the batches deliver it. A request that went alone, or fits in one
//! batch, is answered by one piece; a large one is split across batches whose answers may come
//! in any order: [`RowStream`] hands them over in request order, as soon as they can be, so an
//! ingress can write a large answer while later batches are still running and free each
//! batch's outputs once written.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::inbox::Msg;
use crate::convert::Outputs;
use crate::request::CoreError;

/// What one backend call was, for the logs of the requests it answered: shared by them all
/// (one allocation per call, no copy of any tensor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFacts {
    /// The call's number, unique in this daemon's run: the requests batched together share it.
    pub id: u64,
    /// Rows sent in the call, padding included.
    pub rows: usize,
    /// The backend target that answered.
    pub target: Arc<str>,
    /// When the call was sent (a request's queue time ends here).
    pub sent: Instant,
    /// How long the call took.
    pub backend: Duration,
    /// The model version that answered, as TF Serving said.
    pub version: Option<i64>,
    /// What the backend spent on the call: its learnt cost, else (nothing learnt yet) how long
    /// it took. A request's share of it is its rows' share of the batch.
    pub cost: Duration,
    /// The outputs TF Serving wrote in `tensor_content` (the others came in typed fields): a
    /// gRPC client gets its rows in the same encoding.
    pub packed: Vec<String>,
    /// Rows answered from the row cache or computed once for several rows: the call's facts,
    /// with no cost of their own (`cost` is zero), not counted as one of a request's batches.
    pub shared: bool,
}

/// Outputs for (part of) one request, as a batch sends them.
pub enum Piece {
    /// From a call made for this request alone.
    Whole(Arc<Outputs>, Arc<BatchFacts>),
    /// Rows `batch_rows` of a batch's outputs, which are the request's rows from
    /// `request_start` on.
    Rows { outputs: Arc<Outputs>, batch_rows: Range<usize>, request_start: usize, facts: Arc<BatchFacts> },
}

/// Some of a request's rows: rows `rows` of a batch's `outputs`.
pub struct RowPiece {
    pub outputs: Arc<Outputs>,
    pub rows: Range<usize>,
    pub facts: Arc<BatchFacts>,
}

/// A request's answer.
pub enum BatchAnswer {
    Whole(Arc<Outputs>, Arc<BatchFacts>),
    Rows(RowStream),
}

/// The pieces of a request's rows, in request order.
pub struct RowStream {
    answers: UnboundedReceiver<Result<Piece, CoreError>>,
    /// Rows the request has.
    rows: usize,
    /// The first request row not handed over yet.
    next: usize,
    /// Pieces that came before their turn, by their first request row.
    early: BTreeMap<usize, RowPiece>,
    /// `None` for a stream assembled from pieces already in hand.
    cancel: Option<CancelOnDrop>,
}

impl RowStream {
    pub(super) fn new(answers: UnboundedReceiver<Result<Piece, CoreError>>, rows: usize, cancel: CancelOnDrop) -> Self {
        RowStream { answers, rows, next: 0, early: BTreeMap::new(), cancel: Some(cancel) }
    }

    /// A request's `rows` rows from pieces in hand, each with its first request row.
    pub fn from_pieces(pieces: Vec<(usize, RowPiece)>, rows: usize) -> Self {
        let (_, answers) = tokio::sync::mpsc::unbounded_channel();
        RowStream { answers, rows, next: 0, early: pieces.into_iter().collect(), cancel: None }
    }

    /// Takes a piece that was already received.
    pub(super) fn hold(&mut self, piece: RowPiece, request_start: usize) {
        self.early.insert(request_start, piece);
    }

    /// Whether every row has been received (and is waiting to be handed over).
    pub fn all_received(&self) -> bool {
        self.early.values().map(|p| p.rows.len()).sum::<usize>() + self.next >= self.rows
    }

    /// The next rows in request order; `None` once all were handed over. After an error the
    /// rest of the request is not sent.
    pub async fn next(&mut self) -> Option<Result<RowPiece, CoreError>> {
        if self.next >= self.rows {
            if let Some(cancel) = self.cancel.as_mut() {
                cancel.armed = false;
            }
            return None;
        }
        loop {
            if let Some(piece) = self.early.remove(&self.next) {
                self.next += piece.rows.len();
                return Some(Ok(piece));
            }
            match self.answers.recv().await {
                Some(Ok(Piece::Rows { outputs, batch_rows, request_start, facts })) => {
                    self.early.insert(request_start, RowPiece { outputs, rows: batch_rows, facts });
                }
                Some(Ok(Piece::Whole(..))) => {
                    return Some(Err(CoreError::internal("a split request was answered whole")))
                }
                Some(Err(error)) => {
                    // The rest is not worth sending; the request was not cancelled, it failed.
                    if let Some(cancel) = self.cancel.as_mut() {
                        cancel.counts_as_cancelled = false;
                    }
                    self.next = self.rows;
                    return Some(Err(error));
                }
                None => {
                    self.next = self.rows;
                    return Some(Err(CoreError::internal("the batcher lost this request")));
                }
            }
        }
    }

    /// Every piece, in order (for an answer that cannot be written piece by piece).
    pub async fn collect(mut self) -> Result<Vec<RowPiece>, CoreError> {
        let mut pieces = Vec::new();
        while let Some(piece) = self.next().await {
            pieces.push(piece?);
        }
        Ok(pieces)
    }
}

/// Tells the model task when a request's answer is dropped before all its rows came (the
/// client went away), so rows not yet sent are removed from the queue.
pub(super) struct CancelOnDrop {
    pub inbox: UnboundedSender<Msg>,
    pub id: u64,
    pub armed: bool,
    /// False when the request failed (its error is counted with its status instead).
    pub counts_as_cancelled: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.inbox.send(Msg::Cancel { id: self.id, counted: self.counts_as_cancelled });
        }
    }
}
