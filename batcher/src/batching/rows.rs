//! Tensors joined along dimension 0 into a batch, and the checks that make cutting the batch's
//! outputs back into rows safe. Pure functions over [`Tensor`].

use std::ops::Range;

use tfgate_proto::tensorflow::TensorProto;

use crate::convert::content::write_content;
use crate::convert::{Outputs, Tensor, Values};

/// Joins `rows` of each tensor (all of one dtype and row shape) in order, then repeats the
/// first row until there are `padded_rows` rows (the padding's answers are dropped; a real row
/// is a safer filler than zeros for a model that, say, takes a logarithm). Numbers are written
/// straight into `tensor_content` when `packed`, else into the typed fields as TF Serving's
/// own answers are; strings always into `string_val`.
pub fn join_rows(parts: &[(&Tensor, Range<usize>)], padded_rows: usize, packed: bool) -> Result<TensorProto, String> {
    let Some((first, first_rows)) = parts.first() else {
        return Err("no rows to batch".to_string());
    };
    let row_shape = first.shape.get(1..).unwrap_or(&[]);
    let stride: usize = row_shape.iter().product();
    if parts.iter().any(|(t, _)| t.dtype != first.dtype || t.shape.get(1..) != Some(row_shape)) {
        return Err("requests of different layouts in one batch".to_string());
    }
    let rows: usize = parts.iter().map(|(_, range)| range.len()).sum();
    let total_rows = if rows > 0 { rows.max(padded_rows) } else { 0 };
    let padding = (rows..total_rows).map(|_| (*first, first_rows.start..first_rows.start + 1));
    let pieces = parts.iter().map(|(t, range)| (*t, range.clone())).chain(padding);
    let mut shape = Vec::with_capacity(row_shape.len() + 1);
    shape.push(total_rows);
    shape.extend_from_slice(row_shape);
    let Some(width) = first.dtype.byte_width().filter(|_| packed) else {
        let mut values = Values::empty(first.dtype);
        for (tensor, range) in pieces {
            extend_values(&mut values, &tensor.values, range.start * stride..range.end * stride)?;
        }
        return Ok(Tensor { dtype: first.dtype, shape, values }.into_proto());
    };
    let mut content = Vec::with_capacity(total_rows * stride * width);
    for (tensor, range) in pieces {
        write_content(first.dtype, &tensor.values, range.start * stride..range.end * stride, &mut content)?;
    }
    let mut proto = Tensor { dtype: first.dtype, shape, values: Values::empty(first.dtype) }.into_proto();
    proto.tensor_content = content.into();
    Ok(proto)
}

/// Rows `rows` (in that order, repeats allowed) of `tensor`, as a tensor of their own.
pub fn gather_rows(tensor: &Tensor, rows: &[usize]) -> Result<Tensor, String> {
    let stride: usize = tensor.shape.get(1..).unwrap_or(&[]).iter().product();
    let mut values = Values::empty(tensor.dtype);
    values.reserve(rows.len() * stride, 0);
    for &row in rows {
        extend_values(&mut values, &tensor.values, row * stride..(row + 1) * stride)?;
    }
    let mut shape = tensor.shape.clone();
    *shape.first_mut().ok_or("a tensor without rows")? = rows.len();
    Ok(Tensor { dtype: tensor.dtype, shape, values })
}

/// Rows `rows` of every output, as outputs of their own.
pub fn take_rows(outputs: &Outputs, rows: Range<usize>) -> Result<Outputs, String> {
    outputs
        .iter()
        .map(|(name, tensor)| {
            let picked: Vec<usize> = rows.clone().collect();
            Ok((name.clone(), gather_rows(tensor, &picked)?))
        })
        .collect()
}

/// Appends `from[range]` to `out` (same variant).
pub(crate) fn extend_values(out: &mut Values, from: &Values, range: Range<usize>) -> Result<(), String> {
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
        let joined = Tensor::from_proto(&join_rows(&[(&a, 1..3), (&b, 0..1)], 5, true).unwrap()).unwrap();
        assert_eq!(joined.shape, vec![5, 2]);
        assert_eq!(joined.values, Values::I64(vec![3, 4, 5, 6, 7, 8, 3, 4, 3, 4]));
        let s = t(Dtype::String, &[2], Values::Bytes(vec![b"a".to_vec(), b"b".to_vec()].into()));
        let joined = Tensor::from_proto(&join_rows(&[(&s, 1..2), (&s, 0..1)], 3, true).unwrap()).unwrap();
        // Typed fields, as TF Serving answers: the same values.
        let typed = join_rows(&[(&a, 1..3), (&b, 0..1)], 3, false).unwrap();
        assert!(typed.tensor_content.is_empty() && typed.int64_val == vec![3, 4, 5, 6, 7, 8]);
        assert_eq!(joined.values, Values::Bytes(vec![b"b".to_vec(), b"a".to_vec(), b"b".to_vec()].into()));
    }

    #[test]
    fn mismatches_are_errors_not_panics() {
        let a = t(Dtype::Float, &[1, 2], Values::F32(vec![1.0, 2.0]));
        let b = t(Dtype::Float, &[1, 3], Values::F32(vec![1.0, 2.0, 3.0]));
        let c = t(Dtype::Double, &[1, 2], Values::F64(vec![1.0, 2.0]));
        for packed in [true, false] {
            assert!(join_rows(&[(&a, 0..1), (&b, 0..1)], 2, packed).is_err());
            assert!(join_rows(&[(&a, 0..1), (&c, 0..1)], 2, packed).is_err());
            assert!(join_rows(&[(&a, 0..5)], 5, packed).is_err());
            assert!(join_rows(&[], 1, packed).is_err());
        }
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
