//! TensorProtos as the gRPC tests write and read them, and the same tensors as the Open
//! Inference Protocol's inputs.

use serde_json::{json, Value};
use tfgate_proto::inference::model_infer_request::InferInputTensor;
use tfgate_proto::inference::ModelInferRequest;
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{DataType, TensorProto, TensorShapeProto};

/// A DT_FLOAT vector in the typed `float_val` field.
pub fn floats(values: &[f32]) -> TensorProto {
    TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: vec![Dim { size: values.len() as i64, name: String::new() }],
            unknown_rank: false,
        }),
        float_val: values.to_vec(),
        ..Default::default()
    }
}

/// The values of a DT_FLOAT tensor, typed or packed in `tensor_content`.
pub fn float_values(t: &TensorProto) -> Vec<f32> {
    if t.tensor_content.is_empty() {
        return t.float_val.clone();
    }
    t.tensor_content.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A v2 input with the tensor's name, datatype, shape and elements: JSON `data`, and raw
/// contents (little-endian; BYTES length-prefixed).
pub struct V2Input {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
    pub data: Value,
    pub raw: Vec<u8>,
}

/// The same tensor as a v2 input (DT_STRING as BYTES, DT_FLOAT as FP32).
pub fn v2_input((name, tensor): &(&'static str, TensorProto)) -> V2Input {
    let shape = tensor.tensor_shape.as_ref().map(|s| s.dim.iter().map(|d| d.size).collect()).unwrap_or_default();
    if tensor.dtype == DataType::DtString as i32 {
        let data = tensor.string_val.iter().map(|s| Value::from(String::from_utf8_lossy(s))).collect();
        let mut raw = Vec::new();
        for s in &tensor.string_val {
            raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
            raw.extend_from_slice(s);
        }
        return V2Input { name, datatype: "BYTES", shape, data, raw };
    }
    let values = float_values(tensor);
    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    V2Input { name, datatype: "FP32", shape, data: json!(values), raw }
}

/// A v2 REST inference body of one input, its elements in JSON `data`.
pub fn v2_json(input: &V2Input) -> String {
    json!({"inputs": [{"name": input.name, "datatype": input.datatype, "shape": input.shape, "data": input.data}]})
        .to_string()
}

/// A ModelInferRequest of one input, its elements in `raw_input_contents`.
pub fn v2_message(model: &str, input: &V2Input) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.to_string(),
        inputs: vec![InferInputTensor {
            name: input.name.into(),
            datatype: input.datatype.into(),
            shape: input.shape.clone(),
            ..Default::default()
        }],
        raw_input_contents: vec![input.raw.clone().into()],
        ..Default::default()
    }
}

/// Little-endian FP32 raw contents as floats.
pub fn le_floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
