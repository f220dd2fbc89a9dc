//! The REST handlers end to end against an in-process fake TF Serving (gRPC on a loopback
//! port): conversion, version choice, signature caching, error mapping, unreachable backend.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use prost::Message;
use serde_json::{json, Value};
use tfgate_batcher::app::App;
use tfgate_batcher::config::Config;
use tfgate_batcher::ingress::rest;
use tfgate_proto::tensorflow::serving::model_service_server::{ModelService, ModelServiceServer};
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::model_version_status::State;
use tfgate_proto::tensorflow::serving::prediction_service_server::{PredictionService, PredictionServiceServer};
use tfgate_proto::tensorflow::serving::*;
use tfgate_proto::tensorflow::{
    tensor_shape_proto::Dim, DataType, SignatureDef, TensorInfo, TensorProto, TensorShapeProto,
};
use tonic::codegen::Service;
use tonic::{transport::server::TcpIncoming, Status};

/// Model `plus_one` (input x, output y, DT_FLOAT): y = x + version. Anything else is NOT_FOUND.
#[derive(Default)]
struct Fake {
    metadata_calls: AtomicUsize,
    predict_calls: AtomicUsize,
    last_spec: Mutex<Option<ModelSpec>>,
}

fn version_of(spec: &ModelSpec) -> Result<i64, Status> {
    if spec.name != "plus_one" {
        return Err(Status::not_found(format!("Servable not found for request: Latest({})", spec.name)));
    }
    match &spec.version_choice {
        None => Ok(2),
        Some(VersionChoice::Version(v @ 1..=2)) => Ok(*v),
        Some(VersionChoice::VersionLabel(l)) if l == "stable" => Ok(1),
        Some(_) => Err(Status::not_found("no such version")),
    }
}

/// The services share one fake (the generated servers each want to own their implementation).
#[derive(Clone)]
struct Shared(Arc<Fake>);

impl std::ops::Deref for Shared {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

#[tonic::async_trait]
impl PredictionService for Shared {
    async fn predict(
        &self,
        request: tonic::Request<PredictRequest>,
    ) -> Result<tonic::Response<PredictResponse>, Status> {
        self.predict_calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        let spec = request.model_spec.clone().unwrap_or_default();
        *self.last_spec.lock().unwrap() = Some(spec.clone());
        let version = version_of(&spec)?;
        let x = request.inputs.get("x").ok_or_else(|| Status::invalid_argument("missing input x"))?;
        // Batched rows come as tensor_content, a request sent alone as float_val: read both.
        let values = match tfgate_batcher::convert::Tensor::from_proto(x).map(|t| t.values) {
            Ok(tfgate_batcher::convert::Values::F32(values)) => values,
            _ => return Err(Status::invalid_argument("x is not DT_FLOAT")),
        };
        let y = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: x.tensor_shape.clone(),
            float_val: values.iter().map(|v| v + version as f32).collect(),
            ..Default::default()
        };
        Ok(tonic::Response::new(PredictResponse { outputs: [("y".to_string(), y)].into(), model_spec: Some(spec) }))
    }

    async fn get_model_metadata(
        &self,
        request: tonic::Request<GetModelMetadataRequest>,
    ) -> Result<tonic::Response<GetModelMetadataResponse>, Status> {
        self.metadata_calls.fetch_add(1, Ordering::SeqCst);
        let spec = request.into_inner().model_spec.unwrap_or_default();
        let version = version_of(&spec)?;
        let info = |name: &str| TensorInfo {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![Dim { size: -1, name: String::new() }],
                unknown_rank: false,
            }),
            encoding: Some(tfgate_proto::tensorflow::tensor_info::Encoding::Name(format!("{name}:0"))),
        };
        let def = SignatureDef {
            inputs: [("x".to_string(), info("x"))].into(),
            outputs: [("y".to_string(), info("y"))].into(),
            method_name: "tensorflow/serving/predict".into(),
        };
        let map = SignatureDefMap { signature_def: [("serving_default".to_string(), def)].into() };
        let any =
            prost_types::Any { type_url: tfgate_proto::SIGNATURE_DEF_MAP_TYPE_URL.into(), value: map.encode_to_vec() };
        Ok(tonic::Response::new(GetModelMetadataResponse {
            model_spec: Some(ModelSpec {
                name: spec.name,
                signature_name: String::new(),
                version_choice: Some(VersionChoice::Version(version)),
            }),
            metadata: [("signature_def".to_string(), any)].into(),
        }))
    }
}

#[tonic::async_trait]
impl ModelService for Shared {
    async fn get_model_status(
        &self,
        request: tonic::Request<GetModelStatusRequest>,
    ) -> Result<tonic::Response<GetModelStatusResponse>, Status> {
        let version = version_of(&request.into_inner().model_spec.unwrap_or_default())?;
        let status =
            ModelVersionStatus { version, state: State::Available as i32, status: Some(StatusProto::default()) };
        Ok(tonic::Response::new(GetModelStatusResponse { model_version_status: vec![status] }))
    }
}

/// Sends each gRPC call to the service its path names.
#[derive(Clone)]
struct Routes {
    prediction: PredictionServiceServer<Shared>,
    models: ModelServiceServer<Shared>,
}

type BoxResponse = Pin<Box<dyn Future<Output = Result<hyper::Response<tonic::body::Body>, Infallible>> + Send>>;

impl Service<hyper::Request<tonic::body::Body>> for Routes {
    type Response = hyper::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxResponse;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::Request<tonic::body::Body>) -> BoxResponse {
        if request.uri().path().starts_with("/tensorflow.serving.ModelService/") {
            Box::pin(self.models.call(request))
        } else {
            Box::pin(self.prediction.call(request))
        }
    }
}

