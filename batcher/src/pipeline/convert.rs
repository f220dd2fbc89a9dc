//! Steps 3 and 4 of a Predict call: the memory its tensors will take is reserved from what the
//! call declares (a message's shapes, a body's text), then the tensors are read with the
//! model's signature (TF Serving's JSON is read in its dtypes; a message's tensors and a v2
//! request's, which state their own, are checked against it). Nothing is allocated or expanded
//! before it fits the budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tfgate_common::echo::quote;

use super::call::{ProtoInputs, V2Payload, V2Reply};
use crate::admission::Reservation;
use crate::convert::grpc_request::{inputs_from_protos, inputs_read_size};
use crate::convert::v2_grpc::InferMessage;
use crate::convert::v2_json::{InferBody, OutputRequest};
use crate::convert::v2_signature::{check_inputs, check_outputs, v2_signature};
use crate::convert::{Format, PredictBody, SignatureSpec, Signatures, Tensor};
use crate::request::CoreError;

/// Payloads at least this large are read on tokio's blocking pool: the daemon serves every
/// connection from one thread by default, which a large body would otherwise hold for as long
/// as its reading takes (tens of milliseconds for tens of megabytes).
const READ_ASIDE: usize = 256 << 10;

/// Payloads up to this size are kept until the answer, to be read again if the model's
/// signature changed meanwhile; larger ones are freed once read (their tensors are held).
pub const KEEP_FOR_RETRY: usize = 1 << 20;

/// What a Predict call declares, in its wire's form.
pub enum Source {
    /// TF Serving's JSON, its NaN and infinities already rewritten (`convert::nonfinite`).
    Json(Bytes),
    Protos(ProtoInputs),
    V2(V2Payload),
}

impl Source {
    /// Bytes the source holds (what keeping it for a second reading costs).
    pub fn bytes(&self) -> usize {
        match self {
            Source::Json(body) | Source::V2(V2Payload::Rest { body, .. }) => body.len(),
            Source::Protos(protos) => protos.decoded_bytes,
            Source::V2(V2Payload::Grpc(message)) => message.decoded_bytes.saturating_add(message.raw_bytes),
        }
    }

    /// Whether the source is worth keeping for a second reading (see [`KEEP_FOR_RETRY`]). A v2
    /// request is not: it states its own datatypes, so reading it again with a new signature
    /// gives the same tensors; the refusal that would ask for it dropped the stale signature,
    /// and the client's next call is checked against the new one.
    pub fn rereadable(&self) -> bool {
        !matches!(self, Source::V2(_))
    }

    /// Bytes reading it will write: a few bytes of message may name a shape its last value
    /// fills (up to what the budget allows), work for the blocking pool, not the runtime.
    fn read_work(&self) -> usize {
        match self {
            Source::Protos(protos) => inputs_read_size(&protos.inputs).unwrap_or(0).max(protos.decoded_bytes),
            other => other.bytes(),
        }
    }
}

/// A Predict call's inputs, read.
pub struct Inputs {
    pub format: Format,
    pub signature_name: String,
    pub tensors: BTreeMap<String, Tensor>,
    pub output_filter: Vec<String>,
    /// For a v2 call: what its answer must say and hold.
    pub v2: Option<V2Reply>,
}

impl Inputs {
    pub fn bytes(&self) -> usize {
        self.tensors.values().map(|t| t.values.heap_bytes()).sum()
    }
}

/// A source, read: the memory then holds the source and the tensors' bound.
pub struct Read {
    pub source: Source,
    pub memory: Reservation,
    pub inputs: Inputs,
}

/// A small body, parsed: its outline is checked before the model's signature is asked for, so
/// a malformed body costs nothing upstream.
pub enum Outline<'a> {
    Predict(PredictBody<'a>),
    Infer(InferBody<'a>),
}

/// A small body's outline; `None` for other sources (a large body is checked aside from the
/// runtime thread, with its tensors).
pub fn outline(source: &Source) -> Result<Option<Outline<'_>>, CoreError> {
    match source {
        // NaN and infinities were rewritten before (`predict::read`): the parse reads markers.
        Source::Json(body) if body.len() < READ_ASIDE => {
            Ok(Some(Outline::Predict(PredictBody::parse_rewritten(body)?)))
        }
        Source::V2(V2Payload::Rest { body, header_len }) if body.len() < READ_ASIDE => {
            Ok(Some(Outline::Infer(infer_body(body, *header_len)?)))
        }
        _ => Ok(None),
    }
}

