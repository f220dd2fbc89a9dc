//! Nested JSON lists straight into flat typed buffers, in one streaming pass (no JSON value tree:
//! a parsed body takes about the size of its tensors, not many times its text). Writing them
//! back is `json_writer`.
//!
//! The shape is the one the first elements give (`[[1,2],[3,4]]` is [2, 2]) and every other
//! element must match it: ragged lists, and lists mixed with scalars, are refused.

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use tfgate_common::echo::quote;

use super::leaf::{is_b64_object, push_json};
use super::tensor::Values;
use super::Dtype;

/// The shape of one nested value, learnt while it is parsed.
#[derive(Debug, Default)]
pub struct Shape {
    /// Sizes by depth, known once the first list at that depth has ended.
    dims: Vec<Option<usize>>,
    /// The depth of the scalars, once one has been seen.
    leaf_depth: Option<usize>,
}

const UNEVEN: &str = "lists are nested unevenly (ragged or mixed with scalars)";

impl Shape {
    /// Ready for another value, keeping the allocation.
    pub fn reset(&mut self) {
        self.dims.clear();
        self.leaf_depth = None;
    }

    fn list_starts(&self, depth: usize) -> Result<(), String> {
        match self.leaf_depth {
            Some(leaves) if depth >= leaves => Err(UNEVEN.to_string()),
            _ => Ok(()),
        }
    }

