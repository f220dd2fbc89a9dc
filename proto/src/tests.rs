//! Wire-level checks: field numbers and enum values must match TensorFlow Serving exactly, so a
//! wrong number in a .proto file fails here instead of silently breaking interoperability.

use crate::tensorflow::serving::{
    model_spec::VersionChoice, model_version_status::State, GetModelMetadataRequest, GetModelMetadataResponse,
    GetModelStatusResponse, ModelSpec, ModelVersionStatus, PredictRequest, PredictResponse, StatusProto,
};
use crate::tensorflow::{
    error::Code, tensor_shape_proto::Dim, DataType, SignatureDef, TensorInfo, TensorProto, TensorShapeProto,
};
use prost::Message;

/// One top-level field of an encoded message: its number, wire type, and either the decoded
/// varint value (wire type 0) or the raw payload bytes (other wire types).
#[derive(Debug)]
struct Field {
    num: u32,
    wire: u8,
    varint: u64,
    bytes: Vec<u8>,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// Splits an encoded message into its top-level fields (a minimal wire-format reader).
fn fields(buf: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let (num, wire) = ((key >> 3) as u32, (key & 7) as u8);
        let mut f = Field { num, wire, varint: 0, bytes: Vec::new() };
        match wire {
            0 => f.varint = read_varint(buf, &mut pos),
            1 => {
                f.bytes = buf[pos..pos + 8].to_vec();
                pos += 8;
            }
            2 => {
                let len = read_varint(buf, &mut pos) as usize;
                f.bytes = buf[pos..pos + len].to_vec();
                pos += len;
            }
            5 => {
                f.bytes = buf[pos..pos + 4].to_vec();
                pos += 4;
            }
            w => panic!("unexpected wire type {w}"),
        }
        out.push(f);
    }
    out
}

fn field(buf: &[u8], num: u32) -> Field {
    fields(buf).into_iter().find(|f| f.num == num).unwrap_or_else(|| panic!("no field {num}"))
}

fn nums(buf: &[u8]) -> Vec<u32> {
    let mut v: Vec<u32> = fields(buf).iter().map(|f| f.num).collect();
    v.sort();
    v
}

#[test]
fn tensor_proto_exact_bytes() {
    let t = TensorProto { dtype: DataType::DtFloat as i32, float_val: vec![1.0], ..Default::default() };
    // dtype: field 1 varint; float_val: field 5 packed (length-delimited).
    assert_eq!(t.encode_to_vec(), [0x08, 0x01, 0x2a, 0x04, 0x00, 0x00, 0x80, 0x3f]);
}

#[test]
fn tensor_proto_field_numbers() {
    let t = TensorProto {
        dtype: DataType::DtInt64 as i32,
        tensor_shape: Some(TensorShapeProto { dim: vec![Dim { size: -1, name: "batch".into() }], unknown_rank: true }),
        version_number: 3,
        tensor_content: vec![1, 2].into(),
        half_val: vec![1],
        float_val: vec![1.0],
        double_val: vec![1.0],
        int_val: vec![1],
        string_val: vec![b"a".to_vec()],
        scomplex_val: vec![1.0, 2.0],
        int64_val: vec![1],
        bool_val: vec![true],
        dcomplex_val: vec![1.0, 2.0],
        uint32_val: vec![1],
        uint64_val: vec![1],
        float8_val: vec![1],
    };
    let buf = t.encode_to_vec();
    assert_eq!(nums(&buf), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18]);
    assert_eq!(field(&buf, 1).varint, 9);
    // Numeric repeated fields are packed (wire type 2).
    for n in [5, 6, 7, 9, 10, 11, 12, 13, 16, 17] {
        assert_eq!(field(&buf, n).wire, 2, "field {n} must be packed");
    }
    let shape = field(&buf, 2).bytes;
    assert_eq!(nums(&shape), [2, 3]);
    let dim = field(&shape, 2).bytes;
    assert_eq!(field(&dim, 1).varint as i64, -1);
    assert_eq!(field(&dim, 2).bytes, b"batch");
}