/// A v2 REST body: JSON, or JSON then binary tensor data.
fn infer_body(body: &[u8], header_len: Option<usize>) -> Result<InferBody<'_>, CoreError> {
    Ok(match header_len {
        None => InferBody::parse(body)?,
        Some(len) => {
            let (json, binary) = body.split_at(len.min(body.len()));
            InferBody::parse_with_binary(json, binary)?
        }
    })
}

/// Reads `source` with `signatures`, reserving its tensors in `memory` first. Large sources
/// are read aside from the runtime thread. On an error, the call's memory is given back.
pub async fn read(mut source: Source, signatures: Arc<Signatures>, mut memory: Reservation) -> Result<Read, CoreError> {
    if source.read_work() < READ_ASIDE {
        let inputs = read_now(&mut source, &signatures, &mut memory)?;
        return Ok(Read { source, memory, inputs });
    }
    let aside = tokio::task::spawn_blocking(move || {
        let inputs = read_now(&mut source, &signatures, &mut memory)?;
        Ok(Read { source, memory, inputs })
    });
    aside.await.map_err(|e| CoreError::internal(format!("reading the request's tensors failed: {e}")))?
}

/// Settles what the call holds once read: its tensors, and its source if kept for a second
/// reading (small sources only).
pub fn settle(memory: &mut Reservation, inputs: &Inputs, source: Option<&Source>) -> Result<(), CoreError> {
    memory.resize(inputs.bytes() + source.map_or(0, Source::bytes))
}

/// Reads a source at once. A v2 message's typed contents are moved into the tensors, so it is
/// left empty.
pub fn read_now(source: &mut Source, signatures: &Signatures, memory: &mut Reservation) -> Result<Inputs, CoreError> {
    match source {
        Source::Json(body) => read_outlined(Outline::Predict(PredictBody::parse_rewritten(body)?), signatures, memory),
        Source::V2(V2Payload::Rest { body, header_len }) => {
            read_outlined(Outline::Infer(infer_body(body, *header_len)?), signatures, memory)
        }
        Source::Protos(protos) => {
            let signature = signatures.get(&protos.signature_name)?;
            if let Some(unknown) = protos.output_filter.iter().find(|name| !signature.outputs.contains_key(*name)) {
                return Err(CoreError::invalid(format!(
                    "output_filter names '{}', which is not an output of the signature",
                    quote(unknown)
                )));
            }
            memory.grow(inputs_read_size(&protos.inputs)?)?;
            Ok(Inputs {
                format: Format::Row,
                signature_name: protos.signature_name.clone(),
                tensors: inputs_from_protos(&protos.inputs, signature)?,
                output_filter: protos.output_filter.clone(),
                v2: None,
            })
        }
        Source::V2(V2Payload::Grpc(message)) => {
            let message = InferMessage::check(std::mem::take(&mut message.request))?;
            let (signature_name, signature) = v2_signature(signatures)?;
            check_inputs(message.input_specs(), signature)?;
            let outputs = message.requested_outputs()?;
            let output_filter = checked_outputs(&outputs, signature)?;
            memory.grow(message.tensor_bytes())?;
            let id = message.id();
            Ok(Inputs {
                format: Format::Row,
                signature_name: signature_name.to_string(),
                tensors: message.into_tensors()?,
                output_filter,
                v2: Some(V2Reply { id, outputs }),
            })
        }
    }
}

/// Reads a small body's outline, parsed already.
pub fn read_outlined(
    outline: Outline<'_>,
    signatures: &Signatures,
    memory: &mut Reservation,
) -> Result<Inputs, CoreError> {
    match outline {
        Outline::Predict(parsed) => {
            let signature = signatures.get(&parsed.signature_name)?;
            memory.grow(parsed.tensor_bytes_bound(signature))?;
            let inputs = parsed.into_inputs(signature)?;
            Ok(Inputs {
                format: inputs.format,
                signature_name: inputs.signature_name,
                tensors: inputs.tensors,
                output_filter: Vec::new(),
                v2: None,
            })
        }
        Outline::Infer(body) => {
            let (signature_name, signature) = v2_signature(signatures)?;
            check_inputs(body.input_specs(), signature)?;
            let output_filter = checked_outputs(&body.outputs, signature)?;
            memory.grow(body.tensor_bytes())?;
            let request = body.into_request()?;
            Ok(Inputs {
                format: Format::Row,
                signature_name: signature_name.to_string(),
                tensors: request.inputs,
                output_filter,
                v2: Some(V2Reply { id: request.id, outputs: request.outputs }),
            })
        }
    }
}

