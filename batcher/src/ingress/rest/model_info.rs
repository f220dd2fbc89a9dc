//! Model status (`GET /v1/models/M[/versions/N]`) and metadata (`.../metadata`), answered from
//! GetModelStatus and GetModelMetadata in TF Serving's JSON.

use std::time::Duration;

use super::error::{json_response, ApiError, HttpResponse};
use crate::app::App;
use crate::convert::model_json::{metadata_json, status_json};
use crate::target::ModelTarget;

pub async fn status(app: &App, target: &ModelTarget, timeout: Duration) -> Result<HttpResponse, ApiError> {
    let response = app.pool().model_status(target, timeout).await?;
    Ok(json_response(200, status_json(&response)))
}

pub async fn metadata(app: &App, target: &ModelTarget, timeout: Duration) -> Result<HttpResponse, ApiError> {
    let response = app.pool().model_metadata(target, timeout).await?;
    Ok(json_response(200, metadata_json(&response)?))
}
