//! The element types the conversion handles: TensorFlow's `DataType`s it reads and writes, their
//! names and widths (on the wire, and as the daemon holds them).

use tfgate_proto::tensorflow::DataType;

use half::{bf16, f16};

/// A dtype the REST conversion supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    Float,
    Double,
    /// IEEE binary16, held as f32 (see `half`).
    Half,
    /// bfloat16, held as f32.
    Bfloat16,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Bool,
    String,
}

impl Dtype {
    /// The dtype for a `DataType` code, or `None` for types the conversion does not handle
    /// (complex, resource, variant, quantized).
    pub fn from_code(code: i32) -> Option<Dtype> {
        Some(match DataType::try_from(code).ok()? {
            DataType::DtFloat => Dtype::Float,
            DataType::DtDouble => Dtype::Double,
            DataType::DtHalf => Dtype::Half,
            DataType::DtBfloat16 => Dtype::Bfloat16,
            DataType::DtInt8 => Dtype::Int8,
            DataType::DtInt16 => Dtype::Int16,
            DataType::DtInt32 => Dtype::Int32,
            DataType::DtInt64 => Dtype::Int64,
            DataType::DtUint8 => Dtype::Uint8,
            DataType::DtUint16 => Dtype::Uint16,
            DataType::DtUint32 => Dtype::Uint32,
            DataType::DtUint64 => Dtype::Uint64,
            DataType::DtBool => Dtype::Bool,
            DataType::DtString => Dtype::String,
            _ => return None,
        })
    }

    pub fn data_type(self) -> DataType {
        match self {
            Dtype::Float => DataType::DtFloat,
            Dtype::Double => DataType::DtDouble,
            Dtype::Half => DataType::DtHalf,
            Dtype::Bfloat16 => DataType::DtBfloat16,
            Dtype::Int8 => DataType::DtInt8,
            Dtype::Int16 => DataType::DtInt16,
            Dtype::Int32 => DataType::DtInt32,
            Dtype::Int64 => DataType::DtInt64,
            Dtype::Uint8 => DataType::DtUint8,
            Dtype::Uint16 => DataType::DtUint16,
            Dtype::Uint32 => DataType::DtUint32,
            Dtype::Uint64 => DataType::DtUint64,
            Dtype::Bool => DataType::DtBool,
            Dtype::String => DataType::DtString,
        }
    }

    /// "DT_FLOAT" and so on, as TF names them in messages and metadata.
    pub fn name(self) -> &'static str {
        self.data_type().as_str_name()
    }

    /// TensorFlow's own short name ("float", "int32"), used in TF Serving's messages.
    pub fn tf_name(self) -> &'static str {
        match self {
            Dtype::Float => "float",
            Dtype::Double => "double",
            Dtype::Half => "half",
            Dtype::Bfloat16 => "bfloat16",
            Dtype::Int8 => "int8",
            Dtype::Int16 => "int16",
            Dtype::Int32 => "int32",
            Dtype::Int64 => "int64",
            Dtype::Uint8 => "uint8",
            Dtype::Uint16 => "uint16",
            Dtype::Uint32 => "uint32",
            Dtype::Uint64 => "uint64",
            Dtype::Bool => "bool",
            Dtype::String => "string",
        }
    }

    /// Bytes per element in `tensor_content`; strings are never packed there.
    pub fn byte_width(self) -> Option<usize> {
        match self {
            Dtype::Int8 | Dtype::Uint8 | Dtype::Bool => Some(1),
            Dtype::Int16 | Dtype::Uint16 | Dtype::Half | Dtype::Bfloat16 => Some(2),
            Dtype::Float | Dtype::Int32 | Dtype::Uint32 => Some(4),
            Dtype::Double | Dtype::Int64 | Dtype::Uint64 => Some(8),
            Dtype::String => None,
        }
    }

    /// Bytes per element as the daemon holds it ([`Values`]: the small integers widened to
    /// i32, the 16-bit floats to f32); strings have no fixed width.
    pub fn value_width(self) -> Option<usize> {
        match self {
            Dtype::Bool => Some(1),
            Dtype::Float | Dtype::Half | Dtype::Bfloat16 => Some(4),
            Dtype::Int8 | Dtype::Int16 | Dtype::Int32 | Dtype::Uint8 | Dtype::Uint16 | Dtype::Uint32 => Some(4),
            Dtype::Double | Dtype::Int64 | Dtype::Uint64 => Some(8),
            Dtype::String => None,
        }
    }

    /// Inclusive range of the types stored in `int_val` (TF widens the small ones to int32).
    pub(super) fn int_val_range(self) -> (i64, i64) {
        match self {
            Dtype::Int8 => (i8::MIN.into(), i8::MAX.into()),
            Dtype::Int16 => (i16::MIN.into(), i16::MAX.into()),
            Dtype::Uint8 => (0, u8::MAX.into()),
            Dtype::Uint16 => (0, u16::MAX.into()),
            _ => (i32::MIN.into(), i32::MAX.into()),
        }
    }

    /// The value a float of this dtype really holds (16-bit floats are rounded).
    pub(super) fn round_float(self, x: f32) -> f32 {
        match self {
            Dtype::Half => f16::from_f32(x).to_f32(),
            Dtype::Bfloat16 => bf16::from_f32(x).to_f32(),
            _ => x,
        }
    }
}

/// Human-readable name of any `DataType` code, for error messages.
pub fn code_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(dt) => dt.as_str_name().to_string(),
        Err(_) => format!("DataType {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for dtype in [Dtype::Float, Dtype::Int16, Dtype::Uint64, Dtype::String, Dtype::Bool] {
            assert_eq!(Dtype::from_code(dtype.data_type() as i32), Some(dtype));
        }
        assert_eq!(Dtype::from_code(DataType::DtHalf as i32), Some(Dtype::Half));
        assert_eq!(Dtype::from_code(DataType::DtComplex64 as i32), None);
        assert_eq!(Dtype::from_code(12345), None);
        assert_eq!(code_name(12345), "DataType 12345");
        assert_eq!(Dtype::Float.name(), "DT_FLOAT");
    }
}
