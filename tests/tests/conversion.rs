//! Conversion golden tests: TF Serving's REST JSON <-> tensors for every dtype and both formats,
//! both ways, through nginx and straight to the daemon, with the backend writing its answers in
//! typed fields and (`--tensor-content`) in packed bytes. Plus malformed bodies of every kind.

use serde_json::json;
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::golden::{COLUMNAR_REQUEST, ROW_REQUEST, UNEVEN_REQUEST};

const ALL_TYPES: &str = "/v1/models/all_types:predict";

const ROW_ANSWER: &str = concat!(
    r#"{"predictions":["#,
    r#"{"bfloat16_out":-2.5,"bool_out":true,"double_out":1e-300,"float_out":0.1,"half_out":0.5,"#,
    r#""int16_out":-32768,"int32_out":-2147483648,"int64_out":-9223372036854775808,"int8_out":-128,"#,
    r#""string_bytes":{"b64":"aMOpbGxv"},"string_out":"héllo","uint16_out":65535,"uint32_out":4294967295,"#,
    r#""uint64_out":18446744073709551615,"uint8_out":255},"#,
    r#"{"bfloat16_out":Infinity,"bool_out":false,"double_out":NaN,"float_out":-Infinity,"half_out":NaN,"#,
    r#""int16_out":32767,"int32_out":2147483647,"int64_out":9223372036854775807,"int8_out":127,"#,
    r#""string_bytes":{"b64":"AP8="},"string_out":"\u0000�","uint16_out":0,"uint32_out":0,"#,
    r#""uint64_out":0,"uint8_out":0}"#,
    r#"]}"#
);

const COLUMNAR_ANSWER: &str = concat!(
    r#"{"outputs":{"bfloat16_out":[0.75,3.0],"bool_out":[[true,false],[false,true]],"#,
    r#""double_out":[0.3,-0.3],"float_out":[[[1.0]],[[2.0]]],"half_out":[[1.5,-0.25],[65504.0,-Infinity]],"#,
    r#""int16_out":[[2],[-2]],"int32_out":[3,-3],"int64_out":[4,-4],"int8_out":[1,-1],"#,
    r#""string_bytes":[{"b64":"YQ=="},{"b64":"YmluAA=="}],"string_out":["a","bin\u0000"],"#,
    r#""uint16_out":[7,8],"uint32_out":[9,10],"uint64_out":[11,12],"uint8_out":[5,6]}}"#
);

const UNEVEN_ANSWER: &str = r#"{"outputs":{"b_out":[[true]],"f32_out":[1.5,2.5,3.5],"f64_out":[],"i32_out":[1,2],"i64_out":7,"s_bytes":[{"b64":"eA=="}],"s_out":["x"]}}"#;

fn check_goldens(sim_args: &[&str]) {
    let stack = BatchStack::start(sim_args, "");
    let nginx = stack.client();
    let daemon = stack.daemon.client();
    for (path, request, answer) in [
        (ALL_TYPES, ROW_REQUEST, ROW_ANSWER),
        (ALL_TYPES, COLUMNAR_REQUEST, COLUMNAR_ANSWER),
        ("/v1/models/echo_types:predict", UNEVEN_REQUEST, UNEVEN_ANSWER),
    ] {
        let through_nginx = nginx.post(path, request);
        assert_eq!((through_nginx.status, through_nginx.body.as_str()), (200, answer), "through nginx");
        assert_eq!(through_nginx.header("content-type"), Some("application/json"));
        let direct = daemon.post(path, &[], request);
        assert_eq!((direct.status, direct.body.as_str()), (200, answer), "straight to the daemon");
    }
}

#[test]
fn every_dtype_both_formats_from_typed_fields() {
    check_goldens(&[]);
}

#[test]
fn every_dtype_both_formats_from_tensor_content() {
    check_goldens(&["--tensor-content"]);
}

#[test]
fn several_named_inputs_and_outputs_per_row() {
    let stack = BatchStack::start(&[], "");
    let r = stack.client().post(
        "/v1/models/echo_types:predict",
        r#"{"signature_name": "serving_default", "instances": [
            {"f32": 1, "f64": 2, "i32": 3, "i64": 4, "b": true, "s": "x"},
            {"f32": 5, "f64": -2, "i32": -3, "i64": -4, "b": false, "s": {"b64": "eQ=="}}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"predictions": [
            {"b_out": true, "f32_out": 1.0, "f64_out": 2.0, "i32_out": 3, "i64_out": 4, "s_bytes": {"b64": "eA=="}, "s_out": "x"},
            {"b_out": false, "f32_out": 5.0, "f64_out": -2.0, "i32_out": -3, "i64_out": -4, "s_bytes": {"b64": "eQ=="}, "s_out": "y"}
        ]})
    );
}

