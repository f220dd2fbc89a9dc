//! Predict output tensors to TF Serving's REST answer.
//!
//! Row requests get `{"predictions": [...]}`: with one output, one value (or nested list) per
//! row; with several, one object per row keyed by output name, so all outputs must share dim 0.
//! Columnar requests get `{"outputs": value}` or `{"outputs": {name: value, ...}}`.
//! Output names are written in sorted order so answers are stable.

use std::collections::{BTreeMap, HashMap};

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use tfgate_proto::tensorflow::TensorProto;

use super::nested::NestedJson;
use super::{ConvertError, Format, Tensor};

/// Serialises the Predict answer for a request written in `format`.
pub fn predict_response_json(
    format: Format,
    outputs: &HashMap<String, TensorProto>,
) -> Result<Vec<u8>, ConvertError> {
    if outputs.is_empty() {
        return Err(ConvertError::backend(
            "Cannot convert empty tensor map to JSON",
        ));
    }
    let tensors = outputs
        .iter()
        .map(|(name, proto)| {
            Tensor::from_proto(proto)
                .map(|t| (name.as_str(), t))
                .map_err(|e| ConvertError::backend(format!("output {name}: {}", e.message)))
        })
        .collect::<Result<BTreeMap<&str, Tensor>, _>>()?;
    let json = match format {
        Format::Row => serde_json::to_vec(&Answer {
            key: "predictions",
            body: Rows::new(&tensors)?,
        }),
        Format::Columnar => serde_json::to_vec(&Answer {
            key: "outputs",
            body: Columns(&tensors),
        }),
    };
    json.map_err(|e| ConvertError::backend(format!("cannot write the answer as JSON: {e}")))
}

/// `{key: body}`.
struct Answer<T> {
    key: &'static str,
    body: T,
}

impl<T: Serialize> Serialize for Answer<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.key, &self.body)?;
        map.end()
    }
}

struct Rows<'a> {
    tensors: &'a BTreeMap<&'a str, Tensor>,
    batch_size: usize,
}

impl<'a> Rows<'a> {
    /// Checks that every output has a first dimension, the same for all (TF Serving's messages).
    fn new(tensors: &'a BTreeMap<&'a str, Tensor>) -> Result<Rows<'a>, ConvertError> {
        let mut batch_size = None;
        for (name, tensor) in tensors {
            let Some(&size) = tensor.shape.first() else {
                return Err(ConvertError::request(format!(
                    "Tensor name: {name} has no shape information "
                )));
            };
            if size < 1 {
                return Err(ConvertError::request(format!(
                    "Tensor name: {name} has invalid batch size: {size}"
                )));
            }
            match batch_size {
                Some(expected) if expected != size => return Err(ConvertError::request(format!(
                    "Tensor name: {name} has inconsistent batch size: {size} expecting: {expected}"
                ))),
                _ => batch_size = Some(size),
            }
        }
        Ok(Rows {
            tensors,
            batch_size: batch_size.unwrap_or(0),
        })
    }
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let single = only_one(self.tensors);
        let mut seq = serializer.serialize_seq(Some(self.batch_size))?;
        for row in 0..self.batch_size {
            match single {
                Some(only) => {
                    seq.serialize_element(&NestedJson::row(&only.values, &only.shape, row))?
                }
                None => seq.serialize_element(&RowObject {
                    tensors: self.tensors,
                    row,
                })?,
            }
        }
        seq.end()
    }
}

/// Row `row` of every output, as `{name: value, ...}`.
struct RowObject<'a> {
    tensors: &'a BTreeMap<&'a str, Tensor>,
    row: usize,
}

impl Serialize for RowObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.tensors.len()))?;
        for (name, tensor) in self.tensors {
            map.serialize_entry(
                name,
                &NestedJson::row(&tensor.values, &tensor.shape, self.row),
            )?;
        }
        map.end()
    }
}

fn only_one<'a>(tensors: &'a BTreeMap<&str, Tensor>) -> Option<&'a Tensor> {
    match tensors.len() {
        1 => tensors.values().next(),
        _ => None,
    }
}

