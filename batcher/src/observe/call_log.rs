//! The observation layer: what the daemon tells operators about one call, whichever ingress
//! took it. The pipeline begins a [`CallLog`] when a call arrives and ends it with the encoded
//! answer's status; in between it only reads the [`Outcome`]. An answer written while its
//! batches still come back ([`ObservedRows`]) carries its log until its last row, so the audit
//! line and the metrics see its true end.
//!
//! One call gives: `tfgate_requests_total` (REST) or `tfgate_grpc_requests_total` (gRPC) and
//! their duration histograms, one audit line, and, when the prediction log keeps the call, its
//! inputs and its rows of the outputs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tfgate_common::Method;

use super::audit::{summarize, AuditLog, AuditRecord, BatchSummary};
use super::prediction_log::{OutputRows, PredictionEntry, PredictionLog};
use super::Metrics;
use crate::app::App;
use crate::batching::{BatchFacts, RowPiece, RowStream};
use crate::convert::{Outputs, Tensor};
use crate::pipeline::{Answer, Outcome, PredictedOutputs};
use crate::request::status::code_name;
use crate::request::{Code, CoreError, Decoded, Ingress, Route};
use crate::target::ModelTarget;

/// One call's observation, from arrival to answer.
pub struct CallLog {
    metrics: Arc<Metrics>,
    ingress: Ingress,
    model: String,
    version: String,
    method: Option<Method>,
    received: Instant,
    arrived: SystemTime,
    audit: Arc<Option<AuditLog>>,
    /// `None` when the audit log is off, or once written.
    record: Option<AuditRecord>,
    batch: Option<BatchSummary>,
    capture: Option<Capture>,
    ended: bool,
}

/// A call the prediction log keeps.
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

/// How a call ended, as the ingress wrote its answer.
pub struct Ending {
    /// The HTTP status (for gRPC: the one TF Serving's REST API gives its code).
    pub status: u16,
    pub code: Code,
    /// The error's message as logs keep it (no request value in it).
    pub error: Option<String>,
    /// The answer's body bytes, when known.
    pub bytes_out: Option<u64>,
}

impl Ending {
    pub fn of_error(error: &CoreError) -> Ending {
        Ending {
            status: error.http_status(),
            code: error.code,
            error: Some(error.log_message().into_owned()),
            bytes_out: None,
        }
    }
}

impl CallLog {
    /// A call arrives (decoded, or refused by its decoder).
    pub fn begin(app: &App, decoded: &Decoded) -> CallLog {
        let (info, ingress, route, bytes_in) = match decoded {
            Ok(call) => (&call.info, call.ingress, Some(&call.route), call.bytes_in),
            Err(refused) => (&refused.info, refused.ingress, refused.route.as_ref(), refused.bytes_in),
        };
        let now = SystemTime::now();
        let arrived = now.checked_sub(info.received.elapsed()).unwrap_or(now);
        let audit = app.logs.audit();
        let record = audit.as_ref().as_ref().map(|_| {
            let mut record = AuditRecord::start(info, ingress.name(), arrived);
            record.bytes_in = bytes_in;
            if let Some(Route { method, target, requested, .. }) = route {
                record.method = method.as_str();
                record.target(&target.model, &target.version, requested.clone());
            }
            record
        });
        let mut log = CallLog {
            metrics: app.metrics.clone(),
            ingress,
            model: route.map(|r| r.target.model.clone()).unwrap_or_default(),
            version: route.map(|r| r.target.version.to_string()).unwrap_or_default(),
            method: route.map(|r| r.method),
            received: info.received,
            arrived,
            audit,
            record,
            batch: None,
            capture: None,
            ended: false,
        };
        if let (Ok(call), Some(Route { method: Method::Predict, target, .. })) = (decoded, route) {
            log.sample(app, &call.info.request_id, target);
        }
        log
    }

    /// Whether the prediction log keeps this call: the pipeline then keeps a copy of its inputs.
    pub fn wants_inputs(&self) -> bool {
        self.capture.is_some()
    }

    fn sample(&mut self, app: &App, request_id: &str, target: &ModelTarget) {
        let log = app.logs.predictions();
        let Some(predictions) = log.as_ref() else { return };
        let Some(rate) = predictions.sample(&target.model, request_id) else { return };
        self.capture = Some(Capture {
            log,
            rate,
            request_id: request_id.to_string(),
            target: target.clone(),
            signature_name: String::new(),
            inputs: BTreeMap::new(),
            outputs: None,
            output_filter: Vec::new(),
        });
    }

