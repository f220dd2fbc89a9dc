//! One path for every call: the same outcomes driven through every ingress (TF Serving's REST
//! and the Open Inference Protocol's REST on the daemon's socket, TF Serving's gRPC and the
//! protocol's gRPC on its gRPC socket, the trusted headers written as nginx writes them) give
//! the same audit record (the ingress aside), the same metrics in each transport's family (the
//! `method` label naming each API's operation), and the same status, mapped per ingress (an
//! HTTP status, and the gRPC code TF Serving's REST API maps to it).
//!
//! Beside the table: a v2 client and TF Serving's clients land in one backend batch, each
//! answered its own rows, and a v2 call is in the prediction log as TF Serving's PredictLog.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use prost::Message;
use serde_json::{json, Value};
use tfgate_proto::inference::model_infer_request::InferInputTensor;
use tfgate_proto::inference::{ModelInferRequest, ModelInferResponse, ModelReadyRequest};
use tfgate_proto::tensorflow::serving::{
    GetModelStatusRequest, ModelSpec, PredictRequest, PredictResponse, PredictionLog,
};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{DataType, TensorProto, TensorShapeProto};
use tfgate_tests::batching_stack::{metric_value, BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::grpc_wire::{call, frame, WireAnswer};
use tfgate_tests::tensors::{float_values, floats};

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

/// A v2 input with the tensor's name, datatype, shape and elements: JSON `data`, and raw
/// contents (little-endian; BYTES length-prefixed).
struct V2Input {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<i64>,
    data: Value,
    raw: Vec<u8>,
}

fn v2_input((name, tensor): &(&'static str, TensorProto)) -> V2Input {
    let shape = tensor.tensor_shape.as_ref().map(|s| s.dim.iter().map(|d| d.size).collect()).unwrap_or_default();
    if tensor.dtype == DataType::DtString as i32 {
        let data = tensor.string_val.iter().map(|s| Value::from(String::from_utf8_lossy(s))).collect();
        let mut raw = Vec::new();
        for s in &tensor.string_val {
            raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
            raw.extend_from_slice(s);
        }
        return V2Input { name, datatype: "BYTES", shape, data, raw };
    }
    let values = float_values(tensor);
    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    V2Input { name, datatype: "FP32", shape, data: json!(values), raw }
}

fn v2_json(input: &V2Input) -> String {
    json!({"inputs": [{"name": input.name, "datatype": input.datatype, "shape": input.shape, "data": input.data}]})
        .to_string()
}

fn v2_message(model: &str, input: &V2Input) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.to_string(),
        inputs: vec![InferInputTensor {
            name: input.name.into(),
            datatype: input.datatype.into(),
            shape: input.shape.clone(),
            ..Default::default()
        }],
        raw_input_contents: vec![input.raw.clone().into()],
        ..Default::default()
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

/// An HTTP/1.1 request with a body of any bytes; the answer's status, headers and body bytes.
fn http_bytes(
    socket: &Path,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut answer_headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        answer_headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap();
    (status, answer_headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The records of a TFRecord file (length, its CRC, data, its CRC).
fn tfrecords(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while data.len() >= 12 {
        let len = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
        records.push(data[12..12 + len].to_vec());
        data = &data[12 + len + 4..];
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v2_and_tf_serving_clients_share_a_batch_each_with_its_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ControlledSim::start(&[]);
    let grpc_socket = dir.path().join("grpc.sock");
    let top = format!("grpc_listen = \"{}\"", grpc_socket.display());
    // The first call waits 1 s for more rows; the four calls make 8 rows.
    let tables = format!(
        "[models.half_plus_two]\ndispatch = \"fixed\"\nmax_delay_us = 1000000\nmax_batch_size = 8\n\
         [prediction_log]\ndir = \"{}/predictions\"\nsampling_rate = 1.0\n",
        dir.path().display()
    );
    let daemon = BatchDaemon::start_with_top(dir.path(), &[sim.grpc_url()], &top, "", &tables);
    let headers =
        |id: &'static str| vec![("x-request-id", id), ("x-tfgate-model", "half_plus_two"), ("x-tfgate-version", "1")];

    // TF Serving REST: 1 row.
    let socket = daemon.socket.clone();
    let rest = thread::spawn(move || {
        UnixClient::new(&socket).post(
            "/v1/models/half_plus_two:predict",
            &headers("tf-rest"),
            r#"{"instances": [0.0]}"#,
        )
    });
    // v2 REST, binary input and binary output: 3 rows.
    let socket = daemon.socket.clone();
    let v2_rest = thread::spawn(move || {
        let header = json!({
            "id": "mine",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 12}}],
            "outputs": [{"name": "y", "parameters": {"binary_data": true}}],
        })
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend([10.0f32, 20.0, 30.0].iter().flat_map(|v| v.to_le_bytes()));
        let length = header.len().to_string();
        let mut headers = headers("v2-rest");
        headers.push(("inference-header-content-length", &length));
        headers.push(("content-type", "application/octet-stream"));
        http_bytes(&socket, "/v2/models/half_plus_two/infer", &headers, &body)
    });
    // TF Serving gRPC: 2 rows; v2 gRPC: 2 rows.
    let predict = PredictRequest {
        model_spec: Some(ModelSpec { name: "half_plus_two".into(), ..Default::default() }),
        inputs: [("x".to_string(), floats(&[100.0, 200.0]))].into(),
        ..Default::default()
    };
    let infer = v2_message("half_plus_two", &v2_input(&("x", floats(&[1000.0, 2000.0]))));
    let (tf_headers, v2_headers) = (headers("tf-grpc"), headers("v2-grpc"));
    let (tf_grpc, v2_grpc) = tokio::join!(
        call(&grpc_socket, PREDICT, &tf_headers, frame(&predict.encode_to_vec()), &[]),
        call(&grpc_socket, MODEL_INFER, &v2_headers, frame(&infer.encode_to_vec()), &[]),
    );

    // One backend call of 8 rows.
    let rest = rest.join().unwrap();
    let (status, answer_headers, body) = v2_rest.join().unwrap();
    assert_eq!(sim.stats()["batch_sizes"], json!({"8": 1}), "{}", sim.stats());

    // Each its own rows: y = 0.5 x + 2.
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert_eq!(rest.json()["predictions"], json!([2.0]));
    let tf_grpc = message_of(&tf_grpc);
    assert_eq!(float_values(&PredictResponse::decode(tf_grpc).unwrap().outputs["y"]), vec![52.0, 102.0]);
    let v2_grpc = ModelInferResponse::decode(message_of(&v2_grpc)).unwrap();
    assert_eq!((v2_grpc.model_name.as_str(), v2_grpc.model_version.as_str()), ("half_plus_two", "1"));
    assert_eq!((v2_grpc.outputs[0].name.as_str(), v2_grpc.outputs[0].datatype.as_str()), ("y", "FP32"));
    assert_eq!(v2_grpc.outputs[0].shape, vec![2]);
    assert_eq!(le_floats(&v2_grpc.raw_output_contents[0]), vec![502.0, 1002.0]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&answer_headers, "content-type"), Some("application/octet-stream"));
    let json_len: usize = header(&answer_headers, "inference-header-content-length").unwrap().parse().unwrap();
    let json: Value = serde_json::from_slice(&body[..json_len]).unwrap();
    assert_eq!(
        json,
        json!({"model_name": "half_plus_two", "model_version": "1", "id": "mine",
               "outputs": [{"name": "y", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 12}}]})
    );
    assert_eq!(le_floats(&body[json_len..]), vec![7.0, 12.0, 17.0]);

    // The v2 calls are in the prediction log as TF Serving's PredictLog, their own rows only.
    let mut logged = Vec::new();
    for _ in 0..100 {
        logged = std::fs::read_dir(dir.path().join("predictions"))
            .unwrap()
            .flat_map(|f| tfrecords(&std::fs::read(f.unwrap().path()).unwrap()))
            .map(|r| PredictionLog::decode(&r[..]).unwrap())
            .collect();
        if logged.len() == 4 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let v2_log = logged
        .iter()
        .find(|l| l.log_metadata.as_ref().unwrap().request_origin == "v2-rest")
        .unwrap_or_else(|| panic!("no record of the v2 REST call: {logged:?}"));
    let Some(tfgate_proto::tensorflow::serving::prediction_log::LogType::PredictLog(predict_log)) = &v2_log.log_type
    else {
        panic!("not a PredictLog: {v2_log:?}")
    };
    let request = predict_log.request.as_ref().unwrap();
    assert_eq!(request.model_spec.as_ref().unwrap().name, "half_plus_two");
    assert_eq!(float_values(&request.inputs["x"]), vec![10.0, 20.0, 30.0]);
    assert_eq!(float_values(&predict_log.response.as_ref().unwrap().outputs["y"]), vec![7.0, 12.0, 17.0]);
}

fn message_of(answer: &WireAnswer) -> &[u8] {
    assert_eq!(answer.grpc_status(), Some(0), "{}", answer.grpc_message());
    answer.message()
}

fn le_floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The protocol's other calls: health, server and model metadata, model readiness, and the
/// errors of paths and methods it does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_health_metadata_and_readiness() {
    let fx = Fixture::start();
    let client = UnixClient::new(&fx.daemon.socket);
    let get = |path: &str| client.send("GET", path, &[("x-tfgate-model", "half_plus_two")], "");
    assert_eq!((get("/v2/health/live").status, get("/v2/health/live").body.as_str()), (200, ""));
    assert_eq!(get("/v2/health/ready").status, 200);
    let server = get("/v2").json();
    assert_eq!(
        (server["name"].as_str(), server["extensions"].clone()),
        (Some("tfgate"), json!(["binary_tensor_data"]))
    );
    assert!(server["version"].is_string());
    let metadata = get("/v2/models/half_plus_two").json();
    assert_eq!(
        metadata,
        json!({"name": "half_plus_two", "versions": ["2"], "platform": "tensorflow_savedmodel",
               "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
               "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]})
    );
    assert_eq!(get("/v2/models/half_plus_two/versions/1").json()["versions"], json!(["1"]));
    assert_eq!(get("/v2/models/half_plus_two/ready").status, 200);
    assert_eq!(get("/v2/models/half_plus_two/versions/1/ready").status, 200);
    get("/v2/models/nope/ready").assert_json_error(404);
    get("/v2/models/half_plus_two/versions/9").assert_json_error(404);
    // Paths and methods the protocol does not have.
    get("/v2/models/half_plus_two/infer").assert_json_error(405);
    client.send("POST", "/v2/health/live", &[], "").assert_json_error(405);
    get("/v2/repository/index").assert_json_error(404);
    get("/v2/Models/half_plus_two").assert_json_error(404);
    get("/v2/models//ready").assert_json_error(400);
    // JSON in and out; an answer of every output, named by the version that answered.
    let body = r#"{"id": "a", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [2, 4]}]}"#;
    let answer = client.post("/v2/models/half_plus_two/versions/2/infer", &[], body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.json(),
        json!({"model_name": "half_plus_two", "model_version": "2", "id": "a",
               "outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "data": [4.0, 5.0]}]})
    );
    // Errors are the protocol's body with the daemon's statuses.
    let wrong = r#"{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [2]}]}"#;
    let error = client.post("/v2/models/half_plus_two/infer", &[], wrong).assert_json_error(400);
    assert_eq!(error, "input 'x' has datatype FP64, the model expects FP32");
    let unknown_output = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [2]}],
        "outputs": [{"name": "z"}]}"#;
    let error = client.post("/v2/models/half_plus_two/infer", &[], unknown_output).assert_json_error(400);
    assert_eq!(error, "unknown output 'z': the model's outputs are y");

    // gRPC: the same questions.
    let socket = fx.grpc_socket();
    let ask = |path: &'static str, message: Vec<u8>| {
        let socket = socket.clone();
        async move { call(&socket, path, &[], frame(&message), &[]).await }
    };
    use tfgate_proto::inference::{
        ModelMetadataRequest, ModelMetadataResponse, ModelReadyResponse, ServerLiveResponse, ServerMetadataResponse,
        ServerReadyResponse,
    };
    let live = ask("/inference.GRPCInferenceService/ServerLive", Vec::new()).await;
    assert!(ServerLiveResponse::decode(message_of(&live)).unwrap().live);
    let ready = ask("/inference.GRPCInferenceService/ServerReady", Vec::new()).await;
    assert!(ServerReadyResponse::decode(message_of(&ready)).unwrap().ready);
    let server = ask("/inference.GRPCInferenceService/ServerMetadata", Vec::new()).await;
    let server = ServerMetadataResponse::decode(message_of(&server)).unwrap();
    assert_eq!((server.name.as_str(), server.extensions), ("tfgate", vec!["binary_tensor_data".to_string()]));
    let request = ModelMetadataRequest { name: "half_plus_two".into(), version: "1".into() }.encode_to_vec();
    let metadata = ask("/inference.GRPCInferenceService/ModelMetadata", request).await;
    let metadata = ModelMetadataResponse::decode(message_of(&metadata)).unwrap();
    assert_eq!((metadata.versions, metadata.platform.as_str()), (vec!["1".to_string()], "tensorflow_savedmodel"));
    assert_eq!((metadata.inputs[0].name.as_str(), metadata.inputs[0].shape.clone()), ("x", vec![-1]));
    let request = ModelReadyRequest { name: "half_plus_two".into(), version: String::new() }.encode_to_vec();
    let ready = ask(MODEL_READY, request).await;
    assert!(ModelReadyResponse::decode(message_of(&ready)).unwrap().ready);
    let request = ModelReadyRequest { name: "nope".into(), version: String::new() }.encode_to_vec();
    assert_eq!(ask(MODEL_READY, request).await.grpc_status(), Some(5));
    let unknown = ask("/inference.GRPCInferenceService/ModelStreamInfer", Vec::new()).await;
    assert_eq!(unknown.grpc_status(), Some(12), "{}", unknown.grpc_message());
    // Typed contents in, raw contents out.
    use tfgate_proto::inference::InferTensorContents;
    let mut infer = v2_message("half_plus_two", &v2_input(&("x", floats(&[0.0, 2.0]))));
    infer.raw_input_contents.clear();
    infer.inputs[0].contents = Some(InferTensorContents { fp32_contents: vec![0.0, 2.0], ..Default::default() });
    let answered = ask(MODEL_INFER, infer.encode_to_vec()).await;
    let answered = ModelInferResponse::decode(message_of(&answered)).unwrap();
    // The latest version, 2: y = 0.5 x + 3.
    assert_eq!(le_floats(&answered.raw_output_contents[0]), vec![3.0, 4.0]);
    // A few bytes declaring 2^40 elements: refused, never expanded.
    let mut hostile = v2_message("half_plus_two", &v2_input(&("x", floats(&[1.0]))));
    hostile.inputs[0].shape = vec![1 << 40];
    let refused = ask(MODEL_INFER, hostile.encode_to_vec()).await;
    assert_eq!(refused.grpc_status(), Some(3), "{}", refused.grpc_message());
    // A message for another model than nginx routed.
    let routed = [("x-tfgate-model", "other")];
    let refused = call(&socket, MODEL_INFER, &routed, frame(&infer.encode_to_vec()), &[]).await;
    assert_eq!(refused.grpc_status(), Some(3), "{}", refused.grpc_message());

    // No backend target up: not ready (REST 503, gRPC ready false), still live.
    let dir = tempfile::tempdir().unwrap();
    let dead_socket = dir.path().join("grpc.sock");
    let top = format!("grpc_listen = \"{}\"", dead_socket.display());
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let daemon = BatchDaemon::start_with_top(dir.path(), &[format!("http://127.0.0.1:{port}")], &top, "", "");
    let client = UnixClient::new(&daemon.socket);
    let failed = client.post("/v2/models/m/infer", &[], body);
    assert_eq!(failed.status, 503, "{}", failed.body);
    client.send("GET", "/v2/health/ready", &[], "").assert_json_error(503);
    assert_eq!(client.send("GET", "/v2/health/live", &[], "").status, 200);
    let ready = call(&dead_socket, "/inference.GRPCInferenceService/ServerReady", &[], frame(&[]), &[]).await;
    assert!(!ServerReadyResponse::decode(message_of(&ready)).unwrap().ready);
}
