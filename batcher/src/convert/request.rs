//! A Predict request body in TF Serving's REST JSON to input tensors.
//!
//! Two steps, because the dtypes come from the model's signature, which must be fetched (async,
//! cached) in between: [`PredictBody::parse`] checks the JSON and finds which signature it wants;
//! [`PredictBody::into_inputs`] builds the tensors against that signature. Messages are TF
//! Serving's own where known, so clients see the same errors with or without tfgate.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::dtype::{code_name, is_b64_object};
use super::nested::{tensor_from_json, tensor_from_rows};
use super::nonfinite::rewrite_nonfinite;
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
pub struct PredictBody {
    pub signature_name: String,
    pub format: Format,
    /// The value of `instances` (a non-empty array) or of `inputs`.
    payload: Value,
}

/// Input tensors ready for a PredictRequest.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictInputs {
    pub format: Format,
    pub signature_name: String,
    pub tensors: BTreeMap<String, Tensor>,
}

impl PredictBody {
    pub fn parse(body: &[u8]) -> Result<PredictBody, ConvertError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ConvertError::request("JSON Parse error: The document is empty"));
        }
        let doc: Value = serde_json::from_slice(&rewrite_nonfinite(body))
            .map_err(|e| ConvertError::request(format!("JSON Parse error: {e}")))?;
        let Value::Object(mut doc) = doc else {
            return Err(format_error(&doc, "Is not object"));
        };
        let signature_name = match doc.get("signature_name") {
            None => DEFAULT_SIGNATURE.to_string(),
            Some(Value::String(name)) if name.is_empty() => DEFAULT_SIGNATURE.to_string(),
            Some(Value::String(name)) => name.clone(),
            Some(_) => {
                return Err(format_error(
                    &Value::Object(doc),
                    "not formatted correctly. 'signature_name' key must be a string value.",
                ))
            }
        };
        let (format, payload) = match (doc.contains_key("instances"), doc.contains_key("inputs")) {
            (true, true) => {
                return Err(format_error(
                    &Value::Object(doc),
                    "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
                ))
            }
            (false, false) => return Err(ConvertError::request("Missing 'inputs' or 'instances' key")),
            (true, false) => (Format::Row, take(&mut doc, "instances")),
            (false, true) => (Format::Columnar, take(&mut doc, "inputs")),
        };
        if format == Format::Row {
            match &payload {
                Value::Array(rows) if rows.is_empty() => {
                    return Err(format_error(&payload, "No values in 'instances' array"))
                }
                Value::Array(_) => {}
                _ => return Err(format_error(&payload, "Excepting 'instances' to be an list/array")),
            }
        }
        Ok(PredictBody { signature_name, format, payload })
    }

    /// Builds the input tensors with the dtypes of `signature` (the one named by the body).
    pub fn into_inputs(self, signature: &SignatureSpec) -> Result<PredictInputs, ConvertError> {
        if signature.inputs.is_empty() {
            return Err(ConvertError::request(format!(
                "Failed to get input map for signature: {}",
                self.signature_name
            )));
        }
        let tensors = match self.format {
            Format::Row => rows_to_tensors(&self.payload, signature)?,
            Format::Columnar => columns_to_tensors(&self.payload, signature)?,
        };
        Ok(PredictInputs { format: self.format, signature_name: self.signature_name, tensors })
    }
}

fn rows_to_tensors(payload: &Value, signature: &SignatureSpec) -> Result<BTreeMap<String, Tensor>, ConvertError> {
    let rows = payload.as_array().map(Vec::as_slice).unwrap_or_default();
    let is_named = |v: &Value| v.is_object() && !is_b64_object(v);
    let named = rows.first().is_some_and(is_named);
    if !named && signature.inputs.len() > 1 {
        return Err(ConvertError::request(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as per tensorinfo_map",
        ));
    }
    if !named {
        if let Some(i) = rows.iter().position(is_named) {
            return Err(ConvertError::request(format!(
                "Expecting value/list but got object at item {i} of input list"
            )));
        }
        let (name, spec) = signature.inputs.iter().next().expect("checked non-empty");
        let refs: Vec<&Value> = rows.iter().collect();
        let tensor = tensor_from_rows(&refs, input_dtype(name, spec.dtype)?).map_err(row_error)?;
        return Ok(BTreeMap::from([(name.clone(), tensor)]));
    }
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(object) = row else {
            return Err(ConvertError::request(format!("Expecting object but got list at item {i} of input list")));
        };
        check_row_keys(i, object, signature)?;
    }
    let mut tensors = BTreeMap::new();
    for (name, spec) in &signature.inputs {
        let dtype = input_dtype(name, spec.dtype)?;
        // Every row has every key: checked above.
        let refs: Vec<&Value> = rows.iter().filter_map(|row| row.get(name)).collect();
        let tensor = tensor_from_rows(&refs, dtype).map_err(|(i, e)| {
            row_error((i, format!("Failed to process element: {i} key: {name} of 'instances' list. Error: {e}")))
        })?;
        tensors.insert(name.clone(), tensor);
    }
    Ok(tensors)
}

