use super::*;
use crate::convert::signature::TensorSpec;
use crate::convert::tensor::MAX_ELEMENTS;
use crate::convert::{Signatures, Tensor, Values};
use tfgate_common::echo::{for_client, for_log};
use tfgate_proto::inference::model_infer_response::InferOutputTensor;
use tfgate_proto::tensorflow::DataType;

const LIMIT: usize = 1 << 20;

/// One tensor of every dtype, three elements each, values at the edges of their range.
fn every_dtype() -> Vec<Tensor> {
    let t = |dtype, values| Tensor { dtype, shape: vec![3], values };
    vec![
        t(Dtype::Bool, Values::Bool(vec![true, false, true])),
        t(Dtype::Uint8, Values::I32(vec![0, 255, 7])),
        t(Dtype::Uint16, Values::I32(vec![0, 65535, 7])),
        t(Dtype::Uint32, Values::U32(vec![0, u32::MAX, 7])),
        t(Dtype::Uint64, Values::U64(vec![0, u64::MAX, 7])),
        t(Dtype::Int8, Values::I32(vec![-128, 127, 0])),
        t(Dtype::Int16, Values::I32(vec![-32768, 32767, 0])),
        t(Dtype::Int32, Values::I32(vec![i32::MIN, i32::MAX, 0])),
        t(Dtype::Int64, Values::I64(vec![i64::MIN, i64::MAX, 0])),
        t(Dtype::Half, Values::F32(vec![1.5, -2.0, 65504.0])),
        t(Dtype::Bfloat16, Values::F32(vec![1.5, -2.0, 256.0])),
        t(Dtype::Float, Values::F32(vec![1.5, -2.0, f32::MAX])),
        t(Dtype::Double, Values::F64(vec![1e300, -0.5, 3.0])),
        t(Dtype::String, Values::Bytes(vec![b"ab".to_vec(), Vec::new(), vec![0, 0xff]].into())),
    ]
}

fn predict(inputs: Vec<(&str, TensorProto)>) -> PredictRequest {
    PredictRequest {
        model_spec: Some(ModelSpec { name: "m".into(), ..Default::default() }),
        inputs: inputs.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
        output_filter: Vec::new(),
    }
}

fn one_input(proto: TensorProto) -> Result<(InferInputTensor, Bytes), ConvertError> {
    one_input_within(proto, LIMIT)
}

fn one_input_within(proto: TensorProto, limit: usize) -> Result<(InferInputTensor, Bytes), ConvertError> {
    let mut request = infer_request(predict(vec![("x", proto)]), limit)?;
    assert_eq!((request.inputs.len(), request.raw_input_contents.len()), (1, 1));
    Ok((request.inputs.remove(0), request.raw_input_contents.remove(0)))
}

fn shape(dims: &[i64]) -> Option<TensorShapeProto> {
    Some(shape_proto(dims))
}

/// The raw contents of `tensor` as the v2 protocol lays them out, written independently.
fn expected_raw(tensor: &Tensor) -> Vec<u8> {
    match &tensor.values {
        Values::Bytes(strings) => {
            let mut out = Vec::new();
            for s in strings.iter() {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s);
            }
            out
        }
        _ => tensor.clone().into_proto_as(true).tensor_content.to_vec(),
    }
}

#[test]
fn every_dtype_goes_raw_from_typed_fields_and_from_tensor_content_alike() {
    for tensor in every_dtype() {
        let datatype = V2Datatype::from_dtype(tensor.dtype);
        let raw = expected_raw(&tensor);
        let (input, typed) = one_input(tensor.clone().into_proto()).unwrap();
        assert_eq!((input.name.as_str(), input.datatype.as_str()), ("x", datatype.name()));
        assert_eq!(input.shape, [3]);
        assert_eq!(input.contents, None, "raw contents for every input, typed contents for none");
        assert_eq!(typed, raw, "{datatype} from its typed field");
        if tensor.dtype != Dtype::String {
            let packed = tensor.clone().into_proto_as(true);
            let (_, content) = one_input(packed).unwrap();
            assert_eq!(content, raw, "{datatype} from tensor_content");
        }
    }
}

