//! One path for every call: the same outcomes driven through every ingress (TF Serving's REST
//! and the Open Inference Protocol's REST on the daemon's socket, TF Serving's gRPC and the
//! protocol's gRPC on its gRPC socket, the trusted headers written as nginx writes them) give
//! the same audit record (the ingress aside), the same metrics in each transport's family (the
//! `method` label naming each API's operation), and the same status, mapped per ingress (an
//! HTTP status, and the gRPC code TF Serving's REST API maps to it).
//!
//! The v2 ingresses' own calls (health, metadata, readiness, binary data, one batch shared with
//! TF Serving's clients) are in v2_ingress.rs.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use prost::Message;
use serde_json::Value;
use tfgate_proto::inference::ModelReadyRequest;
use tfgate_proto::tensorflow::serving::{GetModelStatusRequest, ModelSpec, PredictRequest};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{DataType, TensorProto, TensorShapeProto};
use tfgate_tests::batching_stack::{metric_value, BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::grpc_wire::{call, frame};
use tfgate_tests::tensors::{floats, v2_input, v2_json, v2_message};

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";
const STATUS: &str = "/tensorflow.serving.ModelService/GetModelStatus";
const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
const MODEL_READY: &str = "/inference.GRPCInferenceService/ModelReady";

/// What one call asks, written once for every ingress.
struct Ask {
    model: &'static str,
    /// The trusted version header (nginx's resolution); the path and message name none.
    version: Option<&'static str>,
    status: bool,
    /// A Predict's input: REST JSON instances, and the same as a gRPC tensor (from which the
    /// v2 forms are written).
    rest_body: String,
    grpc_input: (&'static str, TensorProto),
    extra_headers: Vec<(&'static str, String)>,
}

/// The ingresses, as the audit log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Rest,
    Grpc,
    V2Rest,
    V2Grpc,
}

const EVERY: [Via; 4] = [Via::Rest, Via::Grpc, Via::V2Rest, Via::V2Grpc];

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Rest => "rest",
            Via::Grpc => "grpc",
            Via::V2Rest => "v2_rest",
            Via::V2Grpc => "v2_grpc",
        }
    }

    fn is_grpc(self) -> bool {
        matches!(self, Via::Grpc | Via::V2Grpc)
    }

    /// The series a call of `method` (the audit line's) is counted in.
    fn series(self, model: &str, version: &str, method: &str, status: u16) -> String {
        let label = match (self, method) {
            (Via::Rest, m) => m,
            (Via::Grpc, "predict") => "Predict",
            (Via::Grpc, "status") => "GetModelStatus",
            (Via::V2Rest, "predict") => "model_infer",
            (Via::V2Rest, "status") => "model_ready",
            (Via::V2Grpc, "predict") => "ModelInfer",
            (Via::V2Grpc, "status") => "ModelReady",
            (via, other) => panic!("{via:?} {other}"),
        };
        match self.is_grpc() {
            false => format!(
                "tfgate_requests_total{{model=\"{model}\",version=\"{version}\",method=\"{label}\",code=\"{status}\"}}"
            ),
            true => format!(
                "tfgate_grpc_requests_total{{model=\"{model}\",version=\"{version}\",method=\"{label}\",code=\"{}\"}}",
                grpc_code_of(status).0
            ),
        }
    }
}

/// How a call ended: its HTTP status, or its gRPC code and message.
#[derive(Debug)]
enum Ended {
    Http(u16, String),
    Grpc(u32, String),
}

fn strings(values: &[&str]) -> TensorProto {
    TensorProto {
        dtype: DataType::DtString as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: vec![Dim { size: values.len() as i64, name: String::new() }],
            unknown_rank: false,
        }),
        string_val: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn predict(model: &'static str, rest_body: &str, grpc_input: (&'static str, TensorProto)) -> Ask {
    Ask {
        model,
        version: Some("1"),
        status: false,
        rest_body: rest_body.to_string(),
        grpc_input,
        extra_headers: Vec::new(),
    }
}