#[test]
fn model_spec_field_numbers() {
    let spec =
        ModelSpec { name: "m".into(), signature_name: "sig".into(), version_choice: Some(VersionChoice::Version(7)) };
    let buf = spec.encode_to_vec();
    assert_eq!(nums(&buf), [1, 2, 3]);
    assert_eq!(field(&buf, 1).bytes, b"m");
    assert_eq!(field(&buf, 3).bytes, b"sig");
    // version is a google.protobuf.Int64Value: a message whose field 1 is the value.
    let v = field(&buf, 2);
    assert_eq!(v.wire, 2);
    assert_eq!(v.bytes, [0x08, 0x07]);

    let spec = ModelSpec {
        name: String::new(),
        signature_name: String::new(),
        version_choice: Some(VersionChoice::VersionLabel("canary".into())),
    };
    let buf = spec.encode_to_vec();
    assert_eq!(nums(&buf), [4]);
    assert_eq!(field(&buf, 4).bytes, b"canary");
}

#[test]
fn predict_request_and_response_field_numbers() {
    let mut req = PredictRequest {
        model_spec: Some(ModelSpec { name: "m".into(), ..Default::default() }),
        output_filter: vec!["y".into()],
        ..Default::default()
    };
    req.inputs.insert("x".into(), TensorProto { dtype: 1, ..Default::default() });
    let buf = req.encode_to_vec();
    assert_eq!(nums(&buf), [1, 2, 3]);
    assert_eq!(field(&buf, 3).bytes, b"y");
    // A map entry is a message {key = 1, value = 2}.
    let entry = field(&buf, 2).bytes;
    assert_eq!(field(&entry, 1).bytes, b"x");
    assert_eq!(field(&entry, 2).bytes, [0x08, 0x01]);

    let mut resp = PredictResponse {
        model_spec: Some(ModelSpec { name: "m".into(), ..Default::default() }),
        ..Default::default()
    };
    resp.outputs.insert("y".into(), TensorProto::default());
    let buf = resp.encode_to_vec();
    assert_eq!(nums(&buf), [1, 2]);
    assert_eq!(field(&buf, 2).bytes, [0x0a, 0x01, b'm']);
}

#[test]
fn metadata_field_numbers() {
    let req = GetModelMetadataRequest {
        model_spec: Some(ModelSpec::default()),
        metadata_field: vec!["signature_def".into()],
    };
    assert_eq!(nums(&req.encode_to_vec()), [1, 2]);

    let mut resp = GetModelMetadataResponse { model_spec: Some(ModelSpec::default()), ..Default::default() };
    resp.metadata.insert(
        "signature_def".into(),
        prost_types::Any { type_url: crate::SIGNATURE_DEF_MAP_TYPE_URL.into(), value: vec![] },
    );
    assert_eq!(nums(&resp.encode_to_vec()), [1, 2]);

    let info = TensorInfo {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(TensorShapeProto::default()),
        encoding: Some(crate::tensorflow::tensor_info::Encoding::Name("x:0".into())),
    };
    let buf = info.encode_to_vec();
    assert_eq!(nums(&buf), [1, 2, 3]);
    assert_eq!(field(&buf, 1).bytes, b"x:0");

    let mut sig = SignatureDef { method_name: "p".into(), ..Default::default() };
    sig.inputs.insert("x".into(), info.clone());
    sig.outputs.insert("y".into(), info);
    assert_eq!(nums(&sig.encode_to_vec()), [1, 2, 3]);
}

#[test]
fn status_field_numbers() {
    let resp = GetModelStatusResponse {
        model_version_status: vec![ModelVersionStatus {
            version: 2,
            state: State::Available as i32,
            status: Some(StatusProto { error_code: Code::NotFound as i32, error_message: "e".into() }),
        }],
    };
    let buf = resp.encode_to_vec();
    assert_eq!(nums(&buf), [1]);
    let mvs = field(&buf, 1).bytes;
    assert_eq!(nums(&mvs), [1, 2, 3]);
    assert_eq!(field(&mvs, 1).varint, 2);
    assert_eq!(field(&mvs, 2).varint, 30);
    let st = field(&mvs, 3).bytes;
    assert_eq!(field(&st, 1).varint, 5);
    assert_eq!(field(&st, 2).bytes, b"e");
}

