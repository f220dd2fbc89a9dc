//! Predict over gRPC: the request's tensors, checked against the signature, join the model's
//! batch queue like a REST request's; its rows of the batch outputs come back as tensors.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;
use tfgate_proto::tensorflow::serving::{PredictRequest, PredictResponse};
use tfgate_proto::tensorflow::TensorProto;
use tonic::{Request, Response, Status};

use super::call::{self, Call};
use super::{grpc_status, quota, CallTrail};
use crate::app::App;
use crate::backend::model_spec;
use crate::batching::rows::join_rows;
use crate::batching::{BatchAnswer, RowPiece};
use crate::convert::grpc_request::inputs_from_protos;
use crate::convert::{Outputs, Signatures, Tensor};
use crate::request::{instance_count, CoreError, PredictCall, RequestInfo};

pub(super) async fn predict(
    app: &App,
    info: RequestInfo,
    trail: &CallTrail,
    request: Request<PredictRequest>,
) -> Result<Response<PredictResponse>, Status> {
    let (metadata, _, message) = request.into_parts();
    trail.with(|t| t.record().map(|record| record.bytes_in = message.encoded_len() as u64));
    let call = call::understand(app, &metadata, info, message.model_spec.as_ref(), trail).map_err(grpc_status)?;
    let (inputs, signatures) =
        convert(app, &call, message.inputs, &message.output_filter).await.map_err(grpc_status)?;
    // Counted once, before the queue, as a REST request of as many instances.
    let rows = instance_count(&inputs);
    trail.with(|t| t.record().map(|record| record.rows = Some(rows as usize)));
    let standing = app.quotas.admit(&call.info.caller, &call.target.model, rows).await.map_err(quota::refused)?;
    match answer(app, &call, inputs, signatures, &message.output_filter, trail).await {
        Ok(mut outputs) => {
            if !message.output_filter.is_empty() {
                outputs.retain(|name, _| message.output_filter.contains(name));
            }
            let model_spec = Some(model_spec(&call.target, &call.signature_name));
            Ok(quota::answer(PredictResponse { outputs, model_spec }, standing.as_ref()))
        }
        Err(error) => Err(quota::error(error, standing.as_ref())),
    }
}

/// The message's inputs as tensors of the signature, and the signatures they were read with.
async fn convert(
    app: &App,
    call: &Call,
    inputs: HashMap<String, TensorProto>,
    output_filter: &[String],
) -> Result<(BTreeMap<String, Tensor>, Arc<Signatures>), CoreError> {
    let signatures = app.signatures.get(&app.pool(), &call.target, call.timeout).await?;
    let signature = signatures.get(&call.signature_name)?;
    if let Some(unknown) = output_filter.iter().find(|name| !signature.outputs.contains_key(*name)) {
        return Err(CoreError::invalid(format!(
            "output_filter names '{}', which is not an output of the signature",
            unknown.get(..64).unwrap_or(unknown)
        )));
    }
    let inputs = inputs_from_protos(inputs, signature)?;
    Ok((inputs, signatures))
}

/// The request through the batcher: its outputs, and the prediction log's record if kept.
async fn answer(
    app: &App,
    call: &Call,
    inputs: BTreeMap<String, Tensor>,
    signatures: Arc<Signatures>,
    output_filter: &[String],
    trail: &CallTrail,
) -> Result<HashMap<String, TensorProto>, CoreError> {
    // The tensors are held until the answer is built, like a REST request's.
    let mut reservation = app.memory.reservation();
    reservation.grow(inputs.values().map(|t| t.values.heap_bytes()).sum())?;
    let request_id = &call.info.request_id;
    trail.with(|t| {
        t.sample(&app.logs, request_id, &call.target, &call.signature_name, &inputs);
        t.filter_outputs(output_filter);
    });
    let answer = app
        .batcher
        .predict(PredictCall {
            target: call.target.clone(),
            signature_name: call.signature_name.clone(),
            inputs,
            signatures,
            info: call.info.clone(),
        })
        .await?;
    let outputs = match answer {
        BatchAnswer::Whole(outputs, facts) => {
            trail.with(|t| {
                t.batch(&facts);
                t.outputs_whole(&outputs);
            });
            whole(outputs)
        }
        BatchAnswer::Rows(stream) => {
            let pieces = stream.collect().await?;
            trail.with(|t| {
                for piece in &pieces {
                    t.batch(&piece.facts);
                    t.output_rows(&piece.outputs, piece.rows.clone(), false);
                }
            });
            rows(&pieces)?
        }
    };
    trail.with(|t| t.answered());
    Ok(outputs)
}

/// The outputs of a call made for this request alone (taken, not copied, when nobody else
/// holds them, as is usual).
fn whole(outputs: Arc<Outputs>) -> HashMap<String, TensorProto> {
    match Arc::try_unwrap(outputs) {
        Ok(outputs) => outputs.into_iter().map(|(name, t)| (name, t.into_proto())).collect(),
        Err(shared) => shared.iter().map(|(name, t)| (name.clone(), t.clone().into_proto())).collect(),
    }
}

/// The request's rows of the batches' outputs, joined.
fn rows(pieces: &[RowPiece]) -> Result<HashMap<String, TensorProto>, CoreError> {
    let Some(first) = pieces.first() else {
        return Err(CoreError::internal("an answer without rows"));
    };
    let total: usize = pieces.iter().map(|p| p.rows.len()).sum();
    let mut outputs = HashMap::with_capacity(first.outputs.len());
    for name in first.outputs.keys() {
        let parts = pieces
            .iter()
            .map(|p| p.outputs.get(name).map(|t| (t, p.rows.clone())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| CoreError::internal(format!("output {name} missing from a batch's answer")))?;
        let joined = join_rows(&parts, total).map_err(CoreError::internal)?;
        outputs.insert(name.clone(), joined);
    }
    Ok(outputs)
}
