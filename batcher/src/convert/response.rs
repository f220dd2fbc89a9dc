//! Predict outputs to TF Serving's REST answer.
//!
//! Row requests get `{"predictions": [...]}`: with one output, one value (or nested list) per
//! row; with several, one object per row keyed by output name, so all outputs must share dim 0.
//! Columnar requests get `{"outputs": value}` or `{"outputs": {name: value, ...}}`.
//! Output names are written in sorted order so answers are stable.
//!
//! A batched request's answer is made of [`RowSlice`]s, its rows cut out of one or more batch
//! outputs (several when a large request was split), written without copying the tensors.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use tfgate_proto::tensorflow::TensorProto;

use super::json_writer::{write_nested, write_object, write_row, Strings};
use super::{ConvertError, Format, Tensor};

/// Decoded outputs by name.
pub type Outputs = BTreeMap<String, Tensor>;

/// Reads every output tensor of a Predict answer.
pub fn decode_outputs(protos: &HashMap<String, TensorProto>) -> Result<Outputs, ConvertError> {
    if protos.is_empty() {
        return Err(ConvertError::backend("Cannot convert empty tensor map to JSON"));
    }
    protos
        .iter()
        .map(|(name, proto)| {
            Tensor::from_proto(proto)
                .map(|t| (name.clone(), t))
                .map_err(|e| ConvertError::backend(format!("output {name}: {}", e.message)))
        })
        .collect()
}

/// Rows `rows` (along dimension 0) of every output in `outputs`.
#[derive(Debug, Clone)]
pub struct RowSlice<'a> {
    pub outputs: &'a Outputs,
    pub rows: Range<usize>,
}

/// Where an answer's values come from.
#[derive(Debug, Clone, Copy)]
pub enum AnswerSource<'a> {
    /// A call made for this request alone: the outputs are written as they are.
    Whole(&'a Outputs),
    /// The request's rows of batch outputs, in request order.
    Rows(&'a [RowSlice<'a>]),
}

/// Serialises the Predict answer for a request written in `format`.
pub fn predict_response_json(format: Format, source: AnswerSource<'_>) -> Result<Vec<u8>, ConvertError> {
    let mut out = Vec::with_capacity(256);
    let whole;
    let slices = match source {
        AnswerSource::Whole(outputs) if format == Format::Columnar => {
            check_not_empty(outputs)?;
            out.extend_from_slice(b"{\"outputs\":");
            write_by_name(&mut out, outputs, |out, name, t| {
                write_nested(out, &t.values, &t.shape, 0, Strings::for_output(name))
            });
            out.push(b'}');
            return Ok(out);
        }
        AnswerSource::Whole(outputs) => {
            whole = [RowSlice { outputs, rows: 0..batch_size(outputs)? }];
            &whole[..]
        }
        AnswerSource::Rows(slices) => slices,
    };
    let first = check_same_outputs(slices)?;
    match RowsWriter::start(format, first, &mut out) {
        Some(mut writer) => {
            for slice in slices {
                writer.rows(&mut out, slice)?;
            }
            writer.finish(&mut out);
        }
        None => write_columns(&mut out, first, slices),
    }
    Ok(out)
}

/// Writes an answer made of rows piece by piece, in request order: `{"predictions": [...]}`,
/// or a columnar request's single output `{"outputs": [...]}`. The bytes are the same as
/// [`predict_response_json`]'s for the same rows, so a large answer can be sent while its later
/// batches are still running.
pub struct RowsWriter {
    format: Format,
    /// The outputs every piece must have (those of the first).
    names: Vec<String>,
    /// A row was written (the next one needs a comma).
    separate: bool,
}

impl RowsWriter {
    /// Starts the answer whose first piece has `first`'s outputs; `None` for an answer that is
    /// written output by output (a columnar request with several outputs).
    pub fn start(format: Format, first: &Outputs, out: &mut Vec<u8>) -> Option<RowsWriter> {
        match format {
            Format::Row => out.extend_from_slice(b"{\"predictions\":["),
            Format::Columnar if first.len() == 1 => out.extend_from_slice(b"{\"outputs\":["),
            Format::Columnar => return None,
        }
        Some(RowsWriter { format, names: first.keys().cloned().collect(), separate: false })
    }