    fn list_ends(&mut self, depth: usize, len: usize) -> Result<(), String> {
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims[depth] {
            None => self.dims[depth] = Some(len),
            Some(expected) if expected != len => {
                return Err(format!("lists are ragged: expected {expected} elements, found a list of {len}"))
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn leaf(&mut self, depth: usize) -> Result<(), String> {
        match self.leaf_depth {
            None if self.dims.len() > depth && self.dims[depth].is_some() => Err(UNEVEN.to_string()),
            None => {
                self.leaf_depth = Some(depth);
                Ok(())
            }
            Some(leaves) if leaves != depth => Err(UNEVEN.to_string()),
            Some(_) => Ok(()),
        }
    }

    /// The dimensions, once the whole value has been read.
    pub fn dims(&self) -> Vec<usize> {
        self.dims.iter().map_while(|d| *d).collect()
    }
}

/// Parses one JSON value (a scalar or nested lists of them) into `out`, which holds `dtype`'s
/// variant, recording its shape in `shape`. Errors are TF Serving's messages where it has
/// them; the caller adds where in the body they happened.
pub fn parse_nested(text: &str, dtype: Dtype, out: &mut Values, shape: &mut Shape) -> Result<(), String> {
    let mut error = None;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let seed = Nested { dtype, out, shape, depth: 0, error: &mut error };
    let parsed = seed.deserialize(&mut deserializer).and_then(|()| deserializer.end());
    match (error, parsed) {
        (Some(message), _) => Err(message),
        (None, Err(e)) => Err(parse_error(&e)),
        (None, Ok(())) => Ok(()),
    }
}

/// One level of a nested value. Our own errors go into `error` (serde's error type would add a
/// position to them); serde is only told to stop.
struct Nested<'a> {
    dtype: Dtype,
    out: &'a mut Values,
    shape: &'a mut Shape,
    depth: usize,
    error: &'a mut Option<String>,
}

impl Nested<'_> {
    fn fail<E: serde::de::Error>(&mut self, message: String) -> E {
        *self.error = Some(message);
        E::custom("stopped")
    }

    fn leaf<E: serde::de::Error>(mut self, value: &Value) -> Result<(), E> {
        if let Err(message) = self.shape.leaf(self.depth) {
            return Err(self.fail(message));
        }
        push_json(self.out, self.dtype, value).map_err(|message| self.fail(message))
    }
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value or a list")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(&Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(&Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(&Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        // serde_json only makes finite floats (overflow is a parse error).
        self.leaf(&serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.leaf(&Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
        self.leaf(&Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf(&Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        // Only `{"b64": "..."}` is a value; other objects are an error, so building them as a
        // tree costs nothing in the normal case.
        let object = Value::deserialize(MapAccessDeserializer::new(map))?;
        if self.depth > 0 && !is_b64_object(&object) {
            let message = "unexpected JSON object inside a list".to_string();
            return Err(self.fail(message));
        }
        self.leaf(&object)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if let Err(message) = self.shape.list_starts(self.depth) {
            return Err(self.fail(message));
        }
        let mut len = 0;
        loop {
            let child = Nested {
                dtype: self.dtype,
                out: &mut *self.out,
                shape: &mut *self.shape,
                depth: self.depth + 1,
                error: &mut *self.error,
            };
            if seq.next_element_seed(child)?.is_none() {
                break;
            }
            len += 1;
        }
        if let Err(message) = self.shape.list_ends(self.depth, len) {
            return Err(self.fail(message));
        }
        Ok(())
    }
}

/// `[2,3]`, the way TF Serving prints shapes in messages.
pub fn shape_string(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(","))
}

/// serde's message: a syntax error says where; a data error may quote the request's values.
pub fn parse_error(e: &serde_json::Error) -> String {
    if e.is_syntax() || e.is_eof() {
        format!("JSON Parse error: {e}")
    } else {
        format!("JSON Parse error: {}", quote(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, dtype: Dtype) -> Result<(Vec<usize>, Values), String> {
        let mut values = Values::empty(dtype);
        let mut shape = Shape::default();
        parse_nested(text, dtype, &mut values, &mut shape)?;
        Ok((shape.dims(), values))
    }

    #[test]
    fn shapes_follow_first_elements() {
        assert_eq!(parse("1", Dtype::Float).unwrap().0, Vec::<usize>::new());
        assert_eq!(parse("[1, 2, 3]", Dtype::Float).unwrap().0, vec![3]);
        assert_eq!(parse("[[1, 2], [3, 4], [5, 6]]", Dtype::Float).unwrap().0, vec![3, 2]);
        assert_eq!(parse("[[]]", Dtype::Float).unwrap().0, vec![1, 0]);
        assert_eq!(parse("[[], []]", Dtype::Float).unwrap().0, vec![2, 0]);
        assert_eq!(parse("[]", Dtype::Float).unwrap().0, vec![0]);
    }

    #[test]
    fn flattens_row_major() {
        assert_eq!(parse("[[1, 2], [3, 4]]", Dtype::Int64).unwrap(), (vec![2, 2], Values::I64(vec![1, 2, 3, 4])));
        assert_eq!(parse("2.5", Dtype::Double).unwrap(), (vec![], Values::F64(vec![2.5])));
        let (_, strings) = parse(r#"[{"b64": "aGk="}, "x"]"#, Dtype::String).unwrap();
        assert_eq!(strings, Values::Bytes(vec![b"hi".to_vec(), b"x".to_vec()].into()));
    }

    #[test]
    fn ragged_and_mixed_lists_are_refused() {
        for bad in ["[[1, 2], [3]]", "[[1, 2], 3]", "[1, [2]]", "[[1], [[2]]]", "[[], [1]]", "[[1], []]"] {
            assert!(parse(bad, Dtype::Float).is_err(), "{bad}");
        }
        assert_eq!(
            parse("[[1, 2], [3]]", Dtype::Float).unwrap_err(),
            "lists are ragged: expected 2 elements, found a list of 1"
        );
        assert_eq!(parse(r#"[[1], {"a": 1}]"#, Dtype::Float).unwrap_err(), "unexpected JSON object inside a list");
        assert!(parse("[1, 2", Dtype::Float).unwrap_err().starts_with("JSON Parse error"));
    }

    #[test]
    fn leaves_are_checked_against_the_dtype() {
        assert!(parse(r#"["a"]"#, Dtype::Float).unwrap_err().contains("is not of expected type: float"));
        assert!(parse("[300]", Dtype::Int8).unwrap_err().contains("out of range for type: int8"));
        assert!(parse(r#"{"x": 1}"#, Dtype::Float).unwrap_err().contains("Type: Object"));
    }
}
