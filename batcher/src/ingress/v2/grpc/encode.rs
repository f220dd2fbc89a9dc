//! The core's outcome as the protocol's gRPC answer: a `ModelInferResponse` with every output in
//! `raw_output_contents` (as Triton answers), readiness and metadata messages, errors as gRPC
//! statuses; the RateLimit fields are metadata.
//!
//! An answer's raw contents go out as frames of their own after the rest of the message (the
//! last field, so the bytes are prost's own encoding): they are not copied into the message.

use std::future::Future;

use bytes::Bytes;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use tfgate_proto::inference::{ModelInferResponse, ModelReadyResponse};

use crate::convert::v2_grpc::infer_response;
use crate::convert::v2_json::ResponseMeta;
use crate::ingress::grpc::encode::encode_with;
use crate::ingress::grpc::unary::{self, GrpcResponse};
use crate::ingress::v2::model::{answered_version, is_ready, metadata, write_outputs};
use crate::observe::call_log::Ending;
use crate::pipeline::{Answer, Encode, Outcome, Predicted};
use crate::request::{CoreError, Route};

/// `ModelInferResponse.raw_output_contents`.
const RAW_OUTPUT_CONTENTS: u32 = 6;

pub struct V2GrpcEncoder {
    /// The model the call is for, as its route names it.
    model: String,
}

impl V2GrpcEncoder {
    pub fn for_route(route: Option<&Route>) -> V2GrpcEncoder {
        V2GrpcEncoder { model: route.map(|r| r.target.model.clone()).unwrap_or_default() }
    }
}

impl Encode for V2GrpcEncoder {
    type Response = GrpcResponse;

    fn encode(self, outcome: Outcome) -> impl Future<Output = (GrpcResponse, Ending)> + Send {
        encode(self.model, outcome)
    }
}

async fn encode(model: String, outcome: Outcome) -> (GrpcResponse, Ending) {
    encode_with(outcome, |answer| async move { frames(&model, answer).await }).await
}

async fn frames(model: &str, answer: Answer) -> Result<Vec<Bytes>, CoreError> {
    match answer {
        Answer::Predict(predicted) => infer(*predicted).await,
        // Not ready is an answer, not an error (as Triton answers).
        Answer::Status(status) => Ok(vec![unary::encode(&ModelReadyResponse { ready: is_ready(&status) })?]),
        Answer::Metadata(response) => Ok(vec![unary::encode(&metadata(model, &response)?)?]),
        Answer::Forwarded(_) => Err(CoreError::internal("a forwarded answer to a v2 call")),
    }
}

async fn infer(predicted: Predicted) -> Result<Vec<Bytes>, CoreError> {
    // The call's memory stays reserved until its answer is written out.
    let Predicted { target, outputs, v2, memory: _memory, .. } = predicted;
    let reply = v2.unwrap_or_default();
    let (frames, _) = write_outputs(outputs, |source, version| {
        let version = answered_version(version, &target);
        let meta = ResponseMeta { model_name: &target.model, model_version: &version, id: reply.id.as_deref() };
        let response = infer_response(&meta, source, &reply.outputs)?;
        let frames = with_raw_frames(response)?;
        let bytes = frames.iter().map(Bytes::len).sum();
        Ok((frames, bytes))
    })
    .await?;
    Ok(frames)
}

/// The answer as frames: its 5-byte prefix and the message without its raw contents, then each
/// raw content's key and length and the content itself, as it is.
fn with_raw_frames(mut response: ModelInferResponse) -> Result<Vec<Bytes>, CoreError> {
    let raw = std::mem::take(&mut response.raw_output_contents);
    let field = |len: usize| key_len(RAW_OUTPUT_CONTENTS) + encoded_len_varint(len as u64);
    let len = raw.iter().fold(response.encoded_len(), |total, content| total + field(content.len()) + content.len());
    let prefix = unary::frame_prefix(len)?;
    let mut head = Vec::with_capacity(5 + response.encoded_len() + raw.first().map_or(0, |c| field(c.len())));
    head.extend_from_slice(&prefix);
    response.encode(&mut head).map_err(|e| CoreError::internal(format!("the answer does not encode: {e}")))?;
    let mut frames = Vec::with_capacity(1 + 2 * raw.len());
    for content in raw {
        encode_key(RAW_OUTPUT_CONTENTS, WireType::LengthDelimited, &mut head);
        encode_varint(content.len() as u64, &mut head);
        frames.push(Bytes::from(std::mem::take(&mut head)));
        frames.push(content);
    }
    if !head.is_empty() {
        frames.push(Bytes::from(head));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_proto::inference::model_infer_response::InferOutputTensor;

    #[test]
    fn raw_frames_are_prosts_encoding() {
        let output = |name: &str| InferOutputTensor {
            name: name.into(),
            datatype: "FP32".into(),
            shape: vec![2],
            ..Default::default()
        };
        for raw in [vec![], vec![Bytes::from_static(&[1; 8])], vec![Bytes::from(vec![7; 300]), Bytes::new()]] {
            let response = ModelInferResponse {
                model_name: "m".into(),
                model_version: "1".into(),
                outputs: (0..raw.len()).map(|i| output(&format!("y{i}"))).collect(),
                raw_output_contents: raw,
                ..Default::default()
            };
            let expected = unary::encode(&response).unwrap();
            let frames = with_raw_frames(response).unwrap();
            assert_eq!(frames.concat(), expected.to_vec());
        }
    }
}
