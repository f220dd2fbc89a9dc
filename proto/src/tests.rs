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
