//! Nested JSON lists <-> flat row-major buffers.
//!
//! Reading: the shape is found by following first elements (`[[1,2],[3,4]]` -> [2, 2]) and every
//! other element must match it, so ragged lists are refused. Writing: [`NestedJson`] serialises a
//! buffer slice as nested lists straight into the output, without building a `serde_json::Value`
//! (and with `f32`s written in their shortest form, `0.1` and not `0.10000000149011612`).

use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;

use super::dtype::{is_b64_object, push_json};
use super::tensor::Values;
use super::{Dtype, Tensor};

/// The shape of a nested list, from its first elements.
pub fn infer_shape(mut value: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    while let Value::Array(items) = value {
        shape.push(items.len());
        match items.first() {
            Some(first) => value = first,
            None => break,
        }
    }
    shape
}

/// Flattens one value (a scalar or a nested list) into a tensor of `dtype`.
pub fn tensor_from_json(value: &Value, dtype: Dtype) -> Result<Tensor, String> {
    let shape = infer_shape(value);
    let mut values = Values::empty(dtype);
    flatten_into(value, &shape, dtype, &mut values)?;
    Ok(Tensor {
        dtype,
        shape,
        values,
    })
}

/// Stacks `rows` (each a scalar or nested list, all of one shape) into a tensor whose first
/// dimension is the number of rows. Errors carry the index of the offending row.
pub fn tensor_from_rows(rows: &[&Value], dtype: Dtype) -> Result<Tensor, (usize, String)> {
    let row_shape = rows
        .first()
        .map(|first| infer_shape(first))
        .unwrap_or_default();
    let mut values = Values::empty(dtype);
    for (i, row) in rows.iter().enumerate() {
        let shape = infer_shape(row);
        if shape != row_shape {
            return Err((
                i,
                format!(
                    "Expecting shape {} but got: {}",
                    shape_string(&row_shape),
                    shape_string(&shape)
                ),
            ));
        }
        flatten_into(row, &row_shape, dtype, &mut values).map_err(|e| (i, e))?;
    }
    let mut shape = Vec::with_capacity(row_shape.len() + 1);
    shape.push(rows.len());
    shape.extend_from_slice(&row_shape);
    Ok(Tensor {
        dtype,
        shape,
        values,
    })
}

/// `[2,3]`, the way TF Serving prints shapes in messages.
pub fn shape_string(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(","))
}

fn flatten_into(
    value: &Value,
    shape: &[usize],
    dtype: Dtype,
    out: &mut Values,
) -> Result<(), String> {
    match (shape.split_first(), value) {
        (None, Value::Array(_)) => {
            Err("lists are nested unevenly (ragged or mixed with scalars)".to_string())
        }
        (None, leaf) => push_json(out, dtype, leaf),
        (Some((&len, inner)), Value::Array(items)) if items.len() == len => items
            .iter()
            .try_for_each(|item| flatten_into(item, inner, dtype, out)),
        (Some((&len, _)), Value::Array(items)) => Err(format!(
            "lists are ragged: expected {len} elements, found a list of {}",
            items.len()
        )),
        (Some(_), other) if is_b64_object(other) || !other.is_object() => {
            Err("lists are nested unevenly (ragged or mixed with scalars)".to_string())
        }
        (Some(_), _) => Err("unexpected JSON object inside a list".to_string()),
    }
}

/// A slice of a tensor buffer written as nested JSON lists: the elements from `start`, shaped
/// by `dims`.
pub struct NestedJson<'a> {
    pub values: &'a Values,
    pub dims: &'a [usize],
    pub start: usize,
}

impl NestedJson<'_> {
    /// The `index`-th sub-tensor along the first dimension (row `index` of a batch).
    pub fn row<'a>(values: &'a Values, dims: &'a [usize], index: usize) -> NestedJson<'a> {
        let inner = dims.get(1..).unwrap_or(&[]);
        let stride: usize = inner.iter().product();
        NestedJson {
            values,
            dims: inner,
            start: index * stride,
        }
    }
}

impl Serialize for NestedJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some((&len, inner)) = self.dims.split_first() else {
            return serialize_element(self.values, self.start, serializer);
        };
        let stride: usize = inner.iter().product();
        let mut seq = serializer.serialize_seq(Some(len))?;
        for i in 0..len {
            seq.serialize_element(&NestedJson {
                values: self.values,
                dims: inner,
                start: self.start + i * stride,
            })?;
        }
        seq.end()
    }
}

