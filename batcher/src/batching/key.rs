//! Which requests may share a batch: same model version (as requested), signature, and for
//! every input the same dtype and the same shape after dimension 0. Requests that differ only
//! in how many rows they carry are concatenated along dimension 0 — but only where the
//! signature says dimension 0 is a batch dimension: a model taking exactly [3] values would
//! be sent [6] and refuse it, and no bisection could tell which request was at fault.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::convert::signature::TensorSpec;
use crate::convert::Tensor;
use crate::target::VersionRef;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKey {
    Rows(Arc<RowsKey>),
    /// A request that cannot share a batch, by its id.
    Alone(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowsKey {
    pub version: VersionRef,
    pub signature: String,
    /// (name, DataType code, shape of one row) per input, by name.
    pub inputs: Vec<(String, i32, Vec<usize>)>,
}

/// How the batcher treats one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub key: GroupKey,
    /// Rows it contributes (1 for a request that goes alone).
    pub rows: usize,
    pub mergeable: bool,
}

/// A request that cannot share a batch.
pub fn alone(id: u64) -> Grouping {
    Grouping { key: GroupKey::Alone(id), rows: 1, mergeable: false }
}

/// Row requests always share dimension 0 (the number of instances). Columnar requests can
/// send scalars or inputs of different lengths; those go alone, exactly as sent, as do
/// requests whose signature (`specs`, the inputs' static shapes) gives dimension 0 a size.
pub fn grouping(
    id: u64,
    version: &VersionRef,
    signature: &str,
    inputs: &BTreeMap<String, Tensor>,
    specs: &BTreeMap<String, TensorSpec>,
) -> Grouping {
    let alone = alone(id);
    let mut rows = None;
    let mut layout = Vec::with_capacity(inputs.len());
    for (name, tensor) in inputs {
        let Some((&first, row_shape)) = tensor.shape.split_first() else {
            return alone;
        };
        // An input holding nothing (a zero among its other dimensions) goes alone: its rows
        // cost nothing to send whole, and splitting them would be all calls and no rows.
        if first == 0
            || tensor.values.is_empty()
            || rows.is_some_and(|r| r != first)
            || !has_batch_dimension(specs.get(name), tensor.shape.len())
        {
            return alone;
        }
        rows = Some(first);
        layout.push((name.clone(), tensor.dtype.data_type() as i32, row_shape.to_vec()));
    }
    let Some(rows) = rows else {
        return alone;
    };
    Grouping {
        key: GroupKey::Rows(Arc::new(RowsKey {
            version: version.clone(),
            signature: signature.to_string(),
            inputs: layout,
        })),
        rows,
        mergeable: true,
    }
}

/// Whether a batch's answer can be split back by rows: every output of the signature has an
/// unknown rank or -1 (the batch) first. An output of fixed size (a model-wide statistic, a
/// vocabulary) would fail the split, so such models get each request alone.
pub fn outputs_split_by_rows(outputs: &BTreeMap<String, TensorSpec>) -> bool {
    outputs.values().all(|spec| match spec.shape.as_deref() {
        None => true,
        Some(dims) => dims.first() == Some(&-1),
    })
}

/// Whether an input of `rank` may be joined with others along dimension 0: its signature shape
/// has an unknown rank or -1 (any size) first. A signature of another rank than the request's
/// does not forbid it: TF Serving answers such a request the same whether it is joined or alone
/// (a model may accept several ranks), and sending it alone would let one request of a million
/// rows past `max_batch_size` as a single call.
fn has_batch_dimension(spec: Option<&TensorSpec>, rank: usize) -> bool {
    match spec.map(|s| s.shape.as_deref()) {
        // Not in the signature: conversion refuses that before; never join what is unknown.
        None => false,
        Some(None) => true,
        Some(Some(dims)) => rank >= 1 && dims.first() == Some(&-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{Dtype, Values};

    fn tensor(dtype: Dtype, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let values = match dtype {
            Dtype::Int64 => Values::I64(vec![0; n]),
            _ => Values::F32(vec![0.0; n]),
        };
        Tensor { dtype, shape: shape.to_vec(), values }
    }

    /// Grouped under a signature that gives every input a batch dimension.
    fn group(inputs: &[(&str, Dtype, &[usize])]) -> Grouping {
        let specs = inputs
            .iter()
            .map(|(n, d, s)| {
                let shape = (!s.is_empty())
                    .then(|| s.iter().enumerate().map(|(i, &x)| if i == 0 { -1 } else { x as i64 }).collect());
                (n.to_string(), TensorSpec { dtype: d.data_type() as i32, shape })
            })
            .collect();
        group_under(inputs, &specs)
    }

    fn group_under(inputs: &[(&str, Dtype, &[usize])], specs: &BTreeMap<String, TensorSpec>) -> Grouping {
        let inputs = inputs.iter().map(|(n, d, s)| (n.to_string(), tensor(*d, s))).collect();
        grouping(7, &VersionRef::Number(1), "serving_default", &inputs, specs)
    }

    #[test]
    fn only_outputs_with_a_batch_dimension_can_be_split_back() {
        let outputs = |shape: Option<Vec<i64>>| {
            BTreeMap::from([("y".to_string(), TensorSpec { dtype: Dtype::Float.data_type() as i32, shape })])
        };
        assert!(outputs_split_by_rows(&outputs(Some(vec![-1]))));
        assert!(outputs_split_by_rows(&outputs(Some(vec![-1, 4]))));
        assert!(outputs_split_by_rows(&outputs(None)), "unknown rank");
        assert!(!outputs_split_by_rows(&outputs(Some(vec![3]))));
        assert!(!outputs_split_by_rows(&outputs(Some(vec![]))), "a scalar output");
    }

    #[test]
    fn rows_over_an_empty_tensor_go_alone_as_one_call() {
        // [2^20, 0]: a million rows holding nothing would be 16,384 calls if split.
        let empty: &[(&str, Dtype, &[usize])] = &[("x", Dtype::Float, &[1 << 20, 0])];
        let grouped = group(empty);
        assert_eq!((grouped.mergeable, grouped.rows), (false, 1));
    }

    #[test]
    fn only_a_signature_batch_dimension_is_joined() {
        let spec = |shape: Option<Vec<i64>>| {
            BTreeMap::from([("x".to_string(), TensorSpec { dtype: Dtype::Float.data_type() as i32, shape })])
        };
        let x3: &[(&str, Dtype, &[usize])] = &[("x", Dtype::Float, &[3])];
        // Fixed first dimension ([3]): two requests must not become a [6].
        assert!(!group_under(x3, &spec(Some(vec![3]))).mergeable);
        // A batch dimension, but another rank than the tensor's: still joined (and split).
        assert!(group_under(x3, &spec(Some(vec![-1, 3]))).mergeable);
        let rows_of_one: &[(&str, Dtype, &[usize])] = &[("x", Dtype::Float, &[1000, 1])];
        let grouped = group_under(rows_of_one, &spec(Some(vec![-1])));
        assert_eq!((grouped.mergeable, grouped.rows), (true, 1000), "rows of shape [1] under a [-1] signature");
        // A scalar input in the signature.
        assert!(!group_under(x3, &spec(Some(vec![]))).mergeable);
        // An input the signature does not know.
        assert!(!group_under(x3, &BTreeMap::new()).mergeable);
        assert_eq!(group_under(x3, &spec(Some(vec![3]))).key, GroupKey::Alone(7));
        assert!(group_under(x3, &spec(Some(vec![-1]))).mergeable);
        assert!(group_under(x3, &spec(None)).mergeable, "unknown rank");
        let x32: &[(&str, Dtype, &[usize])] = &[("x", Dtype::Float, &[3, 2])];
        assert!(group_under(x32, &spec(Some(vec![-1, 2]))).mergeable);
        assert!(group_under(x32, &spec(Some(vec![-1, -1]))).mergeable);
    }

    #[test]
    fn same_row_layout_same_group_whatever_the_row_count() {
        let a = group(&[("x", Dtype::Float, &[3, 2])]);
        let b = group(&[("x", Dtype::Float, &[5, 2])]);
        assert_eq!((a.key == b.key, a.rows, b.rows, a.mergeable), (true, 3, 5, true));
        assert_ne!(a.key, group(&[("x", Dtype::Float, &[3, 4])]).key);
        assert_ne!(a.key, group(&[("x", Dtype::Int64, &[3, 2])]).key);
        let two = group(&[("a", Dtype::Float, &[2]), ("b", Dtype::Int64, &[2, 3])]);
        assert_eq!((two.rows, two.mergeable), (2, true));
    }

    #[test]
    fn scalars_empty_and_unequal_first_dimensions_go_alone() {
        for inputs in [
            vec![("x", Dtype::Float, &[][..])],
            vec![("x", Dtype::Float, &[0, 2][..])],
            vec![("a", Dtype::Float, &[2][..]), ("b", Dtype::Float, &[3][..])],
        ] {
            let g = group(&inputs);
            assert_eq!((g.key, g.rows, g.mergeable), (GroupKey::Alone(7), 1, false));
        }
    }
}
