//! [`Tensor`]: a dtype, a shape and a flat row-major buffer of typed values; the form in which
//! the daemon holds tensors between JSON and protobuf (and in which the batcher will join and
//! split them by rows).

use tfgate_proto::tensorflow::{tensor_shape_proto::Dim, TensorProto, TensorShapeProto};

use super::dtype::code_name;
use super::{ConvertError, Dtype};
use half::{bf16, f16};

/// Most elements accepted in one tensor read from the backend: a bound on what a single-value
/// `*_val` field (which fills the whole shape) can make the daemon allocate.
pub const MAX_ELEMENTS: usize = 1 << 27;

/// Flat element buffer. Int8/16, Uint8/16 and Int32 all live in `I32`, as in `int_val`; HALF and
/// BFLOAT16 live in `F32` (converted to their 16-bit patterns only in protobuf).
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
            Dtype::Float | Dtype::Half | Dtype::Bfloat16 => Values::F32(Vec::new()),
            Dtype::Double => Values::F64(Vec::new()),
            Dtype::Int8 | Dtype::Int16 | Dtype::Int32 | Dtype::Uint8 | Dtype::Uint16 => Values::I32(Vec::new()),
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
        let dim = self.shape.iter().map(|&size| Dim { size: size as i64, name: String::new() }).collect();
        let mut proto = TensorProto {
            dtype: self.dtype.data_type() as i32,
            tensor_shape: Some(TensorShapeProto { dim, unknown_rank: false }),
            ..Default::default()
        };
        match self.values {
            Values::F32(v) if self.dtype == Dtype::Half => {
                proto.half_val = v.iter().map(|&x| i32::from(f16::from_f32(x).to_bits())).collect()
            }
            Values::F32(v) if self.dtype == Dtype::Bfloat16 => {
                proto.half_val = v.iter().map(|&x| i32::from(bf16::from_f32(x).to_bits())).collect()
            }
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
            ConvertError::backend(format!("tensor of type {} cannot be written as JSON yet", code_name(proto.dtype)))
        })?;
        let shape = read_shape(proto.tensor_shape.as_ref())?;
        let count = element_count(&shape)?;
        let values = if !proto.tensor_content.is_empty() {
            from_content(dtype, &proto.tensor_content, count)?
        } else {
            from_typed_fields(dtype, proto, count)?
        };
        Ok(Tensor { dtype, shape, values })
    }
}

fn read_shape(shape: Option<&TensorShapeProto>) -> Result<Vec<usize>, ConvertError> {
    let Some(shape) = shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err(ConvertError::backend("backend returned a tensor of unknown rank"));
    }
    shape
        .dim
        .iter()
        .map(|d| {
            usize::try_from(d.size)
                .map_err(|_| ConvertError::backend(format!("backend returned a tensor with dimension {}", d.size)))
        })
        .collect()
}

/// Product of the dimensions, bounded by [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Result<usize, ConvertError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| ConvertError::backend(format!("tensor shape {shape:?} has more than {MAX_ELEMENTS} elements")))
}

fn from_content(dtype: Dtype, bytes: &[u8], count: usize) -> Result<Values, ConvertError> {
    let width = dtype
        .byte_width()
        .ok_or_else(|| ConvertError::backend(format!("{} tensors cannot use tensor_content", dtype.name())))?;
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
            bytes.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()))
        };
    }
    Ok(match dtype {
        Dtype::Float => Values::F32(le!(f32, 4).collect()),
        Dtype::Double => Values::F64(le!(f64, 8).collect()),
        Dtype::Half => Values::F32(le!(u16, 2).map(|b| f16::from_bits(b).to_f32()).collect()),
        Dtype::Bfloat16 => Values::F32(le!(u16, 2).map(|b| bf16::from_bits(b).to_f32()).collect()),
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

fn from_typed_fields(dtype: Dtype, proto: &TensorProto, count: usize) -> Result<Values, ConvertError> {
    let name = dtype.name();
    Ok(match dtype {
        Dtype::Float => Values::F32(pad(&proto.float_val, count, name)?),
        Dtype::Double => Values::F64(pad(&proto.double_val, count, name)?),
        // half_val holds the 16-bit patterns, one per int32.
        Dtype::Half => Values::F32(
            pad(&proto.half_val, count, name)?.into_iter().map(|bits| f16::from_bits(bits as u16).to_f32()).collect(),
        ),
        Dtype::Bfloat16 => Values::F32(
            pad(&proto.half_val, count, name)?.into_iter().map(|bits| bf16::from_bits(bits as u16).to_f32()).collect(),
        ),
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

fn pad<T: Clone + Default>(values: &[T], count: usize, dtype: &str) -> Result<Vec<T>, ConvertError> {
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
#[path = "tensor_tests.rs"]
mod tests;
