use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tfgate_proto::inference::model_infer_request::InferRequestedOutputTensor;

use super::*;
use crate::faults::Faults;
use crate::models::Catalog;
use crate::service::Sim;
use crate::stats::Stats;

fn sim() -> Shared {
    Shared(Arc::new(Sim {
        catalog: RwLock::new(Catalog::builtin()),
        stats: Arc::new(Stats::default()),
        cost: None,
        faults: Faults::default(),
        tensor_content: false,
    }))
}

fn input(name: &str, datatype: &str, shape: &[i64], contents: Option<InferTensorContents>) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        parameters: HashMap::new(),
        contents,
    }
}

fn infer(model: &str, version: &str, inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        model_version: version.into(),
        id: "call-7".into(),
        parameters: HashMap::new(),
        inputs,
        outputs: Vec::new(),
        raw_input_contents: raw.into_iter().map(Bytes::from).collect(),
    }
}

fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

async fn call(sim: &Shared, request: ModelInferRequest) -> Result<ModelInferResponse, Status> {
    sim.model_infer(Request::new(request)).await.map(Response::into_inner)
}

#[tokio::test]
async fn server_health_and_metadata() {
    let sim = sim();
    assert!(sim.server_live(Request::new(ServerLiveRequest {})).await.unwrap().into_inner().live);
    assert!(sim.server_ready(Request::new(ServerReadyRequest {})).await.unwrap().into_inner().ready);
    let meta = sim.server_metadata(Request::new(ServerMetadataRequest {})).await.unwrap().into_inner();
    assert_eq!(meta.name, "tfs-sim");
    assert!(!meta.version.is_empty());
}

#[tokio::test]
async fn model_readiness_follows_the_catalog() {
    let sim = sim();
    let ready = |name: &str, version: &str| {
        let request = Request::new(ModelReadyRequest { name: name.into(), version: version.into() });
        let sim = sim.clone();
        async move { sim.model_ready(request).await.unwrap().into_inner().ready }
    };
    assert!(ready("half_plus_two", "").await);
    assert!(ready("half_plus_two", "1").await);
    assert!(ready("half_plus_two", "stable").await, "labels as versions");
    assert!(!ready("half_plus_two", "3").await);
    assert!(!ready("nope", "").await, "unknown: not ready, as Triton answers");
}

#[tokio::test]
async fn model_metadata_has_the_signature_in_v2_terms() {
    let sim = sim();
    let metadata = |name: &str, version: &str| {
        let request = Request::new(ModelMetadataRequest { name: name.into(), version: version.into() });
        let sim = sim.clone();
        async move { sim.model_metadata(request).await.map(Response::into_inner) }
    };
    let m = metadata("half_plus_two", "").await.unwrap();
    assert_eq!(
        (m.name.as_str(), m.versions.clone(), m.platform.as_str()),
        ("half_plus_two", vec!["1".to_string(), "2".to_string()], "tensorflow_savedmodel")
    );
    let tensor = |name: &str, datatype: &str, shape: &[i64]| TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
    };
    assert_eq!(m.inputs, [tensor("x", "FP32", &[-1])]);
    assert_eq!(m.outputs, [tensor("y", "FP32", &[-1])]);
    assert_eq!(metadata("half_plus_two", "1").await.unwrap().versions, ["1"]);
    assert_eq!(metadata("fixed3", "").await.unwrap().inputs, [tensor("x", "FP32", &[3])]);
    let all = metadata("all_types", "").await.unwrap();
    let datatypes: Vec<&str> = all.inputs.iter().map(|t| t.datatype.as_str()).collect();
    assert_eq!(
        datatypes,
        [
            "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "BF16", "FP32",
            "FP64", "BYTES"
        ]
    );
    let e = metadata("nope", "").await.unwrap_err();
    assert_eq!((e.code(), e.message()), (tonic::Code::NotFound, "Servable not found for request: Latest(nope)"));
    sim.0.catalog.write().unwrap().load_version("evolving", 2).unwrap();
    assert_eq!(metadata("evolving", "").await.unwrap().inputs[0].datatype, "INT64");
    assert_eq!(metadata("evolving", "1").await.unwrap().inputs[0].datatype, "FP32");
}

