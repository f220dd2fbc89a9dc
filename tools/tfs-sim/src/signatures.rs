//! The signatures of the simulated models: named inputs and outputs, of shape [-1] (a batch
//! dimension) unless a model says otherwise, each output computed from one input.

use tfgate_proto::tensorflow::DataType;

use crate::kind::Kind;

/// One output of a signature and the input it is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub name: &'static str,
    pub dtype: DataType,
    pub from_input: &'static str,
}

/// A signature: named inputs and outputs, their shape (see `fixed_shape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Inputs in a fixed order; the first one sent gives the batch size.
    pub inputs: &'static [(&'static str, DataType)],
    pub outputs: &'static [Output],
    /// Whether every input must be sent (otherwise at least one, and outputs of missing inputs are
    /// not produced).
    pub all_inputs_required: bool,
    /// The static shape every input must have and every output reports, -1 for any size;
    /// `None`: any shape is accepted and the metadata says [-1], as for the batchable models.
    pub fixed_shape: Option<&'static [i64]>,
}

const fn echo(name: &'static str, dtype: DataType, from_input: &'static str) -> Output {
    Output { name, dtype, from_input }
}

const HALF_PLUS_TWO: Signature = Signature {
    inputs: &[("x", DataType::DtFloat)],
    outputs: &[echo("y", DataType::DtFloat, "x")],
    all_inputs_required: true,
    fixed_shape: None,
};

const ECHO_TYPES: Signature = Signature {
    inputs: &[
        ("f32", DataType::DtFloat),
        ("f64", DataType::DtDouble),
        ("i32", DataType::DtInt32),
        ("i64", DataType::DtInt64),
        ("b", DataType::DtBool),
        ("s", DataType::DtString),
    ],
    outputs: &[
        echo("f32_out", DataType::DtFloat, "f32"),
        echo("f64_out", DataType::DtDouble, "f64"),
        echo("i32_out", DataType::DtInt32, "i32"),
        echo("i64_out", DataType::DtInt64, "i64"),
        echo("b_out", DataType::DtBool, "b"),
        echo("s_out", DataType::DtString, "s"),
        // Named `_bytes` so TF Serving's REST layer writes it as {"b64": ...}.
        echo("s_bytes", DataType::DtString, "s"),
    ],
    all_inputs_required: false,
    fixed_shape: None,
};

/// Every dtype the REST API can carry (and the 16-bit floats), each echoed.
const ALL_TYPES: Signature = Signature {
    inputs: &[
        ("bool", DataType::DtBool),
        ("int8", DataType::DtInt8),
        ("int16", DataType::DtInt16),
        ("int32", DataType::DtInt32),
        ("int64", DataType::DtInt64),
        ("uint8", DataType::DtUint8),
        ("uint16", DataType::DtUint16),
        ("uint32", DataType::DtUint32),
        ("uint64", DataType::DtUint64),
        ("half", DataType::DtHalf),
        ("bfloat16", DataType::DtBfloat16),
        ("float", DataType::DtFloat),
        ("double", DataType::DtDouble),
        ("string", DataType::DtString),
    ],
    outputs: &[
        echo("bool_out", DataType::DtBool, "bool"),
        echo("int8_out", DataType::DtInt8, "int8"),
        echo("int16_out", DataType::DtInt16, "int16"),
        echo("int32_out", DataType::DtInt32, "int32"),
        echo("int64_out", DataType::DtInt64, "int64"),
        echo("uint8_out", DataType::DtUint8, "uint8"),
        echo("uint16_out", DataType::DtUint16, "uint16"),
        echo("uint32_out", DataType::DtUint32, "uint32"),
        echo("uint64_out", DataType::DtUint64, "uint64"),
        echo("half_out", DataType::DtHalf, "half"),
        echo("bfloat16_out", DataType::DtBfloat16, "bfloat16"),
        echo("float_out", DataType::DtFloat, "float"),
        echo("double_out", DataType::DtDouble, "double"),
        echo("string_out", DataType::DtString, "string"),
        echo("string_bytes", DataType::DtString, "string"),
    ],
    all_inputs_required: false,
    fixed_shape: None,
};

const EVOLVING_V1: Signature = Signature {
    inputs: &[("x", DataType::DtFloat)],
    outputs: &[echo("y", DataType::DtFloat, "x")],
    all_inputs_required: true,
    fixed_shape: None,
};

const EVOLVING_V2: Signature = Signature {
    inputs: &[("x", DataType::DtInt64)],
    outputs: &[echo("y", DataType::DtInt64, "x")],
    all_inputs_required: true,
    fixed_shape: None,
};

/// Exactly three values, with no batch dimension: joining two requests makes a [6] it refuses.
const FIXED3: Signature = Signature {
    inputs: &[("x", DataType::DtFloat)],
    outputs: &[echo("y", DataType::DtFloat, "x")],
    all_inputs_required: true,
    fixed_shape: Some(&[3]),
};

const ECHO_STRING: Signature = Signature {
    inputs: &[("s", DataType::DtString)],
    outputs: &[echo("s_out", DataType::DtString, "s")],
    all_inputs_required: true,
    fixed_shape: None,
};

/// The `serving_default` signature of a model kind at a version.
pub fn signature_of(kind: Kind, version: i64) -> Signature {
    match kind {
        Kind::HalfPlusTwo => HALF_PLUS_TWO,
        Kind::EchoTypes => ECHO_TYPES,
        Kind::AllTypes => ALL_TYPES,
        Kind::Evolving if version >= 2 => EVOLVING_V2,
        Kind::Evolving => EVOLVING_V1,
        Kind::Fixed3 => FIXED3,
        Kind::EchoString => ECHO_STRING,
    }
}
