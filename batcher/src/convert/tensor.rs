//! [`Tensor`]: a dtype, a shape and a flat row-major buffer of typed values; the form in which
//! the daemon holds tensors between JSON and protobuf, and in which the batcher joins and splits
//! them by rows.

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
    Bytes(ByteStrings),
}

/// Byte strings (DT_STRING elements) stored end to end in one buffer: a short string costs its
/// bytes and 4 more, not an allocation of its own (a body of many short strings would otherwise
/// take several times its size).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ByteStrings {
    data: Vec<u8>,
    /// Where each string ends in `data`. 32 bits: a tensor holds at most what one request body
    /// or one backend message can (far below 4 GiB).
    ends: Vec<u32>,
}

impl ByteStrings {
    pub fn with_capacity(strings: usize, bytes: usize) -> ByteStrings {
        ByteStrings { data: Vec::with_capacity(bytes), ends: Vec::with_capacity(strings) }
    }

    /// Appends a string; fails only past 4 GiB of string data.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        let end = u32::try_from(self.data.len() + bytes.len()).map_err(|_| "string tensor over 4 GiB".to_string())?;
        self.data.extend_from_slice(bytes);
        self.ends.push(end);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { *self.ends.get(i - 1)? as usize };
        self.data.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Appends strings `range` of `from`; `None` when the range is outside it.
    pub fn extend_from(&mut self, from: &ByteStrings, range: std::ops::Range<usize>) -> Option<()> {
        for i in range {
            self.push(from.get(i)?).ok()?;
        }
        Some(())
    }

    pub fn shrink_to_fit(&mut self) {
        self.data.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// Bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity() + 4 * self.ends.capacity()
    }
}

impl From<Vec<Vec<u8>>> for ByteStrings {
    fn from(strings: Vec<Vec<u8>>) -> ByteStrings {
        let mut out = ByteStrings::default();
        for s in &strings {
            // Test data and backend answers: far below the 4 GiB bound.
            let _ = out.push(s);
        }
        out
    }
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
            Dtype::String => Values::Bytes(ByteStrings::default()),
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

    /// Makes room for `elements` more values (holding `bytes` of string data, for strings).
    pub fn reserve(&mut self, elements: usize, bytes: usize) {
        match self {
            Values::F32(v) => v.reserve(elements),
            Values::F64(v) => v.reserve(elements),
            Values::I32(v) => v.reserve(elements),
            Values::I64(v) => v.reserve(elements),
            Values::U32(v) => v.reserve(elements),
            Values::U64(v) => v.reserve(elements),
            Values::Bool(v) => v.reserve(elements),
            Values::Bytes(v) => {
                v.data.reserve(bytes);
                v.ends.reserve(elements);
            }
        }
    }

    /// String bytes held (0 for other types).
    pub fn string_bytes(&self) -> usize {
        match self {
            Values::Bytes(v) => v.data.len(),
            _ => 0,
        }
    }

    /// Gives back the room a growing buffer left over.
    pub fn shrink_to_fit(&mut self) {
        match self {
            Values::F32(v) => v.shrink_to_fit(),
            Values::F64(v) => v.shrink_to_fit(),
            Values::I32(v) => v.shrink_to_fit(),
            Values::I64(v) => v.shrink_to_fit(),
            Values::U32(v) => v.shrink_to_fit(),
            Values::U64(v) => v.shrink_to_fit(),
            Values::Bool(v) => v.shrink_to_fit(),
            Values::Bytes(v) => v.shrink_to_fit(),
        }
    }

