use std::collections::HashMap;
use std::mem::size_of;

use prost::Message;
use tfgate_common::wire::{put_len_field, put_varint};
use tfgate_proto::inference::infer_parameter::ParameterChoice;
use tfgate_proto::inference::InferTensorContents;

use super::*;
use crate::convert::v2_grpc::InferMessage;

/// What a decoded map holds on the heap.
fn map_held(map: &HashMap<String, InferParameter>) -> usize {
    let strings: usize = map
        .iter()
        .map(|(k, v)| {
            k.capacity()
                + match &v.parameter_choice {
                    Some(ParameterChoice::StringParam(s)) => s.capacity(),
                    _ => 0,
                }
        })
        .sum();
    // hashbrown: a power-of-two number of buckets, each an entry and a control byte, and a
    // group of control bytes more.
    let buckets = if map.capacity() == 0 { 0 } else { (map.capacity() * 8 / 7).next_power_of_two() };
    buckets * (size_of::<(String, InferParameter)>() + 1) + if buckets > 0 { 16 } else { 0 } + strings
}

fn contents_held(c: &InferTensorContents) -> usize {
    c.bool_contents.capacity()
        + 4 * (c.int_contents.capacity() + c.uint_contents.capacity() + c.fp32_contents.capacity())
        + 8 * (c.int64_contents.capacity() + c.uint64_contents.capacity() + c.fp64_contents.capacity())
        + c.bytes_contents.capacity() * size_of::<Vec<u8>>()
        + c.bytes_contents.iter().map(Vec::capacity).sum::<usize>()
}

/// What the decoded request holds on the heap, besides its raw contents (slices of the
/// message), counted from its structures.
fn held(request: &ModelInferRequest) -> usize {
    let inputs: usize = request
        .inputs
        .iter()
        .map(|i| {
            i.name.capacity()
                + i.datatype.capacity()
                + 8 * i.shape.capacity()
                + map_held(&i.parameters)
                + i.contents.as_ref().map_or(0, contents_held)
        })
        .sum();
    let outputs: usize = request.outputs.iter().map(|o| o.name.capacity() + map_held(&o.parameters)).sum();
    size_of::<ModelInferRequest>()
        + request.model_name.capacity()
        + request.model_version.capacity()
        + request.id.capacity()
        + map_held(&request.parameters)
        + request.inputs.capacity() * size_of::<InferInputTensor>()
        + inputs
        + request.outputs.capacity() * size_of::<InferRequestedOutputTensor>()
        + outputs
        + request.raw_input_contents.capacity() * size_of::<Bytes>()
}

fn string_param(s: &str) -> InferParameter {
    InferParameter { parameter_choice: Some(ParameterChoice::StringParam(s.into())) }
}

fn tensor(name: &str, shape: Vec<i64>, contents: Option<InferTensorContents>) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: "FP32".into(),
        shape,
        parameters: [("binary_data_size".to_string(), string_param("x"))].into(),
        contents,
    }
}

fn requests() -> Vec<ModelInferRequest> {
    let typed = InferTensorContents {
        bool_contents: vec![true; 1000],
        int_contents: (0..1000).collect(),
        int64_contents: (0..1000).collect(),
        uint_contents: (0..1000).collect(),
        uint64_contents: (0..1000).collect(),
        fp32_contents: vec![0.5; 1000],
        fp64_contents: vec![0.5; 1000],
        bytes_contents: vec![Vec::new(); 1000],
    };
    let single = InferTensorContents {
        bool_contents: vec![true],
        int_contents: vec![1],
        int64_contents: vec![1],
        uint64_contents: vec![1],
        fp64_contents: vec![1.0],
        bytes_contents: vec![b"x".to_vec()],
        ..Default::default()
    };
    let many_inputs = (0..2000).map(|i| tensor(&format!("x{i}"), vec![1], None)).collect();
    let outputs = (0..500)
        .map(|i| InferRequestedOutputTensor {
            name: format!("y{i}"),
            parameters: [("binary_data".to_string(), string_param("yes"))].into(),
        })
        .collect();
    vec![
        ModelInferRequest {
            model_name: "m".into(),
            model_version: "3".into(),
            id: "id".into(),
            parameters: (0..300).map(|i| (format!("p{i}"), string_param("v"))).collect(),
            inputs: vec![tensor("x", vec![1; 200], Some(typed))],
            outputs,
            raw_input_contents: Vec::new(),
        },
        ModelInferRequest { inputs: vec![tensor("x", vec![1], Some(single))], ..Default::default() },
        ModelInferRequest { inputs: many_inputs, raw_input_contents: vec![Bytes::new(); 2000], ..Default::default() },
        ModelInferRequest {
            inputs: vec![tensor("x", vec![4], None)],
            raw_input_contents: vec![Bytes::from(vec![0u8; 16])],
            ..Default::default()
        },
    ]
}

