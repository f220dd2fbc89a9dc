//! TensorProtos as the gRPC tests write and read them.

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
