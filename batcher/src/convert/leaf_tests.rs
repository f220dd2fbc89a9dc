use super::*;
use serde_json::json;

/// The value pushed, or the message as the client reads it.
fn push(dtype: Dtype, value: Value) -> Result<Values, String> {
    let mut out = Values::empty(dtype);
    push_json(&mut out, dtype, &value).map_err(|e| tfgate_common::echo::for_client(&e).into_owned())?;
    Ok(out)
}

#[test]
fn numbers_take_the_signature_dtype() {
    assert_eq!(push(Dtype::Float, json!(1)).unwrap(), Values::F32(vec![1.0]));
    assert_eq!(push(Dtype::Float, json!(0.5)).unwrap(), Values::F32(vec![0.5]));
    assert_eq!(push(Dtype::Double, json!(-2)).unwrap(), Values::F64(vec![-2.0]));
    assert_eq!(push(Dtype::Int64, json!(i64::MIN)).unwrap(), Values::I64(vec![i64::MIN]));
    assert_eq!(push(Dtype::Uint64, json!(u64::MAX)).unwrap(), Values::U64(vec![u64::MAX]));
    assert_eq!(push(Dtype::Int8, json!(-128)).unwrap(), Values::I32(vec![-128]));
    assert_eq!(push(Dtype::Bool, json!(true)).unwrap(), Values::Bool(vec![true]));
    assert_eq!(push(Dtype::String, json!("hé")).unwrap(), Values::Bytes(vec!["hé".as_bytes().to_vec()].into()));
}

#[test]
fn values_that_do_not_fit_are_refused() {
    for (dtype, value) in [
        (Dtype::Int32, json!(1.5)),
        (Dtype::Int32, json!(1.0)),
        (Dtype::Int32, json!(2147483648u64)),
        (Dtype::Int8, json!(128)),
        (Dtype::Uint8, json!(-1)),
        (Dtype::Uint32, json!(4294967296u64)),
        (Dtype::Int64, json!(u64::MAX)),
        (Dtype::Float, json!(1e39)),
        (Dtype::Float, json!("1")),
        (Dtype::Bool, json!(1)),
        (Dtype::String, json!(1)),
        (Dtype::Double, json!(null)),
        (Dtype::Float, json!({"b64": "AA=="})),
        (Dtype::String, json!({"b64": "not base64!"})),
        (Dtype::String, json!({"b64": 1})),
        (Dtype::Half, json!(65520.0)),
        (Dtype::Int32, json!("\u{7f}")),
        (Dtype::String, json!("\u{7f}I")),
        (Dtype::Float, json!(16_777_216)),
        (Dtype::Double, json!(9_007_199_254_740_992u64)),
    ] {
        assert!(push(dtype, value.clone()).is_err(), "{dtype:?} {value}");
    }
}

#[test]
fn messages_follow_tf_serving() {
    assert_eq!(
        push(Dtype::Int32, json!(1.5)).unwrap_err(),
        "JSON Value: 1.5 Type: Number is not of expected type: int32"
    );
    assert_eq!(
        push(Dtype::Float, json!("a")).unwrap_err(),
        "JSON Value: \"a\" Type: String is not of expected type: float"
    );
    assert_eq!(
        push(Dtype::Float, json!(16_777_216)).unwrap_err(),
        "Cannot convert JSON value: 16777216 to float without loss of precision."
    );
    assert_eq!(push(Dtype::Float, json!(16_777_215)).unwrap(), Values::F32(vec![16_777_215.0]));
}

#[test]
fn b64_nonfinite_and_half() {
    assert_eq!(push(Dtype::String, json!({"b64": "AP8"})).unwrap(), Values::Bytes(vec![vec![0, 0xff]].into()));
    assert_eq!(push(Dtype::String, json!({"b64": "AP8="})).unwrap(), Values::Bytes(vec![vec![0, 0xff]].into()));
    let Values::F64(v) = push(Dtype::Double, json!("\u{7f}")).unwrap() else { panic!() };
    assert!(v[0].is_nan());
    assert_eq!(push(Dtype::Float, json!("\u{7f}-")).unwrap(), Values::F32(vec![f32::NEG_INFINITY]));
    assert_eq!(push(Dtype::Half, json!(0.1)).unwrap(), Values::F32(vec![0.099_975_586]));
    assert_eq!(
        push(Dtype::Int32, json!("\u{7f}")).unwrap_err(),
        "JSON Value: NaN Type: Number is not of expected type: int32"
    );
    assert_eq!(encode_b64(&[0, 0xff]), "AP8=");
}

#[test]
fn error_messages_are_short_and_logs_keep_no_value() {
    let long = json!("x".repeat(10_000));
    let e = push(Dtype::Float, long.clone()).unwrap_err();
    assert!(e.len() < 140, "{e}");
    let mut out = Values::empty(Dtype::Float);
    let raw = push_json(&mut out, Dtype::Float, &json!("SSN-123-45-6789")).unwrap_err();
    assert!(tfgate_common::echo::for_client(&raw).contains("SSN-123-45-6789"));
    let logged = tfgate_common::echo::for_log(&raw);
    assert!(!logged.contains("SSN"), "{logged}");
    assert!(logged.contains("is not of expected type: float"), "{logged}");
}