#[test]
fn enum_values() {
    assert_eq!(DataType::DtFloat as i32, 1);
    assert_eq!(DataType::DtDouble as i32, 2);
    assert_eq!(DataType::DtInt32 as i32, 3);
    assert_eq!(DataType::DtString as i32, 7);
    assert_eq!(DataType::DtInt64 as i32, 9);
    assert_eq!(DataType::DtBool as i32, 10);
    assert_eq!(DataType::DtHalf as i32, 19);
    assert_eq!(DataType::DtUint64 as i32, 23);
    assert_eq!(DataType::DtFloatRef as i32, 101);
    assert_eq!(Code::Ok as i32, 0);
    assert_eq!(Code::InvalidArgument as i32, 3);
    assert_eq!(Code::NotFound as i32, 5);
    assert_eq!(Code::Unauthenticated as i32, 16);
    assert_eq!(Code::DataLoss as i32, 15);
    assert_eq!(State::Unknown as i32, 0);
    assert_eq!(State::Start as i32, 10);
    assert_eq!(State::Loading as i32, 20);
    assert_eq!(State::Available as i32, 30);
    assert_eq!(State::Unloading as i32, 40);
    assert_eq!(State::End as i32, 50);
}

#[test]
fn grpc_method_paths() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/tensorflow.serving.rs"));
    for path in [
        "/tensorflow.serving.PredictionService/Predict",
        "/tensorflow.serving.PredictionService/GetModelMetadata",
        "/tensorflow.serving.ModelService/GetModelStatus",
    ] {
        assert!(generated.contains(path), "missing method path {path}");
    }
}

#[test]
fn prediction_log_field_numbers() {
    use crate::tensorflow::serving::{prediction_log::LogType, LogMetadata, PredictLog, PredictionLog, SamplingConfig};
    let log = PredictionLog {
        log_metadata: Some(LogMetadata {
            model_spec: Some(ModelSpec { name: "m".into(), ..Default::default() }),
            sampling_config: Some(SamplingConfig { sampling_rate: 0.5, attributes: 3 }),
            saved_model_tags: vec!["serve".into()],
            timestamp_secs: 1_700_000_000,
            dc: "dc".into(),
            request_origin: "o".into(),
            request_criticality: "c".into(),
            safe_aggregation_privacy_key: 9,
        }),
        log_type: Some(LogType::PredictLog(PredictLog {
            request: Some(PredictRequest::default()),
            response: Some(PredictResponse::default()),
        })),
    }
    .encode_to_vec();
    assert_eq!(nums(&log), vec![1, 6]);
    let metadata = field(&log, 1).bytes;
    assert_eq!(nums(&metadata), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(field(&metadata, 4).varint, 1_700_000_000);
    assert_eq!(field(&metadata, 8).varint, 9);
    let sampling = field(&metadata, 2).bytes;
    assert_eq!(nums(&sampling), vec![1, 2]);
    assert_eq!(field(&sampling, 1).wire, 1, "sampling_rate is a double");
    assert_eq!(field(&sampling, 2).varint, 3);
    assert_eq!(nums(&field(&log, 6).bytes), vec![1, 2]);
}

// --- Open Inference Protocol (package `inference`) ---

/// A field key: `(number << 3) | wire type`, as one varint (every number used here is < 16).
fn key(num: u32, wire: u8) -> u8 {
    assert!(num < 16);
    (num << 3) as u8 | wire
}

/// A length-delimited field (wire type 2) with a short payload.
fn len_field(num: u32, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 128);
    let mut out = vec![key(num, 2), payload.len() as u8];
    out.extend_from_slice(payload);
    out
}

/// A varint field (wire type 0) with a value below 128.
fn small_varint_field(num: u32, v: u8) -> Vec<u8> {
    assert!(v < 128);
    vec![key(num, 0), v]
}

/// A map entry `{key = 1, value = 2}` holding an `InferParameter`.
fn param_entry(map_field: u32, name: &str, param: &[u8]) -> Vec<u8> {
    len_field(map_field, &[len_field(1, name.as_bytes()), len_field(2, param)].concat())
}

