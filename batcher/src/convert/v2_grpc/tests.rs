use std::collections::HashMap;

use bytes::Bytes;
use tfgate_common::echo::for_client;
use tfgate_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use tfgate_proto::inference::{infer_parameter::ParameterChoice, InferParameter};

use super::*;
use crate::convert::content::write_content;
use crate::convert::tensor::MAX_ELEMENTS;
use crate::convert::v2_dtype::push_raw_bytes;
use crate::convert::{Dtype, Outputs, RowSlice};

fn input(name: &str, datatype: &str, shape: &[i64], contents: Option<InferTensorContents>) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        parameters: HashMap::new(),
        contents,
    }
}

fn raw_request(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "m".into(),
        inputs,
        raw_input_contents: raw.into_iter().map(Bytes::from).collect(),
        ..Default::default()
    }
}

fn refused(request: ModelInferRequest) -> String {
    let e = InferMessage::check(request).and_then(InferMessage::into_tensors).unwrap_err();
    assert_eq!(e.blame, Blame::Request);
    for_client(&e.message).into_owned()
}

/// A tensor of every datatype, with values at the edges of its range.
fn every_datatype() -> Vec<(V2Datatype, Tensor)> {
    let t = |dtype: Dtype, values: Values| Tensor { dtype, shape: vec![values.len()], values };
    vec![
        (V2Datatype::Bool, t(Dtype::Bool, Values::Bool(vec![true, false]))),
        (V2Datatype::Uint8, t(Dtype::Uint8, Values::I32(vec![0, 255]))),
        (V2Datatype::Uint16, t(Dtype::Uint16, Values::I32(vec![0, 65535]))),
        (V2Datatype::Uint32, t(Dtype::Uint32, Values::U32(vec![0, u32::MAX]))),
        (V2Datatype::Uint64, t(Dtype::Uint64, Values::U64(vec![0, u64::MAX]))),
        (V2Datatype::Int8, t(Dtype::Int8, Values::I32(vec![-128, 127]))),
        (V2Datatype::Int16, t(Dtype::Int16, Values::I32(vec![-32768, 32767]))),
        (V2Datatype::Int32, t(Dtype::Int32, Values::I32(vec![i32::MIN, i32::MAX]))),
        (V2Datatype::Int64, t(Dtype::Int64, Values::I64(vec![i64::MIN, i64::MAX]))),
        (V2Datatype::Fp16, t(Dtype::Half, Values::F32(vec![1.5, -2.0]))),
        (V2Datatype::Bf16, t(Dtype::Bfloat16, Values::F32(vec![1.5, -2.0]))),
        (V2Datatype::Fp32, t(Dtype::Float, Values::F32(vec![0.1, f32::NAN]))),
        (V2Datatype::Fp64, t(Dtype::Double, Values::F64(vec![0.1, f64::INFINITY]))),
        (V2Datatype::Bytes, t(Dtype::String, Values::Bytes(vec![b"ab".to_vec(), vec![0, 0xff]].into()))),
    ]
}

fn raw_of(tensor: &Tensor) -> Vec<u8> {
    let mut out = Vec::new();
    match &tensor.values {
        Values::Bytes(strings) => strings.iter().for_each(|s| push_raw_bytes(&mut out, s, Blame::Request).unwrap()),
        values => write_content(tensor.dtype, values, 0..values.len(), &mut out).unwrap(),
    }
    out
}