    /// Appends the rows of `slice`.
    pub fn rows(&mut self, out: &mut Vec<u8>, slice: &RowSlice<'_>) -> Result<(), ConvertError> {
        check_not_empty(slice.outputs)?;
        if !slice.outputs.keys().eq(self.names.iter()) {
            return Err(different_outputs());
        }
        for row in slice.rows.clone() {
            if std::mem::replace(&mut self.separate, true) {
                out.push(b',');
            }
            match self.format {
                Format::Row => write_by_name(out, slice.outputs, |out, name, t| {
                    write_row(out, &t.values, &t.shape, row, Strings::for_output(name))
                }),
                Format::Columnar => {
                    for (name, t) in slice.outputs {
                        write_row(out, &t.values, &t.shape, row, Strings::for_output(name));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn finish(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"]}");
    }
}

/// `{"outputs": {name: [rows...], ...}}`: each output's rows across the slices.
fn write_columns(out: &mut Vec<u8>, first: &Outputs, slices: &[RowSlice<'_>]) {
    out.extend_from_slice(b"{\"outputs\":");
    write_by_name(out, first, |out, name, _| {
        out.push(b'[');
        let mut separate = false;
        for slice in slices {
            let Some(t) = slice.outputs.get(name) else {
                continue;
            };
            for row in slice.rows.clone() {
                if std::mem::replace(&mut separate, true) {
                    out.push(b',');
                }
                write_row(out, &t.values, &t.shape, row, Strings::for_output(name));
            }
        }
        out.push(b']');
    });
    out.push(b'}');
}

/// One output: just its value; several: `{name: value, ...}`.
fn write_by_name(out: &mut Vec<u8>, outputs: &Outputs, mut write: impl FnMut(&mut Vec<u8>, &str, &Tensor)) {
    if outputs.len() == 1 {
        if let Some((name, tensor)) = outputs.iter().next() {
            write(out, name, tensor);
        }
        return;
    }
    write_object(out, outputs, write);
}

fn check_not_empty(outputs: &Outputs) -> Result<(), ConvertError> {
    if outputs.is_empty() {
        return Err(ConvertError::backend("Cannot convert empty tensor map to JSON"));
    }
    Ok(())
}

/// The slices of one request must come from outputs with the same names (a split request whose
/// parts were answered by different model versions could break this).
fn check_same_outputs<'a>(slices: &[RowSlice<'a>]) -> Result<&'a Outputs, ConvertError> {
    let Some(first) = slices.first() else {
        return Err(ConvertError::backend("no outputs for this request"));
    };
    check_not_empty(first.outputs)?;
    let same = |s: &RowSlice<'_>| s.outputs.keys().eq(first.outputs.keys());
    if !slices.iter().all(same) {
        return Err(different_outputs());
    }
    Ok(first.outputs)
}

fn different_outputs() -> ConvertError {
    ConvertError::backend(
        "the parts of this request were answered with different outputs (did the model version change?)",
    )
}

/// The shared first dimension of all outputs (TF Serving's messages when there is none).
pub fn batch_size(outputs: &Outputs) -> Result<usize, ConvertError> {
    check_not_empty(outputs)?;
    let mut batch_size = None;
    for (name, tensor) in outputs {
        let Some(&size) = tensor.shape.first() else {
            return Err(ConvertError::request(format!("Tensor name: {name} has no shape information ")));
        };
        if size < 1 {
            return Err(ConvertError::request(format!("Tensor name: {name} has invalid batch size: {size}")));
        }
        match batch_size {
            Some(expected) if expected != size => {
                return Err(ConvertError::request(format!(
                    "Tensor name: {name} has inconsistent batch size: {size} expecting: {expected}"
                )))
            }
            _ => batch_size = Some(size),
        }
    }
    Ok(batch_size.unwrap_or(0))
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
