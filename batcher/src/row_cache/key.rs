//! A row's key: SHA-256 over what decides its answer, so equal keys mean equal answers from a
//! deterministic model. The call's part (model, requested version, signature) is hashed once per
//! call as a prefix; each row adds, for every input in name order, the input's name, dtype and
//! row shape and the row's values.
//!
//! Every field is length-prefixed, so no two different rows hash the same bytes. SHA-256 is
//! used for its collision resistance, not for speed: a cache shared by callers must not let
//! one caller craft a row whose key collides with another's and have its answer served to
//! them. Accidental collisions have odds of about n^2 / 2^257 for n keys (below 2^-200 for a
//! billion rows), so entries keep no copy of their inputs to compare.

use std::collections::BTreeMap;

use aws_lc_rs::digest::{Context, SHA256};

use crate::convert::{Tensor, Values};
use crate::target::{ModelTarget, VersionRef};

pub type RowKey = [u8; 32];

/// The bytes every row key of one call starts with.
pub fn call_prefix(target: &ModelTarget, signature_name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + target.model.len() + signature_name.len());
    field(&mut out, target.model.as_bytes());
    match &target.version {
        VersionRef::Latest => out.push(0),
        VersionRef::Number(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        VersionRef::Label(label) => {
            out.push(2);
            field(&mut out, label.as_bytes());
        }
    }
    field(&mut out, signature_name.as_bytes());
    out
}

