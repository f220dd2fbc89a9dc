//! Converting between `TensorProto` and a plain decoded tensor.
//!
//! Reading follows TensorFlow's rules: values come from `tensor_content` (row-major, little-endian)
//! when it is set, else from the typed `*_val` field; a typed field with exactly one element fills
//! the whole shape. Writing always uses the typed field, as TF Serving does.

use tfgate_proto::tensorflow::{tensor_shape_proto::Dim, DataType, TensorProto, TensorShapeProto};
use tonic::Status;

/// Largest element count a request may ask for (guards the single-element fill).
const MAX_ELEMENTS: u64 = 1 << 24;

/// Decoded values of a tensor, one variant per supported dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<f32>),
    Double(Vec<f64>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Bool(Vec<bool>),
    String(Vec<Vec<u8>>),
    /// Any other dtype the simulator only echoes (int8/16, uint8/16/32/64, half, bfloat16):
    /// the proto as received, after checking its values fit its shape.
    Other(Box<TensorProto>),
}

/// A decoded dense tensor: known shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<i64>,
    pub values: Values,
}

/// The TensorFlow name of a dtype number, e.g. "DT_FLOAT".
pub fn dtype_name(dtype: i32) -> String {
    match DataType::try_from(dtype) {
        Ok(d) => d.as_str_name().to_string(),
        Err(_) => format!("DataType({dtype})"),
    }
}

impl Tensor {
    /// Decodes `proto`; `name` is the input name used in error messages.
    pub fn from_proto(name: &str, proto: &TensorProto) -> Result<Tensor, Status> {
        let shape = read_shape(name, proto.tensor_shape.as_ref())?;
        let n = element_count(name, &shape)?;
        let content = &proto.tensor_content[..];
        let r = Reader { name, n, content };
        let values = match DataType::try_from(proto.dtype) {
            Ok(DataType::DtFloat) => {
                Values::Float(r.read(&proto.float_val, 4, |b| f32::from_le_bytes(b.try_into().expect("4 bytes")))?)
            }
            Ok(DataType::DtDouble) => {
                Values::Double(r.read(&proto.double_val, 8, |b| f64::from_le_bytes(b.try_into().expect("8 bytes")))?)
            }
            Ok(DataType::DtInt32) => {
                Values::Int32(r.read(&proto.int_val, 4, |b| i32::from_le_bytes(b.try_into().expect("4 bytes")))?)
            }
            Ok(DataType::DtInt64) => {
                Values::Int64(r.read(&proto.int64_val, 8, |b| i64::from_le_bytes(b.try_into().expect("8 bytes")))?)
            }
            Ok(DataType::DtBool) => Values::Bool(r.read(&proto.bool_val, 1, |b| b[0] != 0)?),
            Ok(DataType::DtString) => {
                if !content.is_empty() {
                    return Err(Status::invalid_argument(format!(
                        "input '{name}': DT_STRING values must be sent in string_val, not tensor_content"
                    )));
                }
                Values::String(r.typed(&proto.string_val)?)
            }
            Ok(
                DataType::DtInt8
                | DataType::DtUint8
                | DataType::DtInt16
                | DataType::DtUint16
                | DataType::DtUint32
                | DataType::DtUint64
                | DataType::DtHalf
                | DataType::DtBfloat16,
            ) => {
                check_echoed(&r, proto)?;
                Values::Other(Box::new(proto.clone()))
            }
            _ => {
                return Err(Status::invalid_argument(format!(
                    "input '{name}': dtype {} is not supported by tfs-sim",
                    dtype_name(proto.dtype)
                )))
            }
        };
        Ok(Tensor { shape, values })
    }

    /// The dtype of the values.
    pub fn dtype(&self) -> DataType {
        match &self.values {
            Values::Float(_) => DataType::DtFloat,
            Values::Double(_) => DataType::DtDouble,
            Values::Int32(_) => DataType::DtInt32,
            Values::Int64(_) => DataType::DtInt64,
            Values::Bool(_) => DataType::DtBool,
            Values::String(_) => DataType::DtString,
            Values::Other(p) => DataType::try_from(p.dtype).unwrap_or(DataType::DtInvalid),
        }
    }

