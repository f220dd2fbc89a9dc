//! [`Tensor`]: a dtype, a shape and a flat row-major buffer of typed values; the form in which
//! the daemon holds tensors between JSON and protobuf (and in which the batcher will join and
//! split them by rows).

use tfgate_proto::tensorflow::{tensor_shape_proto::Dim, TensorProto, TensorShapeProto};

use super::dtype::code_name;
use super::{ConvertError, Dtype};

/// Most elements accepted in one tensor read from the backend: a bound on what a single-value
/// `*_val` field (which fills the whole shape) can make the daemon allocate.
pub const MAX_ELEMENTS: usize = 1 << 27;

/// Flat element buffer. Int8/16, Uint8/16 and Int32 all live in `I32`, as in `int_val`.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
    Bytes(Vec<Vec<u8>>),
}

impl Values {
    pub fn empty(dtype: Dtype) -> Values {
        match dtype {
            Dtype::Float => Values::F32(Vec::new()),
            Dtype::Double => Values::F64(Vec::new()),
            Dtype::Int8 | Dtype::Int16 | Dtype::Int32 | Dtype::Uint8 | Dtype::Uint16 => {
                Values::I32(Vec::new())
            }
            Dtype::Int64 => Values::I64(Vec::new()),
            Dtype::Uint32 => Values::U32(Vec::new()),
            Dtype::Uint64 => Values::U64(Vec::new()),
            Dtype::Bool => Values::Bool(Vec::new()),
            Dtype::String => Values::Bytes(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::U32(v) => v.len(),
            Values::U64(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub values: Values,
}

impl Tensor {
    /// Writes the tensor the way TF Serving writes its own: typed `*_val` fields.
    pub fn into_proto(self) -> TensorProto {
        let dim = self
            .shape
            .iter()
            .map(|&size| Dim {
                size: size as i64,
                name: String::new(),
            })
            .collect();
        let mut proto = TensorProto {
            dtype: self.dtype.data_type() as i32,
            tensor_shape: Some(TensorShapeProto {
                dim,
                unknown_rank: false,
            }),
            ..Default::default()
        };
        match self.values {
            Values::F32(v) => proto.float_val = v,
            Values::F64(v) => proto.double_val = v,
            Values::I32(v) => proto.int_val = v,
            Values::I64(v) => proto.int64_val = v,
            Values::U32(v) => proto.uint32_val = v,
            Values::U64(v) => proto.uint64_val = v,
            Values::Bool(v) => proto.bool_val = v,
            Values::Bytes(v) => proto.string_val = v,
        }
        proto
    }

    /// Reads a tensor from the backend: from `tensor_content` when set, else from the typed
    /// field, where (as in TensorFlow) a short list is padded with its last value, so a single
    /// value fills the whole shape, and an empty list means zeros.
    pub fn from_proto(proto: &TensorProto) -> Result<Tensor, ConvertError> {
        let dtype = Dtype::from_code(proto.dtype).ok_or_else(|| {
            ConvertError::backend(format!(
                "tensor of type {} cannot be written as JSON yet",
                code_name(proto.dtype)
            ))
        })?;
        let shape = read_shape(proto.tensor_shape.as_ref())?;
        let count = element_count(&shape)?;
        let values = if !proto.tensor_content.is_empty() {
            from_content(dtype, &proto.tensor_content, count)?
        } else {
            from_typed_fields(dtype, proto, count)?
        };
        Ok(Tensor {
            dtype,
            shape,
            values,
        })
    }
}

fn read_shape(shape: Option<&TensorShapeProto>) -> Result<Vec<usize>, ConvertError> {
    let Some(shape) = shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err(ConvertError::backend(
            "backend returned a tensor of unknown rank",
        ));
    }
    shape
        .dim
        .iter()
        .map(|d| {
            usize::try_from(d.size).map_err(|_| {
                ConvertError::backend(format!(
                    "backend returned a tensor with dimension {}",
                    d.size
                ))
            })
        })
        .collect()
}

/// Product of the dimensions, bounded by [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Result<usize, ConvertError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            ConvertError::backend(format!(
                "tensor shape {shape:?} has more than {MAX_ELEMENTS} elements"
            ))
        })
}

fn from_content(dtype: Dtype, bytes: &[u8], count: usize) -> Result<Values, ConvertError> {
    let width = dtype.byte_width().ok_or_else(|| {
        ConvertError::backend(format!(
            "{} tensors cannot use tensor_content",
            dtype.name()
        ))
    })?;
    if bytes.len() != count * width {
        return Err(ConvertError::backend(format!(
            "tensor_content holds {} bytes, but {count} {} elements need {}",
            bytes.len(),
            dtype.name(),
            count * width
        )));
    }
    // Every chunk has exactly `width` bytes, so the try_into conversions below cannot fail.
    macro_rules! le {
        ($t:ty, $n:expr) => {
            bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()))
        };
    }
    Ok(match dtype {
        Dtype::Float => Values::F32(le!(f32, 4).collect()),
        Dtype::Double => Values::F64(le!(f64, 8).collect()),
        Dtype::Int8 => Values::I32(bytes.iter().map(|&b| i32::from(b as i8)).collect()),
        Dtype::Uint8 => Values::I32(bytes.iter().map(|&b| i32::from(b)).collect()),
        Dtype::Int16 => Values::I32(le!(i16, 2).map(i32::from).collect()),
        Dtype::Uint16 => Values::I32(le!(u16, 2).map(i32::from).collect()),
        Dtype::Int32 => Values::I32(le!(i32, 4).collect()),
        Dtype::Int64 => Values::I64(le!(i64, 8).collect()),
        Dtype::Uint32 => Values::U32(le!(u32, 4).collect()),
        Dtype::Uint64 => Values::U64(le!(u64, 8).collect()),
        Dtype::Bool => Values::Bool(bytes.iter().map(|&b| b != 0).collect()),
        Dtype::String => unreachable!("strings have no byte width"),
    })
}