/// The typed contents of a tensor, as a client fills them.
fn typed_of(datatype: V2Datatype, tensor: &Tensor) -> Option<InferTensorContents> {
    let mut c = InferTensorContents::default();
    match (&tensor.values, datatype) {
        (Values::Bool(v), _) => c.bool_contents = v.clone(),
        (Values::I32(v), V2Datatype::Uint8 | V2Datatype::Uint16) => {
            c.uint_contents = v.iter().map(|&x| x as u32).collect()
        }
        (Values::I32(v), _) => c.int_contents = v.clone(),
        (Values::I64(v), _) => c.int64_contents = v.clone(),
        (Values::U32(v), _) => c.uint_contents = v.clone(),
        (Values::U64(v), _) => c.uint64_contents = v.clone(),
        (Values::F32(_), V2Datatype::Fp16 | V2Datatype::Bf16) => return None,
        (Values::F32(v), _) => c.fp32_contents = v.clone(),
        (Values::F64(v), _) => c.fp64_contents = v.clone(),
        (Values::Bytes(v), _) => c.bytes_contents = v.iter().map(<[u8]>::to_vec).collect(),
    }
    Some(c)
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    // NaN compares by its bits.
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn v2_grpc_every_datatype_from_raw_and_typed_contents() {
    for (datatype, tensor) in every_datatype() {
        let name = datatype.name();
        let raw = raw_request(vec![input("x", name, &[2], None)], vec![raw_of(&tensor)]);
        let message = InferMessage::check(raw).unwrap();
        let bound = message.tensor_bytes();
        let tensors = message.into_tensors().unwrap();
        assert!(same(&tensors["x"], &tensor), "{name}: {:?}", tensors["x"]);
        assert!(tensors["x"].values.heap_bytes() <= bound, "{name}");
        let Some(contents) = typed_of(datatype, &tensor) else {
            // FP16 and BF16 have no typed field.
            let e = refused(raw_request(
                vec![input(
                    "x",
                    name,
                    &[1],
                    Some(InferTensorContents { fp32_contents: vec![1.0], ..Default::default() }),
                )],
                vec![],
            ));
            assert!(e.contains("values can only be raw contents"), "{e}");
            continue;
        };
        let typed = raw_request(vec![input("x", name, &[2], Some(contents))], vec![]);
        let message = InferMessage::check(typed).unwrap();
        let bound = message.tensor_bytes();
        let tensors = message.into_tensors().unwrap();
        assert!(same(&tensors["x"], &tensor), "{name} typed: {:?}", tensors["x"]);
        assert!(tensors["x"].values.heap_bytes() <= bound, "{name} typed");
    }
}

#[test]
fn v2_grpc_narrow_types_are_range_checked() {
    let ints = |values: Vec<i32>| Some(InferTensorContents { int_contents: values, ..Default::default() });
    let uints = |values: Vec<u32>| Some(InferTensorContents { uint_contents: values, ..Default::default() });
    assert_eq!(
        refused(raw_request(vec![input("x", "INT8", &[1], ints(vec![128]))], vec![])),
        "input 'x': 128 is out of range for INT8"
    );
    assert!(refused(raw_request(vec![input("x", "INT16", &[1], ints(vec![-40000]))], vec![])).contains("out of range"));
    assert!(refused(raw_request(vec![input("x", "UINT8", &[1], uints(vec![256]))], vec![])).contains("out of range"));
    assert!(refused(raw_request(vec![input("x", "UINT16", &[1], uints(vec![70000]))], vec![])).contains("out of range"));
}

#[test]
fn v2_grpc_contents_must_match_the_shape_and_each_other() {
    let floats = |n: usize| Some(InferTensorContents { fp32_contents: vec![1.0; n], ..Default::default() });
    let cases = [
        (
            raw_request(vec![input("x", "FP32", &[2], None)], vec![vec![0; 4]]),
            "raw contents have 4 bytes, but shape [2] of FP32 takes 8",
        ),
        (
            raw_request(vec![input("x", "FP32", &[1], None), input("y", "FP32", &[1], None)], vec![vec![0; 4]]),
            "raw_input_contents has 1 entries for 2 inputs",
        ),
        (
            raw_request(vec![input("x", "FP32", &[1], floats(1))], vec![vec![0; 4]]),
            "has contents, but the request uses raw_input_contents",
        ),
        (raw_request(vec![input("x", "FP32", &[3], floats(2))], vec![]), "2 values in fp32_contents for 3 elements"),
        (raw_request(vec![input("x", "FP32", &[1], None)], vec![]), "0 values in fp32_contents for 1 elements"),
        (
            raw_request(vec![input("x", "INT32", &[1], floats(1))], vec![]),
            "1 values in fp32_contents; INT32 values belong in int_contents",
        ),
        (
            raw_request(vec![input("x", "FP32", &[1], floats(1)), input("x", "FP32", &[1], floats(1))], vec![]),
            "is given more than once",
        ),
        (raw_request(vec![input("", "FP32", &[1], floats(1))], vec![]), "inputs[0] has no name"),
        (raw_request(vec![input("x", "FP31", &[1], floats(1))], vec![]), "unsupported datatype 'FP31'"),
        (raw_request(vec![input("x", "FP32", &[-1], floats(1))], vec![]), "shape dimension -1 is negative"),
        (raw_request(vec![], vec![]), "the request has no inputs"),
        (
            raw_request(vec![input("s", "BYTES", &[2], None)], vec![vec![1, 0, 0, 0, b'a', 9]]),
            "raw contents have 6 bytes, too few for the 2 elements",
        ),
        (
            raw_request(vec![input("s", "BYTES", &[1], None)], vec![vec![9, 0, 0, 0, b'a']]),
            "BYTES element 0 of 1 declares 9 bytes",
        ),
        (
            raw_request(vec![input("s", "BYTES", &[1], None)], vec![vec![1, 0, 0, 0, b'a', b'b']]),
            "1 bytes left after 1 elements",
        ),
    ];
    for (request, expected) in cases {
        let message = refused(request);
        assert!(message.contains(expected), "{message:?} does not say {expected:?}");
    }
}

#[test]
fn v2_grpc_huge_shapes_are_refused_before_anything_is_sized() {
    // A few bytes declaring 2^40 elements, or MAX_ELEMENTS of 8 bytes in 8 bytes: refused by
    // their counts against the limit and the bytes that carry them.
    for (shape, raw) in [
        (vec![1i64 << 40], vec![0u8; 8]),
        (vec![1 << 20, 1 << 20], vec![0; 8]),
        (vec![i64::MAX, 0], vec![]),
        (vec![MAX_ELEMENTS as i64], vec![0; 8]),
    ] {
        let message = refused(raw_request(vec![input("x", "INT64", &shape, None)], vec![raw.clone()]));
        assert!(message.contains("elements") || message.contains("bytes"), "{message}");
        let bytes = refused(raw_request(vec![input("s", "BYTES", &shape, None)], vec![raw]));
        assert!(bytes.contains("elements"), "{bytes}");
    }
    let rank = vec![1i64; MAX_RANK + 1];
    assert!(refused(raw_request(vec![input("x", "INT64", &rank, None)], vec![vec![0; 8]])).contains("dimensions"));
}

#[test]
fn v2_grpc_requested_outputs_and_id() {
    let output = |name: &str, parameters: HashMap<String, InferParameter>| InferRequestedOutputTensor {
        name: name.into(),
        parameters,
    };
    let mut request = raw_request(vec![input("x", "FP32", &[1], None)], vec![vec![0; 4]]);
    request.id = "req-1".into();
    request.outputs = vec![output("b", HashMap::new()), output("a", HashMap::new())];
    let message = InferMessage::check(request.clone()).unwrap();
    assert_eq!(message.id().as_deref(), Some("req-1"));
    let wanted = message.requested_outputs().unwrap();
    assert_eq!(wanted.names().unwrap().collect::<Vec<_>>(), ["b", "a"]);
    request.outputs.push(output("b", HashMap::new()));
    let e = InferMessage::check(request.clone()).unwrap().requested_outputs().unwrap_err();
    assert_eq!(for_client(&e.message), "output 'b': is requested more than once");
    let classification = InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(2)) };
    request.outputs = vec![output("a", [("classification".to_string(), classification)].into())];
    assert!(InferMessage::check(request.clone()).unwrap().requested_outputs().is_err());
    request.outputs.clear();
    request.id.clear();
    let message = InferMessage::check(request).unwrap();
    assert_eq!((message.id(), message.requested_outputs().unwrap().requested), (None, None));
}