/// A `ModelInferRequest` and its encoding as `tritonclient` 2.73.0's `grpc_service_pb2` writes it
/// (`SerializeToString(deterministic=True)`): model "m" version "2" id "r1", parameter
/// priority = uint64 3, input x FP32 [2, 1] with binary_data_size = int64 8 in raw contents,
/// input s BYTES [1] with typed contents "ab", output y with binary_data = true.
const TRITONCLIENT_INFER_REQUEST: &[u8] = &[
    0x0a, 0x01, 0x6d, 0x12, 0x01, 0x32, 0x1a, 0x02, 0x72, 0x31, 0x22, 0x0e, 0x0a, 0x08, 0x70, 0x72, 0x69, 0x6f, 0x72,
    0x69, 0x74, 0x79, 0x12, 0x02, 0x28, 0x03, 0x2a, 0x25, 0x0a, 0x01, 0x78, 0x12, 0x04, 0x46, 0x50, 0x33, 0x32, 0x1a,
    0x02, 0x02, 0x01, 0x22, 0x16, 0x0a, 0x10, 0x62, 0x69, 0x6e, 0x61, 0x72, 0x79, 0x5f, 0x64, 0x61, 0x74, 0x61, 0x5f,
    0x73, 0x69, 0x7a, 0x65, 0x12, 0x02, 0x10, 0x08, 0x2a, 0x13, 0x0a, 0x01, 0x73, 0x12, 0x05, 0x42, 0x59, 0x54, 0x45,
    0x53, 0x1a, 0x01, 0x01, 0x2a, 0x04, 0x42, 0x02, 0x61, 0x62, 0x32, 0x16, 0x0a, 0x01, 0x79, 0x12, 0x11, 0x0a, 0x0b,
    0x62, 0x69, 0x6e, 0x61, 0x72, 0x79, 0x5f, 0x64, 0x61, 0x74, 0x61, 0x12, 0x02, 0x08, 0x01, 0x3a, 0x08, 0x00, 0x00,
    0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
];

