//! What a caller with a valid token could try against the daemon, through nginx and straight at
//! its gRPC socket: small messages that would expand, values echoed back, trusted fields in
//! trailers, requests no generated client sends. Each must get a clear error and cost no more
//! than the daemon's budget.

use std::time::Duration;

use prost::Message;
use tfgate_proto::tensorflow::serving::model_service_client::ModelServiceClient;
use tfgate_proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use tfgate_proto::tensorflow::serving::{GetModelStatusRequest, ModelSpec, PredictRequest, PredictResponse};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{DataType, TensorProto, TensorShapeProto};
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::grpc_wire::{call, frame};
use tonic::Code;

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";

fn tensor(dtype: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        dtype: dtype as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: dims.iter().map(|&size| Dim { size, name: String::new() }).collect(),
            unknown_rank: false,
        }),
        ..Default::default()
    }
}

fn predict(model: &str, inputs: Vec<(&str, TensorProto)>) -> PredictRequest {
    PredictRequest {
        model_spec: Some(ModelSpec { name: model.into(), ..Default::default() }),
        inputs: inputs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Default::default()
    }
}

fn floats(values: &[f32]) -> TensorProto {
    TensorProto { float_val: values.to_vec(), ..tensor(DataType::DtFloat, &[values.len() as i64]) }
}

/// The status of a call that must fail (its answer is never printed: it could be huge).
fn refusal(answer: Result<tonic::Response<PredictResponse>, tonic::Status>) -> tonic::Status {
    match answer {
        Ok(_) => panic!("the call was answered"),
        Err(status) => status,
    }
}

/// The daemon's peak resident memory so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn a_tiny_message_naming_a_huge_shape_is_refused_before_it_is_expanded() {
    let stack = BatchStack::start_grpc(&[], "", "", "");
    let mut client = PredictionServiceClient::connect(stack.grpc_url()).await.unwrap();
    let pid = stack.daemon.process.pid();
    // Warm up: a normal call.
    let answer = client.predict(predict("half_plus_two", vec![("x", floats(&[1.0]))])).await.unwrap();
    // The latest version, 2: y = 0.5x + 3.
    assert_eq!(answer.into_inner().outputs["y"].float_val, vec![3.5]);
    let before = peak_rss(pid);
    // One float filling [1, 2^26] (256 MiB once read) from a 45-byte message.
    let huge = TensorProto { float_val: vec![1.0], ..tensor(DataType::DtFloat, &[1, 1 << 26]) };
    let message = predict("half_plus_two", vec![("x", huge)]);
    assert!(message.encoded_len() < 64, "{}", message.encoded_len());
    let status = refusal(client.predict(message).await);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_body_bytes_in_flight"), "{}", status.message());
    // One 1 KiB string filling [1, 2^20] (1 GiB) from a 1 KB message, to the string model.
    let strings = TensorProto { string_val: vec![vec![b'x'; 1024]], ..tensor(DataType::DtString, &[1, 1 << 20]) };
    let status = refusal(client.predict(predict("echo_string", vec![("s", strings)])).await);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Millions of empty strings, straight to the daemon: 12 MB on the wire, 24 bytes each once
    // decoded (nearly 300 MB); counted on the wire and refused before prost decodes them.
    let many = TensorProto { string_val: vec![Vec::new(); 6_000_000], ..tensor(DataType::DtString, &[6_000_000]) };
    let message = predict("echo_string", vec![("s", many)]).encode_to_vec();
    let socket = stack.dir.path().join("grpc.sock");
    let answer = call(&socket, PREDICT, &[("x-tfgate-model", "echo_string")], frame(&message), &[]).await;
    assert_eq!(answer.grpc_status(), Some(Code::ResourceExhausted as u32), "{}", answer.grpc_message());
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(grown < 48 << 20, "peak RSS grew by {} MiB", grown >> 20);
    // The daemon serves on.
    let answer = client.predict(predict("half_plus_two", vec![("x", floats(&[3.0]))])).await.unwrap();
    assert_eq!(answer.into_inner().outputs["y"].float_val, vec![4.5]);
}

