//! The Open Inference Protocol's REST API from nginx (`/v2/...` on the REST socket): `decode`
//! turns a request into the core's call (or answers a server-level one itself), the pipeline
//! serves it, `encode` writes the outcome in the protocol's JSON, errors as `{"error": "..."}`
//! with the daemon's statuses.

mod decode;
mod encode;

use bytes::Bytes;
use hyper::body::Body;
use hyper::Request;

use crate::app::App;
use crate::ingress::rest::HttpResponse;
use crate::pipeline;

/// Answers one request; never fails, errors become JSON answers.
pub async fn handle<B>(app: &App, request: Request<B>) -> HttpResponse
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    match decode::decode(app, request).await {
        decode::Decoded::Answered(response) => response,
        decode::Decoded::Call(decoded, encoder) => pipeline::serve(app, decoded, encoder).await,
    }
}
