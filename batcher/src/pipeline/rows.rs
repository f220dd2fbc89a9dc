//! A Predict call's rows as its batches answer them, observed: each piece's batch goes to the
//! call's log (and its rows to the prediction log, for a kept call); the log ends when the
//! encoder says the answer was written, or failed.

use crate::batching::{RowPiece, RowStream};
use crate::observe::call_log::{CallLog, Ending};
use crate::request::CoreError;

/// A call's rows as its batches answer them, observed: each piece's batch goes to the audit
/// line (and its rows to the prediction log, for a kept call); the log ends with the stream.
pub struct ObservedRows {
    stream: RowStream,
    /// Attached by the pipeline once the call's outcome is known.
    pub(super) log: Option<Box<CallLog>>,
    /// Whether the answer's status went out before its rows (REST writes row by row): an error
    /// after that point ends the answer midway, with the status already sent.
    status_sent: bool,
    bytes_out: Option<u64>,
}

impl ObservedRows {
    pub fn new(stream: RowStream) -> ObservedRows {
        ObservedRows { stream, log: None, status_sent: false, bytes_out: None }
    }

    pub fn all_received(&self) -> bool {
        self.stream.all_received()
    }

    /// The next rows in call order (`copy`: the prediction log copies a kept call's rows now,
    /// as the piece will be freed once written); `None` after the last. The encoder then ends
    /// the call with [`ObservedRows::finish`] or [`ObservedRows::fail`].
    pub async fn next(&mut self, copy: bool) -> Option<Result<RowPiece, CoreError>> {
        let piece = self.stream.next().await;
        if let (Some(Ok(piece)), Some(log)) = (&piece, self.log.as_mut()) {
            log.batch(&piece.facts, piece.rows.len());
            log.output_rows(&piece.outputs, piece.rows.clone(), copy);
        }
        piece
    }

    /// Every piece, in order, kept (for an answer written whole).
    pub async fn collect(&mut self) -> Result<Vec<RowPiece>, CoreError> {
        let mut pieces = Vec::new();
        while let Some(piece) = self.next(false).await {
            pieces.push(piece?);
        }
        Ok(pieces)
    }

    /// The answer's status went out: an error from now on ends it midway.
    pub fn status_sent(&mut self) {
        self.status_sent = true;
    }

    /// The answer's body bytes so far.
    pub fn bytes_out(&mut self, bytes: u64) {
        self.bytes_out = Some(bytes);
    }

    /// The whole answer was written.
    pub fn finish(&mut self) {
        if let Some(mut log) = self.log.take() {
            log.answered();
            log.end(Ending::answered(self.bytes_out));
        }
    }

    /// The answer ended with `error` (before or after its status went out). Dropped without
    /// either, the call's client went away.
    pub fn fail(&mut self, error: &CoreError) {
        let Some(log) = self.log.take() else { return };
        let mut ending = Ending::of_error(error);
        ending.bytes_out = self.bytes_out;
        if self.status_sent {
            ending.status = 200;
            ending.error = ending.error.map(|e| format!("answer ended midway: {e}"));
        }
        log.end(ending);
    }
}
