//! One audit record: who asked which model for what, and how it went. Built by any ingress from
//! the request's [`RequestInfo`] and its outcome, so REST and gRPC requests give the same record;
//! written as one JSON object per line by the writer thread (never on the request path).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::batching::BatchFacts;
use crate::clock::Rfc3339Writer;
use crate::request::status::code_name;
use crate::request::{Code, RequestInfo};
use crate::target::VersionRef;

/// What the backend calls that answered a request were. A request split across several
/// batches is described by its first batch (id, size, target), the number of batches, its
/// queue time until its first rows were sent, and the sum of its batches' backend times. One
/// batch's rows may come in several pieces (a row cache's answer interleaves them with cached
/// rows): each piece adds its rows' cost, the batch is counted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub id: u64,
    pub batches: u32,
    pub size: usize,
    pub target: Arc<str>,
    pub queue: Duration,
    pub backend: Duration,
    /// The model version that answered (the first batch's).
    pub version: Option<i64>,
    /// The request's share of its batches' cost: each batch's learnt cost, by the request's
    /// rows in it against the batch's rows (padding included).
    pub cost: Duration,
    /// The ids of the batches counted so far.
    pub ids: Vec<u64>,
}

impl BatchSummary {
    /// The first batch of a request that arrived at `received`, `rows` of them the request's.
    pub fn first(facts: &BatchFacts, received: Instant, rows: usize) -> BatchSummary {
        BatchSummary {
            id: facts.id,
            batches: 1,
            size: facts.rows,
            target: facts.target.clone(),
            queue: facts.sent.saturating_duration_since(received),
            backend: facts.backend,
            version: facts.version,
            cost: share(facts, rows),
            ids: vec![facts.id],
        }
    }

    /// More of the request's rows, `rows` of them from this batch.
    pub fn add(&mut self, facts: &BatchFacts, rows: usize) {
        if !self.ids.contains(&facts.id) {
            self.ids.push(facts.id);
            self.batches += 1;
            self.backend += facts.backend;
        }
        self.cost += share(facts, rows);
    }
}

/// `rows`' share of the batch's cost.
fn share(facts: &BatchFacts, rows: usize) -> Duration {
    facts.cost.mul_f64(rows.min(facts.rows) as f64 / facts.rows.max(1) as f64)
}

/// Adds `facts` (`rows` of them the request's) to `summary` (starting it with the first batch).
pub fn summarize(summary: &mut Option<BatchSummary>, facts: &BatchFacts, received: Instant, rows: usize) {
    match summary {
        Some(summary) => summary.add(facts, rows),
        None => *summary = Some(BatchSummary::first(facts, received, rows)),
    }
}

/// A finished request, as the audit log writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When the request arrived in the daemon.
    pub time: SystemTime,
    pub request_id: String,
    /// The trace id of a valid W3C `traceparent`.
    pub trace_id: Option<String>,
    /// `rest` or `grpc`.
    pub ingress: &'static str,
    /// `predict`, `classify`, `regress`, `status`, `metadata` (empty when the path was not one).
    pub method: &'static str,
    pub model: String,
    /// The version or label the request asked for: `latest`, `2`, `label:canary`.
    pub requested: String,
    /// The version resolved: the one that answered, else the one nginx resolved.
    pub version: Option<i64>,
    pub subject: String,
    pub plan: Option<String>,
    pub client: String,
    /// Rows (instances) of a predict request.
    pub rows: Option<usize>,
    /// The HTTP status answered (for gRPC: the one TF Serving's REST API gives its code).
    pub status: u16,
    /// The canonical gRPC code of the outcome.
    pub code: Code,
    pub error: Option<String>,
    /// Why the call was refused or dropped (`quota`, `memory`, `queue_full`, `deadline`...).
    pub reason: Option<&'static str>,
    /// From arrival to answer (to the last byte of an answer written as its batches came).
    pub total: Duration,
    pub batch: Option<BatchSummary>,
    /// Rows of a predict request answered without being computed for it: from the row cache,
    /// or shared with an identical row computed once.
    pub cached_rows: usize,
    pub bytes_in: u64,
    /// The answer's body bytes, when known.
    pub bytes_out: Option<u64>,
}