/// One key per row of `inputs` (every input holds `rows` rows along dimension 0); an error when
/// they do not, or a value cannot be read (the call then goes uncached).
pub fn row_keys(prefix: &[u8], inputs: &BTreeMap<String, Tensor>, rows: usize) -> Result<Vec<RowKey>, String> {
    let mut layouts = Vec::with_capacity(inputs.len());
    for (name, tensor) in inputs {
        if tensor.shape.first() != Some(&rows) {
            return Err(format!("input {name} does not hold {rows} rows"));
        }
        let row_shape = &tensor.shape[1..];
        let per_row = row_shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or("row too large")?;
        if tensor.values.len() != per_row.checked_mul(rows).ok_or("tensor too large")? {
            return Err(format!("input {name} holds {} values, not {rows} rows of {per_row}", tensor.values.len()));
        }
        let mut head = Vec::with_capacity(16 + name.len() + 8 * row_shape.len());
        field(&mut head, name.as_bytes());
        head.extend_from_slice(&(tensor.dtype.data_type() as i32).to_le_bytes());
        head.extend_from_slice(&(row_shape.len() as u32).to_le_bytes());
        for &d in row_shape {
            head.extend_from_slice(&(d as u64).to_le_bytes());
        }
        layouts.push((head, &tensor.values, per_row));
    }
    let mut scratch = Vec::new();
    let mut keys = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut hash = Context::new(&SHA256);
        hash.update(prefix);
        for (head, values, per_row) in &layouts {
            hash.update(head);
            scratch.clear();
            row_bytes(values, row * per_row..(row + 1) * per_row, &mut scratch)?;
            hash.update(&scratch);
        }
        let digest = hash.finish();
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        keys.push(key);
    }
    Ok(keys)
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The values `range` as little-endian bytes (strings each length-prefixed).
fn row_bytes(values: &Values, range: std::ops::Range<usize>, out: &mut Vec<u8>) -> Result<(), String> {
    fn each<T: Copy, const N: usize>(
        v: &[T],
        range: std::ops::Range<usize>,
        out: &mut Vec<u8>,
        bytes: fn(T) -> [u8; N],
    ) -> Result<(), String> {
        let slice = v.get(range).ok_or("row outside the tensor")?;
        out.reserve(slice.len() * N);
        for &x in slice {
            out.extend_from_slice(&bytes(x));
        }
        Ok(())
    }
    match values {
        Values::F32(v) => each(v, range, out, |x: f32| x.to_bits().to_le_bytes()),
        Values::F64(v) => each(v, range, out, |x: f64| x.to_bits().to_le_bytes()),
        Values::I32(v) => each(v, range, out, i32::to_le_bytes),
        Values::I64(v) => each(v, range, out, i64::to_le_bytes),
        Values::U32(v) => each(v, range, out, u32::to_le_bytes),
        Values::U64(v) => each(v, range, out, u64::to_le_bytes),
        Values::Bool(v) => each(v, range, out, |x: bool| [u8::from(x)]),
        Values::Bytes(v) => {
            for i in range {
                let s = v.get(i).ok_or("row outside the tensor")?;
                field(out, s);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Dtype;

    fn floats(shape: &[usize], values: &[f32]) -> Tensor {
        Tensor { dtype: Dtype::Float, shape: shape.to_vec(), values: Values::F32(values.to_vec()) }
    }

    fn target(version: VersionRef) -> ModelTarget {
        ModelTarget { model: "m".to_string(), version }
    }

    fn keys(prefix: &[u8], inputs: &[(&str, Tensor)], rows: usize) -> Vec<RowKey> {
        let inputs = inputs.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
        row_keys(prefix, &inputs, rows).unwrap()
    }

    #[test]
    fn equal_rows_have_equal_keys_and_any_difference_changes_the_key() {
        let p = call_prefix(&target(VersionRef::Number(1)), "serving_default");
        let k = keys(&p, &[("x", floats(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 1.0, 2.0]))], 3);
        assert_eq!(k[0], k[2]);
        assert_ne!(k[0], k[1]);
        // Another version, signature, input name, shape or dtype: another key.
        let base = keys(&p, &[("x", floats(&[1, 2], &[1.0, 2.0]))], 1)[0];
        assert_eq!(base, k[0]);
        let others = [
            keys(
                &call_prefix(&target(VersionRef::Number(2)), "serving_default"),
                &[("x", floats(&[1, 2], &[1.0, 2.0]))],
                1,
            ),
            keys(
                &call_prefix(&target(VersionRef::Latest), "serving_default"),
                &[("x", floats(&[1, 2], &[1.0, 2.0]))],
                1,
            ),
            keys(
                &call_prefix(&target(VersionRef::Label("1".into())), "serving_default"),
                &[("x", floats(&[1, 2], &[1.0, 2.0]))],
                1,
            ),
            keys(&call_prefix(&target(VersionRef::Number(1)), "other"), &[("x", floats(&[1, 2], &[1.0, 2.0]))], 1),
            keys(&p, &[("y", floats(&[1, 2], &[1.0, 2.0]))], 1),
            keys(&p, &[("x", floats(&[1, 2, 1], &[1.0, 2.0]))], 1),
            keys(
                &p,
                &[("x", Tensor { dtype: Dtype::Half, shape: vec![1, 2], values: Values::F32(vec![1.0, 2.0]) })],
                1,
            ),
            keys(&p, &[("x", floats(&[1, 2], &[1.0, 2.0])), ("z", floats(&[1], &[0.0]))], 1),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(other[0], base, "case {i}");
        }
    }

    #[test]
    fn strings_are_length_prefixed() {
        let p = call_prefix(&target(VersionRef::Latest), "s");
        let strings = |parts: &[&[u8]]| {
            let mut b = crate::convert::ByteStrings::default();
            for part in parts {
                b.push(part).unwrap();
            }
            Tensor { dtype: Dtype::String, shape: vec![1, parts.len()], values: Values::Bytes(b) }
        };
        let ab_c = keys(&p, &[("s", strings(&[b"ab", b"c"]))], 1);
        let a_bc = keys(&p, &[("s", strings(&[b"a", b"bc"]))], 1);
        assert_ne!(ab_c, a_bc);
    }

    #[test]
    fn inconsistent_tensors_are_refused() {
        let p = call_prefix(&target(VersionRef::Latest), "s");
        let inputs: BTreeMap<String, Tensor> = [("x".to_string(), floats(&[2, 2], &[1.0, 2.0, 3.0]))].into();
        assert!(row_keys(&p, &inputs, 2).is_err());
        let inputs: BTreeMap<String, Tensor> = [("x".to_string(), floats(&[3], &[1.0, 2.0, 3.0]))].into();
        assert!(row_keys(&p, &inputs, 2).is_err());
    }
}
