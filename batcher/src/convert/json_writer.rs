//! Tensors written the way TF Serving writes them in REST answers: nested lists; floats in their
//! shortest form (`0.1`, not `0.10000000149011612`); NaN and infinities as the bare tokens `NaN`,
//! `Infinity`, `-Infinity` (TF Serving's output, although strict JSON has no such tokens);
//! strings as JSON strings, or as `{"b64": "..."}` for outputs whose name ends in `_bytes`.
//!
//! Written by hand into a byte buffer rather than through serde: serde_json would turn
//! non-finite floats into `null`, and this path runs once per element of every answer.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::ser::{CompactFormatter, Formatter};

use super::leaf::encode_b64;
use super::tensor::{Tensor, Values};

/// Whether string elements are written as `{"b64": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strings {
    Text,
    Base64,
}

impl Strings {
    /// TF Serving's rule: a DT_STRING output named `*_bytes` holds binary data.
    pub fn for_output(name: &str) -> Strings {
        if name.ends_with("_bytes") {
            Strings::Base64
        } else {
            Strings::Text
        }
    }
}

/// The elements from `start`, shaped by `dims`, as nested lists (a scalar when `dims` is empty).
pub fn write_nested(out: &mut Vec<u8>, values: &Values, dims: &[usize], start: usize, s: Strings) {
    let Some((&len, inner)) = dims.split_first() else {
        write_element(out, values, start, s);
        return;
    };
    let stride: usize = inner.iter().product();
    out.push(b'[');
    for i in 0..len {
        if i > 0 {
            out.push(b',');
        }
        write_nested(out, values, inner, start + i * stride, s);
    }
    out.push(b']');
}

/// Elements `range` of `values`, each preceded by a comma unless it is the list's first
/// (`separate` says whether one was written already): a flat list written piece by piece.
pub fn write_elements(out: &mut Vec<u8>, values: &Values, range: Range<usize>, separate: &mut bool, s: Strings) {
    for i in range {
        if std::mem::replace(separate, true) {
            out.push(b',');
        }
        write_element(out, values, i, s);
    }
}

/// Row `row` (along dimension 0) of a tensor of shape `dims`.
pub fn write_row(out: &mut Vec<u8>, values: &Values, dims: &[usize], row: usize, s: Strings) {
    let inner = dims.get(1..).unwrap_or(&[]);
    let stride: usize = inner.iter().product();
    write_nested(out, values, inner, row * stride, s);
}

/// A JSON string (escaped), e.g. an object key.
/// `{"name": value, ...}` over named tensors, each value written by `write`.
pub fn write_object(
    out: &mut Vec<u8>,
    tensors: &BTreeMap<String, Tensor>,
    mut write: impl FnMut(&mut Vec<u8>, &str, &Tensor),
) {
    out.push(b'{');
    for (i, (name, tensor)) in tensors.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write(out, name, tensor);
    }
    out.push(b'}');
}

pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_element(out: &mut Vec<u8>, values: &Values, i: usize, strings: Strings) {
    let mut f = CompactFormatter;
    // Shapes and buffers are checked to agree when a tensor is read, so `i` is in range; a
    // `null` would only show a bug, never a panic.
    let written = match values {
        Values::F32(v) => v.get(i).map(|&x| write_float(out, f64::from(x), Some(x))),
        Values::F64(v) => v.get(i).map(|&x| write_float(out, x, None)),
        Values::I32(v) => v.get(i).map(|&x| f.write_i32(out, x)),
        Values::I64(v) => v.get(i).map(|&x| f.write_i64(out, x)),
        Values::U32(v) => v.get(i).map(|&x| f.write_u32(out, x)),
        Values::U64(v) => v.get(i).map(|&x| f.write_u64(out, x)),
        Values::Bool(v) => v.get(i).map(|&x| f.write_bool(out, x)),
        Values::Bytes(v) => v.get(i).map(|bytes| {
            match strings {
                Strings::Text => write_str(out, &String::from_utf8_lossy(bytes)),
                Strings::Base64 => {
                    out.extend_from_slice(b"{\"b64\":\"");
                    out.extend_from_slice(encode_b64(bytes).as_bytes());
                    out.extend_from_slice(b"\"}");
                }
            }
            Ok(())
        }),
    };
    if written.is_none() {
        out.extend_from_slice(b"null");
    }
}

/// `single` is the f32 when the value is one (written in f32's shortest form).
fn write_float(out: &mut Vec<u8>, x: f64, single: Option<f32>) -> std::io::Result<()> {
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        let mut f = CompactFormatter;
        match single {
            Some(x) => f.write_f32(out, x)?,
            None => f.write_f64(out, x)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(values: &Values, dims: &[usize], s: Strings) -> String {
        let mut out = Vec::new();
        write_nested(&mut out, values, dims, 0, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn nested_lists_with_short_floats() {
        let values = Values::F32(vec![0.1, 2.5, 3.0, -4.0, 5.0, 6.0]);
        assert_eq!(nested(&values, &[3, 2], Strings::Text), "[[0.1,2.5],[3.0,-4.0],[5.0,6.0]]");
        let mut row = Vec::new();
        write_row(&mut row, &values, &[3, 2], 2, Strings::Text);
        assert_eq!(row, b"[5.0,6.0]");
        let mut row = Vec::new();
        write_row(&mut row, &Values::Bool(vec![true, false]), &[2], 1, Strings::Text);
        assert_eq!(row, b"false");
        assert_eq!(nested(&Values::I64(vec![]), &[2, 0], Strings::Text), "[[],[]]");
    }

    #[test]
    fn non_finite_floats_are_bare_tokens() {
        let values = Values::F64(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5]);
        assert_eq!(nested(&values, &[4], Strings::Text), "[NaN,Infinity,-Infinity,1.5]");
        let values = Values::F32(vec![f32::NAN, f32::NEG_INFINITY]);
        assert_eq!(nested(&values, &[2], Strings::Text), "[NaN,-Infinity]");
    }

    #[test]
    fn strings_as_text_or_b64() {
        let values = Values::Bytes(vec![b"a\"b".to_vec(), vec![0, 0xff]].into());
        assert_eq!(nested(&values, &[2], Strings::Text), "[\"a\\\"b\",\"\\u0000\u{fffd}\"]");
        assert_eq!(nested(&values, &[2], Strings::Base64), r#"[{"b64":"YSJi"},{"b64":"AP8="}]"#);
        assert_eq!(Strings::for_output("img_bytes"), Strings::Base64);
        assert_eq!(Strings::for_output("bytes_out"), Strings::Text);
    }

    #[test]
    fn integers_of_every_width() {
        assert_eq!(nested(&Values::U64(vec![u64::MAX]), &[1], Strings::Text), "[18446744073709551615]");
        assert_eq!(nested(&Values::I32(vec![-7]), &[], Strings::Text), "-7");
        // Out-of-range indices never panic.
        assert_eq!(nested(&Values::U32(vec![]), &[1], Strings::Text), "[null]");
    }
}