#[test]
fn v2_the_bound_covers_what_decoding_holds() {
    for request in requests() {
        let wire = request.encode_to_vec();
        let cost = infer_request(&wire).unwrap();
        let decoded = ModelInferRequest::decode(Bytes::from(wire.clone())).unwrap();
        assert!(held(&decoded) <= cost.decoded_bytes, "{} > {}", held(&decoded), cost.decoded_bytes);
        let raw: usize = decoded.raw_input_contents.iter().map(Bytes::len).sum();
        assert_eq!(cost.raw_bytes, raw);
    }
}

#[test]
fn v2_one_element_at_a_time_is_covered_too() {
    // Fields written unpacked (proto2 style), one element per key: each push may allocate.
    let mut contents = Vec::new();
    for _ in 0..100 {
        contents.extend_from_slice(&[0x08, 0x01]); // bool_contents
        contents.extend_from_slice(&[0x18, 0x7f]); // int64_contents
        contents.extend_from_slice(&[0x35, 0, 0, 0x80, 0x3f]); // fp32_contents, fixed32
    }
    let mut input = Vec::new();
    put_len_field(&mut input, 1, b"x");
    for _ in 0..50 {
        input.extend_from_slice(&[0x18, 0x01]); // shape, one dimension at a time
    }
    put_len_field(&mut input, 5, &contents);
    let mut message = Vec::new();
    put_len_field(&mut message, 5, &input);
    let cost = infer_request(&message).unwrap();
    let decoded = ModelInferRequest::decode(&message[..]).unwrap();
    assert_eq!(decoded.inputs[0].contents.as_ref().unwrap().fp32_contents.len(), 100);
    assert!(held(&decoded) <= cost.decoded_bytes, "{} > {}", held(&decoded), cost.decoded_bytes);
}

/// A tiny message declaring a huge shape or packing many numbers: what decoding holds stays
/// within a small multiple of its size, and its tensors are refused before anything is sized
/// by the shape.
#[test]
fn v2_a_hostile_tiny_message_is_refused_before_allocation() {
    // 1 KB of packed one-byte varints: held as 8 bytes each once decoded.
    let mut packed = Vec::new();
    packed.extend(std::iter::repeat_n(1u8, 1000));
    let mut contents = Vec::new();
    put_len_field(&mut contents, 3, &packed); // int64_contents
    let mut input = Vec::new();
    put_len_field(&mut input, 1, b"x");
    put_len_field(&mut input, 2, b"INT64");
    // shape [2^40, 2^20]: far beyond any budget.
    let mut dims = Vec::new();
    put_varint(&mut dims, 1 << 40);
    put_varint(&mut dims, 1 << 20);
    put_len_field(&mut input, 3, &dims);
    put_len_field(&mut input, 5, &contents);
    let mut message = Vec::new();
    put_len_field(&mut message, 1, b"m");
    put_len_field(&mut message, 5, &input);
    assert!(message.len() < 1100);
    let cost = infer_request(&message).unwrap();
    // The decoding bound is what decoding takes (8 bytes per varint, twice for growth), not
    // what the shape declares.
    assert!(cost.decoded_bytes < 40 * message.len(), "{}", cost.decoded_bytes);
    let decoded = ModelInferRequest::decode(&message[..]).unwrap();
    assert!(held(&decoded) <= cost.decoded_bytes);
    let e = InferMessage::check(decoded).unwrap_err();
    assert!(e.message.contains("elements"), "{}", e.message);
    // The same shape for BYTES over 8 raw bytes: refused by the count before the contents are read.
    let mut contentless = Vec::new();
    put_len_field(&mut contentless, 1, b"x");
    put_len_field(&mut contentless, 2, b"BYTES");
    put_len_field(&mut contentless, 3, &dims);
    let mut bytes_message = Vec::new();
    put_len_field(&mut bytes_message, 5, &contentless);
    put_len_field(&mut bytes_message, 7, &[0; 8]);
    let decoded = ModelInferRequest::decode(&bytes_message[..]).unwrap();
    assert!(InferMessage::check(decoded).is_err());
}

#[test]
fn v2_malformed_messages_are_refused_before_decoding() {
    assert!(infer_request(&[0x2a, 0x05, 0x0a]).is_err(), "an input past the end");
    let mut input = Vec::new();
    input.extend_from_slice(&[0x2a, 0x03, 0x1a, 0x09, 0x00]); // contents whose length runs past the input
    assert!(infer_request(&input).is_err());
    assert!(infer_request(&[]).is_ok());
}
