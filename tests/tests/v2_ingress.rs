//! The Open Inference Protocol's ingresses on the daemon's sockets, beyond the outcome table
//! they share with TF Serving's (one_path.rs): a v2 client and TF Serving's clients land in one
//! backend batch, each answered its own rows, and a v2 call is in the prediction log as TF
//! Serving's PredictLog; health, server and model metadata, readiness, and the errors of paths
//! and methods the protocol does not have.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use prost::Message;
use serde_json::{json, Value};
use tfgate_proto::inference::{ModelInferResponse, ModelReadyRequest};
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest, PredictResponse, PredictionLog};
use tfgate_tests::batching_stack::{BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::grpc_wire::{call, frame, WireAnswer};
use tfgate_tests::tensors::{float_values, floats, le_floats, v2_input, v2_message};

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";
const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
const MODEL_READY: &str = "/inference.GRPCInferenceService/ModelReady";

/// tfs-sim and a daemon serving both sockets (`grpc.sock` in the directory).
fn start() -> (tempfile::TempDir, ControlledSim, BatchDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let sim = ControlledSim::start(&[]);
    let top = format!("grpc_listen = \"{}\"", dir.path().join("grpc.sock").display());
    let daemon = BatchDaemon::start_with_top(dir.path(), &[sim.grpc_url()], &top, "", "");
    (dir, sim, daemon)
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

/// The protocol's other calls: health, server and model metadata, model readiness, and the
/// errors of paths and methods it does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_health_metadata_and_readiness() {
    let (dir, _sim, daemon) = start();
    let client = UnixClient::new(&daemon.socket);
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
    let socket = dir.path().join("grpc.sock");
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
