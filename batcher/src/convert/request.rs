//! A Predict request body in TF Serving's REST JSON to input tensors, parsed straight into typed
//! buffers: no JSON value tree is built, so a body takes about the memory of its tensors.
//!
//! Two steps, because the dtypes come from the model's signature, which must be fetched (async,
//! cached) in between: [`PredictBody::parse`] checks the document's outline and finds which
//! signature it wants (the payload is only validated and located); [`PredictBody::into_inputs`]
//! reads the payload into tensors of that signature's dtypes. Messages are TF Serving's own where
//! known, so clients see the same errors with or without tfgate.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tfgate_common::echo::{quote, QUOTED_BYTES};

use super::dtype::code_name;
use super::nested::{parse_error, parse_nested, shape_string, Shape};
use super::nonfinite::rewrite_nonfinite;
use super::tensor::Values;
use super::{ConvertError, Dtype, SignatureSpec, Tensor};

/// The signature used when a request names none (or an empty one).
pub const DEFAULT_SIGNATURE: &str = tfgate_proto::DEFAULT_SIGNATURE;

/// How the request was written, which decides how the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"instances": [...]}` -> `{"predictions": [...]}`.
    Row,
    /// `{"inputs": ...}` -> `{"outputs": ...}`.
    Columnar,
}

/// A checked Predict body whose tensors are not built yet.
#[derive(Debug)]
pub struct PredictBody<'a> {
    pub signature_name: String,
    pub format: Format,
    /// The body, with NaN and infinities rewritten (a copy only when it has any).
    text: Cow<'a, [u8]>,
    /// Where the value of `instances` (a non-empty array) or of `inputs` is in `text`.
    payload: Range<usize>,
}

/// Input tensors ready for a PredictRequest.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictInputs {
    pub format: Format,
    pub signature_name: String,
    pub tensors: BTreeMap<String, Tensor>,
}

/// The document's members that matter, as unparsed slices of it (`null` included).
#[derive(Deserialize)]
struct Outline<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    signature_name: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    instances: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    inputs: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

impl<'a> PredictBody<'a> {
    pub fn parse(body: &'a [u8]) -> Result<PredictBody<'a>, ConvertError> {
        Self::parse_text(body, rewrite_nonfinite(body))
    }

    /// As [`parse`](Self::parse), for a body whose NaN and infinities were already rewritten
    /// (`nonfinite::rewrite_owned`): it is not scanned for them again.
    pub fn parse_rewritten(body: &'a [u8]) -> Result<PredictBody<'a>, ConvertError> {
        Self::parse_text(body, Cow::Borrowed(body))
    }

    fn parse_text(body: &'a [u8], text: Cow<'a, [u8]>) -> Result<PredictBody<'a>, ConvertError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ConvertError::request("JSON Parse error: The document is empty"));
        }
        let document = std::str::from_utf8(&text)
            .map_err(|e| ConvertError::request(format!("JSON Parse error: the document is not UTF-8: {e}")))?;
        let whole: &RawValue = serde_json::from_str(document).map_err(|e| ConvertError::request(parse_error(&e)))?;
        if !whole.get().starts_with('{') {
            return Err(format_error(whole.get(), "Is not object"));
        }
        let outline: Outline<'_> =
            serde_json::from_str(document).map_err(|e| ConvertError::request(parse_error(&e)))?;
        let signature_name = match outline.signature_name {
            None => DEFAULT_SIGNATURE.to_string(),
            Some(raw) => match serde_json::from_str::<String>(raw.get()) {
                Ok(name) if name.is_empty() => DEFAULT_SIGNATURE.to_string(),
                Ok(name) => name,
                Err(_) => {
                    return Err(format_error(
                        document,
                        "not formatted correctly. 'signature_name' key must be a string value.",
                    ))
                }
            },
        };
        let (format, payload) = match (outline.instances, outline.inputs) {
            (Some(_), Some(_)) => {
                return Err(format_error(
                    document,
                    "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
                ))
            }
            (None, None) => return Err(ConvertError::request("Missing 'inputs' or 'instances' key")),
            (Some(instances), None) => (Format::Row, instances),
            (None, Some(inputs)) => (Format::Columnar, inputs),
        };
        if format == Format::Row {
            let raw = payload.get();
            if !raw.starts_with('[') {
                return Err(format_error(raw, "Excepting 'instances' to be an list/array"));
            }
            if raw[1..].trim_start().starts_with(']') {
                return Err(format_error(raw, "No values in 'instances' array"));
            }
        }
        let payload = span(document, payload.get());
        Ok(PredictBody { signature_name, format, text, payload })
    }