#[tokio::test]
async fn model_infer_computes_as_predict_does_and_answers_raw() {
    let sim = sim();
    let request = infer("half_plus_two", "1", vec![input("x", "FP32", &[3], None)], vec![le_f32(&[1.0, 2.0, 5.0])]);
    let answer = call(&sim, request).await.unwrap();
    assert_eq!(
        (answer.model_name.as_str(), answer.model_version.as_str(), answer.id.as_str()),
        ("half_plus_two", "1", "call-7")
    );
    assert_eq!(answer.outputs.len(), 1);
    let y = &answer.outputs[0];
    assert_eq!(
        (y.name.as_str(), y.datatype.as_str(), y.shape.as_slice(), y.contents.as_ref()),
        ("y", "FP32", &[3][..], None)
    );
    assert_eq!(answer.raw_output_contents, [Bytes::from(le_f32(&[2.5, 3.0, 4.5]))]);
    // Latest is version 2.
    let request = infer("half_plus_two", "", vec![input("x", "FP32", &[1], None)], vec![le_f32(&[1.0])]);
    let answer = call(&sim, request).await.unwrap();
    assert_eq!((answer.model_version.as_str(), answer.raw_output_contents[0].to_vec()), ("2", le_f32(&[3.5])));
    let stats = sim.0.stats.snapshot();
    assert_eq!((stats.predict_calls, stats.predict_items, stats.infer_calls), (2, 4, 2));
    assert_eq!(stats.batch_sizes, [(1, 1), (3, 1)].into());
}

#[tokio::test]
async fn typed_contents_in_typed_contents_out() {
    let sim = sim();
    let x = InferTensorContents { fp32_contents: vec![2.0, 4.0], ..Default::default() };
    let request = infer("half_plus_two", "1", vec![input("x", "FP32", &[2, 1], Some(x))], Vec::new());
    let answer = call(&sim, request).await.unwrap();
    assert!(answer.raw_output_contents.is_empty());
    let y = &answer.outputs[0];
    assert_eq!(y.shape, [2, 1]);
    assert_eq!(y.contents.as_ref().unwrap().fp32_contents, [3.0, 4.0]);
}

/// Three elements of every datatype, as raw contents.
fn every_datatype_raw() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let bytes = |elements: &[&[u8]]| {
        let mut out = Vec::new();
        for e in elements {
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
        out
    };
    vec![
        ("bool", "BOOL", vec![1, 0, 1]),
        ("int8", "INT8", vec![0x80, 0x7f, 0]),
        ("int16", "INT16", vec![0, 0x80, 0xff, 0x7f, 1, 0]),
        ("int32", "INT32", [i32::MIN, i32::MAX, 3].iter().flat_map(|v| v.to_le_bytes()).collect()),
        ("int64", "INT64", [i64::MIN, i64::MAX, 3].iter().flat_map(|v| v.to_le_bytes()).collect()),
        ("uint8", "UINT8", vec![0, 255, 7]),
        ("uint16", "UINT16", vec![0, 0, 0xff, 0xff, 7, 0]),
        ("uint32", "UINT32", [0, u32::MAX, 7].iter().flat_map(|v| v.to_le_bytes()).collect()),
        ("uint64", "UINT64", [0, u64::MAX, 7].iter().flat_map(|v| v.to_le_bytes()).collect()),
        ("half", "FP16", vec![0, 0x3c, 0, 0xc0, 0xff, 0x7b]),
        ("bfloat16", "BF16", vec![0xc0, 0x3f, 0, 0xc0, 0x80, 0x43]),
        ("float", "FP32", le_f32(&[1.5, -2.0, f32::MAX])),
        ("double", "FP64", [1e300, -0.5, 3.0f64].iter().flat_map(|v| v.to_le_bytes()).collect()),
        ("string", "BYTES", bytes(&[b"ab", b"", &[0, 0xff]])),
    ]
}