#[tokio::test]
async fn rows_over_nothing_and_strings_filled_from_one_value_cost_what_they_declare() {
    let stack = BatchStack::start_grpc(&[], "", "", "");
    let mut client =
        PredictionServiceClient::connect(stack.grpc_url()).await.unwrap().max_decoding_message_size(64 << 20);
    // A few calls: the daemon has learnt the model's cost (it predicts, and may refuse, from now).
    for _ in 0..4 {
        client.predict(predict("half_plus_two", vec![("x", floats(&[1.0]))])).await.unwrap();
    }
    // 2^62 rows of nothing: no element to hold, but rows to queue and split. Refused.
    let nothing = tensor(DataType::DtFloat, &[1 << 62, 0]);
    let status = refusal(client.predict(predict("half_plus_two", vec![("x", nothing)])).await);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // 2^20 rows of nothing are allowed (within the element bound), and go as one call.
    let calls = stack.sim().stats()["predict_calls"].as_u64().unwrap();
    let nothing = tensor(DataType::DtFloat, &[1 << 20, 0]);
    let _ = client.predict(predict("half_plus_two", vec![("x", nothing)])).await;
    assert!(stack.sim().stats()["predict_calls"].as_u64().unwrap() <= calls + 1, "{}", stack.sim().stats());
    // A million one-byte strings from one value, read into one buffer (what was reserved for
    // them: see convert::tensor's tests), answered whole.
    let filled = TensorProto { string_val: vec![b"a".to_vec()], ..tensor(DataType::DtString, &[1 << 20]) };
    let answer = client.predict(predict("echo_string", vec![("s", filled)])).await.unwrap().into_inner();
    let echoed = &answer.outputs["s_out"].string_val;
    assert!(echoed.len() == 1 << 20 && echoed.iter().all(|s| s == b"a"), "{} strings", echoed.len());
    let answer = client.predict(predict("half_plus_two", vec![("x", floats(&[3.0]))])).await.unwrap();
    assert_eq!(answer.into_inner().outputs["y"].float_val, vec![4.5]);
}

#[tokio::test]
async fn answers_keep_the_encoding_tf_serving_used() {
    let stack = BatchStack::start_grpc(&[], "", "", "");
    let mut direct = PredictionServiceClient::connect(stack.sim().grpc_url()).await.unwrap();
    let mut through = PredictionServiceClient::connect(stack.grpc_url()).await.unwrap();
    let request = || predict("half_plus_two", vec![("x", floats(&[1.0, 2.0]))]);
    let want = direct.predict(request()).await.unwrap().into_inner();
    assert!(!want.outputs["y"].float_val.is_empty(), "TF Serving (the simulator) answers in float_val");
    let got = through.predict(request()).await.unwrap().into_inner();
    assert_eq!(got.outputs["y"], want.outputs["y"]);
    // Requests batched together: each gets its rows in float_val too.
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let mut client = through.clone();
            tokio::spawn(async move {
                client.predict(predict("half_plus_two", vec![("x", floats(&[i as f32]))])).await.unwrap().into_inner()
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let y = &call.await.unwrap().outputs["y"];
        assert!(y.tensor_content.is_empty(), "{y:?}");
        assert_eq!(y.float_val, vec![0.5 * i as f32 + 3.0]);
    }
}

#[tokio::test]
async fn status_over_grpc_lists_only_the_versions_the_catalog_exposes() {
    let catalog = "tfgate_model half_plus_two versions=1;";
    let stack = BatchStack::start_grpc(&[], catalog, "", "");
    let mut models = ModelServiceClient::connect(stack.grpc_url()).await.unwrap();
    let request =
        GetModelStatusRequest { model_spec: Some(ModelSpec { name: "half_plus_two".into(), ..Default::default() }) };
    let status = models.get_model_status(request).await.unwrap().into_inner();
    let versions: Vec<i64> = status.model_version_status.iter().map(|s| s.version).collect();
    assert_eq!(versions, vec![1], "the simulator serves 1 and 2; the catalog exposes 1");
    // REST agrees.
    let rest = stack.client().get("/v1/models/half_plus_two");
    assert_eq!(rest.status, 200, "{}", rest.body);
    let listed: Vec<String> =
        rest.json()["model_version_status"].as_array().unwrap().iter().map(|s| s["version"].to_string()).collect();
    assert_eq!(listed, vec!["\"1\""]);
}

#[tokio::test]
async fn request_values_reach_the_caller_clipped_and_the_audit_log_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let tables = format!("[audit]\npath = \"{}\"\n", audit.display());
    let stack = BatchStack::start_grpc(&[], "", "", &tables);
    // A REST instance whose input is named by a 3 MB key: a short answer.
    let key = "k".repeat(3 << 20);
    let body = format!("{{\"instances\": [{{\"{key}\": 1.0}}]}}");
    let answer = stack.client().post("/v1/models/half_plus_two:predict", &body);
    assert_eq!(answer.status, 400);
    assert!(answer.body.len() < 1024, "an answer of {} bytes", answer.body.len());
    // A value of the wrong type: the caller sees it quoted, the audit line does not keep it.
    let answer = stack.client().post("/v1/models/half_plus_two:predict", r#"{"instances": ["SSN-123-45-6789"]}"#);
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("SSN-123-45-6789"), "{}", answer.body);
    // A gRPC input name with a multibyte character where a byte cut would fall.
    let name = format!("{}é{}", "a".repeat(63), "b".repeat(100_000));
    let mut client = PredictionServiceClient::connect(stack.grpc_url()).await.unwrap();
    let status = client.predict(predict("half_plus_two", vec![(&name, floats(&[1.0]))])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().len() < 512, "a message of {} bytes", status.message().len());
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(!text.contains("SSN"), "{text}");
    assert!(!text.contains("kkkkkkkk") && !text.contains("bbbbbbbb"), "a name was echoed into the audit log");
    for line in text.lines() {
        assert!(line.len() < 2048, "an audit line of {} bytes", line.len());
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["code"], "INVALID_ARGUMENT", "{record}");
    }
    assert!(text.contains("is not of expected type: float"), "the problem is named: {text}");
}