struct Columns<'a>(&'a BTreeMap<&'a str, Tensor>);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn whole(t: &Tensor) -> NestedJson<'_> {
            NestedJson {
                values: &t.values,
                dims: &t.shape,
                start: 0,
            }
        }
        if let Some(only) = only_one(self.0) {
            return whole(only).serialize(serializer);
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, tensor) in self.0 {
            map.serialize_entry(name, &whole(tensor))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{Blame, Dtype, Values};

    fn tensor(dtype: Dtype, shape: &[usize], values: Values) -> TensorProto {
        Tensor {
            dtype,
            shape: shape.to_vec(),
            values,
        }
        .into_proto()
    }

    fn answer(format: Format, outputs: Vec<(&str, TensorProto)>) -> Result<String, ConvertError> {
        let map = outputs
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect();
        predict_response_json(format, &map).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn row_single_output_is_plain_values() {
        let y = tensor(Dtype::Float, &[3], Values::F32(vec![2.5, 3.0, 4.5]));
        assert_eq!(
            answer(Format::Row, vec![("y", y)]).unwrap(),
            r#"{"predictions":[2.5,3.0,4.5]}"#
        );
        let y = tensor(Dtype::Int64, &[2, 2], Values::I64(vec![1, 2, 3, 4]));
        assert_eq!(
            answer(Format::Row, vec![("y", y)]).unwrap(),
            r#"{"predictions":[[1,2],[3,4]]}"#
        );
    }

    #[test]
    fn row_several_outputs_are_objects_per_row() {
        let a = tensor(Dtype::Bool, &[2], Values::Bool(vec![true, false]));
        let b = tensor(Dtype::Double, &[2, 1], Values::F64(vec![0.5, 1.5]));
        assert_eq!(
            answer(Format::Row, vec![("b", b), ("a", a)]).unwrap(),
            r#"{"predictions":[{"a":true,"b":[0.5]},{"a":false,"b":[1.5]}]}"#
        );
    }

    #[test]
    fn row_outputs_must_share_a_batch_dimension() {
        let a = tensor(Dtype::Int32, &[2], Values::I32(vec![1, 2]));
        let b = tensor(Dtype::Int32, &[3], Values::I32(vec![1, 2, 3]));
        let e = answer(Format::Row, vec![("a", a.clone()), ("b", b)]).unwrap_err();
        assert_eq!(
            e.message,
            "Tensor name: b has inconsistent batch size: 3 expecting: 2"
        );
        let scalar = tensor(Dtype::Int32, &[], Values::I32(vec![1]));
        assert!(answer(Format::Row, vec![("s", scalar.clone())])
            .unwrap_err()
            .message
            .contains("has no shape information"));
        assert_eq!(
            answer(Format::Columnar, vec![("s", scalar)]).unwrap(),
            r#"{"outputs":1}"#
        );
        let empty = tensor(Dtype::Int32, &[0], Values::I32(vec![]));
        assert!(answer(Format::Row, vec![("e", empty)])
            .unwrap_err()
            .message
            .contains("invalid batch size: 0"));
    }

    #[test]
    fn columnar_answers() {
        let y = tensor(Dtype::Float, &[2, 1], Values::F32(vec![0.1, 0.2]));
        assert_eq!(
            answer(Format::Columnar, vec![("y", y.clone())]).unwrap(),
            r#"{"outputs":[[0.1],[0.2]]}"#
        );
        let s = tensor(Dtype::String, &[1], Values::Bytes(vec![b"hi".to_vec()]));
        assert_eq!(
            answer(Format::Columnar, vec![("y", y), ("s", s)]).unwrap(),
            r#"{"outputs":{"s":["hi"],"y":[[0.1],[0.2]]}}"#
        );
    }

    #[test]
    fn reads_tensor_content_and_single_values() {
        let mut packed = tensor(Dtype::Float, &[2], Values::F32(vec![]));
        packed.tensor_content = [1.5f32, -2.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(
            answer(Format::Row, vec![("y", packed)]).unwrap(),
            r#"{"predictions":[1.5,-2.0]}"#
        );
        let filled = tensor(Dtype::Int32, &[2, 2], Values::I32(vec![7]));
        assert_eq!(
            answer(Format::Columnar, vec![("y", filled)]).unwrap(),
            r#"{"outputs":[[7,7],[7,7]]}"#
        );
    }

    #[test]
    fn unreadable_outputs_are_backend_errors() {
        let mut bad = tensor(Dtype::Float, &[2], Values::F32(vec![]));
        bad.tensor_content = vec![1, 2, 3];
        let e = answer(Format::Row, vec![("y", bad)]).unwrap_err();
        assert_eq!(e.blame, Blame::Backend);
        assert!(e.message.starts_with("output y:"), "{}", e.message);
        assert_eq!(
            answer(Format::Row, vec![]).unwrap_err().blame,
            Blame::Backend
        );
    }
}