#[test]
fn tensor_content_is_handed_over_not_copied() {
    let content = Bytes::from((0..64u8).collect::<Vec<u8>>());
    let proto = TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: shape(&[4, 4]),
        tensor_content: content.clone(),
        ..Default::default()
    };
    let (input, raw) = one_input(proto).unwrap();
    assert_eq!(input.shape, [4, 4]);
    assert_eq!(raw.as_ptr(), content.as_ptr(), "the same buffer");
    assert_eq!(raw.len(), 64);
}

#[test]
fn typed_fields_follow_tfs_padding_rules() {
    let floats = |values: Vec<f32>, dims: &[i64]| TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: shape(dims),
        float_val: values,
        ..Default::default()
    };
    let raw = |proto| one_input(proto).unwrap().1.to_vec();
    let le = |values: &[f32]| values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    assert_eq!(raw(floats(vec![2.5], &[2, 2])), le(&[2.5; 4]), "one value fills the shape");
    assert_eq!(raw(floats(vec![1.0, 2.0], &[3])), le(&[1.0, 2.0, 2.0]), "the last one pads");
    assert_eq!(raw(floats(vec![], &[2])), le(&[0.0, 0.0]), "none means zeros");
    assert_eq!(raw(floats(vec![7.0], &[])), le(&[7.0]), "a scalar");
    assert_eq!(raw(floats(vec![], &[0, 5])), Vec::<u8>::new());
    let e = one_input(floats(vec![1.0, 2.0, 3.0], &[2])).unwrap_err();
    assert_eq!((e.blame, e.message.as_str()), (Blame::Request, "input \"\u{f8fe}x\u{f8ff}\": 3 values for 2 elements"));
    assert_eq!(for_client(&e.message), "input \"x\": 3 values for 2 elements");

    let strings = |values: Vec<&[u8]>, dims: &[i64]| TensorProto {
        dtype: DataType::DtString as i32,
        tensor_shape: shape(dims),
        string_val: values.into_iter().map(<[u8]>::to_vec).collect(),
        ..Default::default()
    };
    assert_eq!(raw(strings(vec![b"ab"], &[2])), b"\x02\0\0\0ab\x02\0\0\0ab");
    assert_eq!(raw(strings(vec![], &[2])), b"\0\0\0\0\0\0\0\0", "empty strings");
    assert!(one_input(strings(vec![b"a", b"b"], &[1])).is_err());
}

#[test]
fn inputs_are_checked_before_anything_is_written() {
    let proto = |dtype: DataType, dims: &[i64]| TensorProto {
        dtype: dtype as i32,
        tensor_shape: shape(dims),
        ..Default::default()
    };
    let message = |proto, limit| for_client(&one_input_within(proto, limit).unwrap_err().message).into_owned();
    assert_eq!(message(proto(DataType::DtFloat, &[-1]), LIMIT), "input \"x\": dimension -1");
    let huge = MAX_ELEMENTS as i64;
    assert!(message(proto(DataType::DtFloat, &[huge, 2]), LIMIT).contains("more than"));
    assert!(message(proto(DataType::DtFloat, &[i64::MAX, i64::MAX]), LIMIT).contains("more than"));
    // A single value names a shape far beyond what may be sent: refused, not expanded.
    let one = TensorProto { float_val: vec![1.0], ..proto(DataType::DtFloat, &[1 << 20]) };
    assert_eq!(message(one, 1 << 20), "input \"x\": 4194304 bytes of FP32 values exceed the 1048576-byte limit");
    let long = TensorProto { string_val: vec![vec![b'a'; 1 << 10]], ..proto(DataType::DtString, &[1 << 12]) };
    assert_eq!(message(long, 1 << 20), "input \"x\": 4096 BYTES elements exceed the 1048576-byte limit");
    let mut unknown = proto(DataType::DtFloat, &[]);
    unknown.tensor_shape = Some(TensorShapeProto { dim: Vec::new(), unknown_rank: true });
    assert_eq!(message(unknown, LIMIT), "input \"x\": a tensor of unknown rank");
    let short = TensorProto { tensor_content: Bytes::from_static(&[0; 7]), ..proto(DataType::DtFloat, &[2]) };
    assert_eq!(message(short, LIMIT), "input \"x\": tensor_content holds 7 bytes, but 2 FP32 elements need 8");
    let packed = TensorProto { tensor_content: Bytes::from_static(&[0; 4]), ..proto(DataType::DtString, &[1]) };
    assert_eq!(message(packed, LIMIT), "input \"x\": DT_STRING values cannot be in tensor_content");
    assert_eq!(
        message(proto(DataType::DtComplex64, &[1]), LIMIT),
        "input \"x\": DT_COMPLEX64 has no Open Inference Protocol datatype"
    );
    let e = one_input(proto(DataType::DtFloat, &[-3])).unwrap_err();
    assert_eq!(e.blame, Blame::Request);
}

