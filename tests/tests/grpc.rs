//! TF Serving's gRPC API through nginx (HTTP/2, the module reading each call's ModelSpec) and
//! the daemon's `grpc_listen`, with the same generated client the daemon uses towards TF
//! Serving. The official Python client runs the same paths in `grpc_python.rs`.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use tfgate_jwt_testkit::{hs_jwk, hs_secret, jwks, sign_token, Signer};
use tfgate_proto::tensorflow::serving::model_service_client::ModelServiceClient;
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use tfgate_proto::tensorflow::serving::{
    GetModelMetadataRequest, GetModelStatusRequest, ModelSpec, PredictRequest, PredictResponse,
};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{TensorProto, TensorShapeProto};
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::grpc_wire::BytesCodec;
use tfgate_tests::tensors::{float_values, floats};
use tonic::transport::Channel;
use tonic::Code;

const CATALOG: &str = "tfgate_model half_plus_two versions=1,2 default=1;\n\
                       tfgate_model_label half_plus_two canary 2;";

fn request(model: &str, version: Option<VersionChoice>, x: TensorProto) -> PredictRequest {
    PredictRequest {
        model_spec: Some(ModelSpec { name: model.into(), version_choice: version, signature_name: String::new() }),
        inputs: HashMap::from([("x".to_string(), x)]),
        ..Default::default()
    }
}

async fn client(stack: &BatchStack) -> PredictionServiceClient<Channel> {
    PredictionServiceClient::connect(stack.grpc_url()).await.expect("connect to nginx's gRPC server")
}

#[tokio::test]
async fn predict_through_nginx_resolves_versions_and_labels() {
    let stack = BatchStack::start_grpc(&[], CATALOG, "", "");
    let mut client = client(&stack).await;
    // Default version 1: y = 0.5x + 2.
    let answer = client.predict(request("half_plus_two", None, floats(&[1.0, 2.0]))).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![2.5, 3.0]);
    let spec = answer.model_spec.unwrap();
    assert_eq!((spec.name.as_str(), spec.version_choice), ("half_plus_two", Some(VersionChoice::Version(1))));
    // The label resolved by nginx: version 2, y = 0.5x + 3.
    let canary = Some(VersionChoice::VersionLabel("canary".into()));
    let answer = client.predict(request("half_plus_two", canary, floats(&[1.0]))).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![3.5]);
    // tensor_content in, same answer.
    let mut packed = floats(&[]);
    packed.tensor_content = [4.0f32, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    packed.tensor_shape =
        Some(TensorShapeProto { dim: vec![Dim { size: 2, name: String::new() }], unknown_rank: false });
    let v2 = Some(VersionChoice::Version(2));
    let answer = client.predict(request("half_plus_two", v2, packed)).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![5.0, 6.0]);
    let ok = "tfgate_grpc_requests_total{model=\"half_plus_two\",version=\"1\",method=\"Predict\",code=\"OK\"}";
    assert_eq!(stack.daemon.metric(ok), 1.0);
}

#[tokio::test]
async fn refusals_are_grpc_statuses() {
    let stack = BatchStack::start_grpc(&[], CATALOG, "", "");
    let mut client = client(&stack).await;
    let status = client.predict(request("other", None, floats(&[1.0]))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let v9 = Some(VersionChoice::Version(9));
    assert_eq!(client.predict(request("half_plus_two", v9, floats(&[1.0]))).await.unwrap_err().code(), Code::NotFound);
    let mut wrong = request("half_plus_two", None, floats(&[1.0]));
    wrong.inputs = HashMap::from([("z".to_string(), floats(&[1.0]))]);
    let status = client.predict(wrong).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // And the daemon serves on.
    let answer = client.predict(request("half_plus_two", None, floats(&[2.0]))).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![3.0]);
}

#[tokio::test]
async fn a_deadline_that_expires_in_the_queue_is_deadline_exceeded_and_never_sent() {
    // Fixed dispatch with a long delay: a lone request waits in the queue until its deadline.
    let tables = "[batching]\ndispatch = \"fixed\"\nmax_delay_us = 5000000\ntimeout_ms = 300\n";
    let stack = BatchStack::start_grpc(&[], CATALOG, "", tables);
    let mut client = client(&stack).await;
    let started = std::time::Instant::now();
    let status = client.predict(request("half_plus_two", None, floats(&[1.0]))).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The client's own deadline (grpc-timeout) bounds the queue too: the daemon answers
    // DEADLINE_EXCEEDED, or the client gives up a moment earlier and the call is cancelled.
    let mut call = tonic::Request::new(request("half_plus_two", None, floats(&[2.0])));
    call.set_timeout(Duration::from_millis(150));
    let status = client.predict(call).await.unwrap_err();
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
    let rejected = |reason: &str| {
        stack.daemon.metric(&format!("tfgate_rejected_requests_total{{model=\"half_plus_two\",reason=\"{reason}\"}}"))
    };
    for _ in 0..50 {
        if rejected("timeout") + rejected("cancelled") == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rejected("timeout") + rejected("cancelled"), 2.0);
    assert_eq!(stack.sim().stats()["predict_calls"], 0, "an expired request reached the model");
}

