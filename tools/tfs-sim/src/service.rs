//! The gRPC services (PredictionService, ModelService; the Open Inference Protocol's
//! GRPCInferenceService is in `v2`) and a small router that serves them all on one port (tonic's
//! own router needs a feature this workspace does not enable).

use std::convert::Infallible;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::task::{Context, Poll};

use prost::Message;
use tfgate_proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
use tfgate_proto::tensorflow::error::Code;
use tfgate_proto::tensorflow::serving::{
    model_service_server::{ModelService, ModelServiceServer},
    model_spec::VersionChoice,
    model_version_status::State,
    prediction_service_server::{PredictionService, PredictionServiceServer},
    GetModelMetadataRequest, GetModelMetadataResponse, GetModelStatusRequest, GetModelStatusResponse, ModelSpec,
    ModelVersionStatus, PredictRequest, PredictResponse, StatusProto,
};
use tfgate_proto::{SIGNATURE_DEF_FIELD, SIGNATURE_DEF_MAP_TYPE_URL};
use tonic::codegen::{http, BoxFuture, Service};
use tonic::{Request, Response, Status};

use crate::content::packed;
use crate::executor::{Cost, Executors};
use crate::faults::Faults;
use crate::models::Catalog;
use crate::predict::Plan;
use crate::stats::Stats;

/// The simulated server's state, shared by both services.
pub struct Sim {
    /// Versions can be loaded at run time (see `control`).
    pub catalog: RwLock<Catalog>,
    pub stats: Arc<Stats>,
    /// The cost model; `None` runs every call at once.
    pub cost: Option<(Cost, Executors)>,
    pub faults: Faults,
    /// `--tensor-content`: answers use packed bytes instead of typed fields.
    pub tensor_content: bool,
}

impl Sim {
    pub fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Shares one `Sim` between the tonic service impls.
#[derive(Clone)]
pub struct Shared(pub Arc<Sim>);

impl Sim {
    /// Predict's work, shared by v2's ModelInfer (the same models, faults, counters and cost
    /// model): the answer in typed fields, as the plan computed it.
    pub async fn run_predict<T>(
        &self,
        request: &Request<T>,
        predict: &PredictRequest,
    ) -> Result<PredictResponse, Status> {
        if let Some(traceparent) = request.metadata().get("traceparent") {
            self.stats.record_traceparent(traceparent.to_str().unwrap_or("(not ASCII)"));
        }
        if let Some(code) = self.faults.take_failure() {
            self.stats.record_error();
            return Err(Status::new(code, "tfs-sim: injected failure (POST /fail)"));
        }
        let plan = Plan::new(&self.catalog(), predict).inspect_err(|_| self.stats.record_error())?;
        let batch = plan.batch_size();
        self.stats.record_predict(batch);
        let delay = self.faults.extra_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match &self.cost {
            None => Ok(plan.run()),
            Some((cost, executors)) => executors
                .run(cost.for_batch(batch), move || plan.run())
                .await
                .ok_or_else(|| Status::unavailable("tfs-sim executors are shutting down")),
        }
    }
}

#[tonic::async_trait]
impl PredictionService for Shared {
    async fn predict(&self, request: Request<PredictRequest>) -> Result<Response<PredictResponse>, Status> {
        let sim = &self.0;
        let mut response = sim.run_predict(&request, request.get_ref()).await?;
        if sim.tensor_content {
            for tensor in response.outputs.values_mut() {
                *tensor = packed(std::mem::take(tensor));
            }
        }
        Ok(Response::new(response))
    }

    async fn get_model_metadata(
        &self,
        request: Request<GetModelMetadataRequest>,
    ) -> Result<Response<GetModelMetadataResponse>, Status> {
        let req = request.get_ref();
        let catalog = self.0.catalog();
        let resolved = catalog.resolve(req.model_spec.as_ref())?;
        if req.metadata_field.is_empty() {
            return Err(Status::invalid_argument("GetModelMetadataRequest must specify at least one metadata_field"));
        }
        if let Some(field) = req.metadata_field.iter().find(|f| *f != SIGNATURE_DEF_FIELD) {
            return Err(Status::invalid_argument(format!("Metadata field {field} is not supported")));
        }
        let any = prost_types::Any {
            type_url: SIGNATURE_DEF_MAP_TYPE_URL.to_string(),
            value: resolved.model.signature_def_map(resolved.version).encode_to_vec(),
        };
        Ok(Response::new(GetModelMetadataResponse {
            model_spec: Some(ModelSpec {
                name: resolved.model.name.to_string(),
                version_choice: Some(VersionChoice::Version(resolved.version)),
                signature_name: String::new(),
            }),
            metadata: [(SIGNATURE_DEF_FIELD.to_string(), any)].into_iter().collect(),
        }))
    }
}

#[tonic::async_trait]
impl ModelService for Shared {
    async fn get_model_status(
        &self,
        request: Request<GetModelStatusRequest>,
    ) -> Result<Response<GetModelStatusResponse>, Status> {
        let (_, versions) = self.0.catalog().status_versions(request.get_ref().model_spec.as_ref())?;
        let model_version_status = versions
            .into_iter()
            .map(|version| ModelVersionStatus {
                version,
                state: State::Available as i32,
                status: Some(StatusProto { error_code: Code::Ok as i32, error_message: String::new() }),
            })
            .collect();
        Ok(Response::new(GetModelStatusResponse { model_version_status }))
    }
}

/// Routes gRPC requests to the service named in the path; unknown services get UNIMPLEMENTED.
/// TF Serving's limit on a message, sent or received.
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

#[derive(Clone)]
pub struct Router {
    prediction: PredictionServiceServer<Shared>,
    model: ModelServiceServer<Shared>,
    inference: GrpcInferenceServiceServer<Shared>,
}

impl Router {
    pub fn new(sim: Arc<Sim>) -> Router {
        Router {
            // TF Serving accepts messages up to 2 GiB (tonic's default is 4 MiB): batches of
            // image-sized rows are far larger than that.
            prediction: PredictionServiceServer::new(Shared(Arc::clone(&sim)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            model: ModelServiceServer::new(Shared(Arc::clone(&sim))),
            inference: GrpcInferenceServiceServer::new(Shared(sim))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        }
    }
}

const PREDICTION_PREFIX: &str = "/tensorflow.serving.PredictionService/";
const MODEL_PREFIX: &str = "/tensorflow.serving.ModelService/";
const INFERENCE_PREFIX: &str = "/inference.GRPCInferenceService/";

impl Service<http::Request<tonic::body::Body>> for Router {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The generated servers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let path = req.uri().path();
        if path.starts_with(PREDICTION_PREFIX) {
            Box::pin(self.prediction.call(req))
        } else if path.starts_with(MODEL_PREFIX) {
            Box::pin(self.model.call(req))
        } else if path.starts_with(INFERENCE_PREFIX) {
            Box::pin(self.inference.call(req))
        } else {
            let status = Status::unimplemented(format!("tfs-sim does not serve {path}"));
            Box::pin(async move { Ok(status.into_http()) })
        }
    }
}