    /// At most the bytes the input tensors of this body take once read with `signature`, known
    /// before they are built: every element is followed by a separator or ends a list, so there
    /// are at most as many as there are `,`, `[` and `{` plus one; each takes at most the widest
    /// input's width, and strings at most the text's own bytes besides.
    pub fn tensor_bytes_bound(&self, signature: &SignatureSpec) -> usize {
        let payload = &self.text[self.payload.clone()];
        let elements = 1 + payload.iter().filter(|&&b| matches!(b, b',' | b'[' | b'{')).count();
        let dtypes = signature.inputs.values().filter_map(|spec| Dtype::from_code(spec.dtype));
        let (width, strings) = dtypes.fold((0, false), |(width, strings), dtype| match dtype.value_width() {
            Some(w) => (width.max(w), strings),
            None => (width.max(4), true),
        });
        elements.saturating_mul(width).saturating_add(if strings { payload.len() } else { 0 })
    }

    /// Builds the input tensors with the dtypes of `signature` (the one named by the body).
    pub fn into_inputs(self, signature: &SignatureSpec) -> Result<PredictInputs, ConvertError> {
        if signature.inputs.is_empty() {
            return Err(ConvertError::request(format!(
                "Failed to get input map for signature: {}",
                self.signature_name
            )));
        }
        let inputs = signature
            .inputs
            .iter()
            .map(|(name, spec)| Ok((name.as_str(), input_dtype(name, spec.dtype)?)))
            .collect::<Result<Vec<_>, ConvertError>>()?;
        // Parsed once as UTF-8 already: only the payload's range is read again.
        let payload = std::str::from_utf8(&self.text[self.payload.clone()]).unwrap_or_default();
        let tensors = match self.format {
            Format::Row => rows_to_tensors(payload, &inputs)?,
            Format::Columnar => columns_to_tensors(payload, &inputs)?,
        };
        Ok(PredictInputs { format: self.format, signature_name: self.signature_name, tensors })
    }
}

/// The byte range of `part`, a slice of `whole`.
fn span(whole: &str, part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// One input being filled row by row.
struct Column<'s> {
    name: &'s str,
    dtype: Dtype,
    values: Values,
    /// The shape of one row, from the first.
    row_shape: Option<Vec<usize>>,
}

impl Column<'_> {
    /// Adds a row; `Err` is the message of what is wrong with it.
    fn push_row(&mut self, text: &str, shape: &mut Shape, payload_len: usize) -> Result<(), String> {
        shape.reset();
        parse_nested(text, self.dtype, &mut self.values, shape)?;
        let dims = shape.dims();
        match &self.row_shape {
            None => {
                // Rows are alike: room for as many as the payload seems to hold, so the buffer
                // is not copied over and over as it grows (a copy holds both at once).
                let rows = payload_len / (text.len() + 1);
                self.values.reserve(self.values.len() * rows, self.values.string_bytes() * rows);
                self.row_shape = Some(dims);
            }
            Some(first) if *first != dims => {
                return Err(format!("Expecting shape {} but got: {}", shape_string(first), shape_string(&dims)))
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn into_tensor(mut self, rows: usize) -> Tensor {
        let mut shape = vec![rows];
        shape.extend(self.row_shape.unwrap_or_default());
        self.values.shrink_to_fit();
        Tensor { dtype: self.dtype, shape, values: self.values }
    }
}

/// How the rows of `instances` name their inputs, decided by the first one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowKind {
    /// Values or lists: the signature's only input.
    Plain,
    /// Objects keyed by input name.
    Named,
}

fn rows_to_tensors(payload: &str, inputs: &[(&str, Dtype)]) -> Result<BTreeMap<String, Tensor>, ConvertError> {
    let mut columns: Vec<Column<'_>> = inputs
        .iter()
        .map(|&(name, dtype)| Column { name, dtype, values: Values::empty(dtype), row_shape: None })
        .collect();
    let mut error = None;
    let mut rows = Rows {
        columns: &mut columns,
        kind: None,
        count: 0,
        shape: Shape::default(),
        payload_len: payload.len(),
        error: &mut error,
    };
    let mut deserializer = serde_json::Deserializer::from_str(payload);
    let parsed = (&mut rows).deserialize(&mut deserializer);
    let count = rows.count;
    match (error, parsed) {
        (Some(e), _) => return Err(e),
        (None, Err(e)) => return Err(ConvertError::request(parse_error(&e))),
        (None, Ok(())) => {}
    }
    Ok(columns.into_iter().map(|c| (c.name.to_string(), c.into_tensor(count))).collect())
}

/// The `instances` array, visited one row at a time.
struct Rows<'c, 's> {
    columns: &'c mut [Column<'s>],
    kind: Option<RowKind>,
    count: usize,
    shape: Shape,
    /// Bytes of the whole `instances` text, to size the columns from the first row.
    payload_len: usize,
    error: &'c mut Option<ConvertError>,
}

impl<'de> DeserializeSeed<'de> for &mut Rows<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut Rows<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of instances")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<&RawValue>()? {
            if let Err(e) = self.row(row.get()) {
                *self.error = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
            self.count += 1;
        }
        Ok(())
    }
}

