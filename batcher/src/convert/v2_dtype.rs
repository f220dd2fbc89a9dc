//! The Open Inference Protocol's ("KServe v2") tensor datatypes, and how each maps to a
//! TensorFlow dtype ([`Dtype`]) and back.
//!
//! The mapping is one to one: every v2 datatype has a TF dtype the daemon handles, and every
//! [`Dtype`] has a v2 datatype (DT_STRING is BYTES, DT_HALF is FP16, DT_BFLOAT16 is BF16). TF
//! dtypes outside [`Dtype`] (complex, quantized, resource, variant, reference types) have none,
//! and say so by name.
//!
//! For every fixed-size datatype, v2 raw contents (`raw_input_contents`, `raw_output_contents`,
//! the binary tensor data extension) and TF's `tensor_content` lay elements out the same way:
//! row-major, little-endian, no padding, BOOL as one byte 0 or 1. That sameness is what lets a
//! batch move between the protocols without touching its elements. BYTES differs: v2 writes each
//! element as a 4-byte little-endian length and then its bytes ([`split_raw_bytes`],
//! [`push_raw_bytes`]); TF keeps strings in `string_val`.

use tfgate_common::echo::quote;
use tfgate_proto::inference::InferTensorContents;
use tfgate_proto::tensorflow::DataType;

use super::dtype::{code_name, Dtype};
use super::{Blame, ConvertError};

/// A tensor datatype of the Open Inference Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum V2Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Bf16,
    Fp32,
    Fp64,
    Bytes,
}

/// Bytes of the length that precedes each BYTES element in raw contents.
pub const BYTES_LENGTH_PREFIX: usize = 4;

impl V2Datatype {
    /// Every datatype, in the protocol's order.
    pub const ALL: [V2Datatype; 14] = [
        V2Datatype::Bool,
        V2Datatype::Uint8,
        V2Datatype::Uint16,
        V2Datatype::Uint32,
        V2Datatype::Uint64,
        V2Datatype::Int8,
        V2Datatype::Int16,
        V2Datatype::Int32,
        V2Datatype::Int64,
        V2Datatype::Fp16,
        V2Datatype::Bf16,
        V2Datatype::Fp32,
        V2Datatype::Fp64,
        V2Datatype::Bytes,
    ];