#[tokio::test]
async fn every_datatype_is_echoed_raw_byte_for_byte() {
    let sim = sim();
    let sent = every_datatype_raw();
    let inputs = sent.iter().map(|(name, datatype, _)| input(name, datatype, &[3], None)).collect();
    let raw = sent.iter().map(|(_, _, raw)| raw.clone()).collect();
    let answer = call(&sim, infer("all_types", "", inputs, raw)).await.unwrap();
    assert_eq!(answer.outputs.len(), 15);
    assert_eq!(answer.raw_output_contents.len(), 15);
    let outputs: HashMap<&str, (&InferOutputTensor, &Bytes)> =
        answer.outputs.iter().zip(&answer.raw_output_contents).map(|(o, r)| (o.name.as_str(), (o, r))).collect();
    for (name, datatype, raw) in &sent {
        let (output, answered) = outputs[format!("{name}_out").as_str()];
        assert_eq!((output.datatype.as_str(), output.shape.as_slice()), (*datatype, &[3][..]), "{name}");
        assert_eq!(answered.to_vec(), *raw, "{name}");
    }
    assert_eq!(outputs["string_bytes"].1.to_vec(), sent[13].2);
}

#[tokio::test]
async fn every_datatype_with_a_field_is_echoed_typed() {
    let sim = sim();
    let c = |f: fn(&mut InferTensorContents)| {
        let mut contents = InferTensorContents::default();
        f(&mut contents);
        Some(contents)
    };
    let inputs = vec![
        input("bool", "BOOL", &[2], c(|c| c.bool_contents = vec![true, false])),
        input("int8", "INT8", &[2], c(|c| c.int_contents = vec![-128, 127])),
        input("int16", "INT16", &[2], c(|c| c.int_contents = vec![-32768, 5])),
        input("int32", "INT32", &[2], c(|c| c.int_contents = vec![i32::MIN, 5])),
        input("int64", "INT64", &[2], c(|c| c.int64_contents = vec![i64::MAX, 5])),
        input("uint8", "UINT8", &[2], c(|c| c.uint_contents = vec![255, 5])),
        input("uint16", "UINT16", &[2], c(|c| c.uint_contents = vec![65535, 5])),
        input("uint32", "UINT32", &[2], c(|c| c.uint_contents = vec![u32::MAX, 5])),
        input("uint64", "UINT64", &[2], c(|c| c.uint64_contents = vec![u64::MAX, 5])),
        input("float", "FP32", &[2], c(|c| c.fp32_contents = vec![1.5, 5.0])),
        input("double", "FP64", &[2], c(|c| c.fp64_contents = vec![1e300, 5.0])),
        input("string", "BYTES", &[2], c(|c| c.bytes_contents = vec![b"a".to_vec(), vec![0xff]])),
    ];
    let sent: HashMap<String, InferTensorContents> =
        inputs.iter().map(|i| (format!("{}_out", i.name), i.contents.clone().unwrap())).collect();
    let answer = call(&sim, infer("all_types", "", inputs, Vec::new())).await.unwrap();
    assert!(answer.raw_output_contents.is_empty());
    for output in &answer.outputs {
        let expected = sent.get(&output.name).or_else(|| sent.get("string_out")).unwrap();
        assert_eq!(output.contents.as_ref(), Some(expected), "{}", output.name);
    }
}

#[test]
fn an_fp16_output_makes_every_output_raw() {
    let half = TensorProto {
        dtype: DataType::DtHalf as i32,
        tensor_shape: Some(shape_proto(&[1])),
        half_val: vec![0x3c00],
        ..Default::default()
    };
    let float = TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(shape_proto(&[2])),
        float_val: vec![1.0],
        ..Default::default()
    };
    let response =
        PredictResponse { outputs: [("h".to_string(), half), ("f".to_string(), float)].into(), model_spec: None };
    let answer = infer_response(response, String::new(), true);
    let names: Vec<&str> = answer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["f", "h"], "by name");
    assert!(answer.outputs.iter().all(|o| o.contents.is_none()));
    assert_eq!(answer.raw_output_contents, [Bytes::from(le_f32(&[1.0, 1.0])), Bytes::from_static(&[0, 0x3c])]);
}

