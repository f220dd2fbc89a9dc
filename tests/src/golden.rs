//! The TF Serving REST bodies of tfs-sim's conversion models (`all_types`: one input of every
//! dtype; `echo_types`: inputs that go alone), shared by the tests that compare answers.

/// Two instances with one value of every dtype, NaN and infinities, binary strings.
pub const ROW_REQUEST: &str = r#"{"instances": [
  {"bool": true, "int8": -128, "int16": -32768, "int32": -2147483648, "int64": -9223372036854775808,
   "uint8": 255, "uint16": 65535, "uint32": 4294967295, "uint64": 18446744073709551615,
   "half": 0.5, "bfloat16": -2.5, "float": 0.1, "double": 1e-300, "string": "héllo"},
  {"bool": false, "int8": 127, "int16": 32767, "int32": 2147483647, "int64": 9223372036854775807,
   "uint8": 0, "uint16": 0, "uint32": 0, "uint64": 0,
   "half": NaN, "bfloat16": Infinity, "float": -Infinity, "double": NaN, "string": {"b64": "AP8="}}
]}"#;

/// Columnar, every input with 2 rows of its own shape: batched like row requests.
pub const COLUMNAR_REQUEST: &str = r#"{"inputs": {
  "bool": [[true, false], [false, true]], "int8": [1, -1], "int16": [[2], [-2]], "int32": [3, -3],
  "int64": [4, -4], "uint8": [5, 6], "uint16": [7, 8], "uint32": [9, 10], "uint64": [11, 12],
  "half": [[1.5, -0.25], [65504, -Inf]], "bfloat16": [0.75, 3], "float": [[[1]], [[2]]],
  "double": [0.3, -0.3], "string": ["a", {"b64": "YmluAA=="}]
}}"#;

/// Columnar inputs of different lengths (and a scalar) cannot be batched: sent as they are.
pub const UNEVEN_REQUEST: &str =
    r#"{"inputs": {"f32": [1.5, 2.5, 3.5], "i64": 7, "s": ["x"], "b": [[true]], "f64": [], "i32": [1, 2]}}"#;