fn from_typed_fields(
    dtype: Dtype,
    proto: &TensorProto,
    count: usize,
) -> Result<Values, ConvertError> {
    let name = dtype.name();
    Ok(match dtype {
        Dtype::Float => Values::F32(pad(&proto.float_val, count, name)?),
        Dtype::Double => Values::F64(pad(&proto.double_val, count, name)?),
        Dtype::Int8 | Dtype::Int16 | Dtype::Int32 | Dtype::Uint8 | Dtype::Uint16 => {
            Values::I32(pad(&proto.int_val, count, name)?)
        }
        Dtype::Int64 => Values::I64(pad(&proto.int64_val, count, name)?),
        Dtype::Uint32 => Values::U32(pad(&proto.uint32_val, count, name)?),
        Dtype::Uint64 => Values::U64(pad(&proto.uint64_val, count, name)?),
        Dtype::Bool => Values::Bool(pad(&proto.bool_val, count, name)?),
        Dtype::String => Values::Bytes(pad(&proto.string_val, count, name)?),
    })
}

fn pad<T: Clone + Default>(
    values: &[T],
    count: usize,
    dtype: &str,
) -> Result<Vec<T>, ConvertError> {
    if values.len() > count {
        return Err(ConvertError::backend(format!(
            "{dtype} tensor holds {} values for {count} elements",
            values.len()
        )));
    }
    let mut out = Vec::with_capacity(count);
    out.extend_from_slice(values);
    out.resize(count, values.last().cloned().unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_proto::tensorflow::DataType;

    fn proto(dtype: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            dtype: dtype as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&size| Dim {
                        size,
                        name: String::new(),
                    })
                    .collect(),
                unknown_rank: false,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_through_typed_fields() {
        let tensor = Tensor {
            dtype: Dtype::Int16,
            shape: vec![2, 2],
            values: Values::I32(vec![1, -2, 3, 4]),
        };
        let p = tensor.clone().into_proto();
        assert_eq!(p.int_val, vec![1, -2, 3, 4]);
        assert_eq!(p.dtype, DataType::DtInt16 as i32);
        assert_eq!(Tensor::from_proto(&p).unwrap(), tensor);
    }

    #[test]
    fn reads_tensor_content_little_endian() {
        let mut p = proto(DataType::DtFloat, &[3]);
        p.tensor_content = [2.5f32, -1.0, 0.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(
            Tensor::from_proto(&p).unwrap().values,
            Values::F32(vec![2.5, -1.0, 0.0])
        );

        let mut p = proto(DataType::DtInt64, &[2]);
        p.tensor_content = [7i64, -9].iter().flat_map(|f| f.to_le_bytes()).collect();
        assert_eq!(
            Tensor::from_proto(&p).unwrap().values,
            Values::I64(vec![7, -9])
        );

        let mut p = proto(DataType::DtInt8, &[2]);
        p.tensor_content = vec![0xff, 0x01];
        assert_eq!(
            Tensor::from_proto(&p).unwrap().values,
            Values::I32(vec![-1, 1])
        );

        let mut p = proto(DataType::DtBool, &[2]);
        p.tensor_content = vec![0, 1];
        assert_eq!(
            Tensor::from_proto(&p).unwrap().values,
            Values::Bool(vec![false, true])
        );
    }

    #[test]
    fn wrong_content_length_is_a_backend_error() {
        let mut p = proto(DataType::DtDouble, &[2]);
        p.tensor_content = vec![0; 9];
        let e = Tensor::from_proto(&p).unwrap_err();
        assert_eq!(e.blame, super::super::Blame::Backend);
    }

    #[test]
    fn one_value_fills_the_shape_and_none_means_zeros() {
        let mut p = proto(DataType::DtFloat, &[2, 2]);
        p.float_val = vec![7.0];
        assert_eq!(
            Tensor::from_proto(&p).unwrap().values,
            Values::F32(vec![7.0; 4])
        );
        let p = proto(DataType::DtInt32, &[3]);
        assert_eq!(
            Tensor::from_proto(&p).unwrap().values,
            Values::I32(vec![0; 3])
        );
        let mut p = proto(DataType::DtInt32, &[3]);
        p.int_val = vec![1, 2];
        assert_eq!(
            Tensor::from_proto(&p).unwrap().values,
            Values::I32(vec![1, 2, 2])
        );
    }

    #[test]
    fn missing_shape_is_a_scalar() {
        let p = TensorProto {
            dtype: DataType::DtDouble as i32,
            double_val: vec![1.5],
            ..Default::default()
        };
        let t = Tensor::from_proto(&p).unwrap();
        assert_eq!((t.shape, t.values), (vec![], Values::F64(vec![1.5])));
    }

    #[test]
    fn malformed_backend_tensors_are_errors_not_panics() {
        let mut too_many = proto(DataType::DtFloat, &[1]);
        too_many.float_val = vec![1.0, 2.0];
        let huge = proto(DataType::DtFloat, &[1 << 40, 1 << 40]);
        let negative = proto(DataType::DtFloat, &[-1]);
        let half = proto(DataType::DtHalf, &[1]);
        let mut strings_packed = proto(DataType::DtString, &[1]);
        strings_packed.tensor_content = vec![1];
        let mut unknown_rank = proto(DataType::DtFloat, &[]);
        unknown_rank.tensor_shape.as_mut().unwrap().unknown_rank = true;
        for p in [too_many, huge, negative, half, strings_packed, unknown_rank] {
            assert!(Tensor::from_proto(&p).is_err(), "{p:?}");
        }
    }
}