async fn start_fake() -> (Arc<Fake>, u16) {
    let fake = Arc::new(Fake::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let routes = Routes {
        prediction: PredictionServiceServer::new(Shared(fake.clone())),
        models: ModelServiceServer::new(Shared(fake.clone())),
    };
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(routes, TcpIncoming::from(listener)));
    (fake, port)
}

fn app(port: u16) -> App {
    let config = Config::parse(&format!(
        "listen = \"/tmp/unused.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:{port}\"]\n[batching]\ntimeout_ms = 2000\n"
    ))
    .unwrap();
    App::new(config).unwrap()
}

async fn call(app: &App, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response: rest::HttpResponse =
        rest::handle(app, request.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await;
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json", "{method} {path}");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {e}: {bytes:?}"));
    (status, json)
}

#[tokio::test]
async fn predict_row_and_columnar_with_cached_signature() {
    let (fake, port) = start_fake().await;
    let app = app(port);
    let body = r#"{"instances": [1.0, 2.0, 5.0]}"#;
    assert_eq!(
        call(&app, "POST", "/v1/models/plus_one:predict", &[], body).await,
        (200, json!({"predictions": [3.0, 4.0, 7.0]}))
    );
    let (status, json) =
        call(&app, "POST", "/v1/models/plus_one/versions/1:predict", &[], r#"{"inputs": [[1.5], [2.5]]}"#).await;
    assert_eq!((status, json), (200, json!({"outputs": [[2.5], [3.5]]})));
    assert_eq!(call(&app, "POST", "/v1/models/plus_one:predict", &[], body).await.0, 200);
    // One metadata call per version choice (latest, then 1), then served from the cache.
    assert_eq!(fake.metadata_calls.load(Ordering::SeqCst), 2);
    assert_eq!(fake.predict_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn trusted_version_header_wins_over_the_path_label() {
    let (fake, port) = start_fake().await;
    let app = app(port);
    let (status, json) = call(
        &app,
        "POST",
        "/v1/models/plus_one/labels/canary:predict",
        &[("X-Tfgate-Version", "1")],
        r#"{"instances": [0.0]}"#,
    )
    .await;
    assert_eq!((status, json), (200, json!({"predictions": [1.0]})));
    let spec = fake.last_spec.lock().unwrap().clone().unwrap();
    assert_eq!(spec.version_choice, Some(VersionChoice::Version(1)));
    assert_eq!(spec.signature_name, "serving_default");
    let (status, _) =
        call(&app, "POST", "/v1/models/plus_one/labels/stable:predict", &[], r#"{"instances": [0.0]}"#).await;
    assert_eq!(status, 200);
    let spec = fake.last_spec.lock().unwrap().clone().unwrap();
    assert_eq!(spec.version_choice, Some(VersionChoice::VersionLabel("stable".into())));
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let (fake, port) = start_fake().await;
    let app = app(port);
    let (status, json) = call(&app, "POST", "/v1/models/plus_one:predict", &[], "not json").await;
    assert_eq!(status, 400);
    assert!(json["error"].as_str().unwrap().starts_with("JSON Parse error"));
    assert_eq!(fake.metadata_calls.load(Ordering::SeqCst), 0, "a malformed body never reaches the backend");
    let (status, json) = call(&app, "POST", "/v1/models/nope:predict", &[], r#"{"instances": [1]}"#).await;
    assert_eq!((status, json), (404, json!({"error": "Servable not found for request: Latest(nope)"})));
    assert_eq!(call(&app, "POST", "/v1/models/plus_one:predict", &[], r#"{"instances": ["a"]}"#).await.0, 400);
    assert_eq!(
        call(&app, "POST", "/v1/models/plus_one:predict", &[], "{}").await.1,
        json!({"error": "Missing 'inputs' or 'instances' key"})
    );
    assert_eq!(call(&app, "GET", "/v1/models/plus_one:predict", &[], "").await.0, 405);
    assert_eq!(call(&app, "GET", "/v1/models", &[], "").await.0, 400);
    assert_eq!(call(&app, "GET", "/nothing", &[], "").await.0, 404);
    let (status, json) = call(&app, "POST", "/v1/models/plus_one:classify", &[], "{}").await;
    assert_eq!(
        (status, json["error"].as_str().unwrap()),
        (501, "classify and regress need [backend] rest = ... (not configured)")
    );
}

#[tokio::test]
async fn status_and_metadata() {
    let (_fake, port) = start_fake().await;
    let app = app(port);
    let (status, json) = call(&app, "GET", "/v1/models/plus_one/versions/1", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(
        json,
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    );
    let (status, json) = call(&app, "GET", "/v1/models/plus_one/metadata", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(json["model_spec"], json!({"name": "plus_one", "signature_name": "", "version": "2"}));
    assert_eq!(
        json["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]["dtype"],
        "DT_FLOAT"
    );
    assert_eq!(call(&app, "GET", "/v1/models/other/metadata", &[], "").await.0, 404);
}

#[tokio::test]
async fn unreachable_backend_is_503() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = app(port);
    let (status, json) = call(&app, "POST", "/v1/models/plus_one:predict", &[], r#"{"instances": [1]}"#).await;
    assert_eq!(status, 503);
    assert!(json["error"].as_str().unwrap().contains("unreachable"), "{json}");
    assert_eq!(call(&app, "GET", "/v1/models/plus_one", &[], "").await.0, 503);
}
