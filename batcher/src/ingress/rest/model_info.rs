//! Model status (`GET /v1/models/M[/versions/N]`) and metadata (`.../metadata`), answered from
//! GetModelStatus and GetModelMetadata in TF Serving's JSON.

use std::time::Duration;

use super::error::{json_response, ApiError, HttpResponse};
use crate::app::App;
use crate::convert::model_json::{metadata_json, status_json};
use crate::target::ModelTarget;

/// A model's status; `listed`, when not empty, limits the versions listed to those the nginx
/// catalog exposes.
pub async fn status(
    app: &App,
    target: &ModelTarget,
    listed: &[i64],
    timeout: Duration,
) -> Result<HttpResponse, ApiError> {
    let mut response = app.pool().model_status(target, timeout).await?;
    if !listed.is_empty() {
        response.model_version_status.retain(|s| listed.contains(&s.version));
        if response.model_version_status.is_empty() {
            return Err(ApiError::new(404, format!("no exposed version of model {} is loaded", target.model)));
        }
    }
    Ok(json_response(200, status_json(&response)))
}

pub async fn metadata(app: &App, target: &ModelTarget, timeout: Duration) -> Result<HttpResponse, ApiError> {
    let response = app.pool().model_metadata(target, timeout).await?;
    Ok(json_response(200, metadata_json(&response)?))
}