impl AuditRecord {
    /// The record of a request as it arrives; the outcome is filled in as it is known.
    pub fn start(info: &RequestInfo, ingress: &'static str, arrived: SystemTime) -> AuditRecord {
        AuditRecord {
            time: arrived,
            request_id: info.request_id.clone(),
            trace_id: info.traceparent.as_deref().and_then(trace_id).map(str::to_string),
            ingress,
            method: "",
            model: String::new(),
            requested: String::new(),
            version: None,
            subject: info.caller.subject.clone(),
            plan: info.caller.plan.clone(),
            client: info.caller.client.clone(),
            rows: None,
            status: 0,
            code: Code::Ok,
            error: None,
            reason: None,
            total: Duration::ZERO,
            batch: None,
            cached_rows: 0,
            bytes_in: 0,
            bytes_out: None,
        }
    }

    /// The model and version the request is for.
    pub fn target(&mut self, model: &str, version: &VersionRef, requested: String) {
        self.model = model.to_string();
        self.requested = requested;
        if let VersionRef::Number(n) = version {
            self.version = Some(*n);
        }
    }

    /// The answer's status and error (if any), at `now`.
    pub fn finish(&mut self, status: u16, code: Code, error: Option<String>, received: Instant) {
        self.status = status;
        self.code = code;
        self.error = error;
        self.total = received.elapsed();
        if let Some(version) = self.batch.as_ref().and_then(|b| b.version) {
            self.version = Some(version);
        }
    }

    /// Appends the record as one line of JSON.
    pub fn write_json(&self, out: &mut Vec<u8>, clock: &mut Rfc3339Writer) {
        let batch = self.batch.as_ref();
        // `time` first, written by hand (the date is formatted once per second), then the rest.
        out.extend_from_slice(b"{\"time\":\"");
        clock.write(self.time, out);
        out.extend_from_slice(b"\",");
        let start = out.len();
        let line = Line {
            request_id: &self.request_id,
            trace_id: self.trace_id.as_deref(),
            ingress: self.ingress,
            method: self.method,
            model: &self.model,
            requested: &self.requested,
            version: self.version,
            subject: &self.subject,
            plan: self.plan.as_deref(),
            client: &self.client,
            rows: self.rows,
            status: self.status,
            code: code_name(self.code),
            error: self.error.as_deref(),
            reason: self.reason,
            total_us: micros(self.total),
            queue_us: batch.map(|b| micros(b.queue)),
            backend_us: batch.map(|b| micros(b.backend)),
            batch_id: batch.map(|b| b.id),
            batch_size: batch.map(|b| b.size),
            batches: batch.map(|b| b.batches),
            cost_us: batch.map(|b| micros(b.cost)),
            cached_rows: self.rows.map(|_| self.cached_rows),
            target: batch.map(|b| &*b.target),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
        };
        // Serializing plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &line);
        // Drop the serialized object's own `{`: its members follow `time`.
        if out.get(start) == Some(&b'{') {
            out.remove(start);
        }
        out.push(b'\n');
    }
}

/// The JSON line: every key is always present (null when unknown), in this order.
#[derive(Serialize)]
struct Line<'a> {
    request_id: &'a str,
    trace_id: Option<&'a str>,
    ingress: &'a str,
    method: &'a str,
    model: &'a str,
    requested: &'a str,
    version: Option<i64>,
    subject: &'a str,
    plan: Option<&'a str>,
    client: &'a str,
    rows: Option<usize>,
    status: u16,
    code: &'a str,
    error: Option<&'a str>,
    reason: Option<&'a str>,
    total_us: u64,
    queue_us: Option<u64>,
    backend_us: Option<u64>,
    batch_id: Option<u64>,
    batch_size: Option<usize>,
    batches: Option<u32>,
    cost_us: Option<u64>,
    cached_rows: Option<usize>,
    target: Option<&'a str>,
    bytes_in: u64,
    bytes_out: Option<u64>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The trace id (32 hex digits) of a `traceparent` already checked by `is_traceparent`.
fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.get(3..35)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Caller;
    use std::time::UNIX_EPOCH;

    fn info() -> RequestInfo {
        let now = Instant::now();
        RequestInfo {
            request_id: "4f1c".to_string(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string()),
            caller: Caller { subject: "alice".into(), client: "10.0.0.1".into(), plan: Some("gold".into()) },
            received: now,
            client_timeout: None,
            deadline: now,
            untrusted: None,
            trace: Default::default(),
        }
    }

    #[test]
    fn every_key_is_written_null_when_unknown() {
        let info = info();
        let mut record = AuditRecord::start(&info, "rest", UNIX_EPOCH + Duration::from_micros(1_735_787_045_000_001));
        record.method = "status";
        record.target("m", &VersionRef::Latest, "latest".into());
        record.finish(404, Code::NotFound, Some("no \"m\"".into()), info.received);
        record.total = Duration::from_micros(12);
        let mut out = Vec::new();
        record.write_json(&mut out, &mut Rfc3339Writer::default());
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["time"], "2025-01-02T03:04:05.000001Z");
        assert_eq!(value["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(value["subject"], "alice");
        assert_eq!(value["plan"], "gold");
        assert_eq!(value["status"], 404);
        assert_eq!(value["code"], "NOT_FOUND");
        assert_eq!(value["error"], "no \"m\"");
        assert_eq!(value["total_us"], 12);
        let object = value.as_object().unwrap();
        for key in ["version", "rows", "queue_us", "backend_us", "batch_id", "batch_size", "target", "bytes_out"] {
            assert!(object[key].is_null(), "{key}: {text}");
        }
        assert_eq!(object.len(), 27);
    }

    #[test]
    fn batches_are_summed_and_the_answering_version_wins() {
        let info = info();
        let facts = |id, backend_us| BatchFacts {
            id,
            rows: 64,
            target: Arc::from("http://a:8500"),
            sent: info.received + Duration::from_micros(300),
            backend: Duration::from_micros(backend_us),
            version: Some(7),
            cost: Duration::from_micros(2 * backend_us),
            packed: Vec::new(),
            shared: false,
        };
        let mut summary = None;
        summarize(&mut summary, &facts(5, 100), info.received, 32);
        summarize(&mut summary, &facts(5, 100), info.received, 32);
        summarize(&mut summary, &facts(9, 50), info.received, 64);
        let summary = summary.unwrap();
        assert_eq!((summary.id, summary.batches, summary.size), (5, 2, 64));
        assert_eq!(summary.queue, Duration::from_micros(300));
        assert_eq!(summary.backend, Duration::from_micros(150));
        // The first batch's cost for its 64 rows (in two pieces of 32), all of the second's.
        assert_eq!(summary.cost, Duration::from_micros(200 + 100));
        let mut record = AuditRecord::start(&info, "rest", SystemTime::now());
        record.target("m", &VersionRef::Number(3), "label:canary".into());
        assert_eq!(record.version, Some(3), "nginx's resolution until the backend answers");
        record.batch = Some(summary);
        record.finish(200, Code::Ok, None, info.received);
        assert_eq!(record.version, Some(7));
        let mut out = Vec::new();
        record.write_json(&mut out, &mut Rfc3339Writer::default());
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["batch_id"], 5);
        assert_eq!(value["batches"], 2);
        assert_eq!(value["queue_us"], 300);
        assert_eq!(value["backend_us"], 150);
        assert_eq!(value["target"], "http://a:8500");
        assert_eq!(value["requested"], "label:canary");
    }
}