#[test]
fn the_request_names_model_version_inputs_and_outputs() {
    let x = Tensor { dtype: Dtype::Float, shape: vec![1], values: Values::F32(vec![1.0]) }.into_proto();
    let mut request = predict(vec![("b", x.clone()), ("a", x.clone()), ("c", x)]);
    request.output_filter = vec!["y".into(), "z".into()];
    let spec = |choice| ModelSpec { name: "resnet".into(), signature_name: String::new(), version_choice: choice };
    request.model_spec = Some(spec(Some(VersionChoice::Version(3))));
    let infer = infer_request(request.clone(), LIMIT).unwrap();
    assert_eq!((infer.model_name.as_str(), infer.model_version.as_str()), ("resnet", "3"));
    let names: Vec<&str> = infer.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "sorted: the same call, the same message");
    let outputs: Vec<&str> = infer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["y", "z"]);
    assert!(infer.id.is_empty() && infer.parameters.is_empty());

    request.model_spec = Some(spec(Some(VersionChoice::VersionLabel("canary".into()))));
    assert_eq!(infer_request(request.clone(), LIMIT).unwrap().model_version, "canary");
    request.model_spec = Some(spec(None));
    assert_eq!(infer_request(request.clone(), LIMIT).unwrap().model_version, "");
    request.model_spec = Some(ModelSpec { signature_name: DEFAULT_SIGNATURE.into(), ..spec(None) });
    assert!(infer_request(request.clone(), LIMIT).is_ok());
    request.model_spec = Some(ModelSpec { signature_name: "other".into(), ..spec(None) });
    let e = infer_request(request, LIMIT).unwrap_err();
    assert_eq!(for_client(&e.message), "a v2 backend serves one signature, serving_default, not \"other\"");
    assert_eq!(e.blame, Blame::Request);
}

fn output(name: &str, datatype: &str, dims: &[i64]) -> InferOutputTensor {
    InferOutputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: dims.to_vec(),
        parameters: HashMap::new(),
        contents: None,
    }
}

fn answer(outputs: Vec<InferOutputTensor>, raw: Vec<Bytes>) -> ModelInferResponse {
    ModelInferResponse {
        model_name: "m".into(),
        model_version: "2".into(),
        id: String::new(),
        parameters: HashMap::new(),
        outputs,
        raw_output_contents: raw,
    }
}

fn one_output(output: InferOutputTensor, raw: Option<Bytes>) -> Result<TensorProto, ConvertError> {
    let mut response = predict_response(answer(vec![output], raw.into_iter().collect()), "")?;
    Ok(response.outputs.remove("y").expect("output y"))
}

fn backend_message(result: Result<TensorProto, ConvertError>) -> String {
    let e = result.unwrap_err();
    assert_eq!(e.blame, Blame::Backend, "{}", e.message);
    for_client(&e.message).into_owned()
}

#[test]
fn every_datatype_comes_back_from_raw_contents() {
    for tensor in every_dtype() {
        let datatype = V2Datatype::from_dtype(tensor.dtype);
        let raw = Bytes::from(expected_raw(&tensor));
        let proto = one_output(output("y", datatype.name(), &[3]), Some(raw.clone())).unwrap();
        assert_eq!(proto.dtype, tensor.dtype.data_type() as i32, "{datatype}");
        assert_eq!(Tensor::from_proto(&proto).unwrap(), tensor, "{datatype}");
        if datatype != V2Datatype::Bytes {
            assert_eq!(proto.tensor_content.as_ptr(), raw.as_ptr(), "{datatype}: the same buffer, not a copy");
        }
    }
}