#[tokio::test]
async fn requested_outputs_filter_the_answer() {
    let sim = sim();
    let mut request = infer("all_types", "", vec![input("string", "BYTES", &[1], None)], vec![vec![1, 0, 0, 0, b'a']]);
    request.outputs = vec![InferRequestedOutputTensor { name: "string_bytes".into(), parameters: HashMap::new() }];
    let answer = call(&sim, request).await.unwrap();
    let names: Vec<&str> = answer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["string_bytes"]);
}

#[tokio::test]
async fn bad_calls_are_refused_as_predict_refuses_them() {
    let sim = sim();
    let refused = |request: ModelInferRequest, needle: &'static str, code: tonic::Code| {
        let sim = sim.clone();
        async move {
            let e = call(&sim, request).await.unwrap_err();
            assert_eq!(e.code(), code, "{}", e.message());
            assert!(e.message().contains(needle), "{:?} lacks {needle:?}", e.message());
        }
    };
    let invalid = tonic::Code::InvalidArgument;
    let x = || input("x", "FP32", &[2], None);
    refused(infer("half_plus_two", "", vec![x()], vec![vec![0; 7]]), "tensor_content has 7 bytes", invalid).await;
    refused(infer("half_plus_two", "", vec![x(), x()], vec![vec![0; 8]]), "expected 2 raw_input_contents", invalid)
        .await;
    refused(infer("half_plus_two", "", vec![x(), x()], vec![vec![0; 8]; 2]), "'x' is given twice", invalid).await;
    let float64 = input("x", "FP64", &[1], None);
    refused(infer("half_plus_two", "", vec![float64], vec![vec![0; 8]]), "must be DT_FLOAT but DT_DOUBLE", invalid)
        .await;
    refused(
        infer("half_plus_two", "", vec![input("x", "FLOAT", &[1], None)], vec![vec![0; 4]]),
        "unsupported datatype 'FLOAT'",
        invalid,
    )
    .await;
    let typed = InferTensorContents { fp32_contents: vec![1.0], ..Default::default() };
    refused(
        infer("half_plus_two", "", vec![input("x", "FP32", &[1], Some(typed))], vec![vec![0; 4]]),
        "both raw",
        invalid,
    )
    .await;
    let halves = InferTensorContents { int_contents: vec![1], ..Default::default() };
    refused(
        infer("all_types", "", vec![input("half", "FP16", &[1], Some(halves))], Vec::new()),
        "only be raw",
        invalid,
    )
    .await;
    let s = |raw: Vec<u8>, shape: &[i64]| infer("echo_string", "", vec![input("s", "BYTES", shape, None)], vec![raw]);
    refused(s(vec![5, 0, 0, 0, b'a'], &[1]), "a BYTES element of 5 bytes, 1 remain", invalid).await;
    refused(s(vec![1, 0, 0, 0, b'a', b'b'], &[1]), "1 bytes after the last", invalid).await;
    refused(s(vec![0; 8], &[1 << 40]), "cannot hold", invalid).await;
    refused(s(vec![0; 8], &[-1]), "shape [-1]", invalid).await;
    refused(infer("nope", "", vec![x()], vec![vec![0; 8]]), "Servable not found", tonic::Code::NotFound).await;
    sim.0.faults.fail_next(14, 1);
    refused(infer("half_plus_two", "", vec![x()], vec![vec![0; 8]]), "injected failure", tonic::Code::Unavailable)
        .await;
    let stats = sim.0.stats.snapshot();
    assert_eq!((stats.predict_calls, stats.predict_errors, stats.infer_calls), (0, 13, 13));
}
