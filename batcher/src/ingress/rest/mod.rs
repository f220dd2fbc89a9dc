//! TF Serving's REST API from nginx: `decode` turns a request into the core's call, the
//! pipeline serves it, `encode` writes the outcome as TF Serving's REST answer.

pub mod body;
pub(in crate::ingress) mod decode;
mod encode;
pub mod error;
mod route;

use bytes::Bytes;
use hyper::body::Body;
use hyper::Request;

pub use error::{json_response, HttpResponse};

use crate::app::App;
use crate::pipeline;

/// Answers one request; never fails, errors become JSON answers.
pub async fn handle<B>(app: &App, request: Request<B>) -> HttpResponse
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let decoded = decode::decode(app, request).await;
    pipeline::serve(app, decoded, encode::RestEncoder).await
}