/// The typed contents of `tensor`, as a v2 server writes them.
fn contents_of(tensor: &Tensor) -> Option<InferTensorContents> {
    let mut c = InferTensorContents::default();
    match (&tensor.values, tensor.dtype) {
        (_, Dtype::Half | Dtype::Bfloat16) => return None,
        (Values::Bool(v), _) => c.bool_contents = v.clone(),
        (Values::I32(v), Dtype::Uint8 | Dtype::Uint16) => c.uint_contents = v.iter().map(|&x| x as u32).collect(),
        (Values::I32(v), _) => c.int_contents = v.clone(),
        (Values::I64(v), _) => c.int64_contents = v.clone(),
        (Values::U32(v), _) => c.uint_contents = v.clone(),
        (Values::U64(v), _) => c.uint64_contents = v.clone(),
        (Values::F32(v), _) => c.fp32_contents = v.clone(),
        (Values::F64(v), _) => c.fp64_contents = v.clone(),
        (Values::Bytes(v), _) => c.bytes_contents = v.iter().map(<[u8]>::to_vec).collect(),
    }
    Some(c)
}

#[test]
fn every_datatype_with_a_field_comes_back_from_typed_contents() {
    for tensor in every_dtype() {
        let datatype = V2Datatype::from_dtype(tensor.dtype);
        let mut typed = output("y", datatype.name(), &[3]);
        match contents_of(&tensor) {
            Some(contents) => {
                typed.contents = Some(contents);
                let proto = one_output(typed, None).unwrap();
                assert!(proto.tensor_content.is_empty());
                assert_eq!(Tensor::from_proto(&proto).unwrap(), tensor, "{datatype}");
            }
            None => {
                let message = backend_message(one_output(typed.clone(), None));
                assert_eq!(
                    message,
                    format!("output \"y\": no raw contents; {datatype} values can only be raw contents")
                );
                typed.contents = Some(InferTensorContents { fp32_contents: vec![1.0; 3], ..Default::default() });
                let message = backend_message(one_output(typed, None));
                assert_eq!(
                    message,
                    format!("output \"y\": 3 values in fp32_contents; {datatype} values can only be raw contents")
                );
                let empty = one_output(output("y", datatype.name(), &[0, 4]), None).unwrap();
                assert_eq!(Tensor::from_proto(&empty).unwrap().shape, [0, 4]);
            }
        }
    }
}

#[test]
fn typed_contents_must_fit_the_datatype_and_the_shape() {
    let typed = |datatype: &str, contents: InferTensorContents| {
        one_output(InferOutputTensor { contents: Some(contents), ..output("y", datatype, &[2]) }, None)
    };
    let ints = |v: Vec<i32>| InferTensorContents { int_contents: v, ..Default::default() };
    let uints = |v: Vec<u32>| InferTensorContents { uint_contents: v, ..Default::default() };
    assert_eq!(backend_message(typed("INT32", ints(vec![1]))), "output \"y\": 1 values in int_contents for 2 elements");
    assert_eq!(
        backend_message(typed("INT32", ints(vec![1, 2, 3]))),
        "output \"y\": 3 values in int_contents for 2 elements"
    );
    assert_eq!(
        backend_message(typed("INT64", ints(vec![1, 2]))),
        "output \"y\": 2 values in int_contents; INT64 values belong in int64_contents"
    );
    assert_eq!(backend_message(typed("INT8", ints(vec![1, 128]))), "output \"y\": 128 is not a INT8 value");
    assert_eq!(backend_message(typed("INT16", ints(vec![-32769, 0]))), "output \"y\": -32769 is not a INT16 value");
    assert_eq!(backend_message(typed("UINT8", uints(vec![256, 0]))), "output \"y\": 256 is not a UINT8 value");
    assert_eq!(backend_message(typed("UINT16", uints(vec![0, 65536]))), "output \"y\": 65536 is not a UINT16 value");
    let mut both = ints(vec![1, 2]);
    both.fp32_contents = vec![1.0, 2.0];
    assert_eq!(
        backend_message(typed("INT32", both)),
        "output \"y\": 2 values in fp32_contents; INT32 values belong in int_contents"
    );
    let none = one_output(output("y", "FP32", &[2]), None);
    assert_eq!(backend_message(none), "output \"y\": 0 values in fp32_contents for 2 elements");
    let u32s = Tensor::from_proto(&typed("UINT32", uints(vec![u32::MAX, 1])).unwrap()).unwrap();
    assert_eq!(u32s.values, Values::U32(vec![u32::MAX, 1]));
}

