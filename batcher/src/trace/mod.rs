//! Request traces (`[tracing] otlp_endpoint`): one span per call, which times its steps
//! (conversion, admission, queue wait) in attributes, and one span per backend batch linked to
//! every call it carries, as OpenTelemetry prescribes for batching (a batch has many parents,
//! so it is a root with links rather than anyone's child). Steps are attributes rather than
//! spans of their own: a span costs the daemon about as much as the call's own work without
//! tracing (docs/benchmarks.md, "Request traces"), and an attribute can be queried
//! (`{ span.tfgate.queue_us > 5000 }`) where a child span must be looked at.
//!
//! The spans are `tracing` spans of the target [`TARGET`]; only the OpenTelemetry layer
//! ([`export`]) is interested in that target, so with tracing off they are disabled at their
//! call sites and cost a relaxed load each. The incoming W3C `traceparent` (REST header, gRPC
//! metadata) is a call's parent; TF Serving gets the batch's context.

pub mod export;

use std::fmt::Display;
use std::sync::Mutex;
use std::time::Instant;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every request span: what the OpenTelemetry layer listens to, and
/// what the log's filter leaves out.
pub const TARGET: &str = "tfgate::trace";

/// The name of a backend batch's span (the sampler tells batches from calls by it).
pub const BATCH: &str = "batch";

/// `[tracing]`: where spans go, and how many calls are traced.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// `otlp_endpoint`: an OTLP/gRPC collector (`http://HOST:4317`); `None`: no traces.
    pub otlp_endpoint: Option<String>,
    /// `sampling_ratio`: the share of calls traced when the caller did not decide (a sampled
    /// `traceparent` is always followed, an unsampled one never).
    pub sampling_ratio: f64,
}

impl Default for TracingSettings {
    fn default() -> Self {
        TracingSettings { otlp_endpoint: None, sampling_ratio: 1.0 }
    }
}

/// One call's span. Disabled (every method a no-op) when tracing is off.
#[derive(Debug, Clone)]
pub struct CallSpan(Span);

impl Default for CallSpan {
    fn default() -> Self {
        CallSpan(Span::none())
    }
}

/// What a call's span says of it from the start.
pub struct CallFacts<'a> {
    /// The caller's `traceparent`, already checked (`request::is_traceparent`).
    pub traceparent: Option<&'a str>,
    pub ingress: &'static str,
    pub request_id: &'a str,
    /// Method, model and the version asked for, when the route was decoded.
    pub route: Option<(&'a str, &'a str, &'a dyn Display)>,
}

impl CallSpan {
    /// Opens the call's span under the caller's `traceparent`, when the call is traced: the
    /// caller said so (a sampled `traceparent`), or it did not say and `sampling_ratio` picks
    /// it. A call not traced makes no span at all.
    pub fn begin(facts: CallFacts<'_>) -> CallSpan {
        // Not `tracing::enabled!`: with per-layer filters, asking without then making a span or
        // event left the log's filter state set, and the thread's next log line was dropped.
        if !export::is_on() || !export::samples(facts.traceparent) {
            return CallSpan::default();
        }
        let CallFacts { traceparent, ingress, request_id, route } = facts;
        // Known at the start, so set at once: a field recorded later costs a dispatch of its own.
        let span = tracing::info_span!(
            target: TARGET,
            "call",
            otel.kind = "server",
            otel.status_code = Empty,
            otel.status_description = Empty,
            tfgate.ingress = ingress,
            tfgate.request_id = request_id,
            tfgate.method = route.map(|(method, _, _)| method),
            tfgate.model = route.map(|(_, model, _)| model),
            tfgate.version = route.map(|(_, _, version)| display(version)),
            tfgate.rows = Empty,
            tfgate.convert_us = Empty,
            tfgate.admission_us = Empty,
            tfgate.queue_us = Empty,
        );
        if let Some(parent) = traceparent.filter(|_| !span.is_disabled()).map(remote_parent) {
            // Only fails for a span already started, which this one is not.
            let _ = span.set_parent(parent);
        }
        CallSpan(span)
    }

    /// Whether this call is traced (tracing on, and the call sampled).
    pub fn is_on(&self) -> bool {
        !self.0.is_disabled()
    }

    /// The rows the call carries, once its inputs are read.
    pub fn rows(&self, rows: u64) {
        self.0.record("tfgate.rows", as_attribute(rows as usize));
    }

