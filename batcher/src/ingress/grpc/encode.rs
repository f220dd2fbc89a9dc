//! The core's outcome as TF Serving's gRPC answer: a `PredictResponse` whose outputs are in the
//! encoding the backend answered in (typed fields, or `tensor_content`), cut to the call's rows
//! and its `output_filter`; status and metadata as TF Serving gave them; a forwarded call's
//! answer as it came; errors as gRPC statuses. The RateLimit fields are metadata.

use std::collections::HashMap;
use std::future::Future;

use bytes::Bytes;
use hyper::HeaderMap;
use tfgate_proto::tensorflow::serving::PredictResponse;
use tfgate_proto::tensorflow::TensorProto;

use super::unary::{self, GrpcResponse};
use crate::batching::rows::join_rows;
use crate::batching::RowPiece;
use crate::convert::Outputs;
use crate::ingress::ratelimit;
use crate::observe::call_log::Ending;
use crate::pipeline::{Answer, Encode, Forwarded, Outcome, Predicted, PredictedOutputs};
use crate::request::CoreError;
use crate::target::model_spec;
use crate::target::{ModelTarget, VersionRef};

pub struct GrpcEncoder;

impl Encode for GrpcEncoder {
    type Response = GrpcResponse;

    fn encode(self, outcome: Outcome) -> impl Future<Output = (GrpcResponse, Ending)> + Send {
        encode(outcome)
    }
}

async fn encode(outcome: Outcome) -> (GrpcResponse, Ending) {
    encode_with(outcome, frames).await
}

/// A unary answer of either gRPC API: the message `frames` writes of the answer, or the error,
/// with the RateLimit fields as metadata; and how the call ended, for its log.
pub(in crate::ingress) async fn encode_with<F, W>(outcome: Outcome, frames: W) -> (GrpcResponse, Ending)
where
    W: FnOnce(Answer) -> F,
    F: Future<Output = Result<Vec<Bytes>, CoreError>>,
{
    let Outcome { result, standing, limits, .. } = outcome;
    let mut metadata = HeaderMap::new();
    ratelimit::write_fields(&mut metadata, standing.as_ref(), limits.as_deref());
    let frames = match result {
        Ok(answer) => frames(answer).await,
        Err(error) => Err(error),
    };
    match frames {
        Ok(frames) => {
            let bytes_out = Some(frames.iter().map(|f| f.len() as u64).sum::<u64>());
            (unary::answer(frames, metadata), Ending::answered(bytes_out))
        }
        Err(error) => (unary::error(&error, metadata), Ending::of_error(&error)),
    }
}

async fn frames(answer: Answer) -> Result<Vec<bytes::Bytes>, CoreError> {
    match answer {
        Answer::Predict(predicted) => Ok(vec![predict(*predicted).await?]),
        Answer::Status(status) => Ok(vec![unary::encode(&status)?]),
        Answer::Metadata(metadata) => Ok(vec![unary::encode(&metadata)?]),
        Answer::Forwarded(Forwarded::Grpc(message)) => {
            Ok(vec![bytes::Bytes::copy_from_slice(&unary::frame_prefix(message.len())?), message])
        }
        Answer::Forwarded(Forwarded::Rest(_)) => Err(CoreError::internal("a REST answer to a gRPC call")),
    }
}

async fn predict(predicted: Predicted) -> Result<bytes::Bytes, CoreError> {
    let Predicted { target, signature_name, output_filter, outputs, .. } = predicted;
    let (mut outputs, version) = match outputs {
        PredictedOutputs::Whole(outputs, facts) => (whole(outputs, &facts.packed), facts.version),
        PredictedOutputs::Rows(mut rows) => {
            let joined = rows.collect().await.and_then(|pieces| {
                let version = pieces.first().and_then(|p| p.facts.version);
                joined(&pieces).map(|outputs| (outputs, version))
            });
            let encoded = joined.and_then(|(mut outputs, version)| {
                keep(&mut outputs, &output_filter);
                let spec = answered_spec(&target, version, &signature_name);
                unary::encode(&PredictResponse { outputs, model_spec: Some(spec) })
            });
            match &encoded {
                Ok(frame) => {
                    rows.bytes_out(frame.len() as u64);
                    rows.finish();
                }
                Err(error) => rows.fail(error),
            }
            return encoded;
        }
    };
    keep(&mut outputs, &output_filter);
    let spec = answered_spec(&target, version, &signature_name);
    unary::encode(&PredictResponse { outputs, model_spec: Some(spec) })
}

/// Only the outputs the caller asked for (all when it named none).
fn keep(outputs: &mut HashMap<String, TensorProto>, filter: &[String]) {
    if !filter.is_empty() {
        outputs.retain(|name, _| filter.contains(name));
    }
}

/// The model spec of the answer, as TF Serving writes it: the version that answered.
fn answered_spec(
    target: &ModelTarget,
    version: Option<i64>,
    signature_name: &str,
) -> tfgate_proto::tensorflow::serving::ModelSpec {
    let answered = ModelTarget {
        model: target.model.clone(),
        version: version.map_or_else(|| target.version.clone(), VersionRef::Number),
    };
    model_spec(&answered, signature_name)
}

/// The outputs of a backend call made for this call alone (taken, not copied, when nobody else
/// holds them, as is usual), each in the encoding the backend used.
fn whole(outputs: std::sync::Arc<Outputs>, packed: &[String]) -> HashMap<String, TensorProto> {
    let is_packed = |name: &str| packed.iter().any(|p| p == name);
    match std::sync::Arc::try_unwrap(outputs) {
        Ok(outputs) => outputs.into_iter().map(|(name, t)| (name.clone(), t.into_proto_as(is_packed(&name)))).collect(),
        Err(shared) => {
            shared.iter().map(|(name, t)| (name.clone(), t.clone().into_proto_as(is_packed(name)))).collect()
        }
    }
}

/// The call's rows of the batches' outputs, joined, each in the encoding the backend used.
fn joined(pieces: &[RowPiece]) -> Result<HashMap<String, TensorProto>, CoreError> {
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
        let packed = first.facts.packed.iter().any(|p| p == name);
        let joined = join_rows(&parts, total, packed).map_err(CoreError::internal)?;
        outputs.insert(name.clone(), joined);
    }
    Ok(outputs)
}