struct Fixture {
    sim: ControlledSim,
    daemon: BatchDaemon,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sim = ControlledSim::start(&[]);
        let top =
            format!("grpc_listen = \"{}\"\nmax_body_bytes_in_flight = 65536", dir.path().join("grpc.sock").display());
        let tables = format!(
            "[models.evolving]\ndispatch = \"fixed\"\nmax_delay_us = 5000000\nmax_queue = 1\n\
             [models.echo_string]\ndispatch = \"fixed\"\nmax_delay_us = 5000000\ntimeout_ms = 200\n\
             [audit]\npath = \"{}\"\n\
             [quotas]\nstore = \"memory\"\n[quotas.plans.default]\n[quotas.plans.tiny]\nrequests = \"1/day\"\n",
            dir.path().join("audit.jsonl").display()
        );
        let daemon = BatchDaemon::start_with_top(dir.path(), &[sim.grpc_url()], &top, "", &tables);
        Fixture { sim, daemon, dir }
    }

    fn grpc_socket(&self) -> std::path::PathBuf {
        self.dir.path().join("grpc.sock")
    }

    fn headers(ask: &Ask, id: &str, subject: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-request-id", id.to_string()),
            ("x-tfgate-subject", subject.to_string()),
            ("x-tfgate-model", ask.model.to_string()),
        ];
        if let Some(version) = ask.version {
            headers.push(("x-tfgate-version", version.to_string()));
        }
        headers.extend(ask.extra_headers.iter().cloned());
        headers
    }

    /// The REST request of `ask` through `via` (REST or v2 REST): method, path and body.
    fn rest_request(via: Via, ask: &Ask) -> (&'static str, String, String) {
        match (via, ask.status) {
            (Via::Rest, true) => ("GET", format!("/v1/models/{}", ask.model), String::new()),
            (Via::Rest, false) => ("POST", format!("/v1/models/{}:predict", ask.model), ask.rest_body.clone()),
            (_, true) => ("GET", format!("/v2/models/{}/ready", ask.model), String::new()),
            (_, false) => ("POST", format!("/v2/models/{}/infer", ask.model), v2_json(&v2_input(&ask.grpc_input))),
        }
    }

    /// The gRPC call of `ask` through `via` (gRPC or v2 gRPC): path and message.
    fn grpc_request(via: Via, ask: &Ask) -> (&'static str, Vec<u8>) {
        let spec = Some(ModelSpec { name: ask.model.to_string(), ..Default::default() });
        match (via, ask.status) {
            (Via::Grpc, true) => (STATUS, GetModelStatusRequest { model_spec: spec }.encode_to_vec()),
            (Via::Grpc, false) => {
                let (name, tensor) = ask.grpc_input.clone();
                let inputs = [(name.to_string(), tensor)].into();
                (PREDICT, PredictRequest { model_spec: spec, inputs, ..Default::default() }.encode_to_vec())
            }
            (_, true) => {
                (MODEL_READY, ModelReadyRequest { name: ask.model.to_string(), version: String::new() }.encode_to_vec())
            }
            (_, false) => (MODEL_INFER, v2_message(ask.model, &v2_input(&ask.grpc_input)).encode_to_vec()),
        }
    }

    async fn call(&self, via: Via, ask: &Ask, id: &str, subject: &str) -> Ended {
        let headers = Self::headers(ask, id, subject);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if via.is_grpc() {
            let (path, message) = Self::grpc_request(via, ask);
            let answer = call(&self.grpc_socket(), path, &headers, frame(&message), &[]).await;
            let code = answer.grpc_status().unwrap_or_else(|| panic!("{id}: no grpc-status: {answer:?}"));
            return Ended::Grpc(code, answer.grpc_message());
        }
        let (method, path, body) = Self::rest_request(via, ask);
        let answer = UnixClient::new(&self.daemon.socket).send(method, &path, &headers, &body);
        Ended::Http(answer.status, answer.body)
    }

    fn audit(&self, id: &str) -> Value {
        for _ in 0..100 {
            let text = std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(&format!("\"request_id\":\"{id}\""))) {
                return serde_json::from_str(line).unwrap();
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("no audit line for {id}");
    }

    fn metrics(&self) -> String {
        self.daemon.metrics_text()
    }
}

