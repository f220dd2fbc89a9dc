//! The v2 calls against an in-process v2 server whose answers each test sets: what the
//! translation asks, and how the answers (ready or not, known or not, malformed) come back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tfgate_proto::inference::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use tfgate_proto::inference::model_infer_response::InferOutputTensor;
use tfgate_proto::inference::model_metadata_response;
use tfgate_proto::inference::{
    InferTensorContents, ModelInferRequest, ModelInferResponse, ModelMetadataResponse, ModelReadyResponse,
    ServerLiveRequest, ServerLiveResponse, ServerMetadataRequest, ServerMetadataResponse, ServerReadyResponse,
};
use tfgate_proto::tensorflow::serving::model_version_status::State;
use tfgate_proto::tensorflow::serving::PredictRequest;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Response};

use super::*;
use crate::backend::{metadata_request, status_request, with_deadline, Backend, Pool, PoolTarget, Protocol};
use crate::convert::{Dtype, Signatures, Tensor, Values};
use crate::metrics::Metrics;
use crate::target::{model_spec, ModelTarget, VersionRef};

#[derive(Default)]
struct Answers {
    server_ready: bool,
    /// ModelReady's answer, whatever the model.
    ready: bool,
    /// ModelMetadata's versions; `None`: NOT_FOUND.
    versions: Option<Vec<String>>,
    /// ModelInfer's answer; `None`: the inputs echoed as outputs.
    infer: Option<ModelInferResponse>,
    /// What was asked: "ModelReady m 3", "ModelMetadata m ", "ModelInfer m 1".
    asked: Vec<String>,
    traceparent: Option<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Answers>>);

