//! The observation layer: what the daemon tells operators about one call, whichever ingress
//! took it. The pipeline begins a [`CallLog`] when a call arrives, tells it what the call came
//! to, and ends it with the encoded answer's status; an answer written while its batches still
//! come back carries its log until its last row, so the audit line and the metrics see its
//! true end.
//!
//! One call gives: `tfgate_requests_total` (REST, TF Serving's and v2's) or
//! `tfgate_grpc_requests_total` (gRPC, both APIs) and their duration histograms, one audit
//! line, and, when the prediction log keeps the call, its inputs and its rows of the outputs.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tfgate_common::{Method, V2ModelMethod};

use super::audit::{summarize, AuditLog, AuditRecord, BatchSummary};
use super::prediction_log::{OutputRows, PredictionEntry, PredictionLog};
use super::Logs;
use crate::admission::Quotas;
use crate::batching::BatchFacts;
use crate::convert::{Outputs, Tensor};
use crate::metrics::Metrics;
use crate::request::status::code_name;
use crate::request::{Caller, Code, CoreError, Ingress, RequestInfo, Route};
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
    /// Boxed, as `capture`: the log is moved along with its call, and most calls move it
    /// with neither (audit off, not sampled).
    record: Option<Box<AuditRecord>>,
    batch: Option<BatchSummary>,
    /// Rows answered from the row cache or shared with a row computed once, and the version
    /// that computed them.
    shared_rows: usize,
    shared_version: Option<i64>,
    capture: Option<Box<Capture>>,
    meter: Meter,
    ended: bool,
}

/// Where a call's accelerator time is counted: the metric, and the caller's compute quota.
struct Meter {
    quotas: Arc<Quotas>,
    caller: Caller,
    /// The plan the caller's requests count against (`default` without quotas).
    plan: String,
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
    /// Why the call was refused or dropped, when it was.
    pub reason: Option<&'static str>,
}

impl Ending {
    pub fn of_error(error: &CoreError) -> Ending {
        Ending {
            status: error.http_status(),
            code: error.code,
            error: Some(error.log_message().into_owned()),
            bytes_out: None,
            reason: error.reason,
        }
    }

    /// A call answered in full.
    pub fn answered(bytes_out: Option<u64>) -> Ending {
        Ending { status: 200, code: Code::Ok, error: None, bytes_out, reason: None }
    }
}

impl CallLog {
    /// A call arrives: who, on which ingress, for what (as far as its decoder read it), and
    /// its size on the wire.
    pub fn begin(
        logs: &Logs,
        metrics: &Arc<Metrics>,
        quotas: &Arc<Quotas>,
        info: &RequestInfo,
        ingress: Ingress,
        route: Option<&Route>,
        bytes_in: u64,
    ) -> CallLog {
        let now = SystemTime::now();
        let arrived = now.checked_sub(info.received.elapsed()).unwrap_or(now);
        let audit = logs.audit();
        let record = audit.as_ref().as_ref().map(|_| {
            let mut record = AuditRecord::start(info, ingress.name(), arrived);
            record.bytes_in = bytes_in;
            if let Some(Route { method, target, requested, .. }) = route {
                record.method = method.as_str();
                record.target(&target.model, &target.version, requested.clone());
            }
            Box::new(record)
        });
        let mut log = CallLog {
            metrics: metrics.clone(),
            ingress,
            model: route.map(|r| r.target.model.clone()).unwrap_or_default(),
            version: route.map(|r| r.target.version.to_string()).unwrap_or_default(),
            method: route.map(|r| r.method),
            received: info.received,
            arrived,
            audit,
            record,
            batch: None,
            shared_rows: 0,
            shared_version: None,
            capture: None,
            meter: Meter { quotas: quotas.clone(), caller: info.caller.clone(), plan: quotas.plan_of(&info.caller) },
            ended: false,
        };
        if let Some(Route { method: Method::Predict, target, .. }) = route {
            log.sample(logs, &info.request_id, target);
        }
        log
    }

    /// Whether the prediction log keeps this call: the pipeline then keeps a copy of its inputs.
    pub fn wants_inputs(&self) -> bool {
        self.capture.is_some()
    }

    fn sample(&mut self, logs: &Logs, request_id: &str, target: &ModelTarget) {
        let log = logs.predictions();
        let Some(predictions) = log.as_ref() else { return };
        let Some(rate) = predictions.sample(&target.model, request_id) else { return };
        self.capture = Some(Box::new(Capture {
            log,
            rate,
            request_id: request_id.to_string(),
            target: target.clone(),
            signature_name: String::new(),
            inputs: BTreeMap::new(),
            outputs: None,
            output_filter: Vec::new(),
        }));
    }