/// The gRPC code (name, number) of an HTTP status, as TF Serving's REST API maps codes to
/// statuses.
fn grpc_code_of(status: u16) -> (&'static str, u32) {
    match status {
        200 => ("OK", 0),
        400 => ("INVALID_ARGUMENT", 3),
        404 => ("NOT_FOUND", 5),
        413 | 429 => ("RESOURCE_EXHAUSTED", 8),
        499 => ("CANCELLED", 1),
        500 => ("INTERNAL", 13),
        503 => ("UNAVAILABLE", 14),
        504 => ("DEADLINE_EXCEEDED", 4),
        other => panic!("no gRPC code for {other}"),
    }
}

const COMPARED: [&str; 9] = ["method", "model", "requested", "version", "plan", "rows", "status", "code", "batch_size"];

fn id(row: &str, via: Via) -> String {
    format!("{row}-{}", via.name())
}

/// Drives `ask` through every ingress (each with the subject `subject_of` gives it) and checks
/// the outcomes agree; returns the HTTP status they gave.
async fn every(fx: &Fixture, row: &str, ask: &Ask, subject_of: impl Fn(Via) -> String) -> u16 {
    let metrics_before = fx.metrics();
    let mut ended = Vec::new();
    for via in EVERY {
        ended.push((via, fx.call(via, ask, &id(row, via), &subject_of(via)).await));
    }
    let Ended::Http(status, _) = ended[0].1 else { panic!("{row}: REST ended as {:?}", ended[0].1) };
    for (via, end) in &ended {
        match end {
            Ended::Http(s, body) => {
                assert_eq!(*s, status, "{row}: {via:?} answered {s}, REST {status}: {body}");
                if *s != 200 {
                    let error: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{row}: {via:?}: {body}"));
                    assert!(error["error"].is_string(), "{row}: {via:?}: {body}");
                }
            }
            Ended::Grpc(code, message) => {
                assert_eq!(*code, grpc_code_of(status).1, "{row}: {via:?} answered {code} ({message}), REST {status}")
            }
        }
    }
    compare(fx, row, &EVERY, &metrics_before);
    status
}

/// The calls' audit records agree with the REST call's, and each was counted once in its
/// family.
fn compare(fx: &Fixture, row: &str, vias: &[Via], metrics_before: &str) {
    let records: Vec<(Via, Value)> = vias.iter().map(|&via| (via, fx.audit(&id(row, via)))).collect();
    let rest = &records[0].1;
    let after = fx.metrics();
    for (via, record) in &records {
        assert_eq!(record["ingress"].as_str(), Some(via.name()), "{row}");
        for key in COMPARED {
            assert_eq!(rest[key], record[key], "{row}: {key} differs\n  rest {rest}\n  {via:?} {record}");
        }
        assert_eq!(rest["error"].is_null(), record["error"].is_null(), "{row}: error\n  rest {rest}\n  {record}");
        let text = |key: &str| record[key].as_str().unwrap_or_default().to_string();
        let version = match &record["version"] {
            Value::Null => "latest".to_string(),
            v => v.to_string(),
        };
        let series = via.series(&text("model"), &version, &text("method"), record["status"].as_u64().unwrap() as u16);
        let delta = metric_value(&after, &series).unwrap_or(0.0) - metric_value(metrics_before, &series).unwrap_or(0.0);
        assert_eq!(delta, 1.0, "{row}: {series} went up by {delta}");
    }
}

