//! TF Serving's REST API, answered over gRPC: route the request, read its body, run the handler
//! for its method, and turn every failure into a JSON error answer.

pub mod body;
mod classify_regress;
pub mod error;
mod model_info;
mod predict;
pub mod quota;
mod route;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Request};
use tfgate_common::Method;

pub use error::{json_response, ApiError, ErrorMessage, HttpResponse};
pub use route::{route, Route};

use crate::admission::Reservation;
use crate::app::App;
use crate::observe::audit::code_of_http_status;
use crate::observe::Trail;
use crate::request::{requested_version, ConnectionId, RequestInfo};

/// Largest request body accepted (nginx normally limits bodies well below this).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Answers one request; never fails, errors become JSON answers. Every answer is counted in
/// `tfgate_requests_total` and timed in `tfgate_request_duration_seconds`, and goes to the
/// audit log (an answer written as its batches come back goes there once written).
pub async fn handle<B>(app: &App, request: Request<B>) -> HttpResponse
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let routed = route(request.method(), request.uri().path(), request.headers());
    let config = app.config();
    let timeout = match &routed {
        Ok(routed) => config.batching_for(&routed.target.model).timeout,
        Err(_) => config.batching.timeout,
    };
    let connection = request.extensions().get::<ConnectionId>().copied();
    let info = RequestInfo::from_headers(request.headers(), connection, started, timeout);
    let mut trail = Trail::start(&app.logs, &info, "rest");
    let plan = info.caller.plan.clone();
    let (result, labels) = match routed {
        Ok(routed) => {
            let labels = Labels {
                model: routed.target.model.clone(),
                version: routed.target.version.to_string(),
                method: routed.path.method.as_str(),
            };
            if let Some(record) = trail.record() {
                record.method = labels.method;
                let requested = requested_version(&routed.path.selector, request.headers());
                record.target(&routed.target.model, &routed.target.version, requested);
            }
            (dispatch(app, routed, request, info, &mut trail).await, labels)
        }
        Err(error) => (Err(error), Labels::default()),
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    // A limited caller learns its policy from every answer, counted or not (a counted one has
    // it already).
    if !labels.model.is_empty() && !response.headers().contains_key(quota::RATELIMIT_POLICY) {
        if let Some(limits) = app.quotas.limits(plan.as_deref(), &labels.model) {
            quota::write_policy(response.headers_mut(), &limits);
        }
    }
    let status = response.status().as_u16();
    let code = status.to_string();
    app.metrics.requests.inc(&[&labels.model, &labels.version, labels.method, &code]);
    app.metrics.request_seconds.observe(&[&labels.model, labels.method], started.elapsed().as_secs_f64());
    let bytes_out = response.body().size_hint().exact();
    let error = response.extensions_mut().remove::<ErrorMessage>().map(|e| e.0);
    trail.finish(status, code_of_http_status(status), error, bytes_out);
    response
}

#[derive(Default)]
struct Labels {
    model: String,
    version: String,
    method: &'static str,
}

async fn dispatch<B>(
    app: &App,
    routed: Route,
    request: Request<B>,
    info: RequestInfo,
    trail: &mut Trail,
) -> Result<HttpResponse, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Route { path, target, listed_versions } = routed;
    let (parts, body) = request.into_parts();
    // Refused before anything is read (and before `100 Continue` is sent).
    if declared_length(&parts.headers).is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    // Held until the answer is built: the body as it arrives, then its parsed form.
    let mut reservation = app.memory.reservation();
    // Read the whole body even for GET, so the keep-alive connection stays usable.
    let config = app.config();
    let body =
        read_body(body, declared_length(&parts.headers), &mut reservation, config.connections.body_timeout).await?;
    if let Some(record) = trail.record() {
        record.bytes_in = body.len() as u64;
    }
    let timeout = config.batching_for(&target.model).timeout;
    match path.method {
        Method::Predict => predict::predict(app, &target, info, body, reservation, timeout, trail).await,
        Method::Status => model_info::status(app, &target, &listed_versions, timeout).await,
        Method::Metadata => model_info::metadata(app, &target, timeout).await,
        Method::Classify | Method::Regress | Method::MultiInference => {
            let rows = quota::example_count(&body).ok_or_else(|| {
                ApiError::new(400, "the request body must be a JSON object with at most one \"examples\" list")
            })?;
            if let Some(record) = trail.record() {
                record.rows = Some(rows as usize);
            }
            let content_type = parts.headers.get(CONTENT_TYPE);
            classify_regress::forward(app, &path, &target, &info.caller, rows, content_type, body).await
        }
    }
}

/// The body's announced `Content-Length` (nginx always sends one).
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok())
}

fn too_large() -> ApiError {
    ApiError::new(413, format!("request body larger than {MAX_BODY_BYTES} bytes"))
}

/// Reads the body, reserving its bytes as they arrive; a body that stalls for `stall` between
/// two reads is a 408.
async fn read_body<B>(
    mut body: B,
    declared: Option<usize>,
    reservation: &mut Reservation,
    stall: Duration,
) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut collected = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => return Err(ApiError::new(408, format!("request body stalled for {} ms", stall.as_millis()))),
            Ok(None) => return Ok(collected.freeze()),
            Ok(Some(Err(e))) => return Err(ApiError::new(400, format!("cannot read the request body: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if collected.len() + data.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        reservation.grow(data.len())?;
        if collected.is_empty() {
            // Usually the one chunk of a small body: no copy. Otherwise room for all of it.
            if declared.is_none_or(|n| n == data.len()) {
                collected = BytesMut::from(data);
                continue;
            }
            collected.reserve(declared.unwrap_or(0).min(MAX_BODY_BYTES));
        }
        collected.extend_from_slice(&data);
    }
}