fn serialize_element<S: Serializer>(values: &Values, i: usize, s: S) -> Result<S::Ok, S::Error> {
    // `i` is always in range: shapes and buffers are checked to agree when a Tensor is read.
    match values {
        Values::F32(v) => s.serialize_f32(v[i]),
        Values::F64(v) => s.serialize_f64(v[i]),
        Values::I32(v) => s.serialize_i32(v[i]),
        Values::I64(v) => s.serialize_i64(v[i]),
        Values::U32(v) => s.serialize_u32(v[i]),
        Values::U64(v) => s.serialize_u64(v[i]),
        Values::Bool(v) => s.serialize_bool(v[i]),
        Values::Bytes(v) => s.serialize_str(&String::from_utf8_lossy(&v[i])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_follow_first_elements() {
        assert_eq!(infer_shape(&json!(1)), Vec::<usize>::new());
        assert_eq!(infer_shape(&json!([1, 2, 3])), vec![3]);
        assert_eq!(infer_shape(&json!([[1, 2], [3, 4], [5, 6]])), vec![3, 2]);
        assert_eq!(infer_shape(&json!([[]])), vec![1, 0]);
        assert_eq!(infer_shape(&json!([])), vec![0]);
    }

    #[test]
    fn flattens_row_major() {
        let t = tensor_from_json(&json!([[1, 2], [3, 4]]), Dtype::Int64).unwrap();
        assert_eq!(
            (t.shape, t.values),
            (vec![2, 2], Values::I64(vec![1, 2, 3, 4]))
        );
        let t = tensor_from_json(&json!(2.5), Dtype::Double).unwrap();
        assert_eq!((t.shape, t.values), (vec![], Values::F64(vec![2.5])));
    }

    #[test]
    fn ragged_and_mixed_lists_are_refused() {
        for bad in [
            json!([[1, 2], [3]]),
            json!([[1, 2], 3]),
            json!([1, [2]]),
            json!([[1], [[2]]]),
            json!([[1], {"a": 1}]),
        ] {
            assert!(tensor_from_json(&bad, Dtype::Float).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_stack_along_a_new_first_dimension() {
        let rows = [json!([1, 2]), json!([3, 4]), json!([5, 6])];
        let refs: Vec<&Value> = rows.iter().collect();
        let t = tensor_from_rows(&refs, Dtype::Int32).unwrap();
        assert_eq!(
            (t.shape, t.values),
            (vec![3, 2], Values::I32(vec![1, 2, 3, 4, 5, 6]))
        );
        let rows = [json!([1, 2]), json!([3])];
        let refs: Vec<&Value> = rows.iter().collect();
        assert_eq!(
            tensor_from_rows(&refs, Dtype::Int32).unwrap_err(),
            (1, "Expecting shape [2] but got: [1]".to_string())
        );
        let rows = [json!([[1], [2]]), json!([[3], 4])];
        let refs: Vec<&Value> = rows.iter().collect();
        assert_eq!(tensor_from_rows(&refs, Dtype::Int32).unwrap_err().0, 1);
    }

    #[test]
    fn writes_nested_lists_with_short_floats() {
        let values = Values::F32(vec![0.1, 2.5, 3.0, -4.0, 5.0, 6.0]);
        let dims = [3, 2];
        let json = serde_json::to_string(&NestedJson {
            values: &values,
            dims: &dims,
            start: 0,
        })
        .unwrap();
        assert_eq!(json, "[[0.1,2.5],[3.0,-4.0],[5.0,6.0]]");
        let row = serde_json::to_string(&NestedJson::row(&values, &dims, 2)).unwrap();
        assert_eq!(row, "[5.0,6.0]");
        let scalar_rows = Values::Bool(vec![true, false]);
        assert_eq!(
            serde_json::to_string(&NestedJson::row(&scalar_rows, &[2], 1)).unwrap(),
            "false"
        );
        let empty = Values::I64(vec![]);
        assert_eq!(
            serde_json::to_string(&NestedJson {
                values: &empty,
                dims: &[2, 0],
                start: 0
            })
            .unwrap(),
            "[[],[]]"
        );
    }
}