    /// Encodes with the typed `*_val` field and the full shape.
    pub fn to_proto(&self) -> TensorProto {
        let mut t = TensorProto {
            dtype: self.dtype() as i32,
            tensor_shape: Some(shape_proto(&self.shape)),
            ..Default::default()
        };
        match &self.values {
            Values::Float(v) => t.float_val = v.clone(),
            Values::Double(v) => t.double_val = v.clone(),
            Values::Int32(v) => t.int_val = v.clone(),
            Values::Int64(v) => t.int64_val = v.clone(),
            Values::Bool(v) => t.bool_val = v.clone(),
            Values::String(v) => t.string_val = v.clone(),
            Values::Other(p) => return TensorProto { tensor_shape: t.tensor_shape, ..(**p).clone() },
        }
        t
    }
}

/// A `TensorShapeProto` with the given dimension sizes (-1 = unknown).
pub fn shape_proto(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto { dim: dims.iter().map(|&size| Dim { size, name: String::new() }).collect(), unknown_rank: false }
}

fn read_shape(name: &str, shape: Option<&TensorShapeProto>) -> Result<Vec<i64>, Status> {
    // A missing shape is a scalar, as in TensorFlow.
    let Some(shape) = shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err(Status::invalid_argument(format!("input '{name}' has an unknown rank")));
    }
    shape
        .dim
        .iter()
        .map(|d| {
            if d.size < 0 {
                Err(Status::invalid_argument(format!("input '{name}' has a dimension of unknown size ({})", d.size)))
            } else {
                Ok(d.size)
            }
        })
        .collect()
}

fn element_count(name: &str, shape: &[i64]) -> Result<usize, Status> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n.saturating_mul(d as u64);
    }
    if n > MAX_ELEMENTS {
        return Err(Status::invalid_argument(format!(
            "input '{name}' has shape {shape:?} with more than {MAX_ELEMENTS} elements"
        )));
    }
    Ok(n as usize)
}

/// Checks that an echoed tensor's values (typed field or `tensor_content`) fit its shape.
fn check_echoed(r: &Reader<'_>, proto: &TensorProto) -> Result<(), Status> {
    let (width, typed) = match DataType::try_from(proto.dtype) {
        Ok(DataType::DtInt8 | DataType::DtUint8) => (1, proto.int_val.len()),
        Ok(DataType::DtInt16 | DataType::DtUint16) => (2, proto.int_val.len()),
        Ok(DataType::DtUint32) => (4, proto.uint32_val.len()),
        Ok(DataType::DtUint64) => (8, proto.uint64_val.len()),
        _ => (2, proto.half_val.len()),
    };
    r.read(&vec![(); typed], width, |_| ()).map(|_| ())
}

/// Reads `n` values of one dtype from either `tensor_content` or a typed field.
struct Reader<'a> {
    name: &'a str,
    n: usize,
    content: &'a [u8],
}

impl Reader<'_> {
    fn read<T: Clone>(&self, typed: &[T], width: usize, decode: impl Fn(&[u8]) -> T) -> Result<Vec<T>, Status> {
        let (name, n) = (self.name, self.n);
        if !self.content.is_empty() {
            if self.content.len() != n * width {
                return Err(Status::invalid_argument(format!(
                    "input '{name}': tensor_content has {} bytes but the shape needs {n} elements of {width} bytes",
                    self.content.len()
                )));
            }
            return Ok(self.content.chunks_exact(width).map(decode).collect());
        }
        self.typed(typed)
    }

    fn typed<T: Clone>(&self, typed: &[T]) -> Result<Vec<T>, Status> {
        let (name, n) = (self.name, self.n);
        match typed.len() {
            len if len == n => Ok(typed.to_vec()),
            1 => Ok(vec![typed[0].clone(); n]),
            len => Err(Status::invalid_argument(format!("input '{name}' has {len} values but its shape needs {n}"))),
        }
    }
}

#[cfg(test)]
#[path = "tensor_tests.rs"]
mod tests;
