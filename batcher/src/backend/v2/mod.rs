//! A `protocol = "v2"` backend: TF Serving's calls made to an Open Inference Protocol server
//! (Triton, MLServer, KServe runtimes) through `inference.GRPCInferenceService`, with the
//! messages translated by [`convert`]. [`Backend`](super::Backend) calls these for a v2 target,
//! so the pool, the batcher and the ingresses stay protocol-neutral.
//!
//! - Predict is ModelInfer (raw contents both ways).
//! - GetModelMetadata is ModelMetadata, as one `serving_default` signature.
//! - GetModelStatus is ModelReady, with ModelMetadata for what ModelReady does not say: the
//!   version numbers of a ready model asked without one, and whether a model that is not ready
//!   exists at all (NOT_FOUND, as TF Serving) or is there but not ready (UNAVAILABLE).
//! - Classify, Regress and MultiInference have no v2 equivalent: UNIMPLEMENTED (see
//!   [`Pool::raw`](super::Pool::raw)).
//!
//! Why UNAVAILABLE and not a version in some state for a model that is not ready: TF Serving's
//! states (LOADING, UNLOADING, END...) describe a lifecycle a v2 server does not report, so any
//! of them would be a guess; UNAVAILABLE (503 over REST) says what a client can act on, and is
//! the one refusal the pool sends once to another replica, where the model may be ready.

pub mod convert;
#[cfg(test)]
mod tests;

use tfgate_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tfgate_proto::inference::{ModelMetadataRequest, ModelReadyRequest, ServerReadyRequest};
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::{
    GetModelMetadataRequest, GetModelMetadataResponse, GetModelStatusRequest, GetModelStatusResponse, PredictRequest,
    PredictResponse,
};
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::MAX_MESSAGE_BYTES;
use crate::convert::{Blame, ConvertError};

pub type Client = GrpcInferenceServiceClient<Channel>;

/// The gRPC service a v2 server serves.
pub const SERVICE: &str = "inference.GRPCInferenceService";

/// Predict as ModelInfer: the request's metadata (deadline, trace context) goes along.
pub async fn predict(
    client: &Client,
    target: &str,
    request: Request<PredictRequest>,
) -> Result<PredictResponse, Status> {
    let (metadata, extensions, message) = request.into_parts();
    let signature_name = message.model_spec.as_ref().map(|s| s.signature_name.clone()).unwrap_or_default();
    let infer = convert::infer_request(message, MAX_MESSAGE_BYTES).map_err(|e| status(target, e))?;
    let answer = client.clone().model_infer(Request::from_parts(metadata, extensions, infer)).await?.into_inner();
    convert::predict_response(answer, &signature_name).map_err(|e| status(target, e))
}

/// GetModelMetadata as ModelMetadata.
pub async fn model_metadata(
    client: &Client,
    target: &str,
    request: Request<GetModelMetadataRequest>,
) -> Result<GetModelMetadataResponse, Status> {
    let (metadata, extensions, message) = request.into_parts();
    let spec = message.model_spec.unwrap_or_default();
    let ask = ModelMetadataRequest {
        name: spec.name.clone(),
        version: convert::version_string(spec.version_choice.as_ref()),
    };
    let answer = client.clone().model_metadata(Request::from_parts(metadata, extensions, ask)).await?.into_inner();
    convert::metadata_response(answer, &spec.name, spec.version_choice.as_ref()).map_err(|e| status(target, e))
}

/// GetModelStatus as ModelReady (and ModelMetadata, see the module's notes).
pub async fn model_status(
    client: &Client,
    request: Request<GetModelStatusRequest>,
) -> Result<GetModelStatusResponse, Status> {
    let (metadata, _, message) = request.into_parts();
    let spec = message.model_spec.unwrap_or_default();
    let version = convert::version_string(spec.version_choice.as_ref());
    let ready = ModelReadyRequest { name: spec.name.clone(), version: version.clone() };
    let about = ModelMetadataRequest { name: spec.name.clone(), version };
    let (mut ready_client, mut metadata_client) = (client.clone(), client.clone());
    let ready = ready_client.model_ready(Request::from_parts(metadata.clone(), Default::default(), ready));
    let about = metadata_client.model_metadata(Request::from_parts(metadata, Default::default(), about));
    let not_ready = || Status::unavailable(convert::not_ready_message(&spec.name, spec.version_choice.as_ref()));
    if let Some(VersionChoice::Version(v)) = spec.version_choice {
        // The version is known: metadata only to tell a missing version from one not ready.
        if ready.await?.into_inner().ready {
            return Ok(convert::status_available(&[v]));
        }
        about.await?;
        return Err(not_ready());
    }
    let (ready, about) = tokio::join!(ready, about);
    // Metadata's error first: NOT_FOUND for a model the server does not know (some servers
    // answer ModelReady false for it, some NOT_FOUND).
    let about = about?.into_inner();
    if !ready?.into_inner().ready {
        return Err(not_ready());
    }
    Ok(convert::status_available(&convert::numeric_versions(&about.versions)))
}

/// Whether `model` (the server's default version) is ready: a health probe.
pub async fn model_ready(client: &Client, model: &str, timeout: std::time::Duration) -> Result<bool, Status> {
    let request = ModelReadyRequest { name: model.to_string(), version: String::new() };
    let answer = client.clone().model_ready(super::with_deadline(request, timeout)).await?;
    Ok(answer.into_inner().ready)
}

/// Whether the server is ready: the health probe of a target before any model is known.
pub async fn server_ready(client: &Client, timeout: std::time::Duration) -> Result<bool, Status> {
    let answer = client.clone().server_ready(super::with_deadline(ServerReadyRequest {}, timeout)).await?;
    Ok(answer.into_inner().ready)
}

/// A translation failure as the call's status: the daemon's request (which the client's values
/// made) INVALID_ARGUMENT, the server's answer INTERNAL, naming the target.
fn status(target: &str, error: ConvertError) -> Status {
    match error.blame {
        Blame::Request => Status::invalid_argument(error.message),
        Blame::Backend => {
            Status::internal(format!("unusable answer from the v2 backend at {target}: {}", error.message))
        }
    }
}