/// The outputs a v2 request names, each one of the signature's (the prediction log keeps
/// those).
fn checked_outputs(outputs: &OutputRequest, signature: &SignatureSpec) -> Result<Vec<String>, CoreError> {
    let Some(names) = outputs.names() else { return Ok(Vec::new()) };
    let names: Vec<String> = names.map(str::to_string).collect();
    check_outputs(names.iter().map(String::as_str), signature)?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::MemoryBudget;
    use crate::convert::signature::tests::metadata_response;
    use crate::convert::Values;
    use crate::pipeline::V2Message;
    use tfgate_proto::inference::model_infer_request::InferInputTensor;
    use tfgate_proto::inference::{InferTensorContents, ModelInferRequest};

    fn signatures() -> Signatures {
        Signatures::from_metadata(&metadata_response(crate::convert::request::DEFAULT_SIGNATURE)).unwrap()
    }

    fn rest(body: &str) -> Source {
        Source::V2(V2Payload::Rest { body: Bytes::copy_from_slice(body.as_bytes()), header_len: None })
    }

    #[test]
    fn a_v2_body_is_checked_against_the_signature_and_reserved_before_its_tensors() {
        let budget = MemoryBudget::new(1 << 20);
        let mut memory = budget.reservation();
        let body = r#"{"id": "7", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}],
            "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}"#;
        let inputs = read_now(&mut rest(body), &signatures(), &mut memory).unwrap();
        assert_eq!(inputs.signature_name, "serving_default");
        assert_eq!(inputs.tensors["x"].values, Values::F32(vec![1.0, 2.0]));
        assert_eq!(inputs.output_filter, ["y"]);
        let reply = inputs.v2.unwrap();
        assert_eq!((reply.id.as_deref(), reply.outputs.requested.unwrap()[0].binary_data), (Some("7"), Some(true)));
        assert!(memory.held() >= 8);
        // Refused before any tensor is built: a datatype the signature does not have, an
        // output it does not have.
        let wrong = r#"{"inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1]}]}"#;
        let held = memory.held();
        let Err(e) = read_now(&mut rest(wrong), &signatures(), &mut memory) else { panic!("accepted") };
        assert_eq!(e.http_status(), 400);
        let unknown = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
            "outputs": [{"name": "z"}]}"#;
        assert!(read_now(&mut rest(unknown), &signatures(), &mut memory).is_err());
        assert_eq!(memory.held(), held);
    }

    #[test]
    fn a_v2_body_larger_than_the_budget_is_refused_before_it_is_built() {
        let budget = MemoryBudget::new(4096);
        let values = vec!["1"; 2000].join(",");
        let body =
            format!(r#"{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [2000], "data": [{values}]}}]}}"#);
        let Err(e) = read_now(&mut rest(&body), &signatures(), &mut budget.reservation()) else { panic!("accepted") };
        assert_eq!(e.http_status(), 413);
    }

    #[test]
    fn a_v2_message_moves_its_typed_contents_into_the_tensors() {
        let budget = MemoryBudget::new(1 << 20);
        let request = ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![3],
                contents: Some(InferTensorContents { fp32_contents: vec![1.0, 2.0, 3.0], ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let message = V2Message { request, decoded_bytes: 0, raw_bytes: 0 };
        let mut source = Source::V2(V2Payload::Grpc(Box::new(message)));
        let inputs = read_now(&mut source, &signatures(), &mut budget.reservation()).unwrap();
        assert_eq!(inputs.tensors["x"].values, Values::F32(vec![1.0, 2.0, 3.0]));
        assert!(!source.rereadable());
        let Source::V2(V2Payload::Grpc(left)) = source else { panic!("another source") };
        assert!(left.request.inputs.is_empty(), "the message is taken, not copied");
    }
}