#[test]
fn values_that_do_not_fit_their_dtype_are_refused() {
    let stack = BatchStack::start(&[], "");
    let client = stack.client();
    // One instance with valid values except `field`, written as raw JSON text (NaN included).
    let row = |field: &str, value: &str| {
        let fields: Vec<String> = ROW_FIELDS
            .iter()
            .map(|&(name, valid)| format!("\"{name}\": {}", if name == field { value } else { valid }))
            .collect();
        format!(r#"{{"instances": [{{{}}}]}}"#, fields.join(", "))
    };
    assert_eq!(client.post(ALL_TYPES, &row("int8", "1")).status, 200);
    for (field, value, needle) in [
        ("int8", "128", "out of range for type: int8"),
        ("uint8", "-1", "out of range for type: uint8"),
        ("uint16", "65536", "out of range for type: uint16"),
        ("int16", "1.5", "is not of expected type: int16"),
        ("uint32", "4294967296", "is not of expected type: uint32"),
        ("uint64", "-1", "is not of expected type: uint64"),
        ("int64", "9223372036854775808", "is not of expected type: int64"),
        ("half", "65520", "out of range for type: half"),
        ("float", "1e39", "to float without loss of precision"),
        ("float", "16777217", "to float without loss of precision"),
        ("bool", "1", "is not of expected type: bool"),
        ("string", "1", "is not of expected type: string"),
        ("string", r#"{"b64": "not base64"}"#, "Unable to base64 decode"),
        ("int32", "NaN", "JSON Value: NaN Type: Number is not of expected type: int32"),
        ("string", "Infinity", "is not of expected type: string"),
    ] {
        let error = client.post(ALL_TYPES, &row(field, value)).assert_json_error(400);
        assert!(error.contains(needle), "{field} = {value}: {error}");
    }
}

const ROW_FIELDS: [(&str, &str); 14] = [
    ("bool", "false"),
    ("int8", "0"),
    ("int16", "0"),
    ("int32", "0"),
    ("int64", "0"),
    ("uint8", "0"),
    ("uint16", "0"),
    ("uint32", "0"),
    ("uint64", "0"),
    ("half", "0"),
    ("bfloat16", "0"),
    ("float", "0"),
    ("double", "0"),
    ("string", "\"s\""),
];

#[test]
fn malformed_bodies_are_clear_400s_and_the_daemon_is_unharmed() {
    let stack = BatchStack::start(&[], "");
    let client = stack.client();
    let path = "/v1/models/half_plus_two/versions/1:predict";
    let deep = format!("{{\"instances\": {}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "The document is empty"),
        ("   ".into(), "The document is empty"),
        ("not json".into(), "JSON Parse error"),
        (r#"{"instances": [1.0,"#.into(), "JSON Parse error"),
        (r#"{"instances": [NaNa]}"#.into(), "JSON Parse error"),
        (deep, "JSON Parse error"),
        ("[1, 2]".into(), "Is not object"),
        (r#"{"foo": 1}"#.into(), "Missing 'inputs' or 'instances' key"),
        (r#"{"inputs": [1], "instances": [1]}"#.into(), "expecting only one of 'inputs' or 'instances'"),
        (r#"{"instances": []}"#.into(), "No values in 'instances' array"),
        (r#"{"instances": {"x": 1}}"#.into(), "Excepting 'instances' to be an list/array"),
        (r#"{"signature_name": 5, "instances": [1]}"#.into(), "'signature_name' key must be a string value"),
        (r#"{"signature_name": "nope", "instances": [1]}"#.into(), "\"nope\" not found"),
        (r#"{"instances": [[1, 2], [3]]}"#.into(), "Expecting shape [2] but got: [1]"),
        (r#"{"instances": [[1, [2]]]}"#.into(), "nested unevenly"),
        (r#"{"instances": [1, "a"]}"#.into(), "is not of expected type: float"),
        (r#"{"instances": [null]}"#.into(), "Type: Null is not of expected type: float"),
        (r#"{"instances": [1e39]}"#.into(), "without loss of precision"),
        (r#"{"instances": [1, {"x": 1}]}"#.into(), "Expecting value/list but got object at item 1"),
        (r#"{"instances": [{"y": 1}]}"#.into(), "does not have named input: y"),
        (r#"{"inputs": {"y": [1]}}"#.into(), "Missing named input: x"),
        (r#"{"inputs": [[1], {"x": 1}]}"#.into(), "unexpected JSON object"),
        (r#"{"instances": [{"b64": "AA=="}]}"#.into(), "is not of expected type: float"),
    ];
    for (body, needle) in &cases {
        let error = client.post(path, body).assert_json_error(400);
        assert!(error.contains(needle), "{body:.80}: {error}");
        assert!(error.len() < 400, "overlong message: {error}");
    }
    // Unharmed: still running, still answering.
    let r = client.post(path, r#"{"instances": [1.0]}"#);
    assert_eq!((r.status, r.json()), (200, json!({"predictions": [2.5]})));
    let bad = stack
        .daemon
        .metric("tfgate_requests_total{model=\"half_plus_two\",version=\"1\",method=\"predict\",code=\"400\"}");
    assert_eq!(bad, cases.len() as f64);
    assert_eq!(stack.sim().stats()["predict_errors"], 0, "a malformed body reached the model");
}