    /// Bytes of memory the values hold.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Values::F32(v) => 4 * v.capacity(),
            Values::F64(v) => 8 * v.capacity(),
            Values::I32(v) => 4 * v.capacity(),
            Values::I64(v) => 8 * v.capacity(),
            Values::U32(v) => 4 * v.capacity(),
            Values::U64(v) => 8 * v.capacity(),
            Values::Bool(v) => v.capacity(),
            Values::Bytes(v) => v.heap_bytes(),
        }
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
            Values::Bytes(v) => proto.string_val = v.iter().map(<[u8]>::to_vec).collect(),
        }
        proto
    }

    /// Writes the tensor in one of TensorFlow's two encodings: `tensor_content` when `packed`
    /// (strings have no such form), else the typed `*_val` fields.
    pub fn into_proto_as(self, packed: bool) -> TensorProto {
        let Some(width) = self.dtype.byte_width().filter(|_| packed) else {
            return self.into_proto();
        };
        let mut content = Vec::with_capacity(self.values.len() * width);
        let written = super::content::write_content(self.dtype, &self.values, 0..self.values.len(), &mut content);
        let (dtype, shape) = (self.dtype, self.shape.clone());
        if written.is_err() {
            // Values of another variant than the dtype's: written as the typed fields can.
            return self.into_proto();
        }
        let mut proto = Tensor { dtype, shape, values: Values::empty(dtype) }.into_proto();
        proto.tensor_content = content.into();
        proto
    }

    /// Reads a tensor from the backend: from `tensor_content` when set, else from the typed
    /// field, where (as in TensorFlow) a short list is padded with its last value, so a single
    /// value fills the whole shape, and an empty list means zeros.
    pub fn from_proto(proto: &TensorProto) -> Result<Tensor, ConvertError> {
        Tensor::read_proto(proto)
    }

    /// Reads a tensor a gRPC client sent, by the same rules; errors are the client's.
    pub fn from_request_proto(proto: &TensorProto) -> Result<Tensor, ConvertError> {
        Tensor::read_proto(proto).map_err(|e| ConvertError::request(e.message))
    }

    fn read_proto(proto: &TensorProto) -> Result<Tensor, ConvertError> {
        let dtype = Dtype::from_code(proto.dtype).ok_or_else(|| {
            ConvertError::backend(format!("tensors of type {} are not supported by tfgate", code_name(proto.dtype)))
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

/// The bytes a tensor will hold once read ([`Values::heap_bytes`]), from its dtype, shape and
/// what it carries, computed before anything is allocated: a message of a few bytes that names
/// a large shape (a single value fills the whole shape) is refused within its budget, never
/// expanded first.
pub fn read_size(proto: &TensorProto) -> Result<usize, ConvertError> {
    let dtype = Dtype::from_code(proto.dtype).ok_or_else(|| {
        ConvertError::request(format!("tensors of type {} are not supported by tfgate", code_name(proto.dtype)))
    })?;
    let count = read_shape(proto.tensor_shape.as_ref())
        .and_then(|shape| element_count(&shape))
        .map_err(|e| ConvertError::request(e.message))?;
    let Some(width) = dtype.value_width() else {
        // Strings: their bytes, the last value repeated to fill the shape, and 4 bytes each.
        let given: usize = proto.string_val.iter().map(Vec::len).sum();
        let filled = count.saturating_sub(proto.string_val.len());
        let last = proto.string_val.last().map_or(0, Vec::len);
        return Ok(given.saturating_add(filled.saturating_mul(last)).saturating_add(count.saturating_mul(4)));
    };
    Ok(count.saturating_mul(width))
}

fn read_shape(shape: Option<&TensorShapeProto>) -> Result<Vec<usize>, ConvertError> {
    let Some(shape) = shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err(ConvertError::backend("a tensor of unknown rank"));
    }
    shape
        .dim
        .iter()
        .map(|d| {
            usize::try_from(d.size).map_err(|_| ConvertError::backend(format!("a tensor with dimension {}", d.size)))
        })
        .collect()
}

/// Product of the dimensions, bounded by [`MAX_ELEMENTS`], as is every dimension: a shape with
/// a zero in it holds nothing, but its other dimensions still count (a batch dimension of 2^62
/// over nothing would be 2^62 rows to queue and split).
pub fn element_count(shape: &[usize]) -> Result<usize, ConvertError> {
    let product = shape.iter().try_fold(1usize, |acc, &d| if d > MAX_ELEMENTS { None } else { acc.checked_mul(d) });
    product.filter(|&n| n <= MAX_ELEMENTS).ok_or_else(|| {
        ConvertError::backend(format!(
            "a tensor shape of {} dimensions holds more than {MAX_ELEMENTS} elements",
            shape.len()
        ))
    })
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
        Dtype::String => Values::Bytes(fill_strings(&proto.string_val, count, name)?),
    })
}

/// Strings filled to `count` by repeating the last one, written straight into one buffer (a
/// `Vec` per element would cost tens of bytes each beyond what was reserved for them).
fn fill_strings(values: &[Vec<u8>], count: usize, dtype: &str) -> Result<ByteStrings, ConvertError> {
    if values.len() > count {
        return Err(ConvertError::backend(format!(
            "{dtype} tensor holds {} values for {count} elements",
            values.len()
        )));
    }
    let last = values.last().map_or(&[][..], Vec::as_slice);
    let filled = count - values.len();
    let bytes = values.iter().map(Vec::len).sum::<usize>().saturating_add(filled.saturating_mul(last.len()));
    let mut out = ByteStrings::with_capacity(count, bytes);
    for value in values.iter().map(Vec::as_slice).chain(std::iter::repeat_n(last, filled)) {
        out.push(value).map_err(ConvertError::request)?;
    }
    Ok(out)
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