impl Fake {
    fn answers(&self) -> MutexGuard<'_, Answers> {
        self.0.lock().unwrap()
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Fake {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        let mut answers = self.answers();
        answers.asked.push("ServerReady".into());
        Ok(Response::new(ServerReadyResponse { ready: answers.server_ready }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let mut answers = self.answers();
        let ask = request.into_inner();
        answers.asked.push(format!("ModelReady {} {}", ask.name, ask.version));
        Ok(Response::new(ModelReadyResponse { ready: answers.ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Err(Status::unimplemented("not asked"))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let mut answers = self.answers();
        let ask = request.into_inner();
        answers.asked.push(format!("ModelMetadata {} {}", ask.name, ask.version));
        let versions = answers.versions.clone().ok_or_else(|| Status::not_found(format!("no model {}", ask.name)))?;
        let x = |name: &str| model_metadata_response::TensorMetadata {
            name: name.into(),
            datatype: "FP32".into(),
            shape: vec![-1],
        };
        Ok(Response::new(ModelMetadataResponse {
            name: ask.name,
            versions,
            platform: "fake".into(),
            inputs: vec![x("x")],
            outputs: vec![x("y")],
        }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let mut answers = self.answers();
        answers.traceparent = request.metadata().get("traceparent").map(|v| v.to_str().unwrap_or_default().to_string());
        let ask = request.into_inner();
        answers.asked.push(format!("ModelInfer {} {}", ask.model_name, ask.model_version));
        if let Some(answer) = answers.infer.clone() {
            return Ok(Response::new(answer));
        }
        let outputs = ask
            .inputs
            .iter()
            .map(|i| InferOutputTensor {
                name: format!("{}_out", i.name),
                datatype: i.datatype.clone(),
                shape: i.shape.clone(),
                parameters: HashMap::new(),
                contents: None,
            })
            .collect();
        Ok(Response::new(ModelInferResponse {
            model_name: ask.model_name,
            model_version: "4".into(),
            outputs,
            raw_output_contents: ask.raw_input_contents,
            ..Default::default()
        }))
    }
}

/// A fake v2 server on a loopback port, and a backend speaking v2 to it.
async fn serve(answers: Answers) -> (Fake, Backend, String) {
    let fake = Fake(Arc::new(Mutex::new(answers)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = GrpcInferenceServiceServer::new(fake.clone());
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(service, TcpIncoming::from(listener)));
    let backend = Backend::connect_lazy(&url.parse().unwrap(), None, Protocol::V2, &Arc::new(Metrics::default()));
    (fake, backend, url)
}

fn target(version: VersionRef) -> ModelTarget {
    ModelTarget { model: "m".into(), version }
}

async fn status(backend: &Backend, version: VersionRef) -> Result<Vec<(i64, i32)>, Status> {
    let answer = backend.model_status(with_deadline(status_request(&target(version)), Duration::from_secs(5))).await?;
    Ok(answer.model_version_status.iter().map(|s| (s.version, s.state)).collect())
}

const AVAILABLE: i32 = State::Available as i32;

fn versions(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|v| v.to_string()).collect())
}

#[tokio::test]
async fn a_ready_model_reports_the_numeric_versions_its_metadata_lists() {
    let (fake, backend, _) =
        serve(Answers { ready: true, versions: versions(&["3", "1", "x"]), ..Default::default() }).await;
    assert_eq!(status(&backend, VersionRef::Latest).await.unwrap(), [(1, AVAILABLE), (3, AVAILABLE)]);
    let mut asked = fake.answers().asked.clone();
    asked.sort();
    assert_eq!(asked, ["ModelMetadata m ", "ModelReady m "]);
    fake.answers().versions = versions(&[]);
    assert_eq!(status(&backend, VersionRef::Latest).await.unwrap(), [(0, AVAILABLE)], "an unversioned model");
    fake.answers().asked.clear();
    assert_eq!(status(&backend, VersionRef::Number(3)).await.unwrap(), [(3, AVAILABLE)]);
    assert_eq!(fake.answers().asked, ["ModelReady m 3"], "a known version needs no metadata");
    fake.answers().asked.clear();
    status(&backend, VersionRef::Label("canary".into())).await.unwrap();
    assert!(fake.answers().asked.contains(&"ModelReady m canary".to_string()));
}

#[tokio::test]
async fn a_model_not_ready_is_unavailable_and_an_unknown_one_not_found() {
    let (fake, backend, _) = serve(Answers { ready: false, versions: versions(&["1"]), ..Default::default() }).await;
    let e = status(&backend, VersionRef::Latest).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(tfgate_common::echo::for_client(e.message()), "model m is not ready at the v2 backend");
    let e = status(&backend, VersionRef::Number(2)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(tfgate_common::echo::for_client(e.message()), "version 2 of model m is not ready at the v2 backend");
    fake.answers().versions = None;
    for version in [VersionRef::Latest, VersionRef::Number(2)] {
        let e = status(&backend, version).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::NotFound, "no model m"));
    }
    // Unknown to metadata but ready (a server of its own mind): the metadata's answer stands.
    fake.answers().ready = true;
    assert_eq!(status(&backend, VersionRef::Latest).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn health_probes_ask_server_ready_then_model_ready() {
    let (fake, backend, _) = serve(Answers { server_ready: false, ready: true, ..Default::default() }).await;
    backend.answers(Duration::from_secs(5)).await.expect("a server not ready still answers");
    assert!(backend.model_ready("m", Duration::from_secs(5)).await.unwrap());
    fake.answers().ready = false;
    assert!(!backend.model_ready("m", Duration::from_secs(5)).await.unwrap());
    assert_eq!(fake.answers().asked, ["ServerReady", "ModelReady m ", "ModelReady m "]);
    // Nobody listening: a transport failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = Backend::connect_lazy(
        &format!("http://127.0.0.1:{port}").parse().unwrap(),
        None,
        Protocol::V2,
        &Arc::new(Metrics::default()),
    );
    assert!(dead.answers(Duration::from_secs(2)).await.is_err());
}

#[tokio::test]
async fn predict_goes_as_model_infer_with_its_metadata_and_comes_back() {
    let (fake, backend, _) = serve(Answers::default()).await;
    let x = Tensor { dtype: Dtype::Float, shape: vec![2], values: Values::F32(vec![1.5, -2.0]) };
    let spec = model_spec(&target(VersionRef::Number(4)), "");
    let request = PredictRequest {
        model_spec: Some(spec),
        inputs: [("x".to_string(), x.clone().into_proto_as(true))].into(),
        output_filter: Vec::new(),
    };
    let mut call = with_deadline(request, Duration::from_secs(5));
    call.metadata_mut()
        .insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
    let answer = backend.predict(call).await.unwrap();
    assert_eq!(Tensor::from_proto(&answer.outputs["x_out"]).unwrap(), x);
    let spec = answer.model_spec.unwrap();
    assert_eq!(
        (spec.version_choice, spec.signature_name.as_str()),
        (Some(VersionChoice::Version(4)), "serving_default")
    );
    let answers = fake.answers();
    assert_eq!(answers.asked, ["ModelInfer m 4"]);
    assert_eq!(answers.traceparent.as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

#[tokio::test]
async fn a_malformed_answer_is_internal_and_names_the_target() {
    let bad = ModelInferResponse {
        outputs: vec![InferOutputTensor {
            name: "y".into(),
            datatype: "FP32".into(),
            shape: vec![2],
            ..Default::default()
        }],
        raw_output_contents: vec![Bytes::from_static(&[0; 5])],
        ..Default::default()
    };
    let typed = ModelInferResponse {
        outputs: vec![InferOutputTensor {
            name: "y".into(),
            datatype: "FP32".into(),
            shape: vec![2],
            contents: Some(InferTensorContents { fp32_contents: vec![1.0, 2.0], ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (fake, backend, url) = serve(Answers { infer: Some(bad), ..Default::default() }).await;
    let x = Tensor { dtype: Dtype::Float, shape: vec![1], values: Values::F32(vec![1.0]) };
    let request = || PredictRequest {
        model_spec: Some(model_spec(&target(VersionRef::Latest), "")),
        inputs: [("x".to_string(), x.clone().into_proto())].into(),
        output_filter: vec!["y".into()],
    };
    let e = backend.predict(with_deadline(request(), Duration::from_secs(5))).await.unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    assert_eq!(
        tfgate_common::echo::for_client(e.message()),
        format!("unusable answer from the v2 backend at {url}: output \"y\": raw contents of 5 bytes, but shape [2] holds 2 FP32 elements of 8 bytes")
    );
    fake.answers().infer = Some(typed);
    let answer = backend.predict(with_deadline(request(), Duration::from_secs(5))).await.unwrap();
    assert_eq!(answer.outputs["y"].float_val, [1.0, 2.0]);
}

#[tokio::test]
async fn through_the_pool_signatures_come_from_metadata_and_forwarded_calls_are_refused_unsent() {
    let (fake, _, url) = serve(Answers { ready: true, versions: versions(&["7"]), ..Default::default() }).await;
    let metrics = Arc::new(Metrics::default());
    let targets = vec![PoolTarget { uri: url.parse().unwrap(), on_failure: None, tls: None, protocol: Protocol::V2 }];
    let pool = Pool::with_targets(targets, Duration::from_secs(5), metrics.clone());
    assert_eq!(pool.protocol(), Some(Protocol::V2));
    let metadata = pool.model_metadata(&target(VersionRef::Latest), Duration::from_secs(5)).await.unwrap();
    let signatures = Signatures::from_metadata(&metadata).unwrap();
    assert_eq!(signatures.get("serving_default").unwrap().inputs["x"].shape, Some(vec![-1]));
    assert_eq!(metadata.model_spec.unwrap().version_choice, Some(VersionChoice::Version(7)));
    assert_eq!(metadata_request(&target(VersionRef::Latest)).metadata_field, ["signature_def"]);

    let deadline = Instant::now() + Duration::from_secs(5);
    let path = crate::backend::grpc_path(tfgate_common::Method::Classify);
    let e = pool.raw(path, "m", Bytes::from_static(b"\x0a\x03\x0a\x01m"), deadline, None).await.unwrap_err();
    assert_eq!(e.code, Code::Unimplemented);
    assert!(e.message.contains("Classify is TF Serving's alone"), "{}", e.message);
    assert!(!metrics.render().contains("Classify"), "no backend call was counted");
    assert_eq!(fake.answers().asked, ["ModelMetadata m "]);
}
