//! The outputs an Open Inference Protocol answer carries, in the order it lists them, each as the
//! runs of batch outputs that hold its elements. Both v2 writers (REST JSON or binary data, gRPC
//! raw contents) read them, and write each element once, straight from the batches' tensors:
//! a call's rows of a batch are never joined into a tensor of their own first.

use std::ops::Range;

use tfgate_common::echo::quote;

use super::content::write_content;
use super::nested::shape_string;
use super::v2_dtype::{push_raw_bytes, V2Datatype, BYTES_LENGTH_PREFIX};
use super::{AnswerSource, Blame, ConvertError, Dtype, Tensor, Values};

/// Which outputs a request wants, and in which form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputRequest {
    /// The outputs listed in `outputs`, in their order; `None`: every output of the model.
    pub requested: Option<Vec<RequestedOutput>>,
    /// `binary_data_output` of the request's parameters: the form of outputs that do not say.
    pub binary_data_output: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedOutput {
    pub name: String,
    /// Its `binary_data` parameter, when given.
    pub binary_data: Option<bool>,
}

impl OutputRequest {
    /// The requested names (for a backend's output filter); `None`: all.
    pub fn names(&self) -> Option<impl Iterator<Item = &str> + '_> {
        self.requested.as_ref().map(|r| r.iter().map(|o| o.name.as_str()))
    }

    pub(crate) fn binary(&self, output: &RequestedOutput) -> bool {
        output.binary_data.unwrap_or(self.binary_data_output)
    }
}

/// One output of an answer.
#[derive(Debug)]
pub struct AnswerOutput<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Its elements, in row-major order: ranges of the values of one or more tensors.
    pub parts: Vec<(&'a Values, Range<usize>)>,
    /// Asked for as binary data (REST's binary tensor data extension).
    pub binary: bool,
}

impl AnswerOutput<'_> {
    pub fn count(&self) -> usize {
        self.parts.iter().map(|(_, range)| range.len()).sum()
    }

    /// Bytes of its raw form: fixed-size elements, or each BYTES element and its length.
    pub fn raw_size(&self) -> usize {
        if let Some(size) = V2Datatype::from_dtype(self.dtype).raw_len(self.count()) {
            return size;
        }
        let strings = self.parts.iter().filter_map(|(values, range)| match values {
            Values::Bytes(strings) => Some(range.clone().filter_map(|i| strings.get(i))),
            _ => None,
        });
        strings.flatten().map(|s| BYTES_LENGTH_PREFIX + s.len()).sum()
    }

    /// Appends its raw form: fixed-size elements laid out as TF's `tensor_content` (the same
    /// layout), BYTES length-prefixed.
    pub fn write_raw(&self, out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let fail = |why: String| ConvertError::backend(format!("output {}: {why}", self.name));
        for (values, range) in &self.parts {
            match values {
                Values::Bytes(strings) => {
                    for i in range.clone() {
                        let element = strings.get(i).ok_or_else(|| fail("row range outside the tensor".into()))?;
                        push_raw_bytes(out, element, Blame::Backend).map_err(|e| fail(e.message))?;
                    }
                }
                values => write_content(self.dtype, values, range.clone(), out).map_err(fail)?,
            }
        }
        Ok(())
    }
}

/// The outputs `wanted` asks for (in its order), or every output (in name order), from `source`.
/// An output the model does not have is the client's error; outputs that do not hold their
/// shape, or pieces that disagree, are the backend's.
pub fn select<'a>(source: AnswerSource<'a>, wanted: &OutputRequest) -> Result<Vec<AnswerOutput<'a>>, ConvertError> {
    let first = match source {
        AnswerSource::Whole(outputs) => outputs,
        AnswerSource::Rows(slices) => slices.first().map(|s| s.outputs).ok_or_else(no_outputs)?,
    };
    if first.is_empty() {
        return Err(no_outputs());
    }
    let names: Vec<(&'a str, bool)> = match &wanted.requested {
        None => first.keys().map(|name| (name.as_str(), wanted.binary_data_output)).collect(),
        Some(requested) => requested
            .iter()
            .map(|o| match first.get_key_value(&o.name) {
                Some((name, _)) => Ok((name.as_str(), wanted.binary(o))),
                // Requested outputs were checked against the signature: the backend left it out.
                None => Err(ConvertError::backend(format!("the model answered no output '{}'", quote(&o.name)))),
            })
            .collect::<Result<_, _>>()?,
    };
    names
        .into_iter()
        .map(|(name, binary)| match source {
            AnswerSource::Whole(outputs) => {
                let tensor = outputs.get(name).ok_or_else(no_outputs)?;
                let count = check_output(name, tensor)?;
                let parts = vec![(&tensor.values, 0..count)];
                Ok(AnswerOutput { name, dtype: tensor.dtype, shape: tensor.shape.clone(), parts, binary })
            }
            AnswerSource::Rows(slices) => rows_output(name, slices, binary),
        })
        .collect()
}

