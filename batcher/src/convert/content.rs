//! Tensor values written as TensorFlow's `tensor_content`: the elements' little-endian bytes,
//! at the dtype's own width (an int8 takes one byte, a half two). This is how a batch's joined
//! rows go to TF Serving, written straight from the requests' tensors, once.

use std::ops::Range;

use half::{bf16, f16};

use super::{Dtype, Values};

/// Appends elements `range` of `values` (of `dtype`) to `out`; strings have no such form. A
/// `Vec`, whose small appends inline (a `BytesMut` costs a call per element).
pub fn write_content(dtype: Dtype, values: &Values, range: Range<usize>, out: &mut Vec<u8>) -> Result<(), String> {
    fn slice<T>(v: &[T], range: Range<usize>) -> Result<&[T], String> {
        v.get(range).ok_or_else(|| "row range outside the tensor".to_string())
    }
    macro_rules! put {
        ($values:expr, |$x:ident| $bytes:expr) => {
            for &$x in slice($values, range)? {
                out.extend_from_slice(&$bytes);
            }
        };
    }
    match (dtype, values) {
        (Dtype::Float, Values::F32(v)) => put!(v, |x| x.to_le_bytes()),
        (Dtype::Half, Values::F32(v)) => put!(v, |x| f16::from_f32(x).to_bits().to_le_bytes()),
        (Dtype::Bfloat16, Values::F32(v)) => put!(v, |x| bf16::from_f32(x).to_bits().to_le_bytes()),
        (Dtype::Double, Values::F64(v)) => put!(v, |x| x.to_le_bytes()),
        // The values were range-checked for their dtype when parsed: the casts keep them.
        (Dtype::Int8, Values::I32(v)) => put!(v, |x| (x as i8).to_le_bytes()),
        (Dtype::Uint8, Values::I32(v)) => put!(v, |x| (x as u8).to_le_bytes()),
        (Dtype::Int16, Values::I32(v)) => put!(v, |x| (x as i16).to_le_bytes()),
        (Dtype::Uint16, Values::I32(v)) => put!(v, |x| (x as u16).to_le_bytes()),
        (Dtype::Int32, Values::I32(v)) => put!(v, |x| x.to_le_bytes()),
        (Dtype::Int64, Values::I64(v)) => put!(v, |x| x.to_le_bytes()),
        (Dtype::Uint32, Values::U32(v)) => put!(v, |x| x.to_le_bytes()),
        (Dtype::Uint64, Values::U64(v)) => put!(v, |x| x.to_le_bytes()),
        (Dtype::Bool, Values::Bool(v)) => put!(v, |x| [u8::from(x)]),
        (dtype, _) => return Err(format!("{} values cannot be written as tensor_content", dtype.name())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Tensor;
    use tfgate_proto::tensorflow::TensorProto;

    /// Written, then read back the way a backend's answer is read: the same values.
    #[test]
    fn every_numeric_dtype_round_trips() {
        let cases = [
            (Dtype::Float, Values::F32(vec![1.5, -2.0, 0.0])),
            (Dtype::Half, Values::F32(vec![1.5, -2.0, 0.0])),
            (Dtype::Bfloat16, Values::F32(vec![1.5, -2.0, 0.0])),
            (Dtype::Double, Values::F64(vec![1e300, -0.5, 3.0])),
            (Dtype::Int8, Values::I32(vec![-128, 127, 0])),
            (Dtype::Uint8, Values::I32(vec![255, 0, 7])),
            (Dtype::Int16, Values::I32(vec![-32768, 32767, 1])),
            (Dtype::Uint16, Values::I32(vec![65535, 0, 2])),
            (Dtype::Int32, Values::I32(vec![i32::MIN, i32::MAX, 3])),
            (Dtype::Int64, Values::I64(vec![i64::MIN, i64::MAX, 4])),
            (Dtype::Uint32, Values::U32(vec![u32::MAX, 0, 5])),
            (Dtype::Uint64, Values::U64(vec![u64::MAX, 0, 6])),
            (Dtype::Bool, Values::Bool(vec![true, false, true])),
        ];
        for (dtype, values) in cases {
            let mut out = Vec::new();
            write_content(dtype, &values, 1..3, &mut out).unwrap();
            write_content(dtype, &values, 0..1, &mut out).unwrap();
            let proto = TensorProto {
                dtype: dtype.data_type() as i32,
                tensor_shape: Some(tfgate_proto::tensorflow::TensorShapeProto {
                    dim: vec![tfgate_proto::tensorflow::tensor_shape_proto::Dim { size: 3, name: String::new() }],
                    unknown_rank: false,
                }),
                tensor_content: out.into(),
                ..Default::default()
            };
            let back = Tensor::from_proto(&proto).unwrap();
            let mut expected = Values::empty(dtype);
            crate::batching::rows::extend_values(&mut expected, &values, 1..3).unwrap();
            crate::batching::rows::extend_values(&mut expected, &values, 0..1).unwrap();
            assert_eq!(back.values, expected, "{dtype:?}");
        }
    }

    #[test]
    fn strings_and_mismatches_are_errors() {
        let mut out = Vec::new();
        assert!(write_content(Dtype::String, &Values::empty(Dtype::String), 0..0, &mut out).is_err());
        assert!(write_content(Dtype::Float, &Values::F64(vec![1.0]), 0..1, &mut out).is_err());
        assert!(write_content(Dtype::Float, &Values::F32(vec![1.0]), 0..2, &mut out).is_err());
    }
}
