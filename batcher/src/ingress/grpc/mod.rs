//! TF Serving's gRPC API (`PredictionService`, `ModelService`) on `grpc_listen`, behind nginx's
//! `grpc_pass`:
//! - Predict joins the same per-model batch queues as REST (`predict`): a REST and a gRPC
//!   request for one model can share a backend call;
//! - GetModelMetadata and GetModelStatus are answered by the backend;
//! - Classify, Regress and MultiInference are forwarded unbatched, their messages untouched but
//!   for the model version nginx resolved (`forward`).
//!
//! The model comes from the trusted headers nginx set (`X-Tfgate-Model`, `X-Tfgate-Version`),
//! which the message's own `model_spec` must agree with (`call`).

mod call;
mod forward;
mod predict;
mod unary;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use tonic::{Response, Status};

use crate::app::App;
use crate::backend::RawCodec;
use crate::request::CoreError;

pub use call::ConnectionId;
pub use forward::RawMethod;

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";
const GET_MODEL_METADATA: &str = "/tensorflow.serving.PredictionService/GetModelMetadata";
const GET_MODEL_STATUS: &str = "/tensorflow.serving.ModelService/GetModelStatus";

/// Answers one gRPC call; errors are gRPC statuses.
pub async fn serve(
    app: Arc<App>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<tonic::body::Body>, Infallible> {
    let path = request.uri().path().to_string();
    let response = match path.as_str() {
        PREDICT => {
            unary::serve(request, move |r| async move {
                predict::predict(&app, r).await.map(Response::new).map_err(grpc_status)
            })
            .await
        }
        GET_MODEL_METADATA => {
            unary::serve(request, move |r| async move {
                forward::model_metadata(&app, r).await.map(Response::new).map_err(grpc_status)
            })
            .await
        }
        GET_MODEL_STATUS => {
            unary::serve(request, move |r| async move {
                forward::model_status(&app, r).await.map(Response::new).map_err(grpc_status)
            })
            .await
        }
        other => match RawMethod::from_path(other) {
            Some(method) => {
                unary::serve_with(RawCodec, request, move |r| async move {
                    forward::forward(&app, method, r).await.map(Response::new).map_err(grpc_status)
                })
                .await
            }
            None => Status::unimplemented(format!("{} is not served by tfgate", other.get(..96).unwrap_or(other)))
                .into_http(),
        },
    };
    Ok(response)
}

/// The core's error as the gRPC status it already is (TF Serving's own codes pass through).
pub fn grpc_status(error: CoreError) -> Status {
    let mut status = Status::new(error.code, error.message);
    if let Some(seconds) = error.retry_after {
        if let Ok(value) = seconds.to_string().parse() {
            status.metadata_mut().insert("retry-after", value);
        }
    }
    status
}
