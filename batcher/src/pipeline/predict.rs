//! A Predict call from its payload to its outputs, in two steps the pipeline observes between:
//! [`read`] (the model's signature, the budget, the tensors) and [`answer`] (the caller's
//! quotas, then the model's batch queue). The tensors are read again, once, if TF Serving
//! refused them because a version with another signature was loaded meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::call::{Call, Payload, V2Payload};
use super::convert::{self, Inputs, Read, Source, KEEP_FOR_RETRY};
use super::outcome::{Answer, Outcome, Predicted, PredictedOutputs};
use super::rows::ObservedRows;
use crate::admission::Reservation;
use crate::app::App;
use crate::batching::BatchAnswer;
use crate::convert::nonfinite::{copy_cost, rewrite_owned, survey};
use crate::convert::{Signatures, Tensor};
use crate::request::{instance_count, Code, CoreError, PredictCall, RequestInfo};
use crate::target::ModelTarget;

/// A call whose tensors are read, ready for admission.
pub struct Ready {
    info: RequestInfo,
    target: ModelTarget,
    pub inputs: Inputs,
    signatures: Arc<Signatures>,
    memory: Reservation,
    /// Kept for a second reading (small payloads only).
    source: Option<Source>,
    /// Rows the call carries, as quotas count them.
    pub rows: u64,
    /// For a call the prediction log keeps: the signature and a copy of the inputs.
    pub kept_inputs: Option<(String, BTreeMap<String, Tensor>)>,
}

/// The model's signature, then the call's tensors, reserved before they are read.
pub async fn read(app: &App, call: Call, keep_inputs: bool) -> Result<Ready, CoreError> {
    let Call { info, route, mut memory, payload, .. } = call;
    let source = match payload {
        // NaN and infinities rewritten in place (a copy, reserved first, only for `Inf`); a body
        // without any, the usual one, is scanned once.
        Payload::Json(body) => match survey(&body) {
            None => Source::Json(body),
            Some(copy) => {
                memory.grow(copy)?;
                Source::Json(rewrite_owned(body))
            }
        },
        Payload::Protos(protos) => Source::Protos(protos),
        // The v2 parser rewrites NaN and infinities in a copy of the JSON when it has any.
        Payload::V2(V2Payload::Rest { body, header_len }) => {
            memory.grow(copy_cost(&body[..header_len.unwrap_or(body.len()).min(body.len())]))?;
            Source::V2(V2Payload::Rest { body, header_len })
        }
        Payload::V2(message) => Source::V2(message),
        _ => return Err(CoreError::internal("a Predict call without inputs")),
    };
    let target = route.target;
    let outline = convert::outline(&source)?;
    let signatures = app.signatures.get(&app.pool(), &target, info.remaining()).await?;
    let Read { source, mut memory, inputs } = match outline {
        Some(outline) => {
            let mut memory = memory;
            let inputs = convert::read_outlined(outline, &signatures, &mut memory)?;
            Read { source, memory, inputs }
        }
        None => convert::read(source, signatures.clone(), memory).await?,
    };
    let source = (source.bytes() <= KEEP_FOR_RETRY && source.rereadable()).then_some(source);
    convert::settle(&mut memory, &inputs, source.as_ref())?;
    // Counted once, before the queue, however many batches its rows take.
    let rows = instance_count(&inputs.tensors);
    let kept_inputs = keep_inputs.then(|| (inputs.signature_name.clone(), inputs.tensors.clone()));
    Ok(Ready { info, target, inputs, signatures, memory, source, rows, kept_inputs })
}

/// The caller's quotas, then the batch queue.
pub async fn answer(app: &App, ready: Ready) -> Outcome {
    let Ready { info, target, inputs, signatures, memory, source, rows, .. } = ready;
    info.trace.rows(rows);
    let admitting = info.trace.admission();
    let admitted = app.quotas.admit(&info.caller, &target.model, rows).await;
    drop(admitting);
    let standing = match admitted {
        Ok(standing) => standing,
        Err(refusal) => return Outcome { result: Err(refusal.error), standing: Some(refusal.standing), limits: None },
    };
    let attempt = Attempt { inputs, signatures, memory };
    let result = serve(app, &target, info, attempt, source).await;
    Outcome { result: result.map(|predicted| Answer::Predict(Box::new(predicted))), standing, limits: None }
}

/// One reading of the call's tensors, and the memory it holds.
struct Attempt {
    inputs: Inputs,
    signatures: Arc<Signatures>,
    memory: Reservation,
}

async fn serve(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    first: Attempt,
    source: Option<Source>,
) -> Result<Predicted, CoreError> {
    let signatures = first.signatures.clone();
    match batch(app, target, info.clone(), first).await {
        // TF Serving refused the tensors: if that is because a new version with another
        // signature was loaded meanwhile (the refusal dropped the cached one), read them again
        // with the new signature, once. Boxed: a rare path, whose future would size every call's.
        Err((error, memory)) if matches!(error.code, Code::InvalidArgument | Code::FailedPrecondition) => {
            let Some(source) = source else { return Err(error) };
            Box::pin(retry_with_new_signature(app, target, info, error, memory, source, signatures)).await
        }
        other => other.map_err(|(error, _)| error),
    }
}

async fn retry_with_new_signature(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    error: CoreError,
    mut memory: Reservation,
    source: Source,
    signatures: Arc<Signatures>,
) -> Result<Predicted, CoreError> {
    // Usually the same cached signatures (the cache drops them at most once a second), so a
    // stream of bad requests costs no metadata calls.
    let fresh = app.signatures.get(&app.pool(), target, info.remaining()).await?;
    if Arc::ptr_eq(&fresh, &signatures) || *fresh == *signatures {
        return Err(error);
    }
    memory.resize(source.bytes())?;
    let Read { memory, inputs, .. } = convert::read(source, fresh.clone(), memory).await?;
    batch(app, target, info, Attempt { inputs, signatures: fresh, memory }).await.map_err(|(e, _)| e)
}

/// The tensors through the model's batch queue; an error gives the call's memory back to the
/// caller, which may read the tensors again.
async fn batch(
    app: &App,
    target: &ModelTarget,
    info: RequestInfo,
    attempt: Attempt,
) -> Result<Predicted, (CoreError, Reservation)> {
    let Attempt { inputs, signatures, memory } = attempt;
    let Inputs { format, signature_name, tensors, output_filter, v2 } = inputs;
    let call = PredictCall {
        target: target.clone(),
        signature_name: signature_name.clone(),
        inputs: tensors,
        signatures,
        class: app.quotas.class(&info.caller),
        info,
    };
    let answer = match app.row_caches.get(&target.model) {
        // Boxed: only models with a row cache take it.
        Some(cache) => Box::pin(super::cached::predict(app, &cache, call)).await,
        None => app.batcher.predict(call).await,
    };
    let outputs = match answer {
        Ok(BatchAnswer::Whole(outputs, facts)) => PredictedOutputs::Whole(outputs, facts),
        Ok(BatchAnswer::Rows(stream)) => PredictedOutputs::Rows(ObservedRows::new(stream)),
        Err(error) => return Err((error, memory)),
    };
    Ok(Predicted { format, target: target.clone(), signature_name, output_filter, v2, outputs, memory })
}
