//! TF Serving's gRPC API (`PredictionService`, `ModelService`) on `grpc_listen`, behind nginx's
//! `grpc_pass`: `decode` turns a call into the core's call, the pipeline serves it (Predict
//! joins the same batch queues as REST), `encode` writes the outcome as TF Serving's answer.
//! Any other path is answered UNIMPLEMENTED.

// The v2 gRPC ingress shares the call's route, the wire walk and the unary framing.
pub(in crate::ingress) mod call;
pub(in crate::ingress) mod cost;
pub(in crate::ingress) mod decode;
pub(in crate::ingress) mod encode;
pub(in crate::ingress) mod fields;
mod forward;
pub(in crate::ingress) mod unary;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;

use crate::app::App;
use crate::pipeline;

pub use decode::method_of_path;

/// Answers one gRPC call; errors are gRPC statuses.
pub async fn serve(
    app: Arc<App>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<tonic::body::Body>, Infallible> {
    let decoded = decode::decode(&app, request).await;
    Ok(pipeline::serve(&app, decoded, encode::GrpcEncoder).await)
}