    /// The call failed: the status code's name, and why (no request values).
    pub fn failed(&self, code: &str, message: &str) {
        failed(&self.0, code, message);
    }

    /// The call's conversion step (signature, budget, tensors), timed until it is dropped.
    pub fn convert(&self) -> Step {
        self.step("tfgate.convert_us")
    }

    /// The call's admission step (quotas), timed until it is dropped.
    pub fn admission(&self) -> Step {
        self.step("tfgate.admission_us")
    }

    fn step(&self, field: &'static str) -> Step {
        Step(self.is_on().then(|| (self.0.clone(), field, Instant::now())))
    }

    /// What a batch links to: this call's span, when it is recorded.
    pub fn link(&self) -> Option<SpanContext> {
        if !self.is_on() {
            return None;
        }
        let context = self.0.context().span().span_context().clone();
        context.is_valid().then_some(context)
    }

    /// The `traceparent` a backend call made for this call alone carries: this span's, when
    /// tracing is on, else the caller's as it came (`incoming`).
    pub fn outgoing(&self, incoming: Option<&str>) -> Option<String> {
        if self.is_on() {
            traceparent(&self.0).or_else(|| incoming.map(str::to_string))
        } else {
            incoming.map(str::to_string)
        }
    }
}

/// A step of a call, timed from its start until it is dropped: its duration in microseconds
/// becomes an attribute of the call's span. Nothing when the call is not traced.
#[derive(Debug)]
pub struct Step(Option<(Span, &'static str, Instant)>);

impl Drop for Step {
    fn drop(&mut self) {
        if let Some((span, field, start)) = self.0.take() {
            span.record(field, as_attribute(start.elapsed().as_micros() as usize));
        }
    }
}

/// The wait of a call's rows in its model's queue: from joining it to leaving in a batch (the
/// call's `tfgate.queue_us`).
#[derive(Debug)]
pub struct QueueWait(Mutex<Option<Step>>);

impl QueueWait {
    pub fn begin(call: &CallSpan) -> QueueWait {
        let step = call.is_on().then(|| call.step("tfgate.queue_us"));
        QueueWait(Mutex::new(step))
    }

    /// The rows left the queue (the first of the call's batches was sent).
    pub fn end(&self) {
        if let Ok(mut step) = self.0.lock() {
            step.take();
        }
    }
}

/// One backend batch's span: a root linked to the traced calls it carries (`calls`); none
/// when it carries none.
pub fn batch_span<'a>(
    model: &str,
    version: &dyn Display,
    calls: impl Iterator<Item = &'a CallSpan> + Clone,
    rows: usize,
    padded_rows: usize,
) -> Span {
    let mut traced = calls.clone().filter(|call| call.is_on()).peekable();
    if traced.peek().is_none() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        BATCH,
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        tfgate.model = model,
        tfgate.version = %version,
        tfgate.batch.calls = as_attribute(calls.count()),
        tfgate.batch.rows = as_attribute(rows),
        tfgate.batch.padded_rows = as_attribute(padded_rows),
        tfgate.backend.version = Empty,
    );
    // Before the span starts: the sampler sees the links (a batch of traced calls is traced).
    for context in traced.filter_map(CallSpan::link) {
        span.add_link(context);
    }
    span
}

/// A count as OpenTelemetry's integer attributes hold it (signed: tracing-opentelemetry writes
/// unsigned values as text).
fn as_attribute(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Marks a span failed with the status code's name and why.
pub fn failed(span: &Span, code: &str, message: &str) {
    span.record("otel.status_code", "error");
    span.record("otel.status_description", format!("{code}: {message}"));
}

/// The W3C `traceparent` naming `span` as the parent, for the call it makes; `None` when
/// tracing is off.
pub fn traceparent(span: &Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let mut carrier = OneHeader(None);
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.0
}

/// The remote parent a valid `traceparent` names.
fn remote_parent(traceparent: &str) -> Context {
    TraceContextPropagator::new().extract(&OneHeader(Some(traceparent.to_string())))
}

/// The `traceparent` header alone, as the propagator reads and writes it (no `tracestate`:
/// the daemon keeps none).
struct OneHeader(Option<String>);

impl Extractor for OneHeader {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0.as_deref()).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

impl Injector for OneHeader {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}
