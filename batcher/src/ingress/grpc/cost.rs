//! What decoding a request message will allocate, counted on the wire before it is decoded.
//! prost's structures can take many times their wire size: an empty string is 2 bytes on the
//! wire and a 24-byte `Vec` in memory, a one-byte int64 is 8, a map entry a whole
//! `TensorProto`. The bound is reserved in the memory budget first, so that a small message can
//! never cost more than the budget allows.

use std::mem::size_of;

use tfgate_common::wire::WireError;
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::TensorProto;

use super::fields::{for_each, Value};
use crate::request::CoreError;

/// A growing `Vec` holds at most twice its elements.
pub(in crate::ingress) const GROWTH: usize = 2;
/// A map's table: its slots, grown by doubling, at most 7/8 full, and their control bytes.
pub(in crate::ingress) const MAP_SLOT_FACTOR: usize = 3;

/// At most the bytes prost allocates to decode `message` as a `PredictRequest`.
pub fn predict_request(message: &[u8]) -> Result<usize, CoreError> {
    let mut total = size_of::<PredictRequest>();
    for_each(message, |field, value| {
        let bytes = match (field, value) {
            (1, Value::Len(spec)) => size_of::<ModelSpec>() + spec.len(),
            (2, Value::Len(entry)) => MAP_SLOT_FACTOR * (size_of::<(String, TensorProto)>() + 1) + map_entry(entry)?,
            (3, Value::Len(name)) => GROWTH * size_of::<String>() + name.len(),
            _ => 0,
        };
        total = total.saturating_add(bytes);
        Ok(())
    })
    .map_err(|e| malformed(&e))?;
    Ok(total)
}

fn map_entry(entry: &[u8]) -> Result<usize, WireError> {
    let mut total = 0usize;
    for_each(entry, |field, value| {
        total = total.saturating_add(match (field, value) {
            (1, Value::Len(key)) => key.len(),
            (2, Value::Len(tensor)) => tensor_proto(tensor)?,
            _ => 0,
        });
        Ok(())
    })?;
    Ok(total)
}

const UNSUPPORTED: &str = "tensors of complex, resource or variant values are not supported by tfgate";

/// The heap bytes of one `TensorProto`: its repeated fields, by how many elements each holds.
fn tensor_proto(tensor: &[u8]) -> Result<usize, WireError> {
    let mut total = 0usize;
    for_each(tensor, |field, value| {
        let bytes = match (field, value) {
            // tensor_shape: its dims.
            (2, Value::Len(shape)) => dims(shape)?,
            // tensor_content
            (4, Value::Len(content)) => content.len(),
            // float_val, double_val: packed, or one at a time.
            (5, Value::Len(packed)) => GROWTH * packed.len(),
            (6, Value::Len(packed)) => GROWTH * packed.len(),
            (5 | 6, Value::Fixed(width)) => GROWTH * usize::from(width),
            // int_val, half_val, uint32_val: varints held as 4 bytes; bool_val as 1.
            (7 | 13 | 16, Value::Len(packed)) => GROWTH * 4 * varints(packed),
            (11, Value::Len(packed)) => GROWTH * varints(packed),
            // int64_val, uint64_val: varints held as 8 bytes.
            (10 | 17, Value::Len(packed)) => GROWTH * 8 * varints(packed),
            (7 | 10 | 11 | 13 | 16 | 17, Value::Varint(_)) => GROWTH * 8,
            // string_val
            (8, Value::Len(string)) => GROWTH * size_of::<Vec<u8>>() + string.len(),
            // scomplex_val, dcomplex_val, resource_handle_val, variant_val: never read here.
            (9 | 12 | 14 | 15, _) => return Err(WireError::Malformed(UNSUPPORTED)),
            _ => 0,
        };
        total = total.saturating_add(bytes);
        Ok(())
    })?;
    Ok(total)
}