    /// What the call came to: its rows; for a call the prediction log keeps, the signature and
    /// the inputs as read (without them, there is nothing to log) and the outputs the caller
    /// asked for.
    pub fn learn(
        &mut self,
        rows: Option<u64>,
        kept_inputs: Option<(String, BTreeMap<String, Tensor>)>,
        output_filter: &[String],
    ) {
        if let Some(record) = self.record.as_mut() {
            record.rows = rows.map(|n| n as usize);
        }
        match (self.capture.as_mut(), kept_inputs) {
            (Some(capture), Some((signature_name, inputs))) => {
                capture.inputs = match capture.log.as_ref() {
                    Some(predictions) => predictions.keep_inputs(inputs),
                    None => BTreeMap::new(),
                };
                capture.signature_name = signature_name;
                capture.output_filter = output_filter.to_vec();
            }
            (Some(_), None) => self.capture = None,
            (None, _) => {}
        }
    }

    /// The outputs of a backend call made for this call alone.
    pub fn outputs_whole(&mut self, outputs: &Arc<Outputs>, facts: &BatchFacts) {
        self.batch(facts, facts.rows);
        if let Some(capture) = self.capture.as_mut() {
            capture.outputs = Some(OutputRows::Whole(outputs.clone()));
        }
    }

    /// A batch that answered (some of) the call: `rows` of its rows.
    pub fn batch(&mut self, facts: &BatchFacts, rows: usize) {
        if facts.shared {
            self.shared_rows += rows;
            self.shared_version = self.shared_version.or(facts.version);
        } else {
            summarize(&mut self.batch, facts, self.received, rows);
        }
    }

    /// Rows `rows` of a batch's outputs are the call's next rows; `copy`: take them now (the
    /// batch's outputs are about to be freed) rather than keep the batch's.
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

    /// The whole answer was produced: a kept call goes to the prediction log.
    pub fn answered(&mut self) {
        let Some(capture) = self.capture.take() else { return };
        let capture = *capture;
        let (Some(log), Some(outputs)) = (capture.log.as_ref(), capture.outputs) else { return };
        log.submit(PredictionEntry {
            time: self.arrived,
            request_id: capture.request_id,
            target: capture.target,
            signature_name: capture.signature_name,
            version: self.batch.as_ref().and_then(|b| b.version).or(self.shared_version),
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
        // One family per transport, whichever API: the method label tells the APIs apart.
        let label = method_label(self.ingress, method);
        if self.ingress.is_grpc() {
            self.metrics.grpc_requests.inc(&[&self.model, &self.version, label, code_name(ending.code)]);
            self.metrics.grpc_request_seconds.observe(&[&self.model, label], seconds);
        } else {
            let status = ending.status.to_string();
            self.metrics.requests.inc(&[&self.model, &self.version, label, &status]);
            self.metrics.request_seconds.observe(&[&self.model, label], seconds);
        }
        // The memory budget refuses before any queue, so the batcher never counts it: counted
        // here, with the queue's refusals, so that one family holds every overload reason.
        if ending.reason == Some("memory") {
            self.metrics.rejected.inc(&[&self.model, "memory"]);
        }
        if let Some(batch) = self.batch.as_ref().filter(|b| !b.cost.is_zero()) {
            self.metrics.compute_seconds.add(&[&self.model, &self.meter.plan], batch.cost);
            self.meter.quotas.charge(&self.meter.caller, &self.model, batch.cost);
        }
        let Some(mut record) = self.record.take() else { return };
        record.batch = self.batch.take();
        record.cached_rows = self.shared_rows;
        if let Some(version) = self.shared_version {
            record.version = Some(version);
        }
        record.bytes_out = ending.bytes_out;
        record.reason = ending.reason;
        record.finish(ending.status, ending.code, ending.error, self.received);
        if let Some(audit) = self.audit.as_ref() {
            audit.submit(*record);
        }
    }
}

impl Drop for CallLog {
    /// A log dropped before its end is a call whose client went away before its answer (the
    /// server dropped the call's future): it is observed too, as nginx logs it, 499.
    fn drop(&mut self) {
        let error = Some("the client went away before the answer".to_string());
        self.write(Ending { status: 499, code: Code::Cancelled, error, bytes_out: None, reason: Some("cancelled") });
    }
}

/// The `method` label of a call's metrics: the operation as its API names it (`predict`,
/// `Predict`, `model_infer`, `ModelInfer`), so that both APIs of one transport share a family
/// and stay apart in it. The v2 names are those of the module's vocabulary (REST) and of
/// `inference.GRPCInferenceService` (gRPC); the catalog's method of each is the TF one.
pub fn method_label(ingress: Ingress, method: Option<Method>) -> &'static str {
    let Some(method) = method else {
        return if ingress.is_grpc() { "unknown" } else { "" };
    };
    match ingress {
        Ingress::Rest => method.as_str(),
        Ingress::Grpc => grpc_method_name(method),
        Ingress::V2Rest => v2_method(method).map_or_else(|| method.as_str(), V2ModelMethod::as_str),
        Ingress::V2Grpc => v2_method(method).map_or_else(|| grpc_method_name(method), V2ModelMethod::rpc),
    }
}

/// The v2 operation a v2 call's catalog method stands for.
fn v2_method(method: Method) -> Option<V2ModelMethod> {
    match method {
        Method::Predict => Some(V2ModelMethod::Infer),
        Method::Status => Some(V2ModelMethod::Ready),
        Method::Metadata => Some(V2ModelMethod::Metadata),
        Method::Classify | Method::Regress | Method::MultiInference => None,
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
