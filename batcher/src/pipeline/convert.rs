//! Steps 3 and 4 of a Predict call: the memory its tensors will take is reserved from what the
//! call declares (a message's shapes, a body's text), then the tensors are read with the
//! model's signature. Nothing is allocated or expanded before it fits the budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tfgate_common::echo::quote;

use super::call::ProtoInputs;
use crate::admission::Reservation;
use crate::convert::grpc_request::{inputs_from_protos, inputs_read_size};
use crate::convert::{Format, PredictBody, Signatures, Tensor};
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
    Json(Bytes),
    Protos(ProtoInputs),
}

impl Source {
    /// Bytes the source holds (what keeping it for a second reading costs).
    pub fn bytes(&self) -> usize {
        match self {
            Source::Json(body) => body.len(),
            Source::Protos(protos) => protos.decoded_bytes,
        }
    }

    /// Bytes reading it will write: a few bytes of message may name a shape its last value
    /// fills (up to what the budget allows), work for the blocking pool, not the runtime.
    fn read_work(&self) -> usize {
        match self {
            Source::Json(body) => body.len(),
            Source::Protos(protos) => inputs_read_size(&protos.inputs).unwrap_or(0).max(protos.decoded_bytes),
        }
    }
}

/// A Predict call's inputs, read.
pub struct Inputs {
    pub format: Format,
    pub signature_name: String,
    pub tensors: BTreeMap<String, Tensor>,
    pub output_filter: Vec<String>,
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

/// A small JSON body's outline, checked before the model's signature is asked for: a
/// malformed body costs nothing upstream. `None` for other sources (a large body is checked
/// aside from the runtime thread, with its tensors).
pub fn outline(source: &Source) -> Result<Option<PredictBody<'_>>, CoreError> {
    match source {
        Source::Json(body) if body.len() < READ_ASIDE => {
            // The copy that rewrites NaN and infinities is made by the parse.
            Ok(Some(PredictBody::parse(body)?))
        }
        _ => Ok(None),
    }
}

/// Reads `source` with `signatures`, reserving its tensors in `memory` first. Large sources
/// are read aside from the runtime thread. On an error, the call's memory is given back.
pub async fn read(source: Source, signatures: Arc<Signatures>, mut memory: Reservation) -> Result<Read, CoreError> {
    if source.read_work() < READ_ASIDE {
        let inputs = read_now(&source, None, &signatures, &mut memory)?;
        return Ok(Read { source, memory, inputs });
    }
    let aside = tokio::task::spawn_blocking(move || {
        let inputs = read_now(&source, None, &signatures, &mut memory)?;
        Ok(Read { source, memory, inputs })
    });
    aside.await.map_err(|e| CoreError::internal(format!("reading the request's tensors failed: {e}")))?
}

/// Settles what the call holds once read: its tensors, and its source if kept for a second
/// reading (small sources only).
pub fn settle(memory: &mut Reservation, inputs: &Inputs, source: Option<&Source>) -> Result<(), CoreError> {
    memory.resize(inputs.bytes() + source.map_or(0, Source::bytes))
}

/// Reads a source at once (`outline`: a small body's, already parsed).
pub fn read_now(
    source: &Source,
    outline: Option<PredictBody<'_>>,
    signatures: &Signatures,
    memory: &mut Reservation,
) -> Result<Inputs, CoreError> {
    match source {
        Source::Json(body) => {
            let parsed = match outline {
                Some(parsed) => parsed,
                None => PredictBody::parse(body)?,
            };
            let signature = signatures.get(&parsed.signature_name)?;
            memory.grow(parsed.tensor_bytes_bound(signature))?;
            let inputs = parsed.into_inputs(signature)?;
            Ok(Inputs {
                format: inputs.format,
                signature_name: inputs.signature_name,
                tensors: inputs.tensors,
                output_filter: Vec::new(),
            })
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
            })
        }
    }
}
