//! The element types the REST conversion handles, and how a single JSON value becomes one
//! element. JSON numbers carry no type: the signature's dtype decides, and a value that does not
//! fit it (1.5 for an integer, 300 for an int8, 1e39 for a float) is refused, never truncated.

use serde_json::Value;
use tfgate_proto::tensorflow::DataType;

use super::tensor::Values;

/// A dtype the REST conversion supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    Float,
    Double,
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
    /// (yet: HALF/BFLOAT16 and complex; never: resource, variant, quantized).
    pub fn from_code(code: i32) -> Option<Dtype> {
        Some(match DataType::try_from(code).ok()? {
            DataType::DtFloat => Dtype::Float,
            DataType::DtDouble => Dtype::Double,
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
            Dtype::Int16 | Dtype::Uint16 => Some(2),
            Dtype::Float | Dtype::Int32 | Dtype::Uint32 => Some(4),
            Dtype::Double | Dtype::Int64 | Dtype::Uint64 => Some(8),
            Dtype::String => None,
        }
    }

    /// Inclusive range of the types stored in `int_val` (TF widens the small ones to int32).
    fn int_val_range(self) -> (i64, i64) {
        match self {
            Dtype::Int8 => (i8::MIN.into(), i8::MAX.into()),
            Dtype::Int16 => (i16::MIN.into(), i16::MAX.into()),
            Dtype::Uint8 => (0, u8::MAX.into()),
            Dtype::Uint16 => (0, u16::MAX.into()),
            _ => (i32::MIN.into(), i32::MAX.into()),
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

/// True for `{"b64": "..."}`, TF Serving's way of sending binary data, which is a leaf value and
/// not a nested object.
pub fn is_b64_object(value: &Value) -> bool {
    matches!(value, Value::Object(map) if map.len() == 1 && map.contains_key("b64"))
}

/// Appends one JSON leaf to `out` (whose variant matches `dtype`), with TF Serving's checks and
/// messages: integers that a float type cannot hold exactly are refused like decimals out of
/// its range, and integer types take only integers that fit.
pub fn push_json(out: &mut Values, dtype: Dtype, value: &Value) -> Result<(), String> {
    let type_error = || {
        format!(
            "JSON Value: {} Type: {} is not of expected type: {}",
            short(value),
            json_type(value),
            dtype.tf_name()
        )
    };
    let lossy = |target: &str| {
        format!(
            "Cannot convert JSON value: {} to {target} without loss of precision.",
            short(value)
        )
    };
    let out_of_range = || {
        format!(
            "JSON Value: {} is out of range for type: {}",
            short(value),
            dtype.tf_name()
        )
    };
    if dtype == Dtype::String && is_b64_object(value) {
        return Err("{\"b64\": ...} values are not supported yet".to_string());
    }
    match out {
        Values::F32(v) => {
            let x = value.as_f64().ok_or_else(type_error)?;
            if !fits_float(value, x, F32_EXACT_INT, f64::from(f32::MAX)) {
                return Err(lossy("float"));
            }
            v.push(x as f32);
        }
        Values::F64(v) => {
            let x = value.as_f64().ok_or_else(type_error)?;
            if !fits_float(value, x, F64_EXACT_INT, f64::MAX) {
                return Err(lossy("double"));
            }
            v.push(x);
        }
        Values::I32(v) => {
            let x = integer(value).ok_or_else(type_error)?;
            let (lo, hi) = dtype.int_val_range();
            if !(i128::from(lo)..=i128::from(hi)).contains(&x) {
                return Err(out_of_range());
            }
            v.push(x as i32);
        }
        Values::I64(v) => v.push(
            integer(value)
                .and_then(|x| i64::try_from(x).ok())
                .ok_or_else(type_error)?,
        ),
        Values::U32(v) => v.push(
            integer(value)
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(type_error)?,
        ),
        Values::U64(v) => v.push(
            integer(value)
                .and_then(|x| u64::try_from(x).ok())
                .ok_or_else(type_error)?,
        ),
        Values::Bool(v) => v.push(value.as_bool().ok_or_else(type_error)?),
        Values::Bytes(v) => v.push(value.as_str().ok_or_else(type_error)?.as_bytes().to_vec()),
    }
    Ok(())
}

/// Largest integers a float / double holds exactly (2^24 - 1 and 2^53 - 1, as TF Serving checks).
const F32_EXACT_INT: u64 = (1 << 24) - 1;
const F64_EXACT_INT: u64 = (1 << 53) - 1;

fn fits_float(value: &Value, x: f64, exact_int: u64, max: f64) -> bool {
    if let Some(i) = value.as_i64() {
        return i.unsigned_abs() <= exact_int;
    }
    if let Some(u) = value.as_u64() {
        return u <= exact_int;
    }
    !x.is_finite() || x.abs() <= max
}

/// A JSON integer (not `1.0`): serde_json keeps integers that fit 64 bits as integers.
fn integer(value: &Value) -> Option<i128> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "Null",
        Value::Bool(false) => "False",
        Value::Bool(true) => "True",
        Value::Object(_) => "Object",
        Value::Array(_) => "Array",
        Value::String(_) => "String",
        Value::Number(_) => "Number",
    }
}

/// A JSON value shortened for an error message (clients can send megabytes).
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 40 {
        return text;
    }
    let mut end = 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(dtype: Dtype, value: Value) -> Result<Values, String> {
        let mut out = Values::empty(dtype);
        push_json(&mut out, dtype, &value)?;
        Ok(out)
    }

    #[test]
    fn numbers_take_the_signature_dtype() {
        assert_eq!(
            push(Dtype::Float, json!(1)).unwrap(),
            Values::F32(vec![1.0])
        );
        assert_eq!(
            push(Dtype::Float, json!(0.5)).unwrap(),
            Values::F32(vec![0.5])
        );
        assert_eq!(
            push(Dtype::Double, json!(-2)).unwrap(),
            Values::F64(vec![-2.0])
        );
        assert_eq!(
            push(Dtype::Int64, json!(i64::MIN)).unwrap(),
            Values::I64(vec![i64::MIN])
        );
        assert_eq!(
            push(Dtype::Uint64, json!(u64::MAX)).unwrap(),
            Values::U64(vec![u64::MAX])
        );
        assert_eq!(
            push(Dtype::Int8, json!(-128)).unwrap(),
            Values::I32(vec![-128])
        );
        assert_eq!(
            push(Dtype::Bool, json!(true)).unwrap(),
            Values::Bool(vec![true])
        );
        assert_eq!(
            push(Dtype::String, json!("hé")).unwrap(),
            Values::Bytes(vec!["hé".as_bytes().to_vec()])
        );
    }

    #[test]
    fn values_that_do_not_fit_are_refused() {
        for (dtype, value) in [
            (Dtype::Int32, json!(1.5)),
            (Dtype::Int32, json!(1.0)),
            (Dtype::Int32, json!(2147483648u64)),
            (Dtype::Int8, json!(128)),
            (Dtype::Uint8, json!(-1)),
            (Dtype::Uint32, json!(4294967296u64)),
            (Dtype::Int64, json!(u64::MAX)),
            (Dtype::Float, json!(1e39)),
            (Dtype::Float, json!("1")),
            (Dtype::Bool, json!(1)),
            (Dtype::String, json!(1)),
            (Dtype::Double, json!(null)),
            (Dtype::Float, json!({"b64": "AA=="})),
            (Dtype::Float, json!(16_777_216)),
            (Dtype::Double, json!(9_007_199_254_740_992u64)),
        ] {
            assert!(push(dtype, value.clone()).is_err(), "{dtype:?} {value}");
        }
    }

    #[test]
    fn messages_follow_tf_serving() {
        assert_eq!(
            push(Dtype::Int32, json!(1.5)).unwrap_err(),
            "JSON Value: 1.5 Type: Number is not of expected type: int32"
        );
        assert_eq!(
            push(Dtype::Float, json!("a")).unwrap_err(),
            "JSON Value: \"a\" Type: String is not of expected type: float"
        );
        assert_eq!(
            push(Dtype::Float, json!(16_777_216)).unwrap_err(),
            "Cannot convert JSON value: 16777216 to float without loss of precision."
        );
        assert_eq!(
            push(Dtype::Float, json!(16_777_215)).unwrap(),
            Values::F32(vec![16_777_215.0])
        );
    }

    #[test]
    fn error_messages_are_short() {
        let long = json!("x".repeat(10_000));
        let e = push(Dtype::Float, long).unwrap_err();
        assert!(e.len() < 100, "{e}");
    }

    #[test]
    fn codes_round_trip() {
        for dtype in [
            Dtype::Float,
            Dtype::Int16,
            Dtype::Uint64,
            Dtype::String,
            Dtype::Bool,
        ] {
            assert_eq!(Dtype::from_code(dtype.data_type() as i32), Some(dtype));
        }
        assert_eq!(Dtype::from_code(DataType::DtHalf as i32), None);
        assert_eq!(Dtype::from_code(12345), None);
        assert_eq!(code_name(12345), "DataType 12345");
        assert_eq!(Dtype::Float.name(), "DT_FLOAT");
    }
}