fn check_row_keys(i: usize, object: &Map<String, Value>, signature: &SignatureSpec) -> Result<(), ConvertError> {
    if let Some(unknown) = object.keys().find(|k| !signature.inputs.contains_key(*k)) {
        return Err(ConvertError::request(format!(
            "Failed to process element: {i} key: {unknown} of 'instances' list. Error: JSON object: does not have named input: {unknown}"
        )));
    }
    if object.len() != signature.inputs.len() {
        let names: Vec<&str> = signature.inputs.keys().map(String::as_str).collect();
        return Err(ConvertError::request(format!(
            "Failed to process element: {i} of 'instances' list. JSON object: {} must only have keys: {}",
            short_json(&Value::Object(object.clone())),
            names.join(",")
        )));
    }
    Ok(())
}

/// Row errors from [`tensor_from_rows`] get TF Serving's prefix unless already worded.
fn row_error((i, message): (usize, String)) -> ConvertError {
    if message.starts_with("Failed to process element") {
        ConvertError::request(message)
    } else {
        ConvertError::request(format!("Failed to process element: {i} of 'instances' list. Error: {message}"))
    }
}

fn columns_to_tensors(payload: &Value, signature: &SignatureSpec) -> Result<BTreeMap<String, Tensor>, ConvertError> {
    let Value::Object(columns) = payload else {
        return single_column(payload, signature);
    };
    if is_b64_object(payload) {
        return single_column(payload, signature);
    }
    let mut tensors = BTreeMap::new();
    // As in TF Serving, keys the signature does not name are ignored.
    for (name, spec) in &signature.inputs {
        let value = columns
            .get(name)
            .ok_or_else(|| ConvertError::request(format!("Missing named input: {name} in 'inputs' object.")))?;
        let tensor = tensor_from_json(value, input_dtype(name, spec.dtype)?).map_err(ConvertError::request)?;
        tensors.insert(name.clone(), tensor);
    }
    Ok(tensors)
}

fn single_column(value: &Value, signature: &SignatureSpec) -> Result<BTreeMap<String, Tensor>, ConvertError> {
    if signature.inputs.len() > 1 {
        return Err(ConvertError::request(
            "inputs is a plain value/list, but expecting an object as multiple input tensors required as per tensorinfo_map",
        ));
    }
    let (name, spec) = signature.inputs.iter().next().expect("checked non-empty");
    let tensor = tensor_from_json(value, input_dtype(name, spec.dtype)?).map_err(ConvertError::request)?;
    Ok(BTreeMap::from([(name.clone(), tensor)]))
}

fn input_dtype(name: &str, code: i32) -> Result<Dtype, ConvertError> {
    Dtype::from_code(code).ok_or_else(|| {
        ConvertError::request(format!(
            "input {name} has type {}, which tfgate cannot convert from JSON yet",
            code_name(code)
        ))
    })
}

fn take(doc: &mut Map<String, Value>, key: &str) -> Value {
    doc.remove(key).unwrap_or(Value::Null)
}

/// TF Serving's "JSON Value: <value> <what>" message, with the value shortened.
fn format_error(value: &Value, what: &str) -> ConvertError {
    ConvertError::request(format!("JSON Value: {} {what}", short_json(value)))
}

fn short_json(value: &Value) -> String {
    const LIMIT: usize = 200;
    let text = value.to_string();
    if text.len() <= LIMIT {
        return text;
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
