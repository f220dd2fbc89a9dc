//! How a single JSON value becomes one element. JSON numbers carry no type: the signature's
//! dtype decides, and a value that does not fit it (1.5 for an integer, 300 for an int8, 1e39
//! for a float) is refused, never truncated. Binary strings come as `{"b64": "..."}`; NaN and
//! infinities as markers (see [`nonfinite`]).
//!
//! [`nonfinite`]: super::nonfinite

use base64::Engine;
use serde_json::Value;
use tfgate_common::echo::{clip, quote, QUOTED_BYTES};

use super::nonfinite::{marker_token, marker_value};
use super::tensor::Values;
use super::Dtype;

/// Standard alphabet, padding optional (TF Serving accepts both).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

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
        format!("JSON Value: {} Type: {} is not of expected type: {}", short(value), json_type(value), dtype.tf_name())
    };
    let lossy =
        |target: &str| format!("Cannot convert JSON value: {} to {target} without loss of precision.", short(value));
    let out_of_range = || format!("JSON Value: {} is out of range for type: {}", short(value), dtype.tf_name());
    // A NaN/Infinity marker is a number for the float types and a type error elsewhere.
    let nonfinite = value.as_str().and_then(marker_value);
    if nonfinite.is_none() && value.as_str().and_then(marker_token).is_some() {
        return Err(type_error());
    }
    match out {
        Values::F32(v) => {
            let x = nonfinite.or_else(|| value.as_f64()).ok_or_else(type_error)?;
            if !fits_float(value, x, F32_EXACT_INT, f64::from(f32::MAX)) {
                return Err(lossy("float"));
            }
            let rounded = dtype.round_float(x as f32);
            if rounded.is_infinite() && x.is_finite() {
                return Err(out_of_range());
            }
            v.push(rounded);
        }
        Values::F64(v) => {
            let x = nonfinite.or_else(|| value.as_f64()).ok_or_else(type_error)?;
            if !fits_float(value, x, F64_EXACT_INT, f64::MAX) {
                return Err(lossy("double"));
            }
            v.push(x);
        }
        _ if nonfinite.is_some() => return Err(type_error()),
        Values::I32(v) => {
            let x = integer(value).ok_or_else(type_error)?;
            let (lo, hi) = dtype.int_val_range();
            if !(i128::from(lo)..=i128::from(hi)).contains(&x) {
                return Err(out_of_range());
            }
            v.push(x as i32);
        }
        Values::I64(v) => v.push(integer(value).and_then(|x| i64::try_from(x).ok()).ok_or_else(type_error)?),
        Values::U32(v) => v.push(integer(value).and_then(|x| u32::try_from(x).ok()).ok_or_else(type_error)?),
        Values::U64(v) => v.push(integer(value).and_then(|x| u64::try_from(x).ok()).ok_or_else(type_error)?),
        Values::Bool(v) => v.push(value.as_bool().ok_or_else(type_error)?),
        Values::Bytes(v) => v.push(&string_bytes(value).ok_or_else(type_error)??)?,
    }
    Ok(())
}

/// A string element: a JSON string, or `{"b64": "..."}` decoded (`None`: neither).
fn string_bytes(value: &Value) -> Option<Result<Vec<u8>, String>> {
    if let Some(text) = value.as_str() {
        return Some(Ok(text.as_bytes().to_vec()));
    }
    if !is_b64_object(value) {
        return None;
    }
    let encoded = value.get("b64")?.as_str()?;
    Some(B64.decode(encoded).map_err(|e| format!("Unable to base64 decode: {} ({e})", quote(encoded))))
}

/// Base64 (standard alphabet, padded) of a binary string output.
pub fn encode_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
    value.as_i64().map(i128::from).or_else(|| value.as_u64().map(i128::from))
}

fn json_type(value: &Value) -> &'static str {
    if value.as_str().and_then(marker_token).is_some() {
        return "Number";
    }
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

/// A JSON value as a message quotes it (clients can send megabytes, and logs keep none of it).
fn short(value: &Value) -> String {
    if let Some(token) = value.as_str().and_then(marker_token) {
        return token.to_string();
    }
    match value {
        Value::String(text) if text.len() > QUOTED_BYTES => quote(&format!("\"{}", clip(text, QUOTED_BYTES))),
        _ => quote(&value.to_string()),
    }
}

#[cfg(test)]
#[path = "leaf_tests.rs"]
mod tests;
