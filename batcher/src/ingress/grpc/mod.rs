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
mod quota;
mod unary;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use tfgate_common::{headers, Method};
use tonic::{Code, Response, Status};

use crate::app::App;
use crate::backend::RawCodec;
use crate::ingress::rest::error::http_status;
use crate::observe::audit::code_name;
use crate::observe::Trail;
use crate::request::{ConnectionId, CoreError, RequestInfo};

pub use forward::RawMethod;

const PREDICT: &str = "/tensorflow.serving.PredictionService/Predict";
const GET_MODEL_METADATA: &str = "/tensorflow.serving.PredictionService/GetModelMetadata";
const GET_MODEL_STATUS: &str = "/tensorflow.serving.ModelService/GetModelStatus";

/// Answers one gRPC call; errors are gRPC statuses. Every call is counted in
/// `tfgate_grpc_requests_total`, timed, and audited.
pub async fn serve(
    app: Arc<App>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<tonic::body::Body>, Infallible> {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let labels = Labels::of(&request);
    let metrics = app.metrics.clone();
    let connection = request.extensions().get::<ConnectionId>().copied();
    // The deadline is set once the model (and so its timeout) is known.
    let info = RequestInfo::from_headers(request.headers(), connection, started, Duration::ZERO);
    let trail = CallTrail::start(&app, &info);
    let (handler_trail, handler_app) = (trail.clone(), app.clone());
    let response = match path.as_str() {
        PREDICT => {
            trail.method(Method::Predict);
            unary::serve(request, move |r| async move { predict::predict(&handler_app, info, &handler_trail, r).await })
                .await
        }
        GET_MODEL_METADATA => {
            trail.method(Method::Metadata);
            unary::serve(request, move |r| async move {
                let answer = forward::model_metadata(&handler_app, info, &handler_trail, r).await;
                answer.map(Response::new).map_err(grpc_status)
            })
            .await
        }
        GET_MODEL_STATUS => {
            trail.method(Method::Status);
            unary::serve(request, move |r| async move {
                let answer = forward::model_status(&handler_app, info, &handler_trail, r).await;
                answer.map(Response::new).map_err(grpc_status)
            })
            .await
        }
        other => match RawMethod::from_path(other) {
            Some(method) => {
                trail.method(method.method());
                unary::serve_with(RawCodec, request, move |r| async move {
                    forward::forward(&handler_app, method, info, &handler_trail, r).await
                })
                .await
            }
            None => Status::unimplemented(format!("{} is not served by tfgate", other.get(..96).unwrap_or(other)))
                .into_http(),
        },
    };
    // Errors are always trailers-only answers here: their status is in the headers.
    let status = Status::from_header_map(response.headers()).filter(|s| s.code() != Code::Ok);
    let code = status.as_ref().map_or(Code::Ok, Status::code);
    let method = path.rsplit('/').next().unwrap_or("");
    metrics.grpc_requests.inc(&[&labels.model, &labels.version, method, code_name(code)]);
    metrics.grpc_request_seconds.observe(&[&labels.model, method], started.elapsed().as_secs_f64());
    trail.finish(code, status.map(|s| s.message().to_string()));
    Ok(response)
}

/// A call's audit trail, shared by its handler (which learns the model, the rows, the batches
/// and the outputs the prediction log keeps) and [`serve`] (which finishes it with the status).
/// Dropped unfinished, the call was cancelled: it is audited as such.
#[derive(Clone)]
struct CallTrail(Arc<Mutex<Trail>>);

impl CallTrail {
    fn start(app: &App, info: &RequestInfo) -> CallTrail {
        CallTrail(Arc::new(Mutex::new(Trail::start(&app.logs, info, "grpc"))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Trail) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn method(&self, method: Method) {
        self.with(|trail| trail.record().map(|record| record.method = method.as_str()));
    }

    fn finish(&self, code: Code, error: Option<String>) {
        self.with(Trail::hand_over).finish(http_status(code), code, error, None);
    }
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
