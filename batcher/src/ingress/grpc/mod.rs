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
use std::time::Instant;

use hyper::body::Incoming;
use tfgate_common::headers;
use tonic::{Code, Response, Status};

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
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let labels = Labels::of(&request);
    let metrics = app.metrics.clone();
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
    let method = path.rsplit('/').next().unwrap_or("");
    let code = response_code(&response);
    metrics.grpc_requests.inc(&[&labels.model, &labels.version, method, code]);
    metrics.grpc_request_seconds.observe(&[&labels.model, method], started.elapsed().as_secs_f64());
    Ok(response)
}

/// The model and version nginx routed the call for (empty without nginx's headers).
struct Labels {
    model: String,
    version: String,
}

impl Labels {
    fn of(request: &hyper::Request<Incoming>) -> Labels {
        let text = |name: &str| {
            request.headers().get(name).map(|v| crate::request::header_text(v.as_bytes())).unwrap_or_default()
        };
        Labels { model: text(headers::MODEL), version: text(headers::VERSION) }
    }
}

/// The call's status code as tonic wrote it (a trailers-only answer carries it in its headers;
/// a streamed one in trailers: OK, as errors are always trailers-only here).
fn response_code(response: &hyper::Response<tonic::body::Body>) -> &'static str {
    let code = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok());
    code_name(code.map_or(Code::Ok, Code::from_i32))
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
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
