//! Nested JSON lists -> flat row-major buffers (writing them back is `json_writer`).
//!
//! The shape is found by following first elements (`[[1,2],[3,4]]` -> [2, 2]) and every other
//! element must match it, so ragged lists are refused.

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
    Ok(Tensor { dtype, shape, values })
}

/// Stacks `rows` (each a scalar or nested list, all of one shape) into a tensor whose first
/// dimension is the number of rows. Errors carry the index of the offending row.
pub fn tensor_from_rows(rows: &[&Value], dtype: Dtype) -> Result<Tensor, (usize, String)> {
    let row_shape = rows.first().map(|first| infer_shape(first)).unwrap_or_default();
    let mut values = Values::empty(dtype);
    for (i, row) in rows.iter().enumerate() {
        let shape = infer_shape(row);
        if shape != row_shape {
            return Err((i, format!("Expecting shape {} but got: {}", shape_string(&row_shape), shape_string(&shape))));
        }
        flatten_into(row, &row_shape, dtype, &mut values).map_err(|e| (i, e))?;
    }
    let mut shape = Vec::with_capacity(row_shape.len() + 1);
    shape.push(rows.len());
    shape.extend_from_slice(&row_shape);
    Ok(Tensor { dtype, shape, values })
}

/// `[2,3]`, the way TF Serving prints shapes in messages.
pub fn shape_string(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(","))
}

fn flatten_into(value: &Value, shape: &[usize], dtype: Dtype, out: &mut Values) -> Result<(), String> {
    match (shape.split_first(), value) {
        (None, Value::Array(_)) => Err("lists are nested unevenly (ragged or mixed with scalars)".to_string()),
        (None, leaf) => push_json(out, dtype, leaf),
        (Some((&len, inner)), Value::Array(items)) if items.len() == len => {
            items.iter().try_for_each(|item| flatten_into(item, inner, dtype, out))
        }
        (Some((&len, _)), Value::Array(items)) => {
            Err(format!("lists are ragged: expected {len} elements, found a list of {}", items.len()))
        }
        (Some(_), other) if is_b64_object(other) || !other.is_object() => {
            Err("lists are nested unevenly (ragged or mixed with scalars)".to_string())
        }
        (Some(_), _) => Err("unexpected JSON object inside a list".to_string()),
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
        assert_eq!((t.shape, t.values), (vec![2, 2], Values::I64(vec![1, 2, 3, 4])));
        let t = tensor_from_json(&json!(2.5), Dtype::Double).unwrap();
        assert_eq!((t.shape, t.values), (vec![], Values::F64(vec![2.5])));
    }

    #[test]
    fn ragged_and_mixed_lists_are_refused() {
        for bad in
            [json!([[1, 2], [3]]), json!([[1, 2], 3]), json!([1, [2]]), json!([[1], [[2]]]), json!([[1], {"a": 1}])]
        {
            assert!(tensor_from_json(&bad, Dtype::Float).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_stack_along_a_new_first_dimension() {
        let rows = [json!([1, 2]), json!([3, 4]), json!([5, 6])];
        let refs: Vec<&Value> = rows.iter().collect();
        let t = tensor_from_rows(&refs, Dtype::Int32).unwrap();
        assert_eq!((t.shape, t.values), (vec![3, 2], Values::I32(vec![1, 2, 3, 4, 5, 6])));
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
}
