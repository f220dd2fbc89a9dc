//! Tensors joined along dimension 0 into a batch, and the checks that make cutting the batch's
//! outputs back into rows safe. Pure functions over [`Tensor`].

use std::ops::Range;

use crate::convert::{Outputs, Tensor, Values};

/// Joins `rows` of each tensor (all of one dtype and row shape) in order, then repeats the
/// first row until there are `padded_rows` rows (the padding's answers are dropped; a real row
/// is a safer filler than zeros for a model that, say, takes a logarithm).
pub fn concat_rows(parts: &[(&Tensor, Range<usize>)], padded_rows: usize) -> Result<Tensor, String> {
    let Some((first, _)) = parts.first() else {
        return Err("no rows to batch".to_string());
    };
    let row_shape = first.shape.get(1..).unwrap_or(&[]);
    let stride: usize = row_shape.iter().product();
    let mut values = Values::empty(first.dtype);
    let mut rows = 0;
    for (tensor, range) in parts {
        if tensor.dtype != first.dtype || tensor.shape.get(1..) != Some(row_shape) {
            return Err("requests of different layouts in one batch".to_string());
        }
        extend(&mut values, &tensor.values, range.start * stride..range.end * stride)?;
        rows += range.len();
    }
    if padded_rows > rows && rows > 0 {
        let filler = values.clone();
        for _ in rows..padded_rows {
            extend(&mut values, &filler, 0..stride)?;
        }
        rows = padded_rows;
    }
    let mut shape = Vec::with_capacity(row_shape.len() + 1);
    shape.push(rows);
    shape.extend_from_slice(row_shape);
    Ok(Tensor { dtype: first.dtype, shape, values })
}

/// Appends `from[range]` to `out` (same variant).
fn extend(out: &mut Values, from: &Values, range: Range<usize>) -> Result<(), String> {
    fn slice<T: Clone>(v: &[T], range: Range<usize>) -> Result<&[T], String> {
        v.get(range).ok_or_else(|| "row range outside the tensor".to_string())
    }
    match (out, from) {
        (Values::F32(o), Values::F32(f)) => o.extend_from_slice(slice(f, range)?),
        (Values::F64(o), Values::F64(f)) => o.extend_from_slice(slice(f, range)?),
        (Values::I32(o), Values::I32(f)) => o.extend_from_slice(slice(f, range)?),
        (Values::I64(o), Values::I64(f)) => o.extend_from_slice(slice(f, range)?),
        (Values::U32(o), Values::U32(f)) => o.extend_from_slice(slice(f, range)?),
        (Values::U64(o), Values::U64(f)) => o.extend_from_slice(slice(f, range)?),
        (Values::Bool(o), Values::Bool(f)) => o.extend_from_slice(slice(f, range)?),
        (Values::Bytes(o), Values::Bytes(f)) => {
            o.extend_from(f, range).ok_or_else(|| "row range outside the tensor".to_string())?
        }
        _ => return Err("tensors of different types in one batch".to_string()),
    }
    Ok(())
}

/// Every output must have the batch as dimension 0, or its rows cannot be told apart.
pub fn check_batch_outputs(outputs: &Outputs, rows: usize) -> Result<(), String> {
    for (name, tensor) in outputs {
        if tensor.shape.first() != Some(&rows) {
            let shape =
                if tensor.shape.is_empty() { "no dimensions".to_string() } else { format!("shape {:?}", tensor.shape) };
            return Err(format!(
                "output {name} has {shape}, not the batch's {rows} rows as dimension 0, so the batch cannot be split back into requests; set max_batch_size = 1 for this model"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Dtype;

    fn t(dtype: Dtype, shape: &[usize], values: Values) -> Tensor {
        Tensor { dtype, shape: shape.to_vec(), values }
    }

    #[test]
    fn joins_row_ranges_in_order_and_pads_with_the_first_row() {
        let a = t(Dtype::Int64, &[3, 2], Values::I64(vec![1, 2, 3, 4, 5, 6]));
        let b = t(Dtype::Int64, &[1, 2], Values::I64(vec![7, 8]));
        let joined = concat_rows(&[(&a, 1..3), (&b, 0..1)], 5).unwrap();
        assert_eq!(joined.shape, vec![5, 2]);
        assert_eq!(joined.values, Values::I64(vec![3, 4, 5, 6, 7, 8, 3, 4, 3, 4]));
        let s = t(Dtype::String, &[2], Values::Bytes(vec![b"a".to_vec(), b"b".to_vec()].into()));
        let joined = concat_rows(&[(&s, 1..2), (&s, 0..1)], 2).unwrap();
        assert_eq!(joined.values, Values::Bytes(vec![b"b".to_vec(), b"a".to_vec()].into()));
    }

    #[test]
    fn mismatches_are_errors_not_panics() {
        let a = t(Dtype::Float, &[1, 2], Values::F32(vec![1.0, 2.0]));
        let b = t(Dtype::Float, &[1, 3], Values::F32(vec![1.0, 2.0, 3.0]));
        let c = t(Dtype::Double, &[1, 2], Values::F64(vec![1.0, 2.0]));
        assert!(concat_rows(&[(&a, 0..1), (&b, 0..1)], 2).is_err());
        assert!(concat_rows(&[(&a, 0..1), (&c, 0..1)], 2).is_err());
        assert!(concat_rows(&[(&a, 0..5)], 5).is_err());
        assert!(concat_rows(&[], 1).is_err());
    }

    #[test]
    fn outputs_must_carry_the_batch_dimension() {
        let mut outputs = Outputs::new();
        outputs.insert("y".into(), t(Dtype::Float, &[4], Values::F32(vec![0.0; 4])));
        assert!(check_batch_outputs(&outputs, 4).is_ok());
        assert!(check_batch_outputs(&outputs, 3).unwrap_err().contains("output y"));
        outputs.insert("s".into(), t(Dtype::Float, &[], Values::F32(vec![0.0])));
        assert!(check_batch_outputs(&outputs, 4).unwrap_err().contains("no dimensions"));
    }
}
