//! The Open Inference Protocol's gRPC API (`inference.GRPCInferenceService`) on `grpc_listen`,
//! behind nginx's `grpc_pass`: `decode` turns a call into the core's call (or answers a
//! server-level one itself), the pipeline serves it (ModelInfer joins the same batch queues as
//! TF Serving's Predict), `encode` writes the outcome as the protocol's answer, errors as gRPC
//! statuses. Any other method of the service is answered UNIMPLEMENTED.

mod cost;
mod decode;
mod encode;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;

use crate::app::App;
use crate::pipeline;

/// Every method of the service is under this path.
pub const SERVICE_PREFIX: &str = "/inference.GRPCInferenceService/";

/// Answers one gRPC call; errors are gRPC statuses.
pub async fn serve(
    app: Arc<App>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<tonic::body::Body>, Infallible> {
    Ok(match decode::decode(&app, request).await {
        decode::Decoded::Answered(response) => response,
        decode::Decoded::Call(decoded, encoder) => pipeline::serve(&app, decoded, encoder).await,
    })
}
