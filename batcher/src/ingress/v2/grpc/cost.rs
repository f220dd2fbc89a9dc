//! What decoding a `ModelInferRequest` will allocate, counted on the wire before it is decoded
//! (as `ingress::grpc::cost` counts a `PredictRequest`): a packed one-byte varint is held as 4
//! or 8 bytes, each shape dimension as 8, every string, map and list is an allocation of its
//! own, and a list's first allocation holds several elements. Raw contents cost nothing more:
//! prost decodes them as slices of the message, which is reserved already.
//!
//! The bound is reserved in the memory budget before the message is decoded, so that a small
//! message can never cost more than the budget allows. What its shapes declare is checked
//! against the bytes that carry them later, before any tensor is sized
//! (`convert::v2_grpc::InferMessage::check`).

use std::mem::size_of;

use bytes::Bytes;
use tfgate_common::wire::WireError;
use tfgate_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use tfgate_proto::inference::{InferParameter, ModelInferRequest};

use crate::ingress::grpc::cost::{varints, GROWTH, MAP_SLOT_FACTOR};
use crate::ingress::grpc::fields::{for_each, Value};
use crate::request::CoreError;

/// A `Vec`'s first allocation holds at least 4 elements (1 for elements over 1 KiB): at most
/// this many bytes for the element types here (a `Vec<u8>` or a `String` is 24 bytes).
const FIRST_LIST: usize = 4 * 24;

/// A map's first table: 4 slots of its entry and control byte, and a group of control bytes.
fn first_map<K, V>() -> usize {
    4 * (size_of::<(K, V)>() + 1) + 16
}

/// What a `ModelInferRequest` holds once decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferCost {
    /// At most the bytes prost allocates to decode it.
    pub decoded_bytes: usize,
    /// Bytes of its raw contents (slices of the message).
    pub raw_bytes: usize,
}

/// The cost of decoding `message` as a `ModelInferRequest`.
pub fn infer_request(message: &[u8]) -> Result<InferCost, CoreError> {
    let mut total = size_of::<ModelInferRequest>()
        + first_map::<String, InferParameter>()
        + 4 * (size_of::<InferInputTensor>() + size_of::<InferRequestedOutputTensor>() + size_of::<Bytes>());
    let mut raw_bytes = 0usize;
    for_each(message, |field, value| {
        let bytes = match (field, value) {
            // model_name, model_version, id
            (1..=3, Value::Len(text)) => text.len(),
            // parameters
            (4, Value::Len(entry)) => map_entry::<InferParameter>(entry),
            // inputs
            (5, Value::Len(input)) => GROWTH * size_of::<InferInputTensor>() + input_tensor(input)?,
            // outputs
            (6, Value::Len(output)) => GROWTH * size_of::<InferRequestedOutputTensor>() + requested_output(output)?,
            // raw_input_contents
            (7, Value::Len(content)) => {
                raw_bytes = raw_bytes.saturating_add(content.len());
                GROWTH * size_of::<Bytes>()
            }
            _ => 0,
        };
        total = total.saturating_add(bytes);
        Ok(())
    })
    .map_err(|e| malformed(&e))?;
    Ok(InferCost { decoded_bytes: total, raw_bytes })
}

/// One entry of a `map<string, InferParameter>`: its slots, and its strings (the key and a
/// string parameter), which its bytes bound.
fn map_entry<V>(entry: &[u8]) -> usize {
    MAP_SLOT_FACTOR * (size_of::<(String, V)>() + 1) + entry.len()
}

fn input_tensor(input: &[u8]) -> Result<usize, WireError> {
    let mut total = first_map::<String, InferParameter>();
    let mut shape_seen = false;
    for_each(input, |field, value| {
        let bytes = match (field, value) {
            // name, datatype
            (1 | 2, Value::Len(text)) => text.len(),
            // shape: int64s, packed or one at a time.
            (3, Value::Len(packed)) => first(&mut shape_seen) + GROWTH * 8 * varints(packed),
            (3, Value::Varint(_)) => first(&mut shape_seen) + GROWTH * 8,
            (4, Value::Len(entry)) => map_entry::<InferParameter>(entry),
            (5, Value::Len(contents)) => tensor_contents(contents)?,
            _ => 0,
        };
        total = total.saturating_add(bytes);
        Ok(())
    })?;
    Ok(total)
}

fn requested_output(output: &[u8]) -> Result<usize, WireError> {
    let mut total = first_map::<String, InferParameter>();
    for_each(output, |field, value| {
        total = total.saturating_add(match (field, value) {
            (1, Value::Len(name)) => name.len(),
            (2, Value::Len(entry)) => map_entry::<InferParameter>(entry),
            _ => 0,
        });
        Ok(())
    })?;
    Ok(total)
}

/// `InferTensorContents`: each list by the elements it holds, at the width it holds them.
fn tensor_contents(contents: &[u8]) -> Result<usize, WireError> {
    let mut total = 0usize;
    // Whether each list (by field number) was seen yet.
    let mut seen = [false; 9];
    for_each(contents, |field, value| {
        let width = match field {
            1 => 1,
            2 | 4 | 6 => 4,
            3 | 5 | 7 => 8,
            8 => size_of::<Vec<u8>>(),
            _ => return Ok(()),
        };
        let Some(seen) = seen.get_mut(field as usize) else { return Ok(()) };
        let list = first(seen);
        let bytes = match (field, value) {
            // bytes_contents: each element its own allocation.
            (8, Value::Len(element)) => list + GROWTH * width + element.len(),
            // fp32, fp64: packed, 4 or 8 bytes each on the wire as in memory.
            (6 | 7, Value::Len(packed)) => list + GROWTH * packed.len(),
            // bool, int, int64, uint, uint64: packed varints.
            (1..=5, Value::Len(packed)) => list + GROWTH * width * varints(packed),
            // One element at a time.
            (_, Value::Varint(_) | Value::Fixed(_)) => list + GROWTH * width,
            _ => 0,
        };
        total = total.saturating_add(bytes);
        Ok(())
    })?;
    Ok(total)
}

/// A list's first allocation, counted once.
fn first(seen: &mut bool) -> usize {
    if std::mem::replace(seen, true) {
        0
    } else {
        FIRST_LIST
    }
}

fn malformed(error: &WireError) -> CoreError {
    match error {
        WireError::Truncated => CoreError::invalid("the request message does not decode: it is truncated"),
        WireError::Malformed(why) => CoreError::invalid(format!("the request message does not decode: {why}")),
    }
}

#[cfg(test)]
mod tests;
