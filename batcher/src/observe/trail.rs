//! What the logs learn about one request while it is served, whichever ingress took it: the
//! audit record being filled in, the facts of the batches that answered it, and, for a request
//! the prediction log keeps, its inputs and its rows of the outputs. An ingress starts a trail
//! when the request arrives, tells it what it learns, and finishes it with the answer's status;
//! the records then go to the logs' queues.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::audit::{summarize, AuditLog, AuditRecord, BatchSummary};
use super::prediction_log::{OutputRows, PredictionEntry, PredictionLog};
use super::Logs;
use crate::batching::BatchFacts;
use crate::convert::{Outputs, Tensor};
use crate::request::{Code, RequestInfo};
use crate::target::ModelTarget;

pub struct Trail {
    audit: Arc<Option<AuditLog>>,
    /// `None` when the audit log is off.
    record: Option<AuditRecord>,
    received: Instant,
    arrived: SystemTime,
    batch: Option<BatchSummary>,
    capture: Option<Capture>,
}

/// A request the prediction log keeps.
struct Capture {
    log: Arc<Option<PredictionLog>>,
    rate: f64,
    request_id: String,
    target: ModelTarget,
    signature_name: String,
    inputs: BTreeMap<String, Tensor>,
    outputs: Option<OutputRows>,
    output_filter: Vec<String>,
}

impl Trail {
    /// The trail of a request that arrived at `info.received`.
    pub fn start(logs: &Logs, info: &RequestInfo, ingress: &'static str) -> Trail {
        let now = SystemTime::now();
        let arrived = now.checked_sub(info.received.elapsed()).unwrap_or(now);
        let audit = logs.audit();
        let record = audit.as_ref().as_ref().map(|_| AuditRecord::start(info, ingress, arrived));
        Trail { audit, record, received: info.received, arrived, batch: None, capture: None }
    }

    /// The rest of the request is served elsewhere (an answer written by a task of its own):
    /// the returned trail finishes it; this one is left empty (its `finish` writes nothing).
    pub fn hand_over(&mut self) -> Trail {
        Trail {
            audit: self.audit.clone(),
            record: self.record.take(),
            received: self.received,
            arrived: self.arrived,
            batch: self.batch.take(),
            capture: self.capture.take(),
        }
    }

    /// The audit record, when the audit log is on.
    pub fn record(&mut self) -> Option<&mut AuditRecord> {
        self.record.as_mut()
    }

    /// A batch that answered (some of) the request.
    pub fn batch(&mut self, facts: &BatchFacts) {
        summarize(&mut self.batch, facts, self.received);
    }

    /// Decides whether the prediction log keeps this Predict request (by its id), and if so
    /// copies the inputs it will record: a request that is not kept costs a hash, no copy.
    pub fn sample(
        &mut self,
        logs: &Logs,
        request_id: &str,
        target: &ModelTarget,
        signature_name: &str,
        inputs: &BTreeMap<String, Tensor>,
    ) {
        let log = logs.predictions();
        let Some(predictions) = log.as_ref() else { return };
        let Some(rate) = predictions.sample(&target.model, request_id) else { return };
        let inputs = predictions.keep_inputs(inputs);
        self.capture = Some(Capture {
            log,
            rate,
            request_id: request_id.to_string(),
            target: target.clone(),
            signature_name: signature_name.to_string(),
            inputs,
            outputs: None,
            output_filter: Vec::new(),
        });
    }

    /// The client asked for only these outputs (gRPC's `output_filter`): the log keeps what it
    /// was answered.
    pub fn filter_outputs(&mut self, names: &[String]) {
        if let Some(capture) = self.capture.as_mut() {
            capture.output_filter = names.to_vec();
        }
    }

    /// Whether the prediction log keeps this request (and wants its outputs).
    pub fn sampled(&self) -> bool {
        self.capture.is_some()
    }

    /// The outputs of a call made for this request alone.
    pub fn outputs_whole(&mut self, outputs: &Arc<Outputs>) {
        if let Some(capture) = self.capture.as_mut() {
            capture.outputs = Some(OutputRows::Whole(outputs.clone()));
        }
    }

    /// Rows `rows` of a batch's outputs are the request's next rows; `copy`: take them now
    /// (the batch's outputs are about to be freed) rather than keep the batch's.
    pub fn output_rows(&mut self, outputs: &Arc<Outputs>, rows: Range<usize>, copy: bool) {
        let Some(capture) = self.capture.as_mut() else { return };
        let piece = if copy {
            let count = rows.len();
            match OutputRows::Rows(vec![(outputs.clone(), rows)]).collect() {
                Ok(own) => (Arc::new(own), 0..count),
                Err(_) => return,
            }
        } else {
            (outputs.clone(), rows)
        };
        match capture.outputs.get_or_insert_with(|| OutputRows::Rows(Vec::new())) {
            OutputRows::Rows(pieces) => pieces.push(piece),
            OutputRows::Whole(_) => {}
        }
    }

    /// The whole answer was produced: a kept request goes to the prediction log.
    pub fn answered(&mut self) {
        let Some(capture) = self.capture.take() else { return };
        let (Some(log), Some(outputs)) = (capture.log.as_ref(), capture.outputs) else { return };
        log.submit(PredictionEntry {
            time: self.arrived,
            request_id: capture.request_id,
            target: capture.target,
            signature_name: capture.signature_name,
            version: self.batch.as_ref().and_then(|b| b.version),
            sampling_rate: capture.rate,
            inputs: capture.inputs,
            outputs,
            output_filter: capture.output_filter,
        });
    }

    /// The request is over: its audit record goes to the audit log.
    pub fn finish(mut self, status: u16, code: Code, error: Option<String>, bytes_out: Option<u64>) {
        self.submit(status, code, error, bytes_out);
    }

    fn submit(&mut self, status: u16, code: Code, error: Option<String>, bytes_out: Option<u64>) {
        let Some(mut record) = self.record.take() else { return };
        record.batch = self.batch.take();
        record.bytes_out = bytes_out;
        record.finish(status, code, error, self.received);
        if let Some(audit) = self.audit.as_ref() {
            audit.submit(record);
        }
    }
}

impl Drop for Trail {
    /// A trail dropped unfinished is a request whose client went away before its answer (the
    /// server dropped the request's future): it is audited too, as nginx logs it, 499.
    fn drop(&mut self) {
        if self.record.is_some() {
            let error = Some("the client went away before the answer".to_string());
            self.submit(499, Code::Cancelled, error, None);
        }
    }
}