#[test]
fn raw_contents_must_be_exactly_the_shape() {
    let raw = |datatype: &str, dims: &[i64], bytes: &'static [u8]| {
        one_output(output("y", datatype, dims), Some(Bytes::from_static(bytes)))
    };
    assert_eq!(
        backend_message(raw("FP32", &[2], &[0; 7])),
        "output \"y\": raw contents of 7 bytes, but shape [2] holds 2 FP32 elements of 8 bytes"
    );
    assert!(backend_message(raw("FP64", &[2], &[0; 24])).contains("24 bytes"));
    assert!(backend_message(raw("BOOL", &[2, 2], &[0; 3])).contains("4 BOOL elements of 4 bytes"));
    for datatype in ["INT8", "UINT8", "INT16", "UINT16", "FP16", "BF16", "INT32", "UINT32", "INT64", "UINT64"] {
        assert!(raw(datatype, &[1], &[0; 9]).is_err(), "{datatype}");
    }
    assert_eq!(backend_message(raw("FP32", &[-1], &[])), "output \"y\": dimension -1");
    let huge = i64::try_from(MAX_ELEMENTS).unwrap() + 1;
    let message = backend_message(one_output(output("y", "FP32", &[huge]), Some(Bytes::new())));
    assert!(message.contains("more than 134217728 elements"), "{message}");
    let message = backend_message(one_output(output("y", "BYTES", &[1 << 26, 2]), Some(Bytes::from_static(&[0; 8]))));
    assert!(message.contains("cannot hold"), "{message}");
    assert_eq!(
        backend_message(raw("BYTES", &[1], b"\x05\0\0\0abc")),
        "output \"y\": BYTES element 0 of 1 declares 5 bytes, 3 remain in the contents"
    );
    assert!(backend_message(raw("BYTES", &[1], b"\x01\0\0\0ab")).contains("1 bytes left"));
    assert!(backend_message(raw("COMPLEX64", &[1], &[0; 8])).contains("unsupported datatype 'COMPLEX64'"));
    let mut both = output("y", "FP32", &[1]);
    both.contents = Some(InferTensorContents { fp32_contents: vec![1.0], ..Default::default() });
    assert_eq!(
        backend_message(one_output(both, Some(Bytes::from_static(&[0; 4])))),
        "output \"y\": both raw contents and 1 values in fp32_contents"
    );
    // An empty `contents` message beside raw contents is no conflict.
    let mut empty = output("y", "FP32", &[1]);
    empty.contents = Some(InferTensorContents::default());
    assert!(one_output(empty, Some(Bytes::from_static(&[0; 4]))).is_ok());
}

#[test]
fn the_answer_as_a_whole() {
    let raw4 = || Bytes::from_static(&[0; 4]);
    let two = answer(vec![output("y", "FP32", &[1]), output("z", "FP32", &[1])], vec![raw4()]);
    let e = predict_response(two, "").unwrap_err();
    assert_eq!((e.blame, e.message.as_str()), (Blame::Backend, "1 raw_output_contents for 2 outputs"));
    let twice = answer(vec![output("y", "FP32", &[1]), output("y", "FP32", &[1])], vec![raw4(), raw4()]);
    assert_eq!(for_client(&predict_response(twice, "").unwrap_err().message), "output \"y\" named twice");

    let ok = |version: &str, signature: &str| {
        let mut response =
            answer(vec![output("y", "FP32", &[1]), output("z", "BYTES", &[0])], vec![raw4(), Bytes::new()]);
        response.model_version = version.into();
        predict_response(response, signature).unwrap()
    };
    let response = ok("2", "");
    assert_eq!(response.outputs.len(), 2);
    let spec = response.model_spec.unwrap();
    assert_eq!((spec.name.as_str(), spec.signature_name.as_str()), ("m", "serving_default"));
    assert_eq!(spec.version_choice, Some(VersionChoice::Version(2)));
    assert_eq!(ok("", "serving_default").model_spec.unwrap().version_choice, None);
    assert_eq!(ok("v2-beta", "").model_spec.unwrap().version_choice, None, "not a number: no TF version");
    assert_eq!(ok("-3", "").model_spec.unwrap().version_choice, None);
    // Typed contents when there are no raw contents at all.
    let mut typed = output("y", "INT64", &[2]);
    typed.contents = Some(InferTensorContents { int64_contents: vec![5, 6], ..Default::default() });
    let response = predict_response(answer(vec![typed], Vec::new()), "").unwrap();
    assert_eq!(response.outputs["y"].int64_val, [5, 6]);
}