fn hs_token(sub: &str, scope: &str) -> String {
    let claims = serde_json::json!({"sub": sub, "scope": scope, "exp": 4_000_000_000u64});
    sign_token(r#"{"alg":"HS256","kid":"h","typ":"JWT"}"#, &claims.to_string(), "HS256", &Signer::Hmac(&hs_secret(64)))
}

fn with_token(message: PredictRequest, token: Option<&str>) -> tonic::Request<PredictRequest> {
    let mut call = tonic::Request::new(message);
    if let Some(token) = token {
        call.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    call
}

#[tokio::test]
async fn tokens_and_scopes_are_checked_from_the_authorization_metadata() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("jwks.json");
    std::fs::write(&file, jwks(&[hs_jwk("h", 64)])).unwrap();
    let jwt = format!("tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_algorithms HS256;", file.display());
    let catalog = "tfgate_model half_plus_two versions=1,2 default=1 scope=predict;";
    let stack = BatchStack::start_grpc(&[], catalog, &jwt, "");
    let mut client = client(&stack).await;
    let call = |token: Option<&str>| with_token(request("half_plus_two", None, floats(&[1.0])), token);
    let status = client.predict(call(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(!status.message().is_empty());
    let status = client.predict(call(Some("not.a.token"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = client.predict(call(Some(&hs_token("bob", "read")))).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let answer = client.predict(call(Some(&hs_token("alice", "predict")))).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![2.5]);
    // An unknown model is refused before any token work.
    let status = client.predict(with_token(request("other", None, floats(&[1.0])), None)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn a_cancelled_call_leaves_the_queue_unsent() {
    let stack =
        BatchStack::start_grpc(&["--cost-us", "500000,0"], CATALOG, "", "[batching]\nmax_inflight_batches = 1\n");
    let mut busy = client(&stack).await;
    // The first call occupies the only slot for 500 ms.
    let first = tokio::spawn(async move { busy.predict(request("half_plus_two", None, floats(&[1.0]))).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut impatient = client(&stack).await;
    let queued = impatient.predict(request("half_plus_two", None, floats(&[7.0, 8.0, 9.0])));
    assert!(tokio::time::timeout(Duration::from_millis(100), queued).await.is_err(), "still queued");
    let answer = first.await.unwrap().unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![2.5]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(stack.sim().stats()["predict_items"], 1, "the abandoned rows were sent");
    let cancelled = "tfgate_rejected_requests_total{model=\"half_plus_two\",reason=\"cancelled\"}";
    assert_eq!(stack.daemon.metric(cancelled), 1.0);
}

#[tokio::test]
async fn rest_and_grpc_callers_share_a_batch_and_keep_their_rows() {
    let stack =
        BatchStack::start_grpc(&["--cost-us", "300000,0"], CATALOG, "", "[batching]\nmax_inflight_batches = 1\n");
    let mut busy = client(&stack).await;
    let first = tokio::spawn(async move { busy.predict(request("half_plus_two", None, floats(&[0.0]))).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While the backend is busy, a REST and a gRPC request queue together.
    let rest = stack.client();
    let rest = tokio::task::spawn_blocking(move || {
        rest.post("/v1/models/half_plus_two/versions/1:predict", r#"{"instances": [10.0, 20.0]}"#)
    });
    let mut grpc = client(&stack).await;
    let v1 = Some(VersionChoice::Version(1));
    let answer = grpc.predict(request("half_plus_two", v1, floats(&[30.0]))).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![17.0]);
    let rest = rest.await.unwrap();
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert_eq!(rest.json(), serde_json::json!({"predictions": [7.0, 12.0]}));
    first.await.unwrap().unwrap();
    let stats = stack.sim().stats();
    assert_eq!((stats["predict_calls"].as_u64(), stats["max_batch"].as_u64()), (Some(2), Some(3)), "{stats}");
}

#[tokio::test]
async fn malformed_messages_are_invalid_argument_and_harm_nothing() {
    let stack = BatchStack::start_grpc(&[], CATALOG, "", "");
    let channel = Channel::from_shared(stack.grpc_url()).unwrap().connect().await.unwrap();
    let raw = |message: Vec<u8>| {
        let channel = channel.clone();
        async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.unwrap();
            let path =
                tonic::codegen::http::uri::PathAndQuery::from_static("/tensorflow.serving.PredictionService/Predict");
            grpc.unary(tonic::Request::new(message), path, BytesCodec).await
        }
    };
    // A model_spec cut short: the module cannot read the model.
    let status = raw(vec![0x0a, 0x20, 0x0a]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // A readable model_spec, then an input entry that is not a protobuf message.
    let mut message = Vec::new();
    let spec = [&[0x0a, 13][..], b"half_plus_two"].concat();
    message.extend_from_slice(&[0x0a, spec.len() as u8]);
    message.extend_from_slice(&spec);
    message.extend_from_slice(&[0x12, 3, 0xff, 0xff, 0xff]);
    let status = raw(message).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let mut client = client(&stack).await;
    let answer = client.predict(request("half_plus_two", None, floats(&[2.0]))).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![3.0]);
}

#[tokio::test]
async fn metadata_status_and_unbatched_methods_come_from_the_backend() {
    let stack = BatchStack::start_grpc(&[], CATALOG, "", "");
    let channel = Channel::from_shared(stack.grpc_url()).unwrap().connect().await.unwrap();
    let mut prediction = PredictionServiceClient::new(channel.clone());
    let canary = Some(VersionChoice::VersionLabel("canary".into()));
    let spec = ModelSpec { name: "half_plus_two".into(), version_choice: canary, signature_name: String::new() };
    let metadata = prediction
        .get_model_metadata(GetModelMetadataRequest {
            model_spec: Some(spec.clone()),
            metadata_field: vec!["signature_def".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        metadata.model_spec.unwrap().version_choice,
        Some(VersionChoice::Version(2)),
        "nginx resolved the label"
    );
    assert!(metadata.metadata.contains_key("signature_def"));
    let mut models = ModelServiceClient::new(channel.clone());
    let status = models.get_model_status(GetModelStatusRequest { model_spec: Some(spec) }).await.unwrap().into_inner();
    assert_eq!(status.model_version_status.iter().map(|s| s.version).collect::<Vec<_>>(), vec![2]);
    // tfs-sim does not implement Classify: forwarded, its answer keeps its code.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/tensorflow.serving.PredictionService/Classify");
    let classify = [&[0x0a, 15, 0x0a, 13][..], b"half_plus_two"].concat();
    let status = grpc.unary(tonic::Request::new(classify), path, BytesCodec).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
}

#[tokio::test]
async fn an_undeclared_label_is_not_found_where_versions_are_declared() {
    // TF Serving's own label `canary` names version 2, which `versions=1` does not expose.
    let stack = BatchStack::start_grpc(&[], "tfgate_model half_plus_two versions=1;", "", "");
    let channel = Channel::from_shared(stack.grpc_url()).unwrap().connect().await.unwrap();
    let canary = Some(VersionChoice::VersionLabel("canary".into()));
    let mut prediction = PredictionServiceClient::new(channel.clone());
    let status = prediction.predict(request("half_plus_two", canary.clone(), floats(&[1.0]))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("tfgate_model_label"), "{status:?}");
    let spec = ModelSpec { name: "half_plus_two".into(), version_choice: canary, signature_name: String::new() };
    let metadata =
        GetModelMetadataRequest { model_spec: Some(spec.clone()), metadata_field: vec!["signature_def".into()] };
    let status = prediction.get_model_metadata(metadata).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let mut models = ModelServiceClient::new(channel);
    let status = models.get_model_status(GetModelStatusRequest { model_spec: Some(spec) }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(stack.sim().stats()["predict_calls"], 0, "the label reached the model");
}

/// A gRPC location for every other path, as a server that routes more than TF Serving's
/// services has.
const EVERY_PATH: &str = "location / { tfgate_route on; grpc_pass grpc://tfgate_batcher_grpc; }";

#[tokio::test]
async fn every_answer_to_a_grpc_call_is_a_grpc_status() {
    let stack = BatchStack::start_grpc(&[], &format!("{CATALOG}\n{EVERY_PATH}"), "", "");
    let channel = Channel::from_shared(stack.grpc_url()).unwrap().connect().await.unwrap();
    // Methods tfgate does not serve, in any service or none: UNIMPLEMENTED, from the module
    // (not an HTTP 404 that the client maps, or that gRPC's C core reports as a broken answer).
    for path in [
        "/inference.GRPCInferenceService/ModelStreamInfer",
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
        "/v1/models/half_plus_two:predict",
    ] {
        let status = raw_unary(&channel, path, vec![]).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
        assert!(status.message().contains("not served through tfgate"), "{path}: {status:?}");
    }
    let predict = "/tensorflow.serving.PredictionService/Predict";
    // A gRPC call whose messages are not protobuf: UNIMPLEMENTED too, never read as protobuf.
    let (status, headers, _) = h2_request(&stack, predict, "application/grpc+json", "{}").await;
    assert_eq!((status, grpc_status(&headers)), (200, Some("12")), "{headers:?}");
    // Not a gRPC call: 415 (gRPC's rule, so that no other client reads a gRPC error as a
    // success), in JSON like every refusal to a non-gRPC client.
    for content_type in ["application/json", "application/grpc-web+proto"] {
        let (status, headers, body) = h2_request(&stack, predict, content_type, r#"{"instances": [1.0]}"#).await;
        assert_eq!(status, 415, "{content_type}: {headers:?} {body}");
        assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
        assert!(body.contains("application/grpc"), "{body}");
    }
    assert_eq!(stack.sim().stats()["predict_calls"], 0);
    // Over HTTP/1 nothing is a gRPC call (no client could read its status): REST as ever.
    let rest = stack.client();
    let answer = tokio::task::spawn_blocking(move || {
        let grpc = [("content-type", "application/grpc")];
        rest.send("POST", "/v1/models/half_plus_two:predict", &grpc, Some(r#"{"instances": [2.0]}"#))
    });
    let answer = answer.await.unwrap();
    assert_eq!((answer.status, answer.json()), (200, serde_json::json!({"predictions": [3.0]})), "{answer:?}");
}

#[tokio::test]
async fn a_unary_call_carries_exactly_one_message() {
    // The limit of 1k for Predict, so that two messages can fit it one by one but not together.
    let small_limit = "location = /tensorflow.serving.PredictionService/Predict { tfgate_route on; \
                       grpc_pass grpc://tfgate_batcher_grpc; tfgate_grpc_max_message_size 1k; }";
    let stack = BatchStack::start_grpc(&[], &format!("{CATALOG}\n{small_limit}"), "", "");
    let channel = Channel::from_shared(stack.grpc_url()).unwrap().connect().await.unwrap();
    let message = |model: &str, n: usize| request(model, None, floats(&vec![1.0; n])).encode_to_vec();
    // A second message was dropped unread: it may name another model, or anything.
    let status = streamed(&channel, vec![message("half_plus_two", 1), message("secret", 1)]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("one message"), "{status:?}");
    // Each under the limit, the two over it.
    let (first, second) = (message("half_plus_two", 140), message("half_plus_two", 140));
    assert!(first.len() < 1024 && first.len() + second.len() > 1024, "{}", first.len());
    let status = streamed(&channel, vec![first.clone(), second]).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("request body of"), "{status:?}");
    assert_eq!(stack.sim().stats()["predict_calls"], 0, "a refused call reached the model");
    // One message goes through.
    let answer = PredictResponse::decode(&raw_unary(&channel, PREDICT, first).await.unwrap()[..]).unwrap();
    assert_eq!(float_values(&answer.outputs["y"]), vec![2.5; 140]);
}

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";

/// A unary call of `path` with these message bytes.
async fn raw_unary(channel: &Channel, path: &str, message: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
    grpc.unary(tonic::Request::new(message), path, BytesCodec).await.map(tonic::Response::into_inner)
}

/// A Predict call whose request body holds these messages, one after the other (as a
/// client-streaming call sends them).
async fn streamed(channel: &Channel, messages: Vec<Vec<u8>>) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(PREDICT);
    let stream = tonic::codegen::tokio_stream::iter(messages);
    grpc.client_streaming(tonic::Request::new(stream), path, BytesCodec).await.map(tonic::Response::into_inner)
}

/// An HTTP/2 request to nginx's gRPC server as any client may send it: status, headers, body.
async fn h2_request(
    stack: &BatchStack,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, tonic::codegen::http::HeaderMap, String) {
    use tonic::codegen::{http, Body, Service};
    let mut channel = Channel::from_shared(stack.grpc_url()).unwrap().connect().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}{path}", stack.grpc_url()))
        .header("content-type", content_type)
        .body(tonic::body::Body::new(body.to_string()))
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await.unwrap();
    let (parts, mut body) = channel.call(request).await.unwrap().into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame.unwrap().into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    (parts.status.as_u16(), parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn grpc_status(headers: &tonic::codegen::http::HeaderMap) -> Option<&str> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok())
}

/// The JSON lines of a file (none when it does not exist yet).
fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

#[tokio::test]
async fn grpc_calls_are_counted_by_quotas_audited_and_logged() {
    let logs = tempfile::tempdir().unwrap();
    let tables = format!(
        "[audit]\npath = \"{dir}/audit.jsonl\"\n\
         [prediction_log]\ndir = \"{dir}/predictions\"\nformat = \"jsonl\"\nsampling_rate = 1.0\n\
         [quotas.plans.default]\nrequests = \"2/day\"\nrows = \"100/day\"\n",
        dir = logs.path().display()
    );
    let mut stack = BatchStack::start_grpc(&[], CATALOG, "", &tables);
    let mut client = client(&stack).await;
    // Two calls fit the plan; each answer says where the caller stands (draft-11 fields).
    for (i, xs) in [&[1.0f32, 2.0][..], &[3.0][..]].into_iter().enumerate() {
        let answer = client.predict(request("half_plus_two", None, floats(xs))).await.unwrap();
        let policy = answer.metadata().get("ratelimit-policy").expect("ratelimit-policy").to_str().unwrap();
        assert!(policy.contains("q=2"), "{policy}");
        let standing = answer.metadata().get("ratelimit").expect("ratelimit").to_str().unwrap().to_string();
        assert!(standing.contains(&format!("r={}", 1 - i)), "{standing}");
        let expected: Vec<f32> = xs.iter().map(|x| 0.5 * x + 2.0).collect();
        assert_eq!(float_values(&answer.into_inner().outputs["y"]), expected);
    }
    // The third is refused, RESOURCE_EXHAUSTED with retry-after, and never reaches the model.
    let status = client.predict(request("half_plus_two", None, floats(&[4.0]))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry_after: u64 =
        status.metadata().get("retry-after").expect("retry-after").to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert!(status.metadata().get("ratelimit").is_some(), "{status:?}");
    assert_eq!(stack.sims[0].stats()["predict_calls"], 2, "{}", stack.sims[0].stats());

    // SIGTERM: the daemon writes what its logs hold.
    stack.daemon.process.signal("TERM");
    assert_eq!(stack.daemon.process.wait_exit(Duration::from_secs(20)), Some(true), "clean exit");
    let audit = json_lines(&logs.path().join("audit.jsonl"));
    assert_eq!(audit.len(), 3, "{audit:?}");
    for line in &audit {
        assert_eq!((line["ingress"].as_str(), line["method"].as_str()), (Some("grpc"), Some("predict")), "{line}");
        assert_eq!((line["model"].as_str(), line["version"].as_i64()), (Some("half_plus_two"), Some(1)), "{line}");
        assert_eq!(line["requested"], "latest", "{line}");
        assert!(line["bytes_in"].as_u64().unwrap() > 0, "{line}");
        assert!(!line["request_id"].as_str().unwrap().is_empty(), "nginx's $request_id: {line}");
    }
    assert_eq!((audit[0]["rows"].as_u64(), audit[0]["code"].as_str()), (Some(2), Some("OK")), "{}", audit[0]);
    assert_eq!(audit[0]["status"], 200);
    assert!(audit[0]["batch_id"].is_u64(), "{}", audit[0]);
    assert_eq!((audit[2]["status"].as_u64(), audit[2]["code"].as_str()), (Some(429), Some("RESOURCE_EXHAUSTED")));
    assert!(audit[2]["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", audit[2]);
    // The prediction log has the two answered calls, each with its own inputs and outputs.
    let files: Vec<_> =
        std::fs::read_dir(logs.path().join("predictions")).unwrap().map(|e| e.unwrap().path()).collect();
    let records: Vec<_> = files.iter().flat_map(|f| json_lines(f)).collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        let inputs: Vec<f64> = serde_json::from_value(record["inputs"]["x"].clone()).unwrap();
        let outputs: Vec<f64> = serde_json::from_value(record["outputs"]["y"].clone()).unwrap();
        assert_eq!(outputs, inputs.iter().map(|x| 0.5 * x + 2.0).collect::<Vec<_>>(), "{record}");
        let audited = audit.iter().find(|l| l["request_id"] == record["request_id"]);
        assert!(audited.is_some_and(|l| l["code"] == "OK"), "joined to its audit line: {record}");
    }
}
