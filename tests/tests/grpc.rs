//! TF Serving's gRPC API through nginx (HTTP/2, the module reading each call's ModelSpec) and
//! the daemon's `grpc_listen`, with the same generated client the daemon uses towards TF
//! Serving. The official Python client runs the same paths in `grpc_python.rs`.

use std::collections::HashMap;
use std::time::Duration;

use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{DataType, TensorProto, TensorShapeProto};
use tfgate_tests::batching_stack::BatchStack;
use tonic::transport::Channel;
use tonic::Code;

const CATALOG: &str = "tfgate_model half_plus_two versions=1,2 default=1;\n\
                       tfgate_model_label half_plus_two canary 2;";

fn floats(values: &[f32]) -> TensorProto {
    TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: vec![Dim { size: values.len() as i64, name: String::new() }],
            unknown_rank: false,
        }),
        float_val: values.to_vec(),
        ..Default::default()
    }
}

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

/// Values of a float output, typed or packed.
fn values(t: &TensorProto) -> Vec<f32> {
    if t.tensor_content.is_empty() {
        return t.float_val.clone();
    }
    t.tensor_content.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[tokio::test]
async fn predict_through_nginx_resolves_versions_and_labels() {
    let stack = BatchStack::start_grpc(&[], CATALOG, "", "");
    let mut client = client(&stack).await;
    // Default version 1: y = 0.5x + 2.
    let answer = client.predict(request("half_plus_two", None, floats(&[1.0, 2.0]))).await.unwrap().into_inner();
    assert_eq!(values(&answer.outputs["y"]), vec![2.5, 3.0]);
    let spec = answer.model_spec.unwrap();
    assert_eq!((spec.name.as_str(), spec.version_choice), ("half_plus_two", Some(VersionChoice::Version(1))));
    // The label resolved by nginx: version 2, y = 0.5x + 3.
    let canary = Some(VersionChoice::VersionLabel("canary".into()));
    let answer = client.predict(request("half_plus_two", canary, floats(&[1.0]))).await.unwrap().into_inner();
    assert_eq!(values(&answer.outputs["y"]), vec![3.5]);
    // tensor_content in, same answer.
    let mut packed = floats(&[]);
    packed.tensor_content = [4.0f32, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    packed.tensor_shape =
        Some(TensorShapeProto { dim: vec![Dim { size: 2, name: String::new() }], unknown_rank: false });
    let v2 = Some(VersionChoice::Version(2));
    let answer = client.predict(request("half_plus_two", v2, packed)).await.unwrap().into_inner();
    assert_eq!(values(&answer.outputs["y"]), vec![5.0, 6.0]);
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
    assert_eq!(values(&answer.outputs["y"]), vec![3.0]);
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
