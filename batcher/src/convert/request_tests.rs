use super::*;
use crate::convert::signature::tests::signature;
use crate::convert::{Blame, Values};
use tfgate_proto::tensorflow::DataType;

fn half_plus_two() -> SignatureSpec {
    signature(&[("x", DataType::DtFloat)], &[("y", DataType::DtFloat)])
}

fn inputs(body: &str, sig: &SignatureSpec) -> Result<PredictInputs, ConvertError> {
    PredictBody::parse(body.as_bytes())?.into_inputs(sig)
}

fn error(body: &str, sig: &SignatureSpec) -> String {
    let e = inputs(body, sig).expect_err(body);
    assert_eq!(e.blame, Blame::Request);
    // As the client reads it.
    tfgate_common::echo::for_client(&e.message).into_owned()
}

#[test]
fn row_format_single_input_values() {
    let p = inputs(r#"{"instances": [1.0, 2.0, 5.0]}"#, &half_plus_two()).unwrap();
    assert_eq!(p.format, Format::Row);
    assert_eq!(p.signature_name, "serving_default");
    let x = &p.tensors["x"];
    assert_eq!((x.dtype, x.shape.clone(), x.values.clone()), (Dtype::Float, vec![3], Values::F32(vec![1.0, 2.0, 5.0])));
}

#[test]
fn row_format_nested_lists_and_named_objects() {
    let p = inputs(r#"{"instances": [[1, 2], [3, 4]]}"#, &half_plus_two()).unwrap();
    assert_eq!(p.tensors["x"].shape, vec![2, 2]);
    let p = inputs(r#"{"instances": [{"x": [1]}, {"x": [2]}]}"#, &half_plus_two()).unwrap();
    assert_eq!(
        (p.tensors["x"].shape.clone(), p.tensors["x"].values.clone()),
        (vec![2, 1], Values::F32(vec![1.0, 2.0]))
    );
}

#[test]
fn row_format_several_inputs() {
    let sig = signature(&[("a", DataType::DtInt64), ("b", DataType::DtBool)], &[("y", DataType::DtFloat)]);
    let p = inputs(r#"{"instances": [{"a": 1, "b": true}, {"a": 2, "b": false}]}"#, &sig).unwrap();
    assert_eq!(p.tensors["a"].values, Values::I64(vec![1, 2]));
    assert_eq!(p.tensors["b"].values, Values::Bool(vec![true, false]));
    assert!(
        error(r#"{"instances": [1, 2]}"#, &sig).starts_with("instances is a plain list, but expecting list of objects")
    );
    assert_eq!(
        error(r#"{"instances": [{"a": 1, "b": true}, {"a": 2}]}"#, &sig),
        r#"Failed to process element: 1 of 'instances' list. JSON object: {"a":2} must only have keys: a,b"#
    );
    assert_eq!(
        error(r#"{"instances": [{"a": 1, "b": true, "c": 0}]}"#, &sig),
        "Failed to process element: 0 key: c of 'instances' list. Error: JSON object: does not have named input: c"
    );
    assert_eq!(
        error(r#"{"instances": [{"a": 1, "b": true}, [1]]}"#, &sig),
        "Expecting object but got list at item 1 of input list"
    );
    assert!(error(r#"{"instances": [{"a": 1, "b": true}, {"a": 1.5, "b": true}]}"#, &sig)
        .starts_with("Failed to process element: 1 key: a of 'instances' list. Error: JSON Value: 1.5"));
}

#[test]
fn columnar_format() {
    let p = inputs(r#"{"inputs": [1, 2, 3]}"#, &half_plus_two()).unwrap();
    assert_eq!(p.format, Format::Columnar);
    assert_eq!(p.tensors["x"].shape, vec![3]);
    let p = inputs(r#"{"inputs": 7}"#, &half_plus_two()).unwrap();
    assert_eq!((p.tensors["x"].shape.clone(), p.tensors["x"].values.clone()), (vec![], Values::F32(vec![7.0])));
    let sig = signature(&[("a", DataType::DtInt32), ("b", DataType::DtDouble)], &[("y", DataType::DtFloat)]);
    let p = inputs(r#"{"inputs": {"a": [[1, 2]], "b": [0.5, 1.5, 2.5], "extra": 1}}"#, &sig).unwrap();
    assert_eq!(p.tensors["a"].shape, vec![1, 2]);
    assert_eq!(p.tensors["b"].values, Values::F64(vec![0.5, 1.5, 2.5]));
    assert_eq!(p.tensors.len(), 2);
    assert_eq!(error(r#"{"inputs": {"a": [1]}}"#, &sig), "Missing named input: b in 'inputs' object.");
    assert!(error(r#"{"inputs": [1]}"#, &sig).starts_with("inputs is a plain value/list, but expecting an object"));
}

#[test]
fn signature_name_is_optional_and_must_be_a_string() {
    let p = inputs(r#"{"signature_name": "other", "inputs": [1]}"#, &half_plus_two()).unwrap();
    assert_eq!(p.signature_name, "other");
    let p = inputs(r#"{"signature_name": "", "inputs": [1]}"#, &half_plus_two()).unwrap();
    assert_eq!(p.signature_name, "serving_default");
    assert!(error(r#"{"signature_name": 1, "inputs": [1]}"#, &half_plus_two())
        .ends_with("not formatted correctly. 'signature_name' key must be a string value."));
}

#[test]
fn tf_serving_messages_for_malformed_bodies() {
    let sig = half_plus_two();
    assert_eq!(error(r#"{"signature_name": "x"}"#, &sig), "Missing 'inputs' or 'instances' key");
    assert!(error(r#"{"inputs": [1], "instances": [1]}"#, &sig)
        .ends_with("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"));
    assert_eq!(error(r#"{"instances": []}"#, &sig), "JSON Value: [] No values in 'instances' array");
    assert_eq!(error(r#"{"instances": 1}"#, &sig), "JSON Value: 1 Excepting 'instances' to be an list/array");
    assert_eq!(error("", &sig), "JSON Parse error: The document is empty");
    assert!(error("not json", &sig).starts_with("JSON Parse error: "));
    assert!(error("[1, 2]", &sig).ends_with("Is not object"));
    assert!(error(r#"{"instances": [[1, 2], [3]]}"#, &sig)
        .starts_with("Failed to process element: 1 of 'instances' list. Error: "));
    assert!(error(r#"{"instances": [1, {"x": 1}]}"#, &sig).starts_with("Expecting value/list but got object at item 1"));
    assert!(error(r#"{"inputs": [[1, 2], [3]]}"#, &sig).contains("ragged"));
    assert!(error(r#"{"inputs": ["a"]}"#, &sig).contains("is not of expected type: float"));
}

#[test]
fn every_basic_dtype() {
    for (dt, body, expected) in [
        (DataType::DtDouble, "[0.25]", Values::F64(vec![0.25])),
        (DataType::DtInt32, "[-3]", Values::I32(vec![-3])),
        (DataType::DtInt64, "[9007199254740993]", Values::I64(vec![9_007_199_254_740_993])),
        (DataType::DtBool, "[true]", Values::Bool(vec![true])),
        (DataType::DtString, r#"["s"]"#, Values::Bytes(vec![b"s".to_vec()].into())),
        (DataType::DtUint8, "[255]", Values::I32(vec![255])),
    ] {
        let sig = signature(&[("x", dt)], &[]);
        let p = inputs(&format!(r#"{{"instances": {body}}}"#), &sig).unwrap();
        assert_eq!(p.tensors["x"].values, expected, "{dt:?}");
        assert_eq!(p.tensors["x"].dtype.data_type(), dt);
    }
    let sig = signature(&[("x", DataType::DtComplex64)], &[]);
    assert!(error(r#"{"instances": [1]}"#, &sig).contains("DT_COMPLEX64"));
    let sig = signature(&[("x", DataType::DtHalf)], &[]);
    let p = inputs(r#"{"instances": [0.5, NaN, -Infinity]}"#, &sig).unwrap();
    let Values::F32(v) = &p.tensors["x"].values else { panic!() };
    assert!(v[0] == 0.5 && v[1].is_nan() && v[2] == f32::NEG_INFINITY);
    let sig = signature(&[("x", DataType::DtString)], &[]);
    let p = inputs(r#"{"instances": [{"b64": "aGk="}, "plain"]}"#, &sig).unwrap();
    assert_eq!(p.tensors["x"].values, Values::Bytes(vec![b"hi".to_vec(), b"plain".to_vec()].into()));
    assert!(error(r#"{"instances": [{"b64": "%%"}]}"#, &sig).contains("Unable to base64 decode"));
    assert!(error(r#"{"instances": [NaN]}"#, &sig).contains("JSON Value: NaN Type: Number"));
}

#[test]
fn a_signature_without_inputs_is_refused() {
    let sig = signature(&[], &[("y", DataType::DtFloat)]);
    assert_eq!(error(r#"{"inputs": 1}"#, &sig), "Failed to get input map for signature: serving_default");
}

#[test]
fn never_panics_on_hostile_bodies() {
    let deep = format!("{{\"instances\": {}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let cases = [
        deep.as_str(),
        r#"{"instances": [1e400]}"#,
        r#"{"instances": [99999999999999999999999]}"#,
        r#"{"instances": [null]}"#,
        r#"{"instances": [[]]}"#,
        r#"{"instances": [[], [1]]}"#,
        r#"{"inputs": {}}"#,
        r#"{"inputs": {"b64": "AA=="}}"#,
        r#"{"instances": [{"b64": "AA=="}]}"#,
        "\u{0}",
        "{\"instances\": [\"\u{ffff}\"]}",
    ];
    for body in cases {
        let _ = inputs(body, &half_plus_two());
    }
    let p = inputs(r#"{"instances": [[], []]}"#, &half_plus_two()).unwrap();
    assert_eq!(p.tensors["x"].shape, vec![2, 0]);
}

#[test]
fn the_bound_on_tensor_bytes_holds_before_they_are_read() {
    let int64 = signature(&[("x", DataType::DtInt64)], &[("y", DataType::DtFloat)]);
    let strings = signature(&[("s", DataType::DtString)], &[("y", DataType::DtFloat)]);
    let named = signature(&[("a", DataType::DtFloat), ("b", DataType::DtDouble)], &[("y", DataType::DtFloat)]);
    let dense = format!(r#"{{"instances": [{}0]}}"#, "0,".repeat(10_000));
    for (body, sig) in [
        (r#"{"instances": [1.0, 2.0, 5.0]}"#, &half_plus_two()),
        (r#"{"instances": [[1, 2], [3, 4]]}"#, &int64),
        (dense.as_str(), &int64),
        (r#"{"inputs": {"a": [[1, 2]], "b": [[3], [4]]}}"#, &named),
        (r#"{"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}"#, &named),
        (r#"{"instances": ["abc", {"b64": "aGVsbG8="}, ""]}"#, &strings),
    ] {
        let parsed = PredictBody::parse(body.as_bytes()).unwrap();
        let bound = parsed.tensor_bytes_bound(sig);
        let read = parsed.into_inputs(sig).unwrap();
        let held: usize = read.tensors.values().map(|t| t.values.heap_bytes()).sum();
        assert!(held <= bound, "{held} > {bound}: {}", &body[..body.len().min(60)]);
    }
}
