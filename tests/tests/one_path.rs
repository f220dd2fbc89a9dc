//! One path for every call: the same outcomes driven through both ingresses (REST on the
//! daemon's socket, gRPC on its gRPC socket, the trusted headers written as nginx writes them)
//! give the same audit record (the ingress aside), the same metrics in each ingress's family,
//! and the same status, mapped per ingress (an HTTP status, and the gRPC code TF Serving's
//! REST API maps to it).

use std::thread;
use std::time::Duration;

use prost::Message;
use serde_json::Value;
use tfgate_proto::tensorflow::serving::{GetModelStatusRequest, ModelSpec, PredictRequest};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{DataType, TensorProto, TensorShapeProto};
use tfgate_tests::batching_stack::{metric_value, BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::grpc_wire::{call, frame, WireAnswer};
use tfgate_tests::tensors::floats;

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";
const STATUS: &str = "/tensorflow.serving.ModelService/GetModelStatus";

/// What one call asks, written once for both ingresses.
struct Ask {
    model: &'static str,
    /// The trusted version header (nginx's resolution); the path and message name none.
    version: Option<&'static str>,
    status: bool,
    /// A Predict's input: REST JSON instances, and the same as a gRPC tensor.
    rest_body: String,
    grpc_input: (&'static str, TensorProto),
    extra_headers: Vec<(&'static str, String)>,
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

    fn rest(&self, ask: &Ask, id: &str, subject: &str) -> u16 {
        let headers = Self::headers(ask, id, subject);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let client = UnixClient::new(&self.daemon.socket);
        let answer = if ask.status {
            client.send("GET", &format!("/v1/models/{}", ask.model), &headers, "")
        } else {
            client.post(&format!("/v1/models/{}:predict", ask.model), &headers, &ask.rest_body)
        };
        answer.status
    }

    async fn grpc(&self, ask: &Ask, id: &str, subject: &str) -> WireAnswer {
        let headers = Self::headers(ask, id, subject);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let spec = Some(ModelSpec { name: ask.model.to_string(), ..Default::default() });
        let (path, message) = if ask.status {
            (STATUS, GetModelStatusRequest { model_spec: spec }.encode_to_vec())
        } else {
            let (name, tensor) = ask.grpc_input.clone();
            let request =
                PredictRequest { model_spec: spec, inputs: [(name.to_string(), tensor)].into(), ..Default::default() };
            (PREDICT, request.encode_to_vec())
        };
        call(&self.grpc_socket(), path, &headers, frame(&message), &[]).await
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

/// The gRPC code name of an HTTP status, as TF Serving's REST API maps codes to statuses.
fn grpc_code_of(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "INVALID_ARGUMENT",
        404 => "NOT_FOUND",
        413 | 429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        other => panic!("no gRPC code for {other}"),
    }
}

const COMPARED: [&str; 9] = ["method", "model", "requested", "version", "plan", "rows", "status", "code", "batch_size"];

/// Drives `ask` through both ingresses (`before` runs first for each, e.g. to spend a quota) and
/// checks the two outcomes agree; returns the HTTP status both gave.
async fn both(fx: &Fixture, row: &str, ask: &Ask, subject_of: impl Fn(&str) -> String) -> u16 {
    let metrics_before = fx.metrics();
    let rest_id = format!("{row}-rest");
    let grpc_id = format!("{row}-grpc");
    let status = fx.rest(ask, &rest_id, &subject_of("rest"));
    let answer = fx.grpc(ask, &grpc_id, &subject_of("grpc")).await;
    let code = answer.grpc_status().unwrap_or_else(|| panic!("{row}: no grpc-status: {answer:?}"));
    let code_name = grpc_code_of(status);
    let expected_code = [
        ("OK", 0),
        ("CANCELLED", 1),
        ("INVALID_ARGUMENT", 3),
        ("DEADLINE_EXCEEDED", 4),
        ("NOT_FOUND", 5),
        ("RESOURCE_EXHAUSTED", 8),
        ("INTERNAL", 13),
        ("UNAVAILABLE", 14),
    ]
    .iter()
    .find(|(name, _)| *name == code_name)
    .map(|(_, n)| *n)
    .unwrap();
    assert_eq!(code, expected_code, "{row}: REST {status}, gRPC {code} ({})", answer.grpc_message());
    compare(fx, row, &rest_id, &grpc_id, &metrics_before);
    status
}

/// The two calls' audit records and metrics agree.
fn compare(fx: &Fixture, row: &str, rest_id: &str, grpc_id: &str, metrics_before: &str) {
    let rest = fx.audit(rest_id);
    let grpc = fx.audit(grpc_id);
    assert_eq!((rest["ingress"].as_str(), grpc["ingress"].as_str()), (Some("rest"), Some("grpc")));
    for key in COMPARED {
        assert_eq!(rest[key], grpc[key], "{row}: {key} differs\n  rest {rest}\n  grpc {grpc}");
    }
    assert_eq!(rest["error"].is_null(), grpc["error"].is_null(), "{row}: error\n  rest {rest}\n  grpc {grpc}");
    let labels = |record: &Value| {
        let text = |key: &str| record[key].as_str().unwrap_or_default().to_string();
        let version = match &record["version"] {
            Value::Null => "latest".to_string(),
            v => v.to_string(),
        };
        (text("model"), version, text("method"), record["status"].as_u64().unwrap() as u16)
    };
    let (model, version, method, status) = labels(&rest);
    let grpc_method = match method.as_str() {
        "predict" => "Predict",
        "status" => "GetModelStatus",
        other => panic!("{other}"),
    };
    let rest_series = format!(
        "tfgate_requests_total{{model=\"{model}\",version=\"{version}\",method=\"{method}\",code=\"{status}\"}}"
    );
    let grpc_series = format!(
        "tfgate_grpc_requests_total{{model=\"{model}\",version=\"{version}\",method=\"{grpc_method}\",code=\"{}\"}}",
        grpc_code_of(status)
    );
    let after = fx.metrics();
    for series in [&rest_series, &grpc_series] {
        let delta = metric_value(&after, series).unwrap_or(0.0) - metric_value(metrics_before, series).unwrap_or(0.0);
        assert_eq!(delta, 1.0, "{row}: {series} went up by {delta}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_the_same_through_both_ingresses() {
    let fx = Fixture::start();
    let one = || predict("half_plus_two", r#"{"instances": [1.0]}"#, ("x", floats(&[1.0])));
    fn subject(s: &'static str) -> impl Fn(&str) -> String {
        move |_| s.to_string()
    }

    // Answered.
    assert_eq!(both(&fx, "answered", &one(), subject("alice")).await, 200);

    // A quota refusal: each ingress's caller spends its 1 request a day, then is refused.
    let mut tiny = one();
    tiny.extra_headers.push(("x-tfgate-plan", "tiny".to_string()));
    fx.rest(&tiny, "spend-rest", "quota-rest");
    fx.grpc(&tiny, "spend-grpc", "quota-grpc").await;
    assert_eq!(both(&fx, "quota", &tiny, |ingress| format!("quota-{ingress}")).await, 429);

    // More than the memory budget (64 KiB): refused as it arrives.
    let many: Vec<f32> = vec![0.5; 20_000];
    let big_body = format!("{{\"instances\": {}}}", serde_json::to_string(&many).unwrap());
    let big = predict("half_plus_two", &big_body, ("x", floats(&many)));
    assert_eq!(both(&fx, "memory", &big, subject("alice")).await, 413);

    // The queue is full: a request of another caller waits (fixed delay of 5 s, max_queue 1).
    let queued = predict("evolving", r#"{"instances": [1.0]}"#, ("x", floats(&[1.0])));
    let socket = fx.daemon.socket.clone();
    let blocker = thread::spawn(move || {
        let client = UnixClient::new(&socket);
        let headers = [("x-tfgate-subject", "blocker"), ("x-tfgate-model", "evolving"), ("x-tfgate-version", "1")];
        client.post("/v1/models/evolving:predict", &headers, r#"{"instances": [2.0]}"#).status
    });
    thread::sleep(Duration::from_millis(500));
    assert_eq!(both(&fx, "queue", &queued, subject("alice")).await, 429);

    // The deadline passes in the queue (echo_string waits 5 s for more rows, times out at 200 ms).
    let late = predict("echo_string", r#"{"instances": ["a"]}"#, ("s", strings(&["a"])));
    assert_eq!(both(&fx, "deadline", &late, subject("alice")).await, 504);

    // A model the backend does not have.
    let unknown = predict("nope", r#"{"instances": [1.0]}"#, ("x", floats(&[1.0])));
    assert_eq!(both(&fx, "unknown", &unknown, subject("alice")).await, 404);

    // A status whose versions the catalog hides (it exposes only 7, which is not loaded).
    let hidden =
        Ask { status: true, version: None, extra_headers: vec![("x-tfgate-versions", "7".to_string())], ..one() };
    assert_eq!(both(&fx, "hidden", &hidden, subject("alice")).await, 404);

    // The backend fails the call (INTERNAL, not retried).
    let fails = one();
    fx.sim.control("/fail?code=13&count=1");
    let status = fx.rest(&fails, "backend-rest", "alice");
    fx.sim.control("/fail?code=13&count=1");
    let metrics_before = fx.metrics();
    let answer = fx.grpc(&fails, "backend-grpc", "alice").await;
    assert_eq!((status, answer.grpc_status()), (500, Some(13)), "{}", answer.grpc_message());
    // (The REST call's metrics were counted before the snapshot: compare the gRPC side's and
    // the records.)
    let rest = fx.audit("backend-rest");
    let grpc = fx.audit("backend-grpc");
    for key in COMPARED {
        assert_eq!(rest[key], grpc[key], "backend: {key}");
    }
    let series =
        "tfgate_grpc_requests_total{model=\"half_plus_two\",version=\"1\",method=\"Predict\",code=\"INTERNAL\"}";
    assert_eq!(
        metric_value(&fx.metrics(), series).unwrap_or(0.0) - metric_value(&metrics_before, series).unwrap_or(0.0),
        1.0
    );

    // Malformed input: a string where the signature takes floats.
    let malformed = predict("half_plus_two", r#"{"instances": ["a"]}"#, ("x", strings(&["a"])));
    assert_eq!(both(&fx, "malformed", &malformed, subject("alice")).await, 400);

    // The client goes away while its call is in flight (the backend takes 2 s).
    fx.sim.control("/delay?us=2000000");
    let metrics_before = fx.metrics();
    let cancel = one();
    {
        use std::io::Write;
        let mut stream = std::os::unix::net::UnixStream::connect(&fx.daemon.socket).unwrap();
        let body = &cancel.rest_body;
        write!(
            stream,
            "POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: t\r\nX-Request-Id: cancel-rest\r\n\
             X-Tfgate-Subject: alice\r\nX-Tfgate-Model: half_plus_two\r\nX-Tfgate-Version: 1\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        thread::sleep(Duration::from_millis(300));
    }
    let gone = tokio::time::timeout(Duration::from_millis(300), fx.grpc(&cancel, "cancel-grpc", "alice")).await;
    assert!(gone.is_err(), "the call was answered before its client went away");
    compare(&fx, "cancel", "cancel-rest", "cancel-grpc", &metrics_before);
    assert_eq!(fx.audit("cancel-grpc")["status"], 499);
    fx.sim.control("/delay?us=0");
    assert_eq!(blocker.join().unwrap(), 200);
}
