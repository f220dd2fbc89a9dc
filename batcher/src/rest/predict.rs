//! `:predict`: JSON body -> input tensors (with the model's signature) -> gRPC Predict ->
//! JSON answer. This is where the batcher will slot in: between building the PredictRequest
//! inputs and calling the backend.

use tfgate_proto::tensorflow::serving::PredictRequest;
use tonic::Code;

use super::error::{json_response, ApiError, HttpResponse};
use crate::app::App;
use crate::backend::model_spec;
use crate::convert::{predict_response_json, PredictBody};
use crate::target::ModelTarget;

pub async fn predict(
    app: &App,
    target: &ModelTarget,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let timeout = app.config.batching_for(&target.model).timeout;
    // Parse before any backend call: a malformed body costs nothing upstream.
    let parsed = PredictBody::parse(body)?;
    let signatures = app.signatures.get(&app.backend, target, timeout).await?;
    let signature = signatures.get(&parsed.signature_name)?;
    let inputs = parsed.into_inputs(signature)?;

    let request = PredictRequest {
        model_spec: Some(model_spec(target, &inputs.signature_name)),
        inputs: inputs
            .tensors
            .into_iter()
            .map(|(name, tensor)| (name, tensor.into_proto()))
            .collect(),
        ..Default::default()
    };
    let response = match app.backend.predict(request, timeout).await {
        Ok(response) => response,
        Err(e) => {
            // The cached signature may be stale (a new version with other inputs was loaded).
            if matches!(e.code, Code::InvalidArgument | Code::FailedPrecondition) {
                app.signatures.invalidate(target);
            }
            return Err(e.into());
        }
    };
    Ok(json_response(
        200,
        predict_response_json(inputs.format, &response.outputs)?,
    ))
}