#[tokio::test]
async fn the_grpc_socket_answers_in_grpc_and_takes_trusted_fields_from_headers_only() {
    let stack = BatchStack::start_grpc(&[], "", "", "");
    let socket = stack.dir.path().join("grpc.sock");
    let message = predict("half_plus_two", vec![("x", floats(&[1.0]))]).encode_to_vec();
    let trusted = [("x-tfgate-model", "half_plus_two"), ("x-tfgate-version", "1")];
    // Trailers cannot override what nginx put in the headers: version 1 answers (0.5x + 2).
    let answer = call(&socket, PREDICT, &trusted, frame(&message), &[("x-tfgate-version", "2")]).await;
    assert_eq!(answer.grpc_status(), Some(0), "{answer:?}");
    let y = &PredictResponse::decode(answer.message()).unwrap().outputs["y"];
    assert_eq!(y.float_val, vec![2.5]);
    // Paths the daemon does not serve, however written: UNIMPLEMENTED, as gRPC.
    for path in [
        "//tensorflow.serving.PredictionService/Predict",
        "/tensorflow.serving.PredictionService/Pre%64ict",
        "/inference.GRPCInferenceService/ModelStreamInfer",
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
    ] {
        let answer = call(&socket, path, &trusted, frame(&message), &[]).await;
        assert_eq!((answer.http_status, answer.grpc_status()), (200, Some(12)), "{path}: {answer:?}");
        assert_eq!(answer.headers["content-type"], "application/grpc");
    }
    // A second message in a unary call, and trailing bytes: INVALID_ARGUMENT, never dropped.
    let mut two = frame(&message);
    two.extend(frame(&message));
    let answer = call(&socket, PREDICT, &trusted, two, &[]).await;
    assert_eq!(answer.grpc_status(), Some(3), "{answer:?}");
    assert!(answer.grpc_message().contains("one request message"), "{}", answer.grpc_message());
    let mut trailing = frame(&message);
    trailing.push(0);
    assert_eq!(call(&socket, PREDICT, &trusted, trailing, &[]).await.grpc_status(), Some(3));
    // Not gRPC at all: 415, as gRPC servers answer.
    let answer = call(&socket, PREDICT, &[("content-type", "application/json")], frame(&message), &[]).await;
    assert_eq!(answer.http_status, 415, "{answer:?}");
    // A compressed message: UNIMPLEMENTED with a clear message.
    let mut compressed = frame(&message);
    compressed[0] = 1;
    let answer = call(&socket, PREDICT, &trusted, compressed, &[]).await;
    assert_eq!(answer.grpc_status(), Some(12), "{answer:?}");
}

#[test]
fn a_subject_longer_than_the_daemon_keeps_is_refused_never_cut() {
    let stack = BatchStack::start(&[], "[quotas]\nstore = \"memory\"\n[quotas.plans.default]\nrequests = \"1/day\"\n");
    let long = |last: char| format!("{}{last}", "x".repeat(256));
    let body = r#"{"instances": [1.0]}"#;
    let path = "/v1/models/half_plus_two:predict";
    for subject in [long('A'), long('B')] {
        let answer = stack.daemon.client().post(path, &[("X-Tfgate-Subject", &subject)], body);
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.body.contains("longer than 256 bytes"), "{}", answer.body);
    }
    // A subject of exactly 256 bytes is kept whole.
    let exact = "y".repeat(256);
    let answer = stack.daemon.client().post(path, &[("X-Tfgate-Subject", &exact)], body);
    assert_eq!(answer.status, 200, "{}", answer.body);
}
