//! TF Serving's REST API, answered over gRPC: route the request, read its body, run the handler
//! for its method, and turn every failure into a JSON error answer.

mod classify_regress;
pub mod error;
mod model_info;
mod predict;
mod route;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Request};
use tfgate_common::{headers, Method};

pub use error::{json_response, ApiError, HttpResponse};
pub use route::{route, Route};

use crate::app::App;
use crate::request::{header_text, is_traceparent, Caller, RequestInfo};
use crate::target::VersionRef;

/// Largest request body accepted (nginx normally limits bodies well below this).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Answers one request; never fails, errors become JSON answers. Every answer is counted in
/// `tfgate_requests_total` and timed in `tfgate_request_duration_seconds`.
pub async fn handle<B>(app: &App, request: Request<B>) -> HttpResponse
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let routed = route(request.method(), request.uri().path(), request.headers());
    let (response, labels) = match routed {
        Ok(routed) => {
            let labels = Labels {
                model: routed.target.model.clone(),
                version: version_label(&routed.target.version),
                method: routed.path.method.as_str(),
            };
            let response = match dispatch(app, routed, request, started).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            };
            (response, labels)
        }
        Err(error) => (error.into_response(), Labels::default()),
    };
    let code = response.status().as_u16().to_string();
    app.metrics.requests.inc(&[&labels.model, &labels.version, labels.method, &code]);
    app.metrics.request_seconds.observe(&[&labels.model, labels.method], started.elapsed().as_secs_f64());
    response
}

#[derive(Default)]
struct Labels {
    model: String,
    version: String,
    method: &'static str,
}

/// `2`, `latest`, `label:canary`.
fn version_label(version: &VersionRef) -> String {
    match version {
        VersionRef::Latest => "latest".to_string(),
        VersionRef::Number(n) => n.to_string(),
        VersionRef::Label(label) => format!("label:{label}"),
    }
}

async fn dispatch<B>(app: &App, routed: Route, request: Request<B>, received: Instant) -> Result<HttpResponse, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Route { path, target, listed_versions } = routed;
    let (parts, body) = request.into_parts();
    // Held until the answer is built: the body, its parsed form and its queued rows.
    let _budget = app.memory.reserve(declared_length(&parts.headers))?;
    // Read the whole body even for GET, so the keep-alive connection stays usable.
    let body = read_body(body).await?;
    let timeout = app.config().batching_for(&target.model).timeout;
    match path.method {
        Method::Predict => {
            let info = request_info(&parts.headers, received, timeout);
            predict::predict(app, &target, info, &body, timeout).await
        }
        Method::Status => model_info::status(app, &target, &listed_versions, timeout).await,
        Method::Metadata => model_info::metadata(app, &target, timeout).await,
        Method::Classify | Method::Regress => {
            let content_type = parts.headers.get(CONTENT_TYPE);
            classify_regress::forward(app, &path, &target, content_type, body, timeout).await
        }
    }
}

/// Who is calling and how long the request may wait, from the headers nginx set.
fn request_info(headers: &HeaderMap, received: Instant, timeout: Duration) -> RequestInfo {
    let text = |name: &str| headers.get(name).map(|v| header_text(v.as_bytes()));
    RequestInfo {
        request_id: text(headers::REQUEST_ID).unwrap_or_default(),
        traceparent: text("traceparent").filter(|t| is_traceparent(t)),
        caller: Caller {
            subject: text(headers::SUBJECT).unwrap_or_default(),
            client: text(headers::CLIENT).unwrap_or_default(),
            plan: text(headers::PLAN).filter(|p| !p.is_empty()),
        },
        received,
        deadline: received + timeout,
    }
}

/// What the body will take: its `Content-Length` (nginx always sends one), else the maximum.
fn declared_length(headers: &hyper::HeaderMap) -> usize {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(MAX_BODY_BYTES)
        .min(MAX_BODY_BYTES)
}

async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::new(413, format!("request body larger than {MAX_BODY_BYTES} bytes")))
        }
        Err(e) => Err(ApiError::new(400, format!("cannot read the request body: {e}"))),
    }
}
