//! `:predict`: JSON body -> input tensors (with the model's signature) -> the batcher -> the
//! request's rows of the batch outputs -> JSON answer.

use std::sync::Arc;
use std::time::Duration;

use super::error::{json_response, ApiError, HttpResponse};
use crate::app::App;
use crate::batching::BatchAnswer;
use crate::convert::{predict_response_json, AnswerSource, PredictBody, RowSlice, Signatures};
use crate::request::{Code, CoreError, PredictCall, RequestInfo};
use crate::target::ModelTarget;

pub async fn predict(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, ApiError> {
    // Parse before any backend call: a malformed body costs nothing upstream.
    let parsed = PredictBody::parse(body)?;
    let signatures = app.signatures.get(&app.pool(), target, timeout).await?;
    match predict_with(app, target, info.clone(), parsed, &signatures).await {
        // TF Serving refused the tensors: if that is because a new version with another
        // signature was loaded meanwhile (the refusal dropped the cached one), convert again
        // with the new signature, once.
        Err(e) if matches!(e.code, Code::InvalidArgument | Code::FailedPrecondition) => {
            // Usually the same cached signatures (the cache drops them at most once a second),
            // so a stream of bad requests costs no metadata calls.
            let fresh = app.signatures.get(&app.pool(), target, timeout).await?;
            if Arc::ptr_eq(&fresh, &signatures) || *fresh == *signatures {
                return Err(e.into());
            }
            let parsed = PredictBody::parse(body)?;
            Ok(predict_with(app, target, info, parsed, &fresh).await?)
        }
        other => Ok(other?),
    }
}

async fn predict_with(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    parsed: PredictBody,
    signatures: &Arc<Signatures>,
) -> Result<HttpResponse, CoreError> {
    let signature = signatures.get(&parsed.signature_name)?;
    let inputs = parsed.into_inputs(signature)?;
    let format = inputs.format;
    let call = PredictCall {
        target: target.clone(),
        signature_name: inputs.signature_name,
        inputs: inputs.tensors,
        signatures: signatures.clone(),
        info,
    };
    let json = match app.batcher.predict(call).await? {
        BatchAnswer::Whole(outputs) => predict_response_json(format, AnswerSource::Whole(&outputs)),
        BatchAnswer::Rows(pieces) => {
            let slices: Vec<RowSlice<'_>> =
                pieces.iter().map(|(outputs, rows)| RowSlice { outputs, rows: rows.clone() }).collect();
            predict_response_json(format, AnswerSource::Rows(&slices))
        }
    }?;
    Ok(json_response(200, json))
}