#[test]
fn v2_grpc_answers_carry_raw_contents_of_the_calls_rows() {
    let batch = |first: i32| -> Outputs {
        let y = Tensor { dtype: Dtype::Int32, shape: vec![3, 2], values: Values::I32((first..first + 6).collect()) };
        let s = Tensor {
            dtype: Dtype::String,
            shape: vec![3],
            values: Values::Bytes(vec![b"a".to_vec(), b"bc".to_vec(), Vec::new()].into()),
        };
        [("y".to_string(), y), ("s".to_string(), s)].into()
    };
    let (one, two) = (batch(0), batch(100));
    let slices = [RowSlice { outputs: &one, rows: 2..3 }, RowSlice { outputs: &two, rows: 0..1 }];
    let meta = ResponseMeta { model_name: "m", model_version: "4", id: Some("id") };
    let response = infer_response(&meta, AnswerSource::Rows(&slices), &OutputRequest::default()).unwrap();
    assert_eq!((response.model_name.as_str(), response.model_version.as_str(), response.id.as_str()), ("m", "4", "id"));
    let names: Vec<_> =
        response.outputs.iter().map(|o| (o.name.as_str(), o.datatype.as_str(), o.shape.clone())).collect();
    assert_eq!(names, [("s", "BYTES", vec![2]), ("y", "INT32", vec![2, 2])]);
    assert_eq!(response.raw_output_contents[0].as_ref(), [0, 0, 0, 0, 1, 0, 0, 0, b'a']);
    let ints: Vec<i32> =
        response.raw_output_contents[1].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(ints, [4, 5, 100, 101]);
    // Those asked for, in their order.
    let wanted = OutputRequest {
        requested: Some(vec![RequestedOutput { name: "y".into(), binary_data: Some(true) }]),
        binary_data_output: true,
    };
    let response = infer_response(&meta, AnswerSource::Whole(&one), &wanted).unwrap();
    assert_eq!((response.outputs.len(), response.raw_output_contents[0].len()), (1, 24));
}

