//! Request traces over OTLP (`[tracing]`): the daemon's spans as a real OTLP receiver gets them
//! (OpenTelemetry's own service definitions, `opentelemetry-proto`, on grpcio). Calls come
//! through nginx (REST) and on the daemon's gRPC socket, each under its caller's `traceparent`.
//! A call's span is the caller's child and times its steps (convert, admission, queue); each
//! backend batch is a span linked to every call it carries, and TF Serving gets the batch's
//! context.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest};
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::grpc_wire::{call, frame};
use tfgate_tests::python::OtlpReceiver;
use tfgate_tests::tensors::floats;

const V1: &str = "/v1/models/half_plus_two/versions/1:predict";
const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";

/// A caller's trace context: `00-TRACE-PARENT-FLAGS`.
fn traceparent(n: u32, sampled: bool) -> (String, String, String) {
    let trace = format!("{:032x}", 0x4bf9_2f35_0000_0000_u64 as u128 * 1000 + n as u128);
    let parent = format!("{:016x}", 0x00f0_67aa_0000_0000_u64 + n as u64);
    let flags = if sampled { "01" } else { "00" };
    (format!("00-{trace}-{parent}-{flags}"), trace, parent)
}

/// The daemon (behind nginx, with its gRPC socket) exporting to `receiver`; calls of one model
/// wait up to 300 ms for each other, so that concurrent calls share batches.
fn stack(receiver: &OtlpReceiver, tracing_extra: &str) -> BatchStack {
    let tables = format!(
        "[models.half_plus_two]\ndispatch = \"fixed\"\nmax_delay_us = 300000\n\
         [tracing]\notlp_endpoint = \"{}\"\n{tracing_extra}",
        receiver.endpoint()
    );
    BatchStack::start_grpc(&[], "", "", &tables)
}

fn rest(stack: &BatchStack, headers: &[(&str, &str)], body: &str) -> u16 {
    stack.client().send("POST", V1, headers, Some(body)).status
}

fn grpc(stack: &BatchStack, traceparent: &str) -> Option<u32> {
    let socket = stack.dir.path().join("grpc.sock");
    let spec = Some(ModelSpec { name: "half_plus_two".to_string(), ..Default::default() });
    let request =
        PredictRequest { model_spec: spec, inputs: [("x".to_string(), floats(&[1.0]))].into(), ..Default::default() };
    let headers = [
        ("x-tfgate-model", "half_plus_two"),
        ("x-tfgate-version", "1"),
        ("x-request-id", "grpc-traced"),
        ("traceparent", traceparent),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(call(&socket, PREDICT, &headers, frame(&request.encode_to_vec()), &[])).grpc_status()
}

/// Stops the daemon (which exports what it still holds) and waits until `done` holds for the
/// spans received.
fn spans_after_stop(stack: &mut BatchStack, receiver: &OtlpReceiver, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    stack.daemon.process.stop();
    let start = Instant::now();
    loop {
        let spans = receiver.spans();
        if done(&spans) || start.elapsed() > Duration::from_secs(15) {
            return spans;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn named<'a>(spans: &'a [Value], name: &str, trace: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name && s["trace_id"] == trace).collect()
}

fn only<'a>(found: Vec<&'a Value>, what: &str) -> &'a Value {
    assert_eq!(found.len(), 1, "exactly one {what}: {found:#?}");
    found[0]
}

/// The batch spans linking to `span`.
fn batches_of<'a>(spans: &'a [Value], span: &Value) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["name"] == "batch")
        .filter(|s| {
            s["links"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["trace_id"] == span["trace_id"] && l["span_id"] == span["span_id"])
        })
        .collect()
}