#[test]
fn names_the_backend_sent_are_quoted_never_echoed_whole() {
    let secret = format!("SECRET-{}", "A".repeat(10_000));
    let named = |name: &str| output(name, "FP32", &[1]);
    let e = predict_response(answer(vec![named(&secret)], vec![Bytes::new()]), "").unwrap_err();
    let client = for_client(&e.message);
    assert!(client.len() < 200 && client.contains("SECRET-AAA") && client.contains("..."), "{client}");
    assert!(!for_log(&e.message).contains("SECRET"), "{}", for_log(&e.message));
    let long_type = output("y", &secret, &[1]);
    let e = predict_response(answer(vec![long_type], vec![Bytes::new()]), "").unwrap_err();
    assert!(for_client(&e.message).len() < 400);
    assert!(!for_log(&e.message).contains("SECRET"));
}

#[test]
fn a_request_and_its_echo_round_trip_through_both_translations() {
    // What a v2 server echoing its inputs would answer: the request's tensors come back whole.
    let tensors = every_dtype();
    let inputs: Vec<(String, TensorProto)> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (format!("in{i:02}"), if i % 2 == 0 { t.clone().into_proto() } else { t.clone().into_proto_as(true) })
        })
        .collect();
    let request = PredictRequest {
        model_spec: Some(ModelSpec { name: "echo".into(), ..Default::default() }),
        inputs: inputs.into_iter().collect(),
        output_filter: Vec::new(),
    };
    let infer = infer_request(request, LIMIT).unwrap();
    let outputs = infer.inputs.iter().map(|i| output(&i.name, &i.datatype, &i.shape)).collect();
    let response = predict_response(answer(outputs, infer.raw_input_contents), "").unwrap();
    for (i, tensor) in tensors.iter().enumerate() {
        assert_eq!(&Tensor::from_proto(&response.outputs[&format!("in{i:02}")]).unwrap(), tensor);
    }
}

fn meta(name: &str, datatype: &str, dims: &[i64]) -> TensorMetadata {
    TensorMetadata { name: name.into(), datatype: datatype.into(), shape: dims.to_vec() }
}

fn model_metadata(versions: &[&str]) -> ModelMetadataResponse {
    ModelMetadataResponse {
        name: "m".into(),
        versions: versions.iter().map(|v| v.to_string()).collect(),
        platform: "onnxruntime_onnx".into(),
        inputs: vec![meta("x", "FP32", &[-1, 4]), meta("ids", "INT64", &[]), meta("s", "BYTES", &[-1])],
        outputs: vec![meta("y", "FP16", &[-1, 2])],
    }
}

#[test]
fn metadata_becomes_one_serving_default_signature_packed_as_tf_serving_packs_it() {
    let response = metadata_response(model_metadata(&["1"]), "m", None).unwrap();
    let signatures = Signatures::from_metadata(&response).unwrap();
    assert_eq!(signatures.by_name.len(), 1);
    let sig = signatures.get("serving_default").unwrap();
    let spec = |dtype: DataType, shape: Option<Vec<i64>>| TensorSpec { dtype: dtype as i32, shape };
    assert_eq!(sig.inputs["x"], spec(DataType::DtFloat, Some(vec![-1, 4])));
    assert_eq!(sig.inputs["ids"], spec(DataType::DtInt64, None), "no shape: an unknown rank");
    assert_eq!(sig.inputs["s"], spec(DataType::DtString, Some(vec![-1])));
    assert_eq!(sig.outputs["y"], spec(DataType::DtHalf, Some(vec![-1, 2])));
    let map = crate::convert::signature::signature_def_map(&response).unwrap();
    let def = &map.signature_def["serving_default"];
    assert_eq!(def.method_name, PREDICT_METHOD_NAME);
    assert_eq!(def.inputs["x"].encoding, Some(Encoding::Name("x".into())));
    let spec = response.model_spec.unwrap();
    assert_eq!((spec.name.as_str(), spec.version_choice), ("m", Some(VersionChoice::Version(1))));
}

