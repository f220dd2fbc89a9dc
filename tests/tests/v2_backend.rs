//! A backend speaking the Open Inference Protocol (`[backend] protocol = "v2"`): the daemon in
//! front of tfs-sim's `inference.GRPCInferenceService` serves TF Serving's REST and gRPC APIs
//! exactly as it does in front of tfs-sim's TF Serving API. Every call is made twice, through a
//! daemon of each protocol against the same simulator, and the answers compared; batches are
//! checked on the simulator's counters (ModelInfer calls, rows per call).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::{json, Value};
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::{
    GetModelMetadataRequest, GetModelMetadataResponse, GetModelStatusRequest, GetModelStatusResponse, ModelSpec,
    PredictRequest, PredictResponse,
};
use tfgate_tests::batching_stack::{BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::golden::{COLUMNAR_REQUEST, ROW_REQUEST, UNEVEN_REQUEST};
use tfgate_tests::grpc_wire::{call, frame, WireAnswer};
use tfgate_tests::tensors::{float_values, floats};
use tfgate_tests::Response;

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";
const METADATA: &str = "/tensorflow.serving.PredictionService/GetModelMetadata";
const STATUS: &str = "/tensorflow.serving.ModelService/GetModelStatus";
const CLASSIFY: &str = "/tensorflow.serving.PredictionService/Classify";

/// One daemon, with its gRPC socket.
struct Side {
    daemon: BatchDaemon,
    grpc: PathBuf,
    _dir: tempfile::TempDir,
}

impl Side {
    fn start(sim: &ControlledSim, protocol: &str, backend_extra: &str, tables: &str) -> Side {
        let dir = tempfile::tempdir().unwrap();
        let grpc = dir.path().join("grpc.sock");
        let top = format!("grpc_listen = \"{}\"", grpc.display());
        let backend = format!("protocol = \"{protocol}\"\n{backend_extra}");
        let daemon = BatchDaemon::start_with_top(dir.path(), &[sim.grpc_url()], &top, &backend, tables);
        Side { daemon, grpc, _dir: dir }
    }

    fn rest(&self, method: &str, path: &str, model: &str, version: Option<&str>, body: &str) -> Response {
        let mut headers = vec![("x-tfgate-subject", "alice"), ("x-tfgate-model", model)];
        headers.extend(version.map(|v| ("x-tfgate-version", v)));
        UnixClient::new(&self.daemon.socket).send(method, path, &headers, body)
    }

    async fn grpc(&self, path: &str, model: &str, version: Option<&str>, message: Vec<u8>) -> WireAnswer {
        let mut headers = vec![("x-tfgate-subject", "alice"), ("x-tfgate-model", model)];
        headers.extend(version.map(|v| ("x-tfgate-version", v)));
        call(&self.grpc, path, &headers, frame(&message), &[]).await
    }
}

/// The simulator and a daemon of each protocol in front of it.
struct Pair {
    sim: ControlledSim,
    v2: Side,
    tfs: Side,
}

impl Pair {
    fn start(sim_args: &[&str], tables: &str) -> Pair {
        let sim = ControlledSim::start(sim_args);
        let v2 = Side::start(&sim, "v2", "", tables);
        let tfs = Side::start(&sim, "tfserving", "", tables);
        Pair { sim, v2, tfs }
    }

    fn sides(&self) -> [(&'static str, &Side); 2] {
        [("v2", &self.v2), ("tfserving", &self.tfs)]
    }
}

fn spec(model: &str, version: Option<i64>) -> Option<ModelSpec> {
    Some(ModelSpec { name: model.into(), version_choice: version.map(VersionChoice::Version), ..Default::default() })
}

fn ok_message<T: Message + Default>(answer: &WireAnswer) -> T {
    assert_eq!(answer.grpc_status(), Some(0), "{}", answer.grpc_message());
    T::decode(answer.message()).expect("a message")
}

/// `count` REST calls at once, each of two rows of its own; their answers, in call order.
fn concurrent_rest(side: &Side, count: usize) -> Vec<Response> {
    let barrier = Arc::new(Barrier::new(count));
    let calls: Vec<_> = (0..count)
        .map(|i| {
            let (barrier, socket) = (barrier.clone(), side.daemon.socket.clone());
            thread::spawn(move || {
                let body = format!("{{\"instances\": [{i}.0, {}.5]}}", 100 + i);
                let headers =
                    [("x-tfgate-subject", "alice"), ("x-tfgate-model", "half_plus_two"), ("x-tfgate-version", "1")];
                barrier.wait();
                UnixClient::new(&socket).post("/v1/models/half_plus_two:predict", &headers, &body)
            })
        })
        .collect();
    calls.into_iter().map(|c| c.join().unwrap()).collect()
}

#[test]
fn rest_predict_calls_are_batched_into_model_infer_and_answered_as_with_tf_serving() {
    // 40 ms per call and one call at a time: the calls that arrive while one runs wait together.
    let tables = "[batching]\nmax_batch_size = 32\nmax_inflight_batches = 1\n";
    let pair = Pair::start(&["--cost-us", "40000,0"], tables);
    let mut answers = Vec::new();
    for (name, side) in pair.sides() {
        pair.sim.reset();
        let answered = concurrent_rest(side, 12);
        for (i, answer) in answered.iter().enumerate() {
            assert_eq!(answer.status, 200, "{name}: {}", answer.body);
            let expected = json!({"predictions": [0.5 * i as f64 + 2.0, 0.5 * (100.5 + i as f64) + 2.0]});
            assert_eq!(answer.json(), expected, "{name}: call {i} got another call's rows");
        }
        let stats = pair.sim.stats();
        eprintln!("{name}: {stats}");
        let calls = stats["predict_calls"].as_u64().unwrap();
        assert_eq!(stats["predict_items"], 24, "{name}: {stats}");
        assert!(calls < 12 && stats["max_batch"].as_u64().unwrap() >= 4, "{name}: not batched: {stats}");
        match name {
            "v2" => assert_eq!(stats["infer_calls"], calls, "every call was a ModelInfer: {stats}"),
            _ => assert!(stats.get("infer_calls").is_none(), "{stats}"),
        }
        answers.push(answered.into_iter().map(|a| a.body).collect::<Vec<_>>());
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_predict_calls_are_batched_and_split_back_as_with_tf_serving() {
    let tables = "[batching]\nmax_batch_size = 32\nmax_inflight_batches = 1\n";
    let pair = Pair::start(&["--cost-us", "40000,0"], tables);
    let mut answers = Vec::new();
    for (name, side) in pair.sides() {
        pair.sim.reset();
        let calls: Vec<_> = (0..10)
            .map(|i| {
                let values = [i as f32, -(i as f32), 1000.0 + i as f32];
                let request = PredictRequest {
                    model_spec: spec("half_plus_two", None),
                    inputs: [("x".to_string(), floats(&values))].into(),
                    output_filter: Vec::new(),
                };
                let socket = side.grpc.clone();
                tokio::spawn(async move {
                    let headers =
                        [("x-tfgate-subject", "alice"), ("x-tfgate-model", "half_plus_two"), ("x-tfgate-version", "1")];
                    call(&socket, PREDICT, &headers, frame(&request.encode_to_vec()), &[]).await
                })
            })
            .collect();
        let mut answered = Vec::with_capacity(calls.len());
        for handle in calls {
            answered.push(handle.await.unwrap());
        }
        let mut seen = Vec::new();
        for (i, answer) in answered.iter().enumerate() {
            let response: PredictResponse = ok_message(answer);
            let y = &response.outputs["y"];
            let i = i as f32;
            assert_eq!(float_values(y), [0.5 * i + 2.0, -0.5 * i + 2.0, 0.5 * (1000.0 + i) + 2.0], "{name}: call {i}");
            let shape: Vec<i64> = y.tensor_shape.as_ref().unwrap().dim.iter().map(|d| d.size).collect();
            assert_eq!(shape, [3], "{name}");
            let spec = response.model_spec.unwrap();
            assert_eq!((spec.name.as_str(), spec.version_choice), ("half_plus_two", Some(VersionChoice::Version(1))));
            seen.push((float_values(y), y.dtype, shape, spec.signature_name));
        }
        let stats = pair.sim.stats();
        eprintln!("{name}: {stats}");
        assert_eq!(stats["predict_items"], 30, "{name}: {stats}");
        assert!(stats["predict_calls"].as_u64().unwrap() < 10, "{name}: not batched: {stats}");
        if name == "v2" {
            assert_eq!(stats["infer_calls"], stats["predict_calls"], "{stats}");
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
}

/// Every dtype, in rows and columns, and inputs that go alone (uneven lengths, a scalar): the
/// same bodies through either protocol (tfs-sim's conversion golden requests).
#[test]
fn every_dtype_answers_the_same_through_either_protocol() {
    let pair = Pair::start(&[], "");
    for (model, body) in [("all_types", ROW_REQUEST), ("all_types", COLUMNAR_REQUEST), ("echo_types", UNEVEN_REQUEST)] {
        let path = format!("/v1/models/{model}:predict");
        let v2 = pair.v2.rest("POST", &path, model, None, body);
        let tfs = pair.tfs.rest("POST", &path, model, None, body);
        assert_eq!((v2.status, tfs.status), (200, 200), "{model}: {} / {}", v2.body, tfs.body);
        assert_eq!(v2.body, tfs.body, "{model}");
    }
    assert!(pair.sim.stats()["infer_calls"].as_u64().unwrap() >= 3);
}

#[test]
fn model_status_and_metadata_over_rest_match_tf_serving() {
    let pair = Pair::start(&[], "");
    let get = |side: &Side, path: &str, version: Option<&str>| side.rest("GET", path, "half_plus_two", version, "");
    for (path, version) in [
        ("/v1/models/half_plus_two", None),
        ("/v1/models/half_plus_two/versions/1", Some("1")),
        ("/v1/models/half_plus_two/versions/7", Some("7")),
    ] {
        let (v2, tfs) = (get(&pair.v2, path, version), get(&pair.tfs, path, version));
        assert_eq!(v2.status, tfs.status, "{path}: {} / {}", v2.body, tfs.body);
        match v2.status {
            200 => assert_eq!(v2.json(), tfs.json(), "{path}"),
            status => assert_eq!(status, 404, "{path}: {}", v2.body),
        }
    }
    let v2 = get(&pair.v2, "/v1/models/half_plus_two", None).json();
    let versions: Vec<&Value> = v2["model_version_status"].as_array().unwrap().iter().map(|s| &s["version"]).collect();
    assert_eq!(versions, [&json!("1"), &json!("2")], "{v2}");
    let unknown = pair.v2.rest("GET", "/v1/models/nope", "nope", None, "");
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // The signature as the conversion reads it: dtypes and shapes. (TF Serving names a tensor by
    // its graph node, "x:0", where a v2 server has only "x", and knows which of several versions
    // the metadata is of.)
    for model in ["half_plus_two", "all_types", "fixed3"] {
        let path = format!("/v1/models/{model}/metadata");
        let (v2, tfs) = (pair.v2.rest("GET", &path, model, None, ""), pair.tfs.rest("GET", &path, model, None, ""));
        assert_eq!((v2.status, tfs.status), (200, 200), "{model}: {} / {}", v2.body, tfs.body);
        let signature = |answer: &Response| {
            let json = answer.json();
            let def = json["metadata"]["signature_def"]["signature_def"]["serving_default"].clone();
            let tensors = |kind: &str| -> Vec<(String, Value, Value)> {
                let mut all: Vec<_> = def[kind]
                    .as_object()
                    .unwrap_or_else(|| panic!("{model}: no {kind}: {json}"))
                    .iter()
                    .map(|(name, t)| (name.clone(), t["dtype"].clone(), t["tensor_shape"].clone()))
                    .collect();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            };
            (tensors("inputs"), tensors("outputs"), def["method_name"].clone())
        };
        assert_eq!(signature(&v2), signature(&tfs), "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_status_and_metadata_over_grpc_match_tf_serving() {
    let pair = Pair::start(&[], "");
    for (version, header) in [(None, None), (Some(2), Some("2"))] {
        let status = GetModelStatusRequest { model_spec: spec("half_plus_two", version) }.encode_to_vec();
        let v2: GetModelStatusResponse =
            ok_message(&pair.v2.grpc(STATUS, "half_plus_two", header, status.clone()).await);
        let tfs: GetModelStatusResponse = ok_message(&pair.tfs.grpc(STATUS, "half_plus_two", header, status).await);
        assert_eq!(v2, tfs, "{version:?}");
    }
    let missing = GetModelStatusRequest { model_spec: spec("half_plus_two", Some(9)) }.encode_to_vec();
    let v2 = pair.v2.grpc(STATUS, "half_plus_two", Some("9"), missing).await;
    assert_eq!(v2.grpc_status(), Some(5), "NOT_FOUND: {}", v2.grpc_message());

    let metadata = GetModelMetadataRequest {
        model_spec: spec("echo_types", Some(1)),
        metadata_field: vec!["signature_def".into()],
    }
    .encode_to_vec();
    let v2: GetModelMetadataResponse =
        ok_message(&pair.v2.grpc(METADATA, "echo_types", Some("1"), metadata.clone()).await);
    let tfs: GetModelMetadataResponse = ok_message(&pair.tfs.grpc(METADATA, "echo_types", Some("1"), metadata).await);
    assert_eq!(v2.model_spec.as_ref().unwrap().version_choice, Some(VersionChoice::Version(1)));
    let any = |r: &GetModelMetadataResponse| r.metadata["signature_def"].clone();
    assert_eq!(any(&v2).type_url, any(&tfs).type_url);
    let map = |r: &GetModelMetadataResponse| {
        let map = tfgate_proto::tensorflow::serving::SignatureDefMap::decode(any(r).value.as_slice()).unwrap();
        let def = &map.signature_def["serving_default"];
        let mut inputs: Vec<_> = def.inputs.iter().map(|(n, t)| (n.clone(), t.dtype, t.tensor_shape.clone())).collect();
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut outputs: Vec<_> =
            def.outputs.iter().map(|(n, t)| (n.clone(), t.dtype, t.tensor_shape.clone())).collect();
        outputs.sort_by(|a, b| a.0.cmp(&b.0));
        (map.signature_def.len(), inputs, outputs, def.method_name.clone())
    };
    assert_eq!(map(&v2), map(&tfs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_to_a_v2_backend_is_unimplemented_and_never_sent() {
    let pair = Pair::start(&[], "");
    let classify = [&[0x0a, 15, 0x0a, 13][..], b"half_plus_two"].concat();
    let answer = pair.v2.grpc(CLASSIFY, "half_plus_two", None, classify).await;
    assert_eq!(answer.grpc_status(), Some(12), "UNIMPLEMENTED: {}", answer.grpc_message());
    assert!(answer.grpc_message().contains("Open Inference Protocol"), "{}", answer.grpc_message());
    let text = pair.v2.daemon.metrics_text();
    let sent = text.lines().any(|l| l.starts_with("tfgate_backend_calls_total{") && l.contains("Classify"));
    assert!(!sent, "counted as a backend call:\n{text}");
    let rest = pair.v2.rest("POST", "/v1/models/half_plus_two:classify", "half_plus_two", None, r#"{"examples": []}"#);
    assert_eq!(rest.status, 501, "{}", rest.body);
}

#[test]
fn health_checks_ask_the_v2_server_and_follow_it_down_and_back() {
    let sim = ControlledSim::start(&[]);
    let port = sim.sim.port;
    let side = Side::start(&sim, "v2", "health_interval_ms = 200", "");
    let target = format!("tfgate_backend_up{{target=\"{}\"}}", sim.grpc_url());
    let predict =
        || side.rest("POST", "/v1/models/half_plus_two:predict", "half_plus_two", Some("1"), r#"{"instances": [1.0]}"#);
    let answer = predict();
    assert_eq!((answer.status, answer.json()), (200, json!({"predictions": [2.5]})), "{}", answer.body);
    let wait_for = |up: f64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while side.daemon.metric(&target) != up {
            assert!(Instant::now() < deadline, "{target} never became {up}:\n{}", side.daemon.metrics_text());
            thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(1.0);
    let mut sim = sim;
    sim.sim.process.signal("KILL");
    sim.sim.process.stop();
    // Down by the health checks alone: no call is made meanwhile.
    wait_for(0.0);
    let back = ControlledSim::start_at(Ipv4Addr::LOCALHOST, port, &[]);
    wait_for(1.0);
    assert_eq!(back.stats()["predict_calls"], 0, "back by a probe, not by a client's call");
    let answer = predict();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(back.stats()["infer_calls"], 1);
}