    /// The name on the wire ("FP32"). The protocol's strings are case-sensitive.
    pub fn name(self) -> &'static str {
        match self {
            V2Datatype::Bool => "BOOL",
            V2Datatype::Uint8 => "UINT8",
            V2Datatype::Uint16 => "UINT16",
            V2Datatype::Uint32 => "UINT32",
            V2Datatype::Uint64 => "UINT64",
            V2Datatype::Int8 => "INT8",
            V2Datatype::Int16 => "INT16",
            V2Datatype::Int32 => "INT32",
            V2Datatype::Int64 => "INT64",
            V2Datatype::Fp16 => "FP16",
            V2Datatype::Bf16 => "BF16",
            V2Datatype::Fp32 => "FP32",
            V2Datatype::Fp64 => "FP64",
            V2Datatype::Bytes => "BYTES",
        }
    }

    /// The datatype named exactly `name`, or `None`.
    pub fn from_name(name: &str) -> Option<V2Datatype> {
        V2Datatype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// As [`from_name`](Self::from_name), with an error for a client (or a v2 backend,
    /// per `blame`) that quotes at most a clipped prefix of what it sent.
    pub fn parse(name: &str, blame: Blame) -> Result<V2Datatype, ConvertError> {
        V2Datatype::from_name(name).ok_or_else(|| ConvertError {
            blame,
            message: format!(
                "unsupported datatype '{}': expected one of {}",
                quote(name),
                V2Datatype::ALL.map(V2Datatype::name).join(", ")
            ),
        })
    }

    /// The TF dtype holding the same elements.
    pub fn dtype(self) -> Dtype {
        match self {
            V2Datatype::Bool => Dtype::Bool,
            V2Datatype::Uint8 => Dtype::Uint8,
            V2Datatype::Uint16 => Dtype::Uint16,
            V2Datatype::Uint32 => Dtype::Uint32,
            V2Datatype::Uint64 => Dtype::Uint64,
            V2Datatype::Int8 => Dtype::Int8,
            V2Datatype::Int16 => Dtype::Int16,
            V2Datatype::Int32 => Dtype::Int32,
            V2Datatype::Int64 => Dtype::Int64,
            V2Datatype::Fp16 => Dtype::Half,
            V2Datatype::Bf16 => Dtype::Bfloat16,
            V2Datatype::Fp32 => Dtype::Float,
            V2Datatype::Fp64 => Dtype::Double,
            V2Datatype::Bytes => Dtype::String,
        }
    }

    /// The v2 datatype of a TF dtype the daemon handles; every one has one.
    pub fn from_dtype(dtype: Dtype) -> V2Datatype {
        match dtype {
            Dtype::Bool => V2Datatype::Bool,
            Dtype::Uint8 => V2Datatype::Uint8,
            Dtype::Uint16 => V2Datatype::Uint16,
            Dtype::Uint32 => V2Datatype::Uint32,
            Dtype::Uint64 => V2Datatype::Uint64,
            Dtype::Int8 => V2Datatype::Int8,
            Dtype::Int16 => V2Datatype::Int16,
            Dtype::Int32 => V2Datatype::Int32,
            Dtype::Int64 => V2Datatype::Int64,
            Dtype::Half => V2Datatype::Fp16,
            Dtype::Bfloat16 => V2Datatype::Bf16,
            Dtype::Float => V2Datatype::Fp32,
            Dtype::Double => V2Datatype::Fp64,
            Dtype::String => V2Datatype::Bytes,
        }
    }

    /// The v2 datatype of a TF `DataType` code (from a signature or a `TensorProto`), or an
    /// error naming the TF type that has none.
    pub fn from_tf_code(code: i32, blame: Blame) -> Result<V2Datatype, ConvertError> {
        Dtype::from_code(code).map(V2Datatype::from_dtype).ok_or_else(|| ConvertError {
            blame,
            message: format!("{} has no Open Inference Protocol datatype", code_name(code)),
        })
    }

    /// The TF `DataType` of this datatype.
    pub fn data_type(self) -> DataType {
        self.dtype().data_type()
    }

    /// Bytes per element in raw contents; `None` for BYTES, whose elements are each
    /// length-prefixed (see [`split_raw_bytes`]).
    pub fn element_size(self) -> Option<usize> {
        match self {
            V2Datatype::Bool | V2Datatype::Uint8 | V2Datatype::Int8 => Some(1),
            V2Datatype::Uint16 | V2Datatype::Int16 | V2Datatype::Fp16 | V2Datatype::Bf16 => Some(2),
            V2Datatype::Uint32 | V2Datatype::Int32 | V2Datatype::Fp32 => Some(4),
            V2Datatype::Uint64 | V2Datatype::Int64 | V2Datatype::Fp64 => Some(8),
            V2Datatype::Bytes => None,
        }
    }

    /// Raw-content bytes of `elements` elements, for a fixed-size datatype; `None` for BYTES or
    /// when the size does not fit a `usize` (a shape no body can carry).
    pub fn raw_len(self, elements: usize) -> Option<usize> {
        self.element_size()?.checked_mul(elements)
    }
}