/// Writes a REST request and goes away before its answer.
fn walk_away(socket: &Path, path: &str, id: &str, body: &str) {
    let mut stream = UnixStream::connect(socket).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\n\
         X-Tfgate-Subject: alice\r\nX-Tfgate-Model: half_plus_two\r\nX-Tfgate-Version: 1\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    thread::sleep(Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_the_same_through_every_ingress() {
    let fx = Fixture::start();
    let one = || predict("half_plus_two", r#"{"instances": [1.0]}"#, ("x", floats(&[1.0])));
    fn subject(s: &'static str) -> impl Fn(Via) -> String {
        move |_| s.to_string()
    }

    // Answered.
    assert_eq!(every(&fx, "answered", &one(), subject("alice")).await, 200);

    // A quota refusal: each ingress's caller spends its 1 request a day, then is refused.
    let mut tiny = one();
    tiny.extra_headers.push(("x-tfgate-plan", "tiny".to_string()));
    for via in EVERY {
        fx.call(via, &tiny, &format!("spend-{}", via.name()), &format!("quota-{}", via.name())).await;
    }
    assert_eq!(every(&fx, "quota", &tiny, |via| format!("quota-{}", via.name())).await, 429);

    // More than the memory budget (64 KiB): refused as it arrives.
    let many: Vec<f32> = vec![0.5; 20_000];
    let big_body = format!("{{\"instances\": {}}}", serde_json::to_string(&many).unwrap());
    let big = predict("half_plus_two", &big_body, ("x", floats(&many)));
    assert_eq!(every(&fx, "memory", &big, subject("alice")).await, 413);

    // The queue is full: a request of another caller waits (fixed delay of 5 s, max_queue 1).
    let queued = predict("evolving", r#"{"instances": [1.0]}"#, ("x", floats(&[1.0])));
    let socket = fx.daemon.socket.clone();
    let blocker = thread::spawn(move || {
        let client = UnixClient::new(&socket);
        let headers = [("x-tfgate-subject", "blocker"), ("x-tfgate-model", "evolving"), ("x-tfgate-version", "1")];
        client.post("/v1/models/evolving:predict", &headers, r#"{"instances": [2.0]}"#).status
    });
    thread::sleep(Duration::from_millis(500));
    assert_eq!(every(&fx, "queue", &queued, subject("alice")).await, 429);

    // The deadline passes in the queue (echo_string waits 5 s for more rows, times out at 200 ms).
    let late = predict("echo_string", r#"{"instances": ["a"]}"#, ("s", strings(&["a"])));
    assert_eq!(every(&fx, "deadline", &late, subject("alice")).await, 504);

    // A model the backend does not have.
    let unknown = predict("nope", r#"{"instances": [1.0]}"#, ("x", floats(&[1.0])));
    assert_eq!(every(&fx, "unknown", &unknown, subject("alice")).await, 404);

    // A status (v2: readiness) whose versions the catalog hides (it exposes only 7, which is
    // not loaded).
    let hidden =
        Ask { status: true, version: None, extra_headers: vec![("x-tfgate-versions", "7".to_string())], ..one() };
    assert_eq!(every(&fx, "hidden", &hidden, subject("alice")).await, 404);

    // The backend fails the call (INTERNAL, not retried): once for each ingress's call.
    let fails = one();
    let metrics_before = fx.metrics();
    for via in EVERY {
        fx.sim.control("/fail?code=13&count=1");
        match fx.call(via, &fails, &id("backend", via), "alice").await {
            Ended::Http(status, body) => assert_eq!(status, 500, "{via:?}: {body}"),
            Ended::Grpc(code, message) => assert_eq!(code, 13, "{via:?}: {message}"),
        }
    }
    compare(&fx, "backend", &EVERY, &metrics_before);

    // Malformed input: a string where the signature takes floats.
    let malformed = predict("half_plus_two", r#"{"instances": ["a"]}"#, ("x", strings(&["a"])));
    assert_eq!(every(&fx, "malformed", &malformed, subject("alice")).await, 400);

    // The client goes away while its call is in flight (the backend takes 2 s).
    fx.sim.control("/delay?us=2000000");
    let metrics_before = fx.metrics();
    let cancel = one();
    walk_away(&fx.daemon.socket, "/v1/models/half_plus_two:predict", "cancel-rest", &cancel.rest_body);
    walk_away(
        &fx.daemon.socket,
        "/v2/models/half_plus_two/infer",
        "cancel-v2_rest",
        &v2_json(&v2_input(&cancel.grpc_input)),
    );
    for via in [Via::Grpc, Via::V2Grpc] {
        let call_id = id("cancel", via);
        let gone = tokio::time::timeout(Duration::from_millis(300), fx.call(via, &cancel, &call_id, "alice"));
        assert!(gone.await.is_err(), "{via:?}: the call was answered before its client went away");
    }
    compare(&fx, "cancel", &EVERY, &metrics_before);
    assert_eq!(fx.audit("cancel-v2_grpc")["status"], 499);
    fx.sim.control("/delay?us=0");
    assert_eq!(blocker.join().unwrap(), 200);
}