#[test]
fn counts_and_ids_are_bounded_and_duplicates_found_in_linear_time() {
    let one = || input("x", "FP32", &[1], None);
    let many: Vec<InferInputTensor> = (0..1025).map(|i| input(&format!("x{i}"), "FP32", &[1], None)).collect();
    let raw = vec![vec![0u8; 4]; 1025];
    assert!(refused(raw_request(many, raw)).contains("at most 1024 inputs and outputs"));
    let mut request = raw_request(vec![one()], vec![vec![0; 4]]);
    request.outputs =
        (0..1025).map(|i| InferRequestedOutputTensor { name: format!("y{i}"), ..Default::default() }).collect();
    assert!(refused(request).contains("at most 1024 inputs and outputs"));
    let mut request = raw_request(vec![one()], vec![vec![0; 4]]);
    request.id = "i".repeat(1025);
    assert!(refused(request).contains("id is longer than 1024 bytes"));
    let twice = raw_request(vec![one(), one()], vec![vec![0; 4], vec![0; 4]]);
    assert!(refused(twice).contains("is given more than once"));
}

#[test]
fn typed_contents_in_another_datatype_s_field_are_refused() {
    let contents = InferTensorContents { fp32_contents: vec![1.0], int64_contents: vec![7], ..Default::default() };
    let request = ModelInferRequest {
        model_name: "m".into(),
        inputs: vec![input("x", "FP32", &[1], Some(contents))],
        ..Default::default()
    };
    assert_eq!(refused(request), "input 'x': 1 values in int64_contents; FP32 values belong in fp32_contents");
}