impl std::fmt::Display for V2Datatype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of a BYTES tensor's raw contents: each a 4-byte little-endian length, then that
/// many bytes. `count` is the element count of the tensor's shape; the contents must hold exactly
/// that many elements and nothing after them. Errors give sizes, never the contents.
pub fn split_raw_bytes(raw: &[u8], count: usize, blame: Blame) -> Result<Vec<&[u8]>, ConvertError> {
    let fail = |message: String| ConvertError { blame, message };
    // Each element takes at least its prefix, so a count beyond that is wrong before any reading
    // (and must not size an allocation).
    if count > raw.len() / BYTES_LENGTH_PREFIX {
        return Err(fail(format!(
            "BYTES contents of {} bytes cannot hold {count} elements (each needs a {BYTES_LENGTH_PREFIX}-byte length)",
            raw.len()
        )));
    }
    let mut out = Vec::with_capacity(count);
    let mut rest = raw;
    for i in 0..count {
        let Some((prefix, after)) = rest.split_first_chunk::<BYTES_LENGTH_PREFIX>() else {
            return Err(fail(format!("BYTES contents end inside the length of element {i} of {count}")));
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > after.len() {
            return Err(fail(format!(
                "BYTES element {i} of {count} declares {len} bytes, {} remain in the contents",
                after.len()
            )));
        }
        let (element, next) = after.split_at(len);
        out.push(element);
        rest = next;
    }
    if !rest.is_empty() {
        return Err(fail(format!("BYTES contents have {} bytes left after {count} elements", rest.len())));
    }
    Ok(out)
}

/// Appends one BYTES element to raw contents. An element over 4 GiB cannot be written (its
/// length would not fit the prefix).
pub fn push_raw_bytes(out: &mut Vec<u8>, element: &[u8], blame: Blame) -> Result<(), ConvertError> {
    let len = u32::try_from(element.len()).map_err(|_| ConvertError {
        blame,
        message: format!("a BYTES element of {} bytes does not fit the 4-byte length of raw contents", element.len()),
    })?;
    out.reserve(BYTES_LENGTH_PREFIX + element.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(element);
    Ok(())
}

/// The `InferTensorContents` field of a datatype's values; FP16 and BF16 have none (they travel
/// only as raw contents).
pub fn contents_field(datatype: V2Datatype) -> Option<&'static str> {
    Some(match datatype {
        V2Datatype::Bool => "bool_contents",
        V2Datatype::Int8 | V2Datatype::Int16 | V2Datatype::Int32 => "int_contents",
        V2Datatype::Int64 => "int64_contents",
        V2Datatype::Uint8 | V2Datatype::Uint16 | V2Datatype::Uint32 => "uint_contents",
        V2Datatype::Uint64 => "uint64_contents",
        V2Datatype::Fp32 => "fp32_contents",
        V2Datatype::Fp64 => "fp64_contents",
        V2Datatype::Bytes => "bytes_contents",
        V2Datatype::Fp16 | V2Datatype::Bf16 => return None,
    })
}

/// How many values each field of `contents` holds.
pub fn contents_fields(contents: &InferTensorContents) -> [(&'static str, usize); 8] {
    [
        ("bool_contents", contents.bool_contents.len()),
        ("int_contents", contents.int_contents.len()),
        ("int64_contents", contents.int64_contents.len()),
        ("uint_contents", contents.uint_contents.len()),
        ("uint64_contents", contents.uint64_contents.len()),
        ("fp32_contents", contents.fp32_contents.len()),
        ("fp64_contents", contents.fp64_contents.len()),
        ("bytes_contents", contents.bytes_contents.len()),
    ]
}

/// Checks that typed `contents` hold exactly `count` values of `datatype`, in its own field and
/// in no other (another field's values would be dropped unread: refused, not guessed at).
pub fn check_contents(datatype: V2Datatype, contents: &InferTensorContents, count: usize) -> Result<(), String> {
    let own = contents_field(datatype);
    let fields = contents_fields(contents);
    // Values in the wrong field first: that mistake explains a short count in the right one.
    if let Some((field, n)) = fields.iter().find(|&&(field, n)| n > 0 && Some(field) != own) {
        return Err(match own {
            Some(own) => format!("{n} values in {field}; {datatype} values belong in {own}"),
            None => format!("{n} values in {field}; {datatype} values can only be raw contents"),
        });
    }
    if let Some((field, n)) = fields.iter().find(|&&(field, n)| Some(field) == own && n != count) {
        return Err(format!("{n} values in {field} for {count} elements"));
    }
    if own.is_none() && count > 0 {
        return Err(format!("no raw contents; {datatype} values can only be raw contents"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_common::echo::{for_client, for_log};

    /// Every pair, written out once: (v2 name, TF dtype, TF DataType, raw element size).
    const PAIRS: [(&str, Dtype, DataType, Option<usize>); 14] = [
        ("BOOL", Dtype::Bool, DataType::DtBool, Some(1)),
        ("UINT8", Dtype::Uint8, DataType::DtUint8, Some(1)),
        ("UINT16", Dtype::Uint16, DataType::DtUint16, Some(2)),
        ("UINT32", Dtype::Uint32, DataType::DtUint32, Some(4)),
        ("UINT64", Dtype::Uint64, DataType::DtUint64, Some(8)),
        ("INT8", Dtype::Int8, DataType::DtInt8, Some(1)),
        ("INT16", Dtype::Int16, DataType::DtInt16, Some(2)),
        ("INT32", Dtype::Int32, DataType::DtInt32, Some(4)),
        ("INT64", Dtype::Int64, DataType::DtInt64, Some(8)),
        ("FP16", Dtype::Half, DataType::DtHalf, Some(2)),
        ("BF16", Dtype::Bfloat16, DataType::DtBfloat16, Some(2)),
        ("FP32", Dtype::Float, DataType::DtFloat, Some(4)),
        ("FP64", Dtype::Double, DataType::DtDouble, Some(8)),
        ("BYTES", Dtype::String, DataType::DtString, None),
    ];

    #[test]
    fn v2_every_pair_both_ways() {
        assert_eq!(V2Datatype::ALL.len(), PAIRS.len());
        for (v2, (name, dtype, data_type, size)) in V2Datatype::ALL.into_iter().zip(PAIRS) {
            assert_eq!(v2.name(), name);
            assert_eq!(v2.to_string(), name);
            assert_eq!(V2Datatype::from_name(name), Some(v2), "{name}");
            assert_eq!(V2Datatype::parse(name, Blame::Request), Ok(v2));
            assert_eq!(v2.dtype(), dtype, "{name}");
            assert_eq!(V2Datatype::from_dtype(dtype), v2, "{name}");
            assert_eq!(v2.data_type(), data_type, "{name}");
            assert_eq!(V2Datatype::from_tf_code(data_type as i32, Blame::Backend), Ok(v2), "{name}");
            assert_eq!(v2.element_size(), size, "{name}");
        }
    }

    #[test]
    fn v2_raw_layout_is_tensor_content_layout() {
        // Fixed-size elements have the same width in v2 raw contents as in TF's tensor_content,
        // so raw rows can be joined into tensor_content (and split back) as they are.
        for v2 in V2Datatype::ALL {
            assert_eq!(v2.element_size(), v2.dtype().byte_width(), "{v2}");
        }
        assert_eq!(V2Datatype::Fp32.raw_len(6), Some(24));
        assert_eq!(V2Datatype::Bool.raw_len(3), Some(3));
        assert_eq!(V2Datatype::Fp64.raw_len(0), Some(0));
        assert_eq!(V2Datatype::Bytes.raw_len(1), None);
        assert_eq!(V2Datatype::Int64.raw_len(usize::MAX / 4), None, "overflow is no size");
    }

    #[test]
    fn v2_names_are_exact_and_case_sensitive() {
        for name in ["fp32", "Fp32", " FP32", "FP32 ", "FLOAT", "STRING", "FP8", "INT4", "UINT128", "DT_FLOAT", ""] {
            assert_eq!(V2Datatype::from_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn v2_unknown_datatype_error() {
        let e = V2Datatype::parse("COMPLEX64", Blame::Request).unwrap_err();
        assert_eq!(e.blame, Blame::Request);
        assert_eq!(
            for_client(&e.message),
            "unsupported datatype 'COMPLEX64': expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, \
             INT32, INT64, FP16, BF16, FP32, FP64, BYTES"
        );
        assert_eq!(V2Datatype::parse("x", Blame::Backend).unwrap_err().blame, Blame::Backend);
    }

    #[test]
    fn v2_unknown_datatype_error_never_echoes_long_input() {
        let long = format!("SECRET-{}", "A".repeat(10_000));
        let e = V2Datatype::parse(&long, Blame::Request).unwrap_err();
        let client = for_client(&e.message);
        assert!(client.len() < 300, "{} bytes", client.len());
        assert!(client.contains("SECRET-AAA") && client.contains("...'"), "{client}");
        let logged = for_log(&e.message);
        assert!(!logged.contains("SECRET"), "{logged}");
        assert!(logged.contains("<67 bytes>"), "{logged}");
    }

    #[test]
    fn v2_tf_dtypes_without_a_datatype() {
        for (dt, name) in [
            (DataType::DtComplex64, "DT_COMPLEX64"),
            (DataType::DtComplex128, "DT_COMPLEX128"),
            (DataType::DtQint8, "DT_QINT8"),
            (DataType::DtQuint8, "DT_QUINT8"),
            (DataType::DtQint16, "DT_QINT16"),
            (DataType::DtQuint16, "DT_QUINT16"),
            (DataType::DtQint32, "DT_QINT32"),
            (DataType::DtResource, "DT_RESOURCE"),
            (DataType::DtVariant, "DT_VARIANT"),
            (DataType::DtInvalid, "DT_INVALID"),
            (DataType::DtFloatRef, "DT_FLOAT_REF"),
            (DataType::DtStringRef, "DT_STRING_REF"),
        ] {
            let e = V2Datatype::from_tf_code(dt as i32, Blame::Backend).unwrap_err();
            assert_eq!(e.blame, Blame::Backend);
            assert_eq!(e.message, format!("{name} has no Open Inference Protocol datatype"));
        }
        let e = V2Datatype::from_tf_code(4242, Blame::Request).unwrap_err();
        assert_eq!(
            (e.blame, e.message.as_str()),
            (Blame::Request, "DataType 4242 has no Open Inference Protocol datatype")
        );
    }

    #[test]
    fn v2_raw_bytes_round_trip() {
        let elements: [&[u8]; 4] = [b"ab", b"", b"\x00\xff", &[7u8; 300]];
        let mut raw = Vec::new();
        for e in elements {
            push_raw_bytes(&mut raw, e, Blame::Backend).unwrap();
        }
        assert_eq!(&raw[..6], [2, 0, 0, 0, b'a', b'b'], "4-byte little-endian length, then the bytes");
        assert_eq!(&raw[6..10], [0, 0, 0, 0]);
        assert_eq!(&raw[16..20], [0x2c, 0x01, 0, 0], "300 = 0x012c");
        assert_eq!(raw.len(), 4 * 4 + 2 + 2 + 300);
        assert_eq!(split_raw_bytes(&raw, 4, Blame::Request).unwrap(), elements);
        assert_eq!(split_raw_bytes(&[], 0, Blame::Request).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn v2_raw_bytes_errors() {
        let mut raw = Vec::new();
        push_raw_bytes(&mut raw, b"secret", Blame::Request).unwrap();
        let err = |raw: &[u8], count| split_raw_bytes(raw, count, Blame::Request).unwrap_err();

        let e = err(&raw, 3);
        assert_eq!(e.blame, Blame::Request);
        assert_eq!(e.message, "BYTES contents of 10 bytes cannot hold 3 elements (each needs a 4-byte length)");
        assert!(err(&raw, usize::MAX).message.contains("cannot hold"));
        // Enough bytes for two prefixes, but the first element takes most of them.
        assert_eq!(err(&raw, 2).message, "BYTES contents end inside the length of element 1 of 2");
        assert_eq!(err(&raw[..9], 1).message, "BYTES element 0 of 1 declares 6 bytes, 5 remain in the contents");
        assert_eq!(err(&raw, 0).message, "BYTES contents have 10 bytes left after 0 elements");
        let mut extra = raw.clone();
        extra.push(0);
        assert_eq!(err(&extra, 1).message, "BYTES contents have 1 bytes left after 1 elements");
        assert_eq!(split_raw_bytes(&raw, 2, Blame::Backend).unwrap_err().blame, Blame::Backend);
        for m in [err(&raw, 3), err(&raw, 2), err(&raw[..9], 1), err(&extra, 1)].map(|e| e.message) {
            assert!(!m.contains("secret"), "{m}");
        }
    }
}