    /// Reads what the pipeline found out. An answer written row piece by row piece takes the
    /// log with it (`None` is returned): it ends when its last row is written.
    pub fn read(mut self, outcome: &mut Outcome) -> Option<CallLog> {
        if let Some(record) = self.record.as_mut() {
            record.rows = outcome.facts.rows.map(|n| n as usize);
        }
        match (self.capture.as_mut(), outcome.facts.kept_inputs.take()) {
            (Some(capture), Some((signature_name, inputs))) => {
                capture.inputs = match capture.log.as_ref() {
                    Some(predictions) => predictions.keep_inputs(inputs),
                    None => BTreeMap::new(),
                };
                capture.signature_name = signature_name;
            }
            // Nothing to log: the call never got as far as its tensors.
            (Some(_), None) => self.capture = None,
            (None, _) => {}
        }
        match &mut outcome.result {
            Ok(Answer::Predict(predicted)) => {
                if let Some(capture) = self.capture.as_mut() {
                    capture.output_filter = predicted.output_filter.clone();
                }
                match &mut predicted.outputs {
                    PredictedOutputs::Whole(outputs, facts) => {
                        self.batch(facts);
                        if let Some(capture) = self.capture.as_mut() {
                            capture.outputs = Some(OutputRows::Whole(outputs.clone()));
                        }
                        self.answered();
                        Some(self)
                    }
                    PredictedOutputs::Rows(rows) => {
                        rows.log = Some(self);
                        None
                    }
                }
            }
            _ => Some(self),
        }
    }

    fn batch(&mut self, facts: &BatchFacts) {
        summarize(&mut self.batch, facts, self.received);
    }

    /// Rows `rows` of a batch's outputs are the call's next rows; `copy`: take them now (the
    /// batch's outputs are about to be freed) rather than keep the batch's.
    fn output_rows(&mut self, outputs: &Arc<Outputs>, rows: Range<usize>, copy: bool) {
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

    /// The whole answer was produced: a kept call goes to the prediction log.
    fn answered(&mut self) {
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

    /// The call is over: metrics and its audit line.
    pub fn end(mut self, ending: Ending) {
        self.write(ending);
    }

    fn write(&mut self, ending: Ending) {
        if self.ended {
            return;
        }
        self.ended = true;
        let seconds = self.received.elapsed().as_secs_f64();
        let method = self.method;
        match self.ingress {
            Ingress::Rest => {
                let label = method.map_or("", Method::as_str);
                let status = ending.status.to_string();
                self.metrics.requests.inc(&[&self.model, &self.version, label, &status]);
                self.metrics.request_seconds.observe(&[&self.model, label], seconds);
            }
            Ingress::Grpc => {
                let label = method.map_or("unknown", grpc_method_name);
                self.metrics.grpc_requests.inc(&[&self.model, &self.version, label, code_name(ending.code)]);
                self.metrics.grpc_request_seconds.observe(&[&self.model, label], seconds);
            }
        }
        let Some(mut record) = self.record.take() else { return };
        record.batch = self.batch.take();
        record.bytes_out = ending.bytes_out;
        record.finish(ending.status, ending.code, ending.error, self.received);
        if let Some(audit) = self.audit.as_ref() {
            audit.submit(record);
        }
    }
}

impl Drop for CallLog {
    /// A log dropped before its end is a call whose client went away before its answer (the
    /// server dropped the call's future): it is observed too, as nginx logs it, 499.
    fn drop(&mut self) {
        let error = Some("the client went away before the answer".to_string());
        self.write(Ending { status: 499, code: Code::Cancelled, error, bytes_out: None });
    }
}

/// The gRPC method of a TF Serving operation (metric labels).
pub fn grpc_method_name(method: Method) -> &'static str {
    match method {
        Method::Predict => "Predict",
        Method::Classify => "Classify",
        Method::Regress => "Regress",
        Method::MultiInference => "MultiInference",
        Method::Metadata => "GetModelMetadata",
        Method::Status => "GetModelStatus",
    }
}

/// A call's rows as its batches answer them, observed: each piece's batch goes to the audit
/// line (and its rows to the prediction log, for a kept call); the log ends with the stream.
pub struct ObservedRows {
    stream: RowStream,
    log: Option<CallLog>,
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
            log.batch(&piece.facts);
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
            log.end(Ending { status: 200, code: Code::Ok, error: None, bytes_out: self.bytes_out });
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