#[test]
fn the_metadata_names_a_version_only_when_it_is_certain() {
    let version = |versions: &[&str], asked: Option<VersionChoice>| {
        metadata_response(model_metadata(versions), "m", asked.as_ref()).unwrap().model_spec.unwrap().version_choice
    };
    assert_eq!(version(&["3"], None), Some(VersionChoice::Version(3)));
    assert_eq!(version(&["1", "2"], None), None, "which one the server picks is its policy");
    assert_eq!(version(&["1", "2"], Some(VersionChoice::Version(1))), Some(VersionChoice::Version(1)));
    assert_eq!(version(&[], None), None);
    assert_eq!(version(&["latest"], None), None);
    assert_eq!(version(&["2"], Some(VersionChoice::VersionLabel("canary".into()))), Some(VersionChoice::Version(2)));
    let mut unnamed = model_metadata(&[]);
    unnamed.name.clear();
    let spec = metadata_response(unnamed, "asked", None).unwrap().model_spec.unwrap();
    assert_eq!(spec.name, "asked");
}

#[test]
fn malformed_metadata_is_the_backends_fault() {
    let with = |inputs: Vec<TensorMetadata>| {
        let metadata = ModelMetadataResponse { inputs, ..model_metadata(&[]) };
        let e = metadata_response(metadata, "m", None).unwrap_err();
        assert_eq!(e.blame, Blame::Backend);
        for_client(&e.message).into_owned()
    };
    assert_eq!(with(vec![meta("x", "FP32", &[-2])]), "metadata of input \"x\": dimension -2");
    assert!(
        with(vec![meta("x", "FLOAT32", &[1])]).starts_with("metadata of input \"x\": unsupported datatype 'FLOAT32'")
    );
    assert_eq!(with(vec![meta("x", "FP32", &[1]), meta("x", "FP32", &[1])]), "metadata of input \"x\": named twice");
    let metadata = ModelMetadataResponse { outputs: vec![meta("y", "STRING", &[1])], ..model_metadata(&[]) };
    assert!(metadata_response(metadata, "m", None).unwrap_err().message.starts_with("metadata of output"));
}

#[test]
fn status_helpers() {
    assert_eq!(version_string(None), "");
    assert_eq!(version_string(Some(&VersionChoice::Version(12))), "12");
    assert_eq!(version_string(Some(&VersionChoice::VersionLabel("stable".into()))), "stable");
    assert_eq!(version_number("12"), Some(12));
    for not in ["", "-1", "1.0", " 1", "v1", "99999999999999999999"] {
        assert_eq!(version_number(not), None, "{not:?}");
    }
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(numeric_versions(&strings(&["3", "1", "x", "3", "2"])), [1, 2, 3]);
    assert_eq!(numeric_versions(&strings(&["x"])), Vec::<i64>::new());
    let available = |status: GetModelStatusResponse| -> Vec<(i64, i32)> {
        status.model_version_status.iter().map(|s| (s.version, s.state)).collect()
    };
    let ok = State::Available as i32;
    assert_eq!(available(status_available(&[1, 2])), [(1, ok), (2, ok)]);
    assert_eq!(available(status_available(&[])), [(0, ok)], "a model without a numeric version");
    assert_eq!(
        status_available(&[1]).model_version_status[0].status,
        Some(StatusProto { error_code: 0, error_message: String::new() })
    );
    assert_eq!(for_client(&not_ready_message("m", None)), "model m is not ready at the v2 backend");
    let v3 = not_ready_message("m", Some(&VersionChoice::Version(3)));
    assert_eq!(for_client(&v3), "version 3 of model m is not ready at the v2 backend");
    let label = not_ready_message("m", Some(&VersionChoice::VersionLabel("canary".into())));
    assert_eq!(for_client(&label), "version \"canary\" of model m is not ready at the v2 backend");
}
