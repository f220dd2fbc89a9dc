//! Predict over gRPC: the request's tensors, checked against the signature, join the model's
//! batch queue like a REST request's; its rows of the batch outputs come back as tensors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tfgate_proto::tensorflow::serving::{PredictRequest, PredictResponse};
use tfgate_proto::tensorflow::TensorProto;
use tonic::Request;

use super::call;
use crate::app::App;
use crate::backend::model_spec;
use crate::batching::rows::join_rows;
use crate::batching::{BatchAnswer, RowPiece};
use crate::convert::grpc_request::inputs_from_protos;
use crate::convert::Outputs;
use crate::request::{CoreError, PredictCall};

pub(super) async fn predict(app: &App, request: Request<PredictRequest>) -> Result<PredictResponse, CoreError> {
    let received = Instant::now();
    let (metadata, extensions, message) = request.into_parts();
    let call = call::understand(app, &metadata, &extensions, message.model_spec.as_ref(), received)?;
    let signatures = app.signatures.get(&app.pool(), &call.target, call.timeout).await?;
    let signature = signatures.get(&call.signature_name)?;
    if let Some(unknown) = message.output_filter.iter().find(|name| !signature.outputs.contains_key(*name)) {
        return Err(CoreError::invalid(format!(
            "output_filter names '{}', which is not an output of the signature",
            unknown.get(..64).unwrap_or(unknown)
        )));
    }
    let inputs = inputs_from_protos(message.inputs, signature)?;
    // The tensors are held until the answer is built, like a REST request's.
    let mut reservation = app.memory.reservation();
    reservation.grow(inputs.values().map(|t| t.values.heap_bytes()).sum())?;
    let answer = app
        .batcher
        .predict(PredictCall {
            target: call.target.clone(),
            signature_name: call.signature_name.clone(),
            inputs,
            signatures: signatures.clone(),
            info: call.info,
        })
        .await?;
    let mut outputs = match answer {
        BatchAnswer::Whole(outputs, _facts) => whole(outputs),
        BatchAnswer::Rows(stream) => rows(&stream.collect().await?)?,
    };
    if !message.output_filter.is_empty() {
        outputs.retain(|name, _| message.output_filter.contains(name));
    }
    Ok(PredictResponse { outputs, model_spec: Some(model_spec(&call.target, &call.signature_name)) })
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