/// Output `name` of every slice: its rows, one after the other.
fn rows_output<'a>(
    name: &'a str,
    slices: &[super::RowSlice<'a>],
    binary: bool,
) -> Result<AnswerOutput<'a>, ConvertError> {
    let mut parts = Vec::with_capacity(slices.len());
    let mut layout: Option<(Dtype, &[usize])> = None;
    let mut rows = 0usize;
    for slice in slices {
        let tensor = slice.outputs.get(name).ok_or_else(different_outputs)?;
        check_output(name, tensor)?;
        let Some((&batch, row_shape)) = tensor.shape.split_first() else {
            return Err(ConvertError::backend(format!("output {name} has no rows to answer a part of a batch with")));
        };
        match layout {
            None => layout = Some((tensor.dtype, row_shape)),
            Some(first) if first != (tensor.dtype, row_shape) => return Err(different_outputs()),
            Some(_) => {}
        }
        if slice.rows.end > batch {
            return Err(ConvertError::backend(format!("output {name} has {batch} rows, fewer than its batch")));
        }
        let stride: usize = row_shape.iter().product();
        parts.push((&tensor.values, slice.rows.start * stride..slice.rows.end * stride));
        rows += slice.rows.len();
    }
    let (dtype, row_shape) = layout.ok_or_else(no_outputs)?;
    let mut shape = Vec::with_capacity(row_shape.len() + 1);
    shape.push(rows);
    shape.extend_from_slice(row_shape);
    Ok(AnswerOutput { name, dtype, shape, parts, binary })
}

/// An output's element count, which its values must have.
fn check_output(name: &str, tensor: &Tensor) -> Result<usize, ConvertError> {
    let count = tensor.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match count {
        Some(count) if count == tensor.values.len() => Ok(count),
        _ => Err(ConvertError::backend(format!(
            "output {name} has shape {} but {} values",
            shape_string(&tensor.shape),
            tensor.values.len()
        ))),
    }
}

fn no_outputs() -> ConvertError {
    ConvertError::backend("the model answered no outputs")
}

fn different_outputs() -> ConvertError {
    ConvertError::backend(
        "the parts of this request were answered with different outputs (did the model version change?)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{Outputs, RowSlice};

    fn outputs(rows: usize, first: i64) -> Outputs {
        let values: Vec<i64> = (first..first + 2 * rows as i64).collect();
        let y = Tensor { dtype: Dtype::Int64, shape: vec![rows, 2], values: Values::I64(values) };
        let s = Tensor { dtype: Dtype::Bool, shape: vec![rows], values: Values::Bool(vec![true; rows]) };
        [("y".to_string(), y), ("s".to_string(), s)].into()
    }

    #[test]
    fn rows_of_several_batches_are_runs_of_their_values() {
        let (a, b) = (outputs(3, 0), outputs(4, 100));
        let slices = [RowSlice { outputs: &a, rows: 1..3 }, RowSlice { outputs: &b, rows: 0..1 }];
        let wanted = OutputRequest {
            requested: Some(vec![RequestedOutput { name: "y".into(), binary_data: Some(true) }]),
            binary_data_output: false,
        };
        let selected = select(AnswerSource::Rows(&slices), &wanted).unwrap();
        assert_eq!(selected.len(), 1);
        let y = &selected[0];
        assert_eq!((y.name, y.shape.as_slice(), y.count(), y.binary), ("y", &[3, 2][..], 6, true));
        assert_eq!(y.parts.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), vec![2..6, 0..2]);
        // All outputs, in name order, when none is asked for.
        let all = select(AnswerSource::Whole(&a), &OutputRequest::default()).unwrap();
        assert_eq!(all.iter().map(|o| o.name).collect::<Vec<_>>(), ["s", "y"]);
    }

    #[test]
    fn pieces_that_disagree_are_the_backends_fault() {
        let a = outputs(2, 0);
        let mut b = outputs(2, 0);
        b.remove("s");
        let slices = [RowSlice { outputs: &a, rows: 0..1 }, RowSlice { outputs: &b, rows: 0..1 }];
        let e = select(AnswerSource::Rows(&slices), &OutputRequest::default()).unwrap_err();
        assert_eq!(e.blame, crate::convert::Blame::Backend);
        let beyond = [RowSlice { outputs: &a, rows: 1..3 }];
        assert!(select(AnswerSource::Rows(&beyond), &OutputRequest::default()).is_err());
        assert!(select(AnswerSource::Rows(&[]), &OutputRequest::default()).is_err());
    }
}
