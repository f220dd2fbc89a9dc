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
        let content = proto.tensor_content.as_slice();
        let r = Reader { name, n, content };
        let values = match DataType::try_from(proto.dtype) {
            Ok(DataType::DtFloat) => Values::Float(r.read(&proto.float_val, 4, |b| {
                f32::from_le_bytes(b.try_into().expect("4 bytes"))
            })?),
            Ok(DataType::DtDouble) => Values::Double(r.read(&proto.double_val, 8, |b| {
                f64::from_le_bytes(b.try_into().expect("8 bytes"))
            })?),
            Ok(DataType::DtInt32) => Values::Int32(r.read(&proto.int_val, 4, |b| {
                i32::from_le_bytes(b.try_into().expect("4 bytes"))
            })?),
            Ok(DataType::DtInt64) => Values::Int64(r.read(&proto.int64_val, 8, |b| {
                i64::from_le_bytes(b.try_into().expect("8 bytes"))
            })?),
            Ok(DataType::DtBool) => Values::Bool(r.read(&proto.bool_val, 1, |b| b[0] != 0)?),
            Ok(DataType::DtString) => {
                if !content.is_empty() {
                    return Err(Status::invalid_argument(format!(
                        "input '{name}': DT_STRING values must be sent in string_val, not tensor_content"
                    )));
                }
                Values::String(r.typed(&proto.string_val)?)
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
        match self.values {
            Values::Float(_) => DataType::DtFloat,
            Values::Double(_) => DataType::DtDouble,
            Values::Int32(_) => DataType::DtInt32,
            Values::Int64(_) => DataType::DtInt64,
            Values::Bool(_) => DataType::DtBool,
            Values::String(_) => DataType::DtString,
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
        }
        t
    }
}

/// A `TensorShapeProto` with the given dimension sizes (-1 = unknown).
pub fn shape_proto(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

fn read_shape(name: &str, shape: Option<&TensorShapeProto>) -> Result<Vec<i64>, Status> {
    // A missing shape is a scalar, as in TensorFlow.
    let Some(shape) = shape else {
        return Ok(Vec::new());
    };
    if shape.unknown_rank {
        return Err(Status::invalid_argument(format!(
            "input '{name}' has an unknown rank"
        )));
    }
    shape
        .dim
        .iter()
        .map(|d| {
            if d.size < 0 {
                Err(Status::invalid_argument(format!(
                    "input '{name}' has a dimension of unknown size ({})",
                    d.size
                )))
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

/// Reads `n` values of one dtype from either `tensor_content` or a typed field.
struct Reader<'a> {
    name: &'a str,
    n: usize,
    content: &'a [u8],
}

impl Reader<'_> {
    fn read<T: Clone>(
        &self,
        typed: &[T],
        width: usize,
        decode: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<T>, Status> {
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
            len => Err(Status::invalid_argument(format!(
                "input '{name}' has {len} values but its shape needs {n}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_proto(shape: &[i64], vals: &[f32]) -> TensorProto {
        TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(shape_proto(shape)),
            float_val: vals.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_float_val() {
        let t = Tensor::from_proto("x", &float_proto(&[3], &[1.0, 2.0, 5.0])).unwrap();
        assert_eq!(
            t,
            Tensor {
                shape: vec![3],
                values: Values::Float(vec![1.0, 2.0, 5.0])
            }
        );
    }

    #[test]
    fn reads_tensor_content() {
        let mut p = float_proto(&[2, 1], &[]);
        p.tensor_content = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = Tensor::from_proto("x", &p).unwrap();
        assert_eq!(t.values, Values::Float(vec![1.5, -2.0]));
        assert_eq!(t.shape, vec![2, 1]);

        let p = TensorProto {
            dtype: DataType::DtInt64 as i32,
            tensor_shape: Some(shape_proto(&[2])),
            tensor_content: [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        assert_eq!(
            Tensor::from_proto("i", &p).unwrap().values,
            Values::Int64(vec![7, -1])
        );
    }

    #[test]
    fn tensor_content_wrong_length_is_rejected() {
        let mut p = float_proto(&[2], &[]);
        p.tensor_content = vec![0; 7];
        let e = Tensor::from_proto("x", &p).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn single_element_fills_the_shape() {
        let t = Tensor::from_proto("x", &float_proto(&[2, 2], &[4.0])).unwrap();
        assert_eq!(t.values, Values::Float(vec![4.0; 4]));
    }

    #[test]
    fn count_mismatch_is_rejected() {
        let e = Tensor::from_proto("x", &float_proto(&[3], &[1.0, 2.0])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("2 values"), "{}", e.message());
        assert!(Tensor::from_proto("x", &float_proto(&[2], &[])).is_err());
    }

    #[test]
    fn missing_shape_is_scalar_and_empty_shape_allowed() {
        let mut p = float_proto(&[], &[3.0]);
        p.tensor_shape = None;
        assert_eq!(
            Tensor::from_proto("x", &p).unwrap().shape,
            Vec::<i64>::new()
        );
        let t = Tensor::from_proto("x", &float_proto(&[0], &[])).unwrap();
        assert_eq!(t.values, Values::Float(vec![]));
    }

    #[test]
    fn bad_shapes_and_dtypes_are_rejected() {
        assert!(Tensor::from_proto("x", &float_proto(&[-1], &[1.0])).is_err());
        assert!(Tensor::from_proto("x", &float_proto(&[1 << 20, 1 << 20], &[1.0])).is_err());
        let p = TensorProto {
            dtype: DataType::DtHalf as i32,
            ..Default::default()
        };
        let e = Tensor::from_proto("x", &p).unwrap_err();
        assert!(e.message().contains("DT_HALF"), "{}", e.message());
    }

    #[test]
    fn round_trips_through_proto() {
        let t = Tensor {
            shape: vec![2],
            values: Values::String(vec![b"a".to_vec(), vec![0xff]]),
        };
        let p = t.to_proto();
        assert_eq!(p.dtype, DataType::DtString as i32);
        assert_eq!(Tensor::from_proto("s", &p).unwrap(), t);
        let t = Tensor {
            shape: vec![1, 2],
            values: Values::Bool(vec![true, false]),
        };
        assert_eq!(Tensor::from_proto("b", &t.to_proto()).unwrap(), t);
    }
}