fn dims(shape: &[u8]) -> Result<usize, WireError> {
    let mut total = 0usize;
    for_each(shape, |field, value| {
        if let (2, Value::Len(dim)) = (field, value) {
            total = total.saturating_add(GROWTH * size_of::<Dim>() + dim.len());
        }
        Ok(())
    })?;
    Ok(total)
}

/// How many varints a packed field holds: one per byte without the continuation bit.
pub(in crate::ingress) fn varints(packed: &[u8]) -> usize {
    packed.iter().filter(|&&b| b < 0x80).count()
}

fn malformed(error: &WireError) -> CoreError {
    match error {
        WireError::Malformed(UNSUPPORTED) => CoreError::invalid(UNSUPPORTED),
        WireError::Truncated => CoreError::invalid("the request message does not decode: it is truncated"),
        WireError::Malformed(why) => CoreError::invalid(format!("the request message does not decode: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::HashMap;
    use tfgate_proto::tensorflow::TensorShapeProto;

    /// What the decoded request holds on the heap, counted from its structures.
    fn held(request: &PredictRequest) -> usize {
        let tensor = |t: &TensorProto| {
            t.tensor_shape.as_ref().map_or(0, |s| s.dim.capacity() * size_of::<Dim>())
                + t.tensor_content.len()
                + 4 * (t.float_val.capacity() + t.int_val.capacity() + t.half_val.capacity() + t.uint32_val.capacity())
                + 8 * (t.double_val.capacity() + t.int64_val.capacity() + t.uint64_val.capacity())
                + t.bool_val.capacity()
                + t.string_val.capacity() * size_of::<Vec<u8>>()
                + t.string_val.iter().map(Vec::capacity).sum::<usize>()
        };
        size_of::<PredictRequest>()
            + request.inputs.capacity() * (size_of::<(String, TensorProto)>() + 1)
            + request.inputs.iter().map(|(k, t)| k.capacity() + tensor(t)).sum::<usize>()
            + request.output_filter.iter().map(|s| size_of::<String>() + s.capacity()).sum::<usize>()
    }

    fn request(inputs: Vec<(&str, TensorProto)>) -> PredictRequest {
        let inputs: HashMap<String, TensorProto> = inputs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        PredictRequest { inputs, output_filter: vec!["y".into()], ..Default::default() }
    }

    #[test]
    fn the_bound_covers_what_decoding_holds() {
        let strings = TensorProto { dtype: 7, string_val: vec![Vec::new(); 10_000], ..Default::default() };
        let ints = TensorProto { dtype: 9, int64_val: (0..10_000).collect(), ..Default::default() };
        let dims = TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![Dim { size: 1, name: String::new() }; 5_000],
                unknown_rank: false,
            }),
            float_val: vec![1.0; 100],
            ..Default::default()
        };
        let many: Vec<(String, TensorProto)> = (0..2_000).map(|i| (format!("k{i}"), TensorProto::default())).collect();
        let many = many.iter().map(|(k, t)| (k.as_str(), t.clone())).collect();
        for request in [request(vec![("s", strings)]), request(vec![("i", ints), ("d", dims)]), request(many)] {
            let wire = request.encode_to_vec();
            let bound = predict_request(&wire).unwrap();
            let decoded = PredictRequest::decode(&wire[..]).unwrap();
            assert!(held(&decoded) <= bound, "{} > {bound}", held(&decoded));
            // Small messages can hold far more than their size: that is what is counted.
            assert!(bound > wire.len(), "{bound} <= {}", wire.len());
        }
    }

    #[test]
    fn unsupported_and_malformed_messages_are_refused_before_decoding() {
        let complex =
            request(vec![("c", TensorProto { dtype: 8, scomplex_val: vec![1.0, 2.0], ..Default::default() })]);
        let e = predict_request(&complex.encode_to_vec()).unwrap_err();
        assert!(e.client_message().contains("not supported"), "{}", e.client_message());
        assert!(predict_request(&[0x12, 0x05, 0x12]).is_err());
    }
}
