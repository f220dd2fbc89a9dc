use super::*;
use crate::convert::v2_dtype::push_raw_bytes;
use crate::convert::{Blame, ConvertError, Dtype, Outputs, Tensor, Values};
use serde_json::{json, Value};
use tfgate_common::echo::{for_client, for_log, quote};

fn request(body: &str) -> Result<InferRequest, ConvertError> {
    InferBody::parse(body.as_bytes())?.into_request()
}

/// The error of a JSON body, as the client reads it.
fn error(body: &str) -> String {
    let e = request(body).expect_err(body);
    assert_eq!(e.blame, Blame::Request, "{body}");
    for_client(&e.message).into_owned()
}

fn one_input(datatype: &str, shape: &str, data: &str) -> String {
    format!(r#"{{"inputs": [{{"name": "x", "datatype": "{datatype}", "shape": {shape}, "data": {data}}}]}}"#)
}

fn binary_request(header: &str, binary: &[u8]) -> Result<InferRequest, ConvertError> {
    InferBody::parse_with_binary(header.as_bytes(), binary)?.into_request()
}

fn binary_error(header: &str, binary: &[u8]) -> String {
    let e = binary_request(header, binary).expect_err(header);
    assert_eq!(e.blame, Blame::Request, "{header}");
    for_client(&e.message).into_owned()
}

fn binary_input(name: &str, datatype: &str, shape: &str, size: usize) -> String {
    format!(
        r#"{{"name": "{name}", "datatype": "{datatype}", "shape": {shape}, "parameters": {{"binary_data_size": {size}}}}}"#
    )
}

const META: ResponseMeta<'static> = ResponseMeta { model_name: "m", model_version: "1", id: None };

fn outputs(tensors: Vec<(&str, Tensor)>) -> Outputs {
    tensors.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

fn tensor(dtype: Dtype, shape: &[usize], values: Values) -> Tensor {
    Tensor { dtype, shape: shape.to_vec(), values }
}

fn json_answer(outputs: &Outputs) -> Value {
    serde_json::from_slice(&infer_response_json(&META, outputs).unwrap()).unwrap()
}

/// Every datatype, with its extremes, in the protocol's JSON form.
const EVERY_DATATYPE: [(&str, &str, Dtype); 14] = [
    ("BOOL", "[true,false,true]", Dtype::Bool),
    ("UINT8", "[0,255,7]", Dtype::Uint8),
    ("UINT16", "[0,65535,2]", Dtype::Uint16),
    ("UINT32", "[0,4294967295,3]", Dtype::Uint32),
    ("UINT64", "[0,18446744073709551615,4]", Dtype::Uint64),
    ("INT8", "[-128,127,0]", Dtype::Int8),
    ("INT16", "[-32768,32767,1]", Dtype::Int16),
    ("INT32", "[-2147483648,2147483647,2]", Dtype::Int32),
    ("INT64", "[-9223372036854775808,9223372036854775807,3]", Dtype::Int64),
    ("FP16", "[1.5,-2.0,65504.0]", Dtype::Half),
    ("BF16", "[1.5,-2.0,0.5]", Dtype::Bfloat16),
    ("FP32", "[0.1,-2.5,3.0]", Dtype::Float),
    ("FP64", "[0.1,-1e300,3.0]", Dtype::Double),
    ("BYTES", r#"["a","é\"\\",""]"#, Dtype::String),
];

#[test]
fn v2_every_datatype_round_trips_through_json() {
    for (datatype, data, dtype) in EVERY_DATATYPE {
        let req = request(&one_input(datatype, "[3]", data)).unwrap_or_else(|e| panic!("{datatype}: {e}"));
        let x = &req.inputs["x"];
        assert_eq!((x.dtype, x.shape.as_slice(), x.values.len()), (dtype, &[3][..], 3), "{datatype}");
        let answer = json_answer(&outputs(vec![("y", x.clone())]));
        assert_eq!(answer["outputs"][0]["datatype"], datatype);
        assert_eq!(answer["outputs"][0]["shape"], json!([3]));
        let sent: Value = serde_json::from_str(data).unwrap();
        assert_eq!(answer["outputs"][0]["data"], sent, "{datatype}");
    }
    let req = request(&one_input("INT64", "[2]", "[-9223372036854775808,9223372036854775807]")).unwrap();
    assert_eq!(req.inputs["x"].values, Values::I64(vec![i64::MIN, i64::MAX]));
    let req = request(&one_input("BYTES", "[2]", r#"["a\u0000b","é"]"#)).unwrap();
    assert_eq!(req.inputs["x"].values, Values::Bytes(vec![b"a\0b".to_vec(), "é".as_bytes().to_vec()].into()));
}

#[test]
fn v2_every_datatype_round_trips_through_binary() {
    for (datatype, data, _) in EVERY_DATATYPE {
        let x = request(&one_input(datatype, "[3]", data)).unwrap().inputs.remove("x").unwrap();
        let wanted = OutputRequest { requested: None, binary_data_output: true };
        let answer = infer_response(&META, &outputs(vec![("y", x.clone())]), &wanted).unwrap();
        let header_len = answer.header_len.expect("binary");
        let (header, binary) = answer.body.split_at(header_len);
        let header: Value = serde_json::from_slice(header).unwrap();
        let size = header["outputs"][0]["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        assert_eq!(size, binary.len(), "{datatype}");
        assert!(header["outputs"][0].get("data").is_none());
        // Fed back as a binary input: the same tensor.
        let body = format!(r#"{{"inputs": [{}]}}"#, binary_input("x", datatype, "[3]", size));
        let back = binary_request(&body, binary).unwrap_or_else(|e| panic!("{datatype}: {e}"));
        assert_eq!(back.inputs["x"], x, "{datatype}");
    }
}

#[test]
fn v2_binary_layout_is_little_endian_and_length_prefixed() {
    let out = outputs(vec![
        ("a", tensor(Dtype::Int16, &[2], Values::I32(vec![1, -2]))),
        ("b", tensor(Dtype::String, &[2], Values::Bytes(vec![b"hi".to_vec(), vec![0xff]].into()))),
        ("c", tensor(Dtype::Bool, &[2], Values::Bool(vec![true, false]))),
        ("d", tensor(Dtype::Half, &[1], Values::F32(vec![1.0]))),
    ]);
    let wanted = OutputRequest { requested: None, binary_data_output: true };
    let answer = infer_response(&META, &out, &wanted).unwrap();
    let binary = &answer.body[answer.header_len.unwrap()..];
    let expected: &[u8] = &[1, 0, 0xfe, 0xff, 2, 0, 0, 0, b'h', b'i', 1, 0, 0, 0, 0xff, 1, 0, 0x00, 0x3c];
    assert_eq!(binary, expected);
}

#[test]
fn v2_nested_and_flat_data() {
    let flat = request(&one_input("FP32", "[2,3]", "[1,2,3,4,5,6]")).unwrap();
    let nested = request(&one_input("FP32", "[2,3]", "[[1,2,3],[4,5,6]]")).unwrap();
    assert_eq!(flat, nested);
    assert_eq!(flat.inputs["x"].shape, vec![2, 3]);
    assert_eq!(flat.inputs["x"].values, Values::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    // A scalar: shape [], the value alone or in a list.
    for data in ["7", "[7]"] {
        let scalar = request(&one_input("INT32", "[]", data)).unwrap();
        assert_eq!(
            (scalar.inputs["x"].shape.clone(), scalar.inputs["x"].values.clone()),
            (vec![], Values::I32(vec![7]))
        );
    }
    // Empty tensors.
    let empty = request(&one_input("FP32", "[2,0]", "[]")).unwrap();
    assert_eq!((empty.inputs["x"].shape.clone(), empty.inputs["x"].values.len()), (vec![2, 0], 0));
    assert!(request(&one_input("FP32", "[2,0]", "[[],[]]")).is_ok());
    // Other nestings of the right count, and ragged lists, are refused.
    assert_eq!(
        error(&one_input("FP32", "[2,3]", "[[1,2],[3,4],[5,6]]")),
        "input 'x': 'data' is nested as [3,2]: expected a flat list or lists nested as the shape [2,3]"
    );
    assert_eq!(
        error(&one_input("FP32", "[1]", "7")),
        "input 'x': 'data' is nested as []: expected a flat list or lists nested as the shape [1]"
    );
    assert!(error(&one_input("FP32", "[2,2]", "[[1,2],[3],[4]]")).starts_with("input 'x': lists are ragged"));
}

#[test]
fn v2_shape_and_count_mismatches() {
    // A comma inside a string passes the outline's bound; the count is still checked.
    assert_eq!(
        error(&one_input("BYTES", "[2,2]", r#"["a,b","c","d"]"#)),
        "input 'x': 'data' holds 3 elements, but shape [2,2] has 4"
    );
    assert_eq!(error(&one_input("FP32", "[2]", "[1,2,3]")), "input 'x': 'data' holds 3 elements, but shape [2] has 2");
    assert_eq!(
        error(&one_input("FP32", "[5]", "[1,2,3]")),
        "input 'x': shape [5] has 5 elements, but its 'data' holds at most 3",
        "refused before parsing"
    );
    assert_eq!(error(&one_input("FP32", "[-1]", "[1]")), "input 'x': shape dimension -1 is not a non-negative integer");
    assert_eq!(
        error(&one_input("FP32", "[1.5]", "[1]")),
        "input 'x': shape dimension 1.5 is not a non-negative integer"
    );
    assert_eq!(
        error(&one_input("FP32", "[\"2\"]", "[1]")),
        "input 'x': shape dimension \"2\" is not a non-negative integer"
    );
    assert_eq!(error(&one_input("FP32", "3", "[1]")), "input 'x': 'shape' must be a list of dimensions, not 3");
    let deep = format!("[{}]", vec!["1"; MAX_RANK + 1].join(","));
    assert_eq!(error(&one_input("FP32", &deep, "[1]")), "input 'x': 'shape' has more than 254 dimensions");
    let at_limit = format!("[{}]", vec!["1"; MAX_RANK].join(","));
    assert_eq!(request(&one_input("FP32", &at_limit, "[1]")).unwrap().inputs["x"].shape.len(), MAX_RANK);
}

#[test]
fn v2_huge_shapes_are_refused_before_allocating() {
    // Beyond any tensor, and beyond what the data can hold: errors from the outline alone.
    let e = InferBody::parse(one_input("FP32", "[1000000000000]", "[1]").as_bytes()).unwrap_err();
    assert!(for_client(&e.message).contains("holds more than 134217728 elements"), "{}", e.message);
    assert_eq!(e.blame, Blame::Request);
    assert!(InferBody::parse(one_input("FP32", "[18446744073709551615, 0]", "[]").as_bytes()).is_err());
    let e = InferBody::parse(one_input("FP64", "[67108864]", "[1]").as_bytes()).unwrap_err();
    assert_eq!(
        for_client(&e.message),
        "input 'x': shape [67108864] has 67108864 elements, but its 'data' holds at most 1"
    );
    // Binary: the part must be exactly the shape's bytes, whatever the body holds.
    let header = format!(r#"{{"inputs": [{}]}}"#, binary_input("x", "FP32", "[100000000]", 4));
    assert!(binary_error(&header, &[0; 4]).contains("takes 400000000 bytes"));
    let header = format!(r#"{{"inputs": [{}]}}"#, binary_input("x", "BYTES", "[100000000]", 8));
    assert!(binary_error(&header, &[0; 8]).contains("too small for the 100000000 elements"));
    // The bound the caller charges comes before the tensors, and covers them.
    let text = one_input("INT8", "[2,2]", "[[1,2],[3,4]]");
    let body = InferBody::parse(text.as_bytes()).unwrap();
    assert_eq!(body.tensor_bytes(), 4 * 4, "int8 is held as i32");
    let built = body.into_request().unwrap();
    assert!(built.inputs["x"].values.heap_bytes() <= 16);
    let text = one_input("BYTES", "[2]", r#"["ab","c"]"#);
    let body = InferBody::parse(text.as_bytes()).unwrap();
    let bound = body.tensor_bytes();
    assert!(body.into_request().unwrap().inputs["x"].values.heap_bytes() <= bound);
    let header = format!(r#"{{"inputs": [{}]}}"#, binary_input("x", "UINT16", "[3]", 6));
    assert_eq!(InferBody::parse_with_binary(header.as_bytes(), &[0; 6]).unwrap().tensor_bytes(), 12);
}

#[test]
fn v2_out_of_range_integers() {
    for (datatype, value) in [
        ("INT8", "128"),
        ("INT8", "-129"),
        ("UINT8", "256"),
        ("UINT8", "-1"),
        ("INT16", "32768"),
        ("UINT16", "65536"),
        ("INT32", "2147483648"),
        ("UINT32", "4294967296"),
        ("UINT32", "-1"),
        ("INT64", "9223372036854775808"),
        ("UINT64", "-1"),
        ("UINT64", "18446744073709551616"),
        ("INT32", "1.5"),
        ("FP16", "70000"),
        ("FP32", "1e39"),
    ] {
        let e = error(&one_input(datatype, "[1]", &format!("[{value}]")));
        assert!(e.starts_with("input 'x': "), "{datatype} {value}: {e}");
        assert!(e.ends_with(&format!("(datatype {datatype})")), "{datatype} {value}: {e}");
    }
    assert!(error(&one_input("UINT8", "[1]", "[256]")).contains("JSON Value: 256 is out of range for type: uint8"));
}

#[test]
fn v2_wrong_json_types() {
    for (datatype, value) in [
        ("BOOL", "1"),
        ("BOOL", "\"true\""),
        ("INT32", "\"1\""),
        ("INT32", "true"),
        ("FP32", "true"),
        ("FP32", "null"),
        ("FP32", "\"1.5\""),
        ("BYTES", "1"),
        ("BYTES", "true"),
        ("BYTES", "NaN"),
        ("INT64", "NaN"),
    ] {
        let e = error(&one_input(datatype, "[1]", &format!("[{value}]")));
        assert!(e.contains("is not of expected type"), "{datatype} {value}: {e}");
    }
    // TF Serving's {"b64": ...} is no v2 element.
    assert_eq!(
        error(&one_input("BYTES", "[1]", r#"[{"b64": "aGk="}]"#)),
        "input 'x': BYTES elements must be JSON strings, not objects"
    );
    assert!(request(&one_input("BYTES", "[1]", r#"["{not an object}"]"#)).is_ok());
    assert!(error(&one_input("FP32", "[1]", r#"[{"a": 1}]"#)).contains("unexpected JSON object inside a list"));
}

#[test]
fn v2_nan_and_infinity() {
    let req = request(&one_input("FP32", "[5]", "[NaN, Infinity, -Infinity, Inf, -Inf]")).unwrap();
    let Values::F32(v) = &req.inputs["x"].values else { panic!() };
    assert!(v[0].is_nan());
    assert_eq!(&v[1..], [f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY, f32::NEG_INFINITY]);
    let req = request(&one_input("FP64", "[1]", "[NaN]")).unwrap();
    let body = infer_response_json(&META, &outputs(vec![("y", req.inputs["x"].clone())])).unwrap();
    assert!(String::from_utf8(body).unwrap().contains(r#""data":[NaN]"#));
    let out = outputs(vec![("y", tensor(Dtype::Float, &[3], Values::F32(vec![f32::NAN, f32::INFINITY, -0.5])))]);
    let body = String::from_utf8(infer_response_json(&META, &out).unwrap()).unwrap();
    assert!(body.contains(r#""data":[NaN,Infinity,-0.5]"#), "{body}");
    // A NaN token is a number: not a string, for BYTES or for a name.
    assert!(error(r#"{"id": NaN, "inputs": []}"#).contains("'id' must be a string"));
    assert_eq!(
        error(r#"{"inputs": [{"name": NaN, "datatype": "FP32", "shape": [1], "data": [1]}]}"#),
        "inputs[0]: 'name' must be a string"
    );
}

#[test]
fn v2_bytes_in_json_and_binary() {
    let req = request(&one_input("BYTES", "[2,1]", r#"[["héllo"],[""]]"#)).unwrap();
    assert_eq!(req.inputs["x"].values, Values::Bytes(vec!["héllo".as_bytes().to_vec(), vec![]].into()));
    // Binary BYTES carry any bytes.
    let mut raw = Vec::new();
    push_raw_bytes(&mut raw, &[0xff, 0x00, 0xfe], Blame::Request).unwrap();
    push_raw_bytes(&mut raw, b"ok", Blame::Request).unwrap();
    let header = format!(r#"{{"inputs": [{}]}}"#, binary_input("x", "BYTES", "[2]", raw.len()));
    let x = binary_request(&header, &raw).unwrap().inputs.remove("x").unwrap();
    assert_eq!(x.values, Values::Bytes(vec![vec![0xff, 0x00, 0xfe], b"ok".to_vec()].into()));
    // Not UTF-8: an error in JSON (never altered bytes), fine as binary data.
    let out = outputs(vec![("y", x)]);
    let e = infer_response(&META, &out, &OutputRequest::default()).unwrap_err();
    assert_eq!(e.blame, Blame::Request);
    assert_eq!(
        for_client(&e.message),
        "output 'y' element 0 is not UTF-8, which JSON cannot carry: ask for it with \"binary_data\": true"
    );
    let wanted = OutputRequest {
        requested: Some(vec![RequestedOutput { name: "y".into(), binary_data: Some(true) }]),
        binary_data_output: false,
    };
    let answer = infer_response(&META, &out, &wanted).unwrap();
    assert_eq!(&answer.body[answer.header_len.unwrap()..], &raw[..]);
    // A JSON document that is not UTF-8, or a lone surrogate, cannot carry bytes.
    let mut body = one_input("BYTES", "[1]", r#"["ab"]"#).into_bytes();
    let quote_at = body.windows(4).position(|w| w == b"\"ab\"").unwrap() + 1;
    body[quote_at] = 0xff;
    assert!(InferBody::parse(&body).unwrap_err().message.contains("not UTF-8"));
    assert!(error(&one_input("BYTES", "[1]", r#"["\ud800"]"#)).contains("JSON Parse error"));
}

#[test]
fn v2_binary_happy_path_mixed_with_json() {
    let floats: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut strings = Vec::new();
    push_raw_bytes(&mut strings, b"cat", Blame::Request).unwrap();
    let flags = [1u8, 0, 1];
    let header = format!(
        r#"{{"id": "req-1", "parameters": {{"binary_data_output": true, "other": [1]}}, "inputs": [{}, {}, {{"name": "j", "datatype": "INT64", "shape": [2], "data": [1, 2]}}, {}], "outputs": [{{"name": "y", "parameters": {{"binary_data": false}}}}, {{"name": "z"}}]}}"#,
        binary_input("f", "FP32", "[2,2]", floats.len()),
        binary_input("s", "BYTES", "[1]", strings.len()),
        binary_input("b", "BOOL", "[3]", flags.len()),
    );
    let binary = [&floats[..], &strings[..], &flags[..]].concat();
    let req = binary_request(&header, &binary).unwrap();
    assert_eq!(req.id.as_deref(), Some("req-1"));
    assert_eq!(req.inputs.len(), 4);
    assert_eq!(req.inputs["f"], tensor(Dtype::Float, &[2, 2], Values::F32(vec![1.5, -2.0, 0.25, 8.0])));
    assert_eq!(req.inputs["s"], tensor(Dtype::String, &[1], Values::Bytes(vec![b"cat".to_vec()].into())));
    assert_eq!(req.inputs["b"], tensor(Dtype::Bool, &[3], Values::Bool(vec![true, false, true])));
    assert_eq!(req.inputs["j"], tensor(Dtype::Int64, &[2], Values::I64(vec![1, 2])));
    assert_eq!(
        req.outputs,
        OutputRequest {
            requested: Some(vec![
                RequestedOutput { name: "y".into(), binary_data: Some(false) },
                RequestedOutput { name: "z".into(), binary_data: None },
            ]),
            binary_data_output: true,
        }
    );
    assert_eq!(req.outputs.names().unwrap().collect::<Vec<_>>(), ["y", "z"]);
    // Split from one body by the header's value.
    let body = [header.as_bytes(), &binary].concat();
    let (json, rest) = split_binary_body(&body, header.len().to_string().as_bytes()).unwrap();
    assert_eq!(InferBody::parse_with_binary(json, rest).unwrap().into_request().unwrap(), req);
    // A binary body whose inputs are all JSON has no binary bytes.
    let header = one_input("FP32", "[1]", "[1]");
    assert!(binary_request(&header, &[]).is_ok());
}

#[test]
fn v2_binary_size_mismatches() {
    let input = |size| format!(r#"{{"inputs": [{}]}}"#, binary_input("x", "FP32", "[2]", size));
    // The part against the shape.
    assert_eq!(
        binary_error(&input(7), &[0; 7]),
        "input 'x': binary_data_size is 7, but shape [2] of FP32 takes 8 bytes"
    );
    assert_eq!(
        binary_error(&input(9), &[0; 9]),
        "input 'x': binary_data_size is 9, but shape [2] of FP32 takes 8 bytes"
    );
    // The parts against the bytes after the JSON.
    assert_eq!(
        binary_error(&input(8), &[0; 7]),
        "input 'x': binary_data_size is 8, but only 7 bytes of binary data are left for it"
    );
    assert_eq!(
        binary_error(&input(8), &[0; 9]),
        "the inputs' binary_data_size add up to 8 bytes, but 9 bytes follow the JSON header"
    );
    let two = format!(
        r#"{{"inputs": [{}, {}]}}"#,
        binary_input("a", "INT32", "[1]", 4),
        binary_input("b", "INT32", "[1]", 4)
    );
    assert_eq!(
        binary_error(&two, &[0; 7]),
        "input 'b': binary_data_size is 4, but only 3 bytes of binary data are left for it"
    );
    assert!(binary_error(&two, &[0; 12]).contains("add up to 8 bytes, but 12 bytes follow"));
    assert!(binary_request(&two, &[1, 0, 0, 0, 2, 0, 0, 0]).is_ok());
    let one = one_input("FP32", "[1]", "[1]");
    assert!(binary_error(&one, &[0]).contains("add up to 0 bytes, but 1 bytes follow"));
    // BYTES parts: each length within the part, nothing after the last element.
    let bytes_input = |size| format!(r#"{{"inputs": [{}]}}"#, binary_input("s", "BYTES", "[2]", size));
    assert_eq!(
        binary_error(&bytes_input(7), &[0; 7]),
        "input 's': binary_data_size is 7, too small for the 2 elements of shape [2] (each needs a 4-byte length)"
    );
    let declares_too_much = [1, 0, 0, 0, b'a', 9, 0, 0, 0, b'b'];
    assert_eq!(
        binary_error(&bytes_input(10), &declares_too_much),
        "input 's': BYTES element 1 of 2 declares 9 bytes, 1 remain in the contents"
    );
    let left_over = [0, 0, 0, 0, 0, 0, 0, 0, b'x'];
    assert_eq!(
        binary_error(&bytes_input(9), &left_over),
        "input 's': BYTES contents have 1 bytes left after 2 elements"
    );
    // binary_data_size without binary data, with data, or not a size.
    assert_eq!(
        error(&input(8)),
        "input 'x': has a binary_data_size parameter, but the request has no binary data (Inference-Header-Content-Length)"
    );
    let both = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "parameters": {"binary_data_size": 4}}]}"#;
    assert_eq!(binary_error(both, &[0; 4]), "input 'x': has both 'data' and a binary_data_size parameter");
    for bad in ["-4", "4.5", "\"4\"", "true"] {
        let header = format!(
            r#"{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {{"binary_data_size": {bad}}}}}]}}"#
        );
        assert_eq!(
            binary_error(&header, &[0; 4]),
            format!("input 'x': parameter binary_data_size must be a non-negative integer, not {bad}")
        );
    }
    // The header's length.
    assert_eq!(split_binary_body(b"{}xy", b"2").unwrap(), (&b"{}"[..], &b"xy"[..]));
    assert!(for_client(&split_binary_body(b"{}", b"3").unwrap_err().message).contains("is 3, but the body has 2 bytes"));
    for bad in [&b""[..], b"-1", b"1e2", b" 2", b"abc", b"99999999999999999999999"] {
        assert!(split_binary_body(b"{}", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn v2_unknown_datatype_and_duplicates() {
    assert_eq!(
        error(&one_input("FLOAT32", "[1]", "[1]")),
        "input 'x': unsupported datatype 'FLOAT32': expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, \
         INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES"
    );
    assert!(error(&one_input("fp32", "[1]", "[1]")).contains("unsupported datatype 'fp32'"));
    let twice = r#"{"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},
        {"name": "x", "datatype": "INT32", "shape": [1], "data": [1]}]}"#;
    assert_eq!(error(twice), "input 'x' is given more than once");
    let outputs_twice = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
        "outputs": [{"name": "y"}, {"name": "y", "parameters": {"binary_data": true}}]}"#;
    assert_eq!(error(outputs_twice), "output 'y': is requested more than once");
    assert!(error(r#"{"inputs": [{"name": "x", "name": "z", "datatype": "FP32", "shape": [1], "data": [1]}]}"#)
        .contains("duplicate field `name`"));
}

#[test]
fn v2_missing_and_malformed_fields() {
    let cases = [
        ("", "JSON Parse error: The document is empty"),
        ("[]", "the inference request must be a JSON object"),
        ("{\"inputs\": [", "JSON Parse error: EOF while parsing a list at line 1 column 12"),
        ("{}", "missing 'inputs'"),
        (r#"{"inputs": null}"#, "missing 'inputs'"),
        (r#"{"inputs": {}}"#, "'inputs' must be a list"),
        (r#"{"inputs": []}"#, "'inputs' must list at least one input"),
        (r#"{"inputs": [1]}"#, "inputs[0] must be a JSON object"),
        (r#"{"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}"#, "inputs[0] has no 'name'"),
        (
            r#"{"inputs": [{"name": 3, "datatype": "FP32", "shape": [1], "data": [1]}]}"#,
            "inputs[0]: 'name' must be a string",
        ),
        (r#"{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}"#, "input 'x': missing 'datatype'"),
        (
            r#"{"inputs": [{"name": "x", "datatype": 1, "shape": [1], "data": [1]}]}"#,
            "input 'x': 'datatype' must be a string",
        ),
        (r#"{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}"#, "input 'x': missing 'shape'"),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}"#,
            "input 'x': missing 'data' (or a binary_data_size parameter)",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": null}]}"#,
            "input 'x': missing 'data' (or a binary_data_size parameter)",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "parameters": []}]}"#,
            "input 'x': 'parameters' must be a JSON object",
        ),
        (r#"{"id": 5, "inputs": []}"#, "'id' must be a string"),
        (r#"{"parameters": 1, "inputs": []}"#, "'parameters' must be a JSON object"),
        (
            r#"{"parameters": {"binary_data_output": 1}, "inputs": []}"#,
            "parameter binary_data_output must be true or false",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": {}}"#,
            "'outputs' must be a list",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{}]}"#,
            "outputs[0] has no 'name'",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{"name": "y", "parameters": {"binary_data": "yes"}}]}"#,
            "output 'y': parameter binary_data must be true or false",
        ),
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{"name": "y", "parameters": {"classification": 3}}]}"#,
            "output 'y': the classification extension is not supported",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(error(body), expected, "{body}");
    }
    // Optional members may be null, and unknown ones are ignored.
    let req = request(
        r#"{"id": null, "parameters": null, "outputs": null, "extra": {"a": 1},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "parameters": {"content_type": "np"}}]}"#,
    )
    .unwrap();
    assert_eq!((req.id, req.outputs), (None, OutputRequest::default()));
}

#[test]
fn v2_requested_outputs_filter_and_form() {
    let out = outputs(vec![
        ("a", tensor(Dtype::Int32, &[2], Values::I32(vec![1, 2]))),
        ("b", tensor(Dtype::Float, &[1], Values::F32(vec![0.5]))),
        ("c", tensor(Dtype::Bool, &[1], Values::Bool(vec![true]))),
    ]);
    // All outputs, in name order, as JSON.
    let all = json_answer(&out);
    assert_eq!(
        all,
        json!({"model_name": "m", "model_version": "1", "outputs": [
            {"name": "a", "datatype": "INT32", "shape": [2], "data": [1, 2]},
            {"name": "b", "datatype": "FP32", "shape": [1], "data": [0.5]},
            {"name": "c", "datatype": "BOOL", "shape": [1], "data": [true]},
        ]})
    );
    // Those asked, in the asked order, each in its form; binary_data_output for the others.
    let body = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
        "parameters": {"binary_data_output": true},
        "outputs": [{"name": "c", "parameters": {"binary_data": false}}, {"name": "a"}]}"#;
    let wanted = request(body).unwrap().outputs;
    let meta = ResponseMeta { model_name: "m\"odel", model_version: "7", id: Some("id-\n1") };
    let answer = infer_response(&meta, &out, &wanted).unwrap();
    let header_len = answer.header_len.unwrap();
    let header: Value = serde_json::from_slice(&answer.body[..header_len]).unwrap();
    assert_eq!(
        header,
        json!({"model_name": "m\"odel", "model_version": "7", "id": "id-\n1", "outputs": [
            {"name": "c", "datatype": "BOOL", "shape": [1], "data": [true]},
            {"name": "a", "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": 8}},
        ]})
    );
    assert_eq!(&answer.body[header_len..], [1, 0, 0, 0, 2, 0, 0, 0]);
    // No binary output: plain JSON, no header length.
    let json_only = OutputRequest {
        requested: Some(vec![RequestedOutput { name: "b".into(), binary_data: None }]),
        binary_data_output: false,
    };
    let answer = infer_response(&META, &out, &json_only).unwrap();
    assert_eq!(answer.header_len, None);
    assert_eq!(
        serde_json::from_slice::<Value>(&answer.body).unwrap()["outputs"],
        json!([{"name": "b", "datatype": "FP32", "shape": [1], "data": [0.5]}])
    );
    // An empty list asks for every output.
    let body = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": []}"#;
    assert_eq!(request(body).unwrap().outputs.requested, None);
    // An output missing from the model's answer (a requested output was checked against the
    // model's signature before the call was batched): the backend's fault.
    let unknown = OutputRequest {
        requested: Some(vec![RequestedOutput { name: "zz".into(), binary_data: None }]),
        binary_data_output: false,
    };
    let e = infer_response(&META, &out, &unknown).unwrap_err();
    assert_eq!((e.blame, for_client(&e.message).as_ref()), (Blame::Backend, "the model answered no output 'zz'"));
    // Outputs that do not hold their shape are the backend's fault.
    let broken = outputs(vec![("y", tensor(Dtype::Float, &[3], Values::F32(vec![1.0])))]);
    let e = infer_response(&META, &broken, &OutputRequest::default()).unwrap_err();
    assert_eq!((e.blame, e.message.as_str()), (Blame::Backend, "output y has shape [3] but 1 values"));
    assert_eq!(infer_response(&META, &Outputs::new(), &OutputRequest::default()).unwrap_err().blame, Blame::Backend);
}

#[test]
fn v2_nested_outputs_are_written_flat() {
    let out = outputs(vec![("y", tensor(Dtype::Int64, &[2, 2], Values::I64(vec![1, 2, 3, 4])))]);
    let body = String::from_utf8(infer_response_json(&META, &out).unwrap()).unwrap();
    assert_eq!(
        body,
        r#"{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"INT64","shape":[2,2],"data":[1,2,3,4]}]}"#
    );
    let scalar = outputs(vec![("s", tensor(Dtype::Double, &[], Values::F64(vec![2.5])))]);
    assert!(String::from_utf8(infer_response_json(&META, &scalar).unwrap())
        .unwrap()
        .contains(r#""shape":[],"data":[2.5]"#));
}

#[test]
fn v2_errors_never_echo_request_values_whole() {
    let secret = format!("SECRET-{}", "A".repeat(10_000));
    let bodies = [
        one_input(&secret, "[1]", "[1]"),
        one_input("FP32", "[1]", &format!("[\"{secret}\"]")),
        one_input("BOOL", "[1]", &format!("[\"{secret}\"]")),
        one_input("FP32", &format!("[\"{secret}\"]"), "[1]"),
        format!(r#"{{"inputs": [{{"name": "{secret}", "datatype": "FP32", "shape": [2], "data": [1]}}]}}"#),
        format!(
            r#"{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {{"binary_data_size": "{secret}"}}}}]}}"#
        ),
    ];
    for body in bodies {
        let e = InferBody::parse(body.as_bytes()).and_then(InferBody::into_request).unwrap_err();
        let client = for_client(&e.message);
        assert!(client.len() < 400, "{} bytes: {}", client.len(), &client[..200]);
        let logged = for_log(&e.message);
        assert!(!logged.contains("SECRET"), "{logged}");
    }
}

#[test]
fn v2_error_body() {
    let e = ConvertError::request(format!("input '{}': bad \"thing\"", quote(&"n".repeat(500))));
    let body: Value = serde_json::from_slice(&error_body(&e.message)).unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with(&format!("input '{}...': bad \"thing\"", "n".repeat(64))), "{message}");
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_eq!(error_body("plain"), br#"{"error":"plain"}"#);
}

#[test]
fn v2_lists_and_ids_are_bounded_before_they_are_held() {
    let input = r#"{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}"#;
    let many_outputs = format!(r#"{{"inputs": [{input}], "outputs": [{}]}}"#, vec![r#"{"name": "y"}"#; 1025].join(","));
    let e = request(&many_outputs).unwrap_err();
    assert!(e.message.contains("more than 1024 entries"), "{}", e.message);
    let many_inputs = format!(r#"{{"inputs": [{}]}}"#, vec!["{}"; 1025].join(","));
    assert!(request(&many_inputs).unwrap_err().message.contains("more than 1024 entries"));
    let long_id = format!(r#"{{"id": "{}", "inputs": [{input}]}}"#, "i".repeat(1025));
    assert_eq!(request(&long_id).unwrap_err().message, "'id' is longer than 1024 bytes");
    let ok_id = format!(r#"{{"id": "{}", "inputs": [{input}]}}"#, "i".repeat(1024));
    assert!(request(&ok_id).is_ok());
}