impl Rows<'_, '_> {
    fn row(&mut self, text: &str) -> Result<(), ConvertError> {
        let i = self.count;
        let named = is_named(text);
        let kind = *self.kind.get_or_insert(if named { RowKind::Named } else { RowKind::Plain });
        match kind {
            RowKind::Plain => {
                let [column] = &mut *self.columns else {
                    return Err(ConvertError::request(
                        "instances is a plain list, but expecting list of objects as multiple input tensors required as per tensorinfo_map",
                    ));
                };
                if named {
                    return Err(ConvertError::request(format!(
                        "Expecting value/list but got object at item {i} of input list"
                    )));
                }
                column.push_row(text, &mut self.shape, self.payload_len).map_err(|e| row_error(i, e))
            }
            RowKind::Named => {
                if !named {
                    return Err(ConvertError::request(format!(
                        "Expecting object but got list at item {i} of input list"
                    )));
                }
                self.named_row(i, text)
            }
        }
    }

    /// `{"a": ..., "b": ...}`: every input once, nothing else.
    fn named_row(&mut self, i: usize, text: &str) -> Result<(), ConvertError> {
        let fields: BTreeMap<&str, &RawValue> = serde_json::from_str(text).map_err(|e| {
            ConvertError::request(format!(
                "Failed to process element: {i} of 'instances' list. Error: {}",
                quote(&e.to_string())
            ))
        })?;
        if let Some(unknown) = fields.keys().find(|k| !self.columns.iter().any(|c| c.name == **k)) {
            let unknown = quote(unknown);
            return Err(ConvertError::request(format!(
                "Failed to process element: {i} key: {unknown} of 'instances' list. Error: JSON object: does not have named input: {unknown}"
            )));
        }
        if fields.len() != self.columns.len() {
            let names: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
            return Err(ConvertError::request(format!(
                "Failed to process element: {i} of 'instances' list. JSON object: {} must only have keys: {}",
                shown(text),
                names.join(",")
            )));
        }
        for column in self.columns.iter_mut() {
            let Some(value) = fields.get(column.name) else { continue };
            column.push_row(value.get(), &mut self.shape, self.payload_len).map_err(|e| {
                ConvertError::request(format!(
                    "Failed to process element: {i} key: {} of 'instances' list. Error: {e}",
                    column.name
                ))
            })?;
        }
        Ok(())
    }
}

/// Row errors get TF Serving's prefix.
fn row_error(i: usize, message: String) -> ConvertError {
    ConvertError::request(format!("Failed to process element: {i} of 'instances' list. Error: {message}"))
}

fn columns_to_tensors(payload: &str, inputs: &[(&str, Dtype)]) -> Result<BTreeMap<String, Tensor>, ConvertError> {
    if !is_named(payload) {
        let [(name, dtype)] = inputs else {
            return Err(ConvertError::request(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as per tensorinfo_map",
            ));
        };
        return Ok(BTreeMap::from([(name.to_string(), column(payload, *dtype)?)]));
    }
    // As in TF Serving, keys the signature does not name are ignored.
    let fields: BTreeMap<&str, &RawValue> =
        serde_json::from_str(payload).map_err(|e| ConvertError::request(parse_error(&e)))?;
    let mut tensors = BTreeMap::new();
    for &(name, dtype) in inputs {
        let value = fields
            .get(name)
            .ok_or_else(|| ConvertError::request(format!("Missing named input: {name} in 'inputs' object.")))?;
        tensors.insert(name.to_string(), column(value.get(), dtype)?);
    }
    Ok(tensors)
}

/// One columnar input: a value of any shape.
fn column(text: &str, dtype: Dtype) -> Result<Tensor, ConvertError> {
    let mut values = Values::empty(dtype);
    let mut shape = Shape::default();
    parse_nested(text, dtype, &mut values, &mut shape).map_err(ConvertError::request)?;
    values.shrink_to_fit();
    Ok(Tensor { dtype, shape: shape.dims(), values })
}

/// An object other than `{"b64": ...}` (which stands for one binary string value).
fn is_named(text: &str) -> bool {
    if !text.starts_with('{') {
        return false;
    }
    // Only the member names are read.
    let names: Result<BTreeMap<&str, IgnoredAny>, _> = serde_json::from_str(text);
    !matches!(names, Ok(names) if names.len() == 1 && names.contains_key("b64"))
}

fn input_dtype(name: &str, code: i32) -> Result<Dtype, ConvertError> {
    Dtype::from_code(code).ok_or_else(|| {
        ConvertError::request(format!(
            "input {name} has type {}, which tfgate cannot convert from JSON yet",
            code_name(code)
        ))
    })
}

/// TF Serving's "JSON Value: <value> <what>" message, with the value shortened.
fn format_error(raw: &str, what: &str) -> ConvertError {
    ConvertError::request(format!("JSON Value: {} {what}", shown(raw)))
}

/// A JSON text as TF Serving prints it in messages: compact, quoted (at most
/// [`QUOTED_BYTES`] of it reach the client, none of it the logs).
fn shown(raw: &str) -> String {
    // Compacting means parsing: only for texts short enough that it costs nothing.
    if raw.len() > 4 * QUOTED_BYTES {
        return quote(raw);
    }
    quote(&serde_json::from_str::<Value>(raw).map_or_else(|_| raw.to_string(), |v| v.to_string()))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