/// A `ModelInferResponse` as `tritonclient` 2.73.0 writes it: model "m" version "2" id "r1",
/// parameter sequence_end = double 1.5, output y INT64 [1] in raw contents (-1), output z FP64
/// [1] with typed contents 0.5.
const TRITONCLIENT_INFER_RESPONSE: &[u8] = &[
    0x0a, 0x01, 0x6d, 0x12, 0x01, 0x32, 0x1a, 0x02, 0x72, 0x31, 0x22, 0x19, 0x0a, 0x0c, 0x73, 0x65, 0x71, 0x75, 0x65,
    0x6e, 0x63, 0x65, 0x5f, 0x65, 0x6e, 0x64, 0x12, 0x09, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f, 0x2a,
    0x0d, 0x0a, 0x01, 0x79, 0x12, 0x05, 0x49, 0x4e, 0x54, 0x36, 0x34, 0x1a, 0x01, 0x01, 0x2a, 0x18, 0x0a, 0x01, 0x7a,
    0x12, 0x04, 0x46, 0x50, 0x36, 0x34, 0x1a, 0x01, 0x01, 0x2a, 0x0a, 0x3a, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xe0, 0x3f, 0x32, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

fn param(choice: crate::inference::infer_parameter::ParameterChoice) -> crate::inference::InferParameter {
    crate::inference::InferParameter { parameter_choice: Some(choice) }
}

fn sample_infer_request() -> crate::inference::ModelInferRequest {
    use crate::inference::infer_parameter::ParameterChoice;
    use crate::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
    use crate::inference::{InferTensorContents, ModelInferRequest};
    let mut req =
        ModelInferRequest { model_name: "m".into(), model_version: "2".into(), id: "r1".into(), ..Default::default() };
    req.parameters.insert("priority".into(), param(ParameterChoice::Uint64Param(3)));
    let mut x = InferInputTensor { name: "x".into(), datatype: "FP32".into(), shape: vec![2, 1], ..Default::default() };
    x.parameters.insert("binary_data_size".into(), param(ParameterChoice::Int64Param(8)));
    let s = InferInputTensor {
        name: "s".into(),
        datatype: "BYTES".into(),
        shape: vec![1],
        contents: Some(InferTensorContents { bytes_contents: vec![b"ab".to_vec()], ..Default::default() }),
        ..Default::default()
    };
    req.inputs = vec![x, s];
    let mut y = InferRequestedOutputTensor { name: "y".into(), ..Default::default() };
    y.parameters.insert("binary_data".into(), param(ParameterChoice::BoolParam(true)));
    req.outputs = vec![y];
    req.raw_input_contents = vec![[1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat().into()];
    req
}

#[test]
fn model_infer_request_exact_bytes() {
    // The same request, written out field by field from the wire format, so that each expected
    // number stands next to its name.
    let x_input = [
        len_field(1, b"x"),                                            // name
        len_field(2, b"FP32"),                                         // datatype
        len_field(3, &[2, 1]),                                         // shape, packed int64
        param_entry(4, "binary_data_size", &small_varint_field(2, 8)), // parameters; int64_param = 2
    ]
    .concat();
    let s_input = [
        len_field(1, b"s"),
        len_field(2, b"BYTES"),
        len_field(3, &[1]),
        len_field(5, &len_field(8, b"ab")), // contents; bytes_contents = 8
    ]
    .concat();
    let y_output = [
        len_field(1, b"y"),                                       // name
        param_entry(2, "binary_data", &small_varint_field(1, 1)), // parameters = 2; bool_param = 1
    ]
    .concat();
    let raw: Vec<u8> = [1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat();
    let expected = [
        len_field(1, b"m"),                                    // model_name
        len_field(2, b"2"),                                    // model_version
        len_field(3, b"r1"),                                   // id
        param_entry(4, "priority", &small_varint_field(5, 3)), // parameters; uint64_param = 5
        len_field(5, &x_input),                                // inputs
        len_field(5, &s_input),
        len_field(6, &y_output), // outputs
        len_field(7, &raw),      // raw_input_contents
    ]
    .concat();
    assert_eq!(expected, TRITONCLIENT_INFER_REQUEST, "the hand-built bytes and tritonclient's agree");

    let req = sample_infer_request();
    assert_eq!(req.encode_to_vec(), expected);
    let decoded = crate::inference::ModelInferRequest::decode(TRITONCLIENT_INFER_REQUEST).unwrap();
    assert_eq!(decoded, req);
    // Raw contents decode as reference-counted `Bytes`, the type the batcher joins rows into.
    let raw_contents: &Vec<prost::bytes::Bytes> = &decoded.raw_input_contents;
    assert_eq!(raw_contents[0].as_ref(), raw.as_slice());
}

#[test]
fn model_infer_response_exact_bytes() {
    use crate::inference::infer_parameter::ParameterChoice;
    use crate::inference::model_infer_response::InferOutputTensor;
    use crate::inference::{InferTensorContents, ModelInferResponse};
    let mut resp =
        ModelInferResponse { model_name: "m".into(), model_version: "2".into(), id: "r1".into(), ..Default::default() };
    resp.parameters.insert("sequence_end".into(), param(ParameterChoice::DoubleParam(1.5)));
    resp.outputs = vec![
        InferOutputTensor { name: "y".into(), datatype: "INT64".into(), shape: vec![1], ..Default::default() },
        InferOutputTensor {
            name: "z".into(),
            datatype: "FP64".into(),
            shape: vec![1],
            contents: Some(InferTensorContents { fp64_contents: vec![0.5], ..Default::default() }),
            ..Default::default()
        },
    ];
    resp.raw_output_contents = vec![(-1i64).to_le_bytes().to_vec().into()];

    let double_param = [&[key(4, 1)][..], &1.5f64.to_le_bytes()].concat(); // double_param = 4, 64-bit
    let fp64_contents = len_field(7, &0.5f64.to_le_bytes()); // fp64_contents = 7, packed
    let expected = [
        len_field(1, b"m"),
        len_field(2, b"2"),
        len_field(3, b"r1"),
        param_entry(4, "sequence_end", &double_param),
        len_field(5, &[len_field(1, b"y"), len_field(2, b"INT64"), len_field(3, &[1])].concat()),
        len_field(
            5,
            &[len_field(1, b"z"), len_field(2, b"FP64"), len_field(3, &[1]), len_field(5, &fp64_contents)].concat(),
        ),
        len_field(6, &(-1i64).to_le_bytes()), // raw_output_contents
    ]
    .concat();
    assert_eq!(expected, TRITONCLIENT_INFER_RESPONSE);
    assert_eq!(resp.encode_to_vec(), expected);
    assert_eq!(ModelInferResponse::decode(TRITONCLIENT_INFER_RESPONSE).unwrap(), resp);
}

#[test]
fn infer_parameter_choices() {
    use crate::inference::infer_parameter::ParameterChoice;
    let cases: [(ParameterChoice, u32, u8); 5] = [
        (ParameterChoice::BoolParam(true), 1, 0),
        (ParameterChoice::Int64Param(-2), 2, 0),
        (ParameterChoice::StringParam("s".into()), 3, 2),
        (ParameterChoice::DoubleParam(0.25), 4, 1),
        (ParameterChoice::Uint64Param(u64::MAX), 5, 0),
    ];
    for (choice, num, wire) in cases {
        let buf = param(choice.clone()).encode_to_vec();
        let f = field(&buf, num);
        assert_eq!((nums(&buf), f.wire), (vec![num], wire), "{choice:?}");
    }
    assert_eq!(field(&param(ParameterChoice::Uint64Param(u64::MAX)).encode_to_vec(), 5).varint, u64::MAX);
    assert_eq!(field(&param(ParameterChoice::Int64Param(-2)).encode_to_vec(), 2).varint as i64, -2);
}

#[test]
fn infer_tensor_contents_field_numbers() {
    let c = crate::inference::InferTensorContents {
        bool_contents: vec![true],
        int_contents: vec![-1],
        int64_contents: vec![-1],
        uint_contents: vec![1],
        uint64_contents: vec![1],
        fp32_contents: vec![1.0],
        fp64_contents: vec![1.0],
        bytes_contents: vec![b"a".to_vec(), Vec::new()],
    };
    let buf = c.encode_to_vec();
    assert_eq!(nums(&buf), [1, 2, 3, 4, 5, 6, 7, 8, 8]);
    // Numeric repeated fields are packed; bytes are one field per element.
    for n in 1..=7 {
        assert_eq!(field(&buf, n).wire, 2, "field {n} must be packed");
    }
    assert_eq!(field(&buf, 1).bytes, [1]);
    assert_eq!(field(&buf, 6).bytes, 1.0f32.to_le_bytes());
    assert_eq!(field(&buf, 7).bytes, 1.0f64.to_le_bytes());
    assert_eq!(field(&buf, 8).bytes, b"a");
}

#[test]
fn health_and_metadata_field_numbers() {
    use crate::inference::model_metadata_response::TensorMetadata;
    use crate::inference::*;
    assert_eq!(ServerLiveRequest {}.encode_to_vec(), []);
    assert_eq!(ServerReadyRequest {}.encode_to_vec(), []);
    assert_eq!(ServerMetadataRequest {}.encode_to_vec(), []);
    assert_eq!(ServerLiveResponse { live: true }.encode_to_vec(), [key(1, 0), 1]);
    assert_eq!(ServerReadyResponse { ready: true }.encode_to_vec(), [key(1, 0), 1]);
    assert_eq!(ModelReadyResponse { ready: true }.encode_to_vec(), [key(1, 0), 1]);
    let ready = ModelReadyRequest { name: "m".into(), version: "3".into() }.encode_to_vec();
    assert_eq!(ready, [len_field(1, b"m"), len_field(2, b"3")].concat());
    let meta = ModelMetadataRequest { name: "m".into(), version: "3".into() }.encode_to_vec();
    assert_eq!(meta, ready);

    let server = ServerMetadataResponse {
        name: "tfgate".into(),
        version: "1".into(),
        extensions: vec!["binary_tensor_data".into()],
    }
    .encode_to_vec();
    assert_eq!(server, [len_field(1, b"tfgate"), len_field(2, b"1"), len_field(3, b"binary_tensor_data")].concat());

    let tensor = TensorMetadata { name: "x".into(), datatype: "FP32".into(), shape: vec![-1, 3] };
    let model = ModelMetadataResponse {
        name: "m".into(),
        versions: vec!["1".into(), "2".into()],
        platform: "tensorflow_savedmodel".into(),
        inputs: vec![tensor.clone()],
        outputs: vec![tensor.clone()],
    }
    .encode_to_vec();
    assert_eq!(nums(&model), [1, 2, 2, 3, 4, 5]);
    assert_eq!(field(&model, 3).bytes, b"tensorflow_savedmodel");
    let t = field(&model, 5).bytes;
    assert_eq!(nums(&t), [1, 2, 3]);
    assert_eq!(field(&t, 2).bytes, b"FP32");
    // shape: packed int64, -1 as a 10-byte varint.
    let shape = field(&t, 3).bytes;
    assert_eq!(shape.len(), 11);
    assert_eq!(shape[10], 3);
}

#[test]
fn inference_grpc_method_paths() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/inference.rs"));
    for method in ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"] {
        let path = format!("\"/inference.GRPCInferenceService/{method}\"");
        assert!(generated.contains(&path), "missing method path {path}");
    }
}
