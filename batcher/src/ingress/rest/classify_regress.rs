//! `:classify` and `:regress` are forwarded to TF Serving's REST API when `backend.rest` is set
//! (their `tf.Example` inputs are not batched), with the version the request resolved to. They
//! run the model too, so quotas count them as predictions, one row per example.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tfgate_common::ModelPath;

use super::error::{ApiError, HttpResponse};
use super::{body, quota};
use crate::app::App;
use crate::backend::passthrough::RestPassthrough;
use crate::request::Caller;
use crate::target::ModelTarget;

/// Forwards a request of `rows` examples (counted by `caller`'s quotas first).
pub async fn forward(
    app: &App,
    path: &ModelPath,
    target: &ModelTarget,
    caller: &Caller,
    rows: u64,
    content_type: Option<&HeaderValue>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let passthrough = app.passthrough();
    let Some(passthrough) = passthrough.as_ref() else {
        return Err(ApiError::new(501, "classify and regress need [backend] rest = ... (not configured)"));
    };
    let timeout = app.config().batching_for(&target.model).timeout;
    let standing = match app.quotas.admit(caller, &target.model, rows).await {
        Ok(standing) => standing,
        Err(refusal) => return Ok(quota::refused(refusal)),
    };
    let mut response = match send(passthrough, path, target, content_type, body, timeout).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if let Some(standing) = &standing {
        quota::write(response.headers_mut(), standing);
    }
    Ok(response)
}

async fn send(
    passthrough: &RestPassthrough,
    path: &ModelPath,
    target: &ModelTarget,
    content_type: Option<&HeaderValue>,
    body: Bytes,
    timeout: Duration,
) -> Result<HttpResponse, ApiError> {
    let resolved =
        ModelPath { model: target.model.clone(), selector: target.version.to_selector(), method: path.method };
    let answer = passthrough.forward(&resolved.to_path(), content_type, body, timeout).await?;
    let mut response = Response::new(body::full(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.content_type.unwrap_or_else(|| HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    Ok(response)
}