#[test]
fn a_calls_span_has_its_steps_and_its_batch_links_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = OtlpReceiver::start(dir.path());
    let mut stack = stack(&receiver, "");
    let traced: Vec<(String, String, String)> = (1..=6).map(|n| traceparent(n, true)).collect();
    let (unsampled, unsampled_trace, _) = traceparent(99, false);
    // Concurrent callers: four over REST through nginx, two on the gRPC socket, one whose
    // caller decided not to sample, one with no trace context, within one batching window.
    thread::scope(|scope| {
        for (i, (header, _, _)) in traced.iter().enumerate() {
            let stack = &stack;
            scope.spawn(move || {
                if i < 4 {
                    assert_eq!(rest(stack, &[("traceparent", header)], r#"{"instances": [1.0]}"#), 200);
                } else {
                    assert_eq!(grpc(stack, header), Some(0));
                }
            });
        }
        scope.spawn(|| assert_eq!(rest(&stack, &[("traceparent", &unsampled)], r#"{"instances": [2.0]}"#), 200));
        scope.spawn(|| assert_eq!(rest(&stack, &[], r#"{"instances": [3.0]}"#), 200));
    });
    let (bad_header, bad_trace, bad_parent) = traceparent(7, true);
    assert_eq!(rest(&stack, &[("traceparent", &bad_header)], "{"), 400);
    let last_traceparent = stack.sim().stats()["last_traceparent"].as_str().unwrap_or_default().to_string();

    let expected_calls = traced.len() + 2;
    let spans = spans_after_stop(&mut stack, &receiver, |spans| {
        spans.iter().filter(|s| s["name"] == "call").count() >= expected_calls
    });
    assert!(spans.iter().all(|s| s["service"] == "tfgate-batcher"), "{spans:#?}");

    let mut batches_seen = BTreeSet::new();
    for (i, (_, trace, parent)) in traced.iter().enumerate() {
        let call = only(named(&spans, "call", trace), "call span per traced call");
        assert_eq!(call["parent_span_id"], *parent, "the caller's span is the parent");
        assert_eq!(call["kind"], "server");
        assert_eq!(call["status"], "STATUS_CODE_UNSET");
        let attributes = &call["attributes"];
        assert_eq!(attributes["tfgate.model"], "half_plus_two");
        assert_eq!(attributes["tfgate.version"], "1");
        assert_eq!(attributes["tfgate.method"], "predict");
        assert_eq!(attributes["tfgate.rows"], 1);
        assert_eq!(attributes["tfgate.ingress"], if i < 4 { "rest" } else { "grpc" });
        let micros = |step: &str| {
            attributes[step].as_i64().unwrap_or_else(|| panic!("{step} is a number of microseconds: {call}"))
        };
        let steps = micros("tfgate.convert_us") + micros("tfgate.admission_us") + micros("tfgate.queue_us");
        assert!(micros("tfgate.queue_us") > 0, "{call}");
        let batch = only(batches_of(&spans, call), "batch carrying the call");
        assert_eq!(batch["kind"], "client");
        assert_eq!(batch["parent_span_id"], "", "a batch has links, not a parent");
        let links = batch["links"].as_array().unwrap().len() as u64;
        let attributes = &batch["attributes"];
        assert_eq!(attributes["tfgate.model"], "half_plus_two");
        assert_eq!(attributes["tfgate.version"], "1");
        assert_eq!(attributes["tfgate.backend.version"], 1);
        assert!(attributes["tfgate.batch.calls"].as_u64().unwrap() >= links, "{batch}");
        assert_eq!(attributes["tfgate.batch.rows"], attributes["tfgate.batch.calls"], "one row per call");
        // The steps come before the batch leaves (within a millisecond: the attributes are
        // whole microseconds, the spans' times from another clock).
        let (arrived, sent) = (call["start_ns"].as_i64().unwrap(), batch["start_ns"].as_i64().unwrap());
        assert!(arrived + steps * 1000 <= sent + 1_000_000, "steps of {steps} us, call {call} batch {batch}");
        assert!(call["end_ns"].as_i64().unwrap() >= batch["end_ns"].as_i64().unwrap(), "answered after its batch");
        batches_seen.insert(batch["span_id"].as_str().unwrap().to_string());
        if batch["links"].as_array().unwrap().len() > 1 {
            batches_seen.insert("shared".to_string());
        }
    }
    assert!(batches_seen.contains("shared"), "concurrent calls shared a batch: {spans:#?}");
    // TF Serving got a batch's context, not a caller's.
    let batch_contexts: Vec<String> = spans
        .iter()
        .filter(|s| s["name"] == "batch")
        .map(|s| format!("00-{}-{}-01", s["trace_id"].as_str().unwrap(), s["span_id"].as_str().unwrap()))
        .collect();
    assert!(batch_contexts.contains(&last_traceparent), "{last_traceparent} among {batch_contexts:?}");

    // The caller that decided not to sample is not traced; the one without context is a root.
    assert!(spans.iter().all(|s| s["trace_id"] != unsampled_trace.as_str()));
    let given: BTreeSet<&str> = traced.iter().map(|(_, t, _)| t.as_str()).chain([bad_trace.as_str()]).collect();
    let roots: Vec<&Value> =
        spans.iter().filter(|s| s["name"] == "call" && !given.contains(s["trace_id"].as_str().unwrap())).collect();
    let root = only(roots, "call span without a caller's context");
    assert_eq!(root["parent_span_id"], "");
    assert!(!root["attributes"]["tfgate.request_id"].as_str().unwrap().is_empty(), "nginx's $request_id");
    assert_eq!(batches_of(&spans, root).len(), 1, "its batch links to it");

    // A call refused before its batch: an error, with the status code's name.
    let refused = only(named(&spans, "call", &bad_trace), "span of the refused call");
    assert_eq!(refused["parent_span_id"], bad_parent);
    assert_eq!(refused["status"], "STATUS_CODE_ERROR");
    assert!(refused["status_message"].as_str().unwrap().starts_with("INVALID_ARGUMENT"), "{refused}");
    assert!(refused["attributes"].get("tfgate.queue_us").is_none(), "it never queued: {refused}");
}

#[test]
fn a_sampling_ratio_of_zero_traces_only_the_callers_that_ask() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = OtlpReceiver::start(dir.path());
    let mut stack = stack(&receiver, "sampling_ratio = 0.0\n");
    let (header, trace, _) = traceparent(1, true);
    thread::scope(|scope| {
        scope.spawn(|| assert_eq!(rest(&stack, &[("traceparent", &header)], r#"{"instances": [1.0]}"#), 200));
        scope.spawn(|| assert_eq!(rest(&stack, &[], r#"{"instances": [2.0]}"#), 200));
    });
    let spans = spans_after_stop(&mut stack, &receiver, |spans| spans.iter().any(|s| s["name"] == "batch"));
    let call = only(named(&spans, "call", &trace), "call span of the caller that sampled");
    assert_eq!(spans.iter().filter(|s| s["name"] == "call").count(), 1, "the other call is not traced: {spans:#?}");
    let batch = only(batches_of(&spans, call), "batch");
    assert_eq!(batch["links"].as_array().unwrap().len(), 1, "only the traced call is linked");
}

#[test]
fn a_collector_that_is_down_costs_the_calls_nothing() {
    let tables = format!("[tracing]\notlp_endpoint = \"http://127.0.0.1:{}\"\n", tfgate_tests::free_port());
    let mut stack = BatchStack::start_grpc(&[], "", "", &tables);
    for n in 0..20 {
        let (header, _, _) = traceparent(n, true);
        assert_eq!(rest(&stack, &[("traceparent", &header)], r#"{"instances": [1.0]}"#), 200);
    }
    assert_eq!(grpc(&stack, &traceparent(21, true).0), Some(0));
    // Stopping still ends promptly: the last export is given up after a few seconds.
    let start = Instant::now();
    stack.daemon.process.signal("TERM");
    assert_eq!(stack.daemon.process.wait_exit(Duration::from_secs(15)), Some(true), "the daemon exits cleanly");
    assert!(start.elapsed() < Duration::from_secs(10), "stopped in {:?}", start.elapsed());
    // The operator hears of it: the spans it could not deliver are logged (rate-limited).
    let log = stack.daemon.process.log_text();
    assert!(log.contains("spans not exported to http://127.0.0.1:"), "{log}");
    // The log loses no line to the tracing layer's filter (the first line after a traced call
    // once went missing: a filter asked without an event to follow).
    assert!(log.contains("SIGTERM received") && log.contains("all connections closed"), "{log}");
}
