//! Writing an inference answer, as JSON or with binary outputs, and the error body.

use tfgate_common::echo::{for_client, quote};

use super::request::OutputRequest;
use crate::convert::content::write_content;
use crate::convert::json_writer::{write_nested, write_str, Strings};
use crate::convert::nested::shape_string;
use crate::convert::tensor::Values;
use crate::convert::v2_dtype::{push_raw_bytes, V2Datatype, BYTES_LENGTH_PREFIX};
use crate::convert::{Blame, ConvertError, Outputs, Tensor};

/// Who answered, for the answer's header fields.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    /// The request's `id`, echoed.
    pub id: Option<&'a str>,
}

/// An inference answer's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferResponse {
    pub body: Vec<u8>,
    /// The JSON's length, for `Inference-Header-Content-Length`, when binary outputs follow it;
    /// `None`: the body is plain JSON.
    pub header_len: Option<usize>,
}

/// Every output in JSON, in name order: `{"model_name", "model_version", "id"?, "outputs":
/// [{"name", "datatype", "shape", "data"}]}` with `data` flat, as Triton answers.
pub fn infer_response_json(meta: &ResponseMeta<'_>, outputs: &Outputs) -> Result<Vec<u8>, ConvertError> {
    Ok(infer_response(meta, outputs, &OutputRequest::default())?.body)
}

/// The answer to a request that asked for `wanted`: the outputs it lists (in its order), or all
/// (in name order); those asked as binary data carry `"parameters": {"binary_data_size": N}` in
/// the JSON and follow it in the same order, raw (the binary tensor data extension).
pub fn infer_response(
    meta: &ResponseMeta<'_>,
    outputs: &Outputs,
    wanted: &OutputRequest,
) -> Result<InferResponse, ConvertError> {
    if outputs.is_empty() {
        return Err(ConvertError::backend("the model answered no outputs"));
    }
    let selected: Vec<(&str, &Tensor, bool)> = match &wanted.requested {
        None => outputs.iter().map(|(name, t)| (name.as_str(), t, wanted.binary_data_output)).collect(),
        Some(requested) => requested
            .iter()
            .map(|o| match outputs.get(&o.name) {
                Some(t) => Ok((o.name.as_str(), t, wanted.binary(o))),
                None => Err(ConvertError::request(format!("unknown output '{}'", quote(&o.name)))),
            })
            .collect::<Result<_, _>>()?,
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"model_name\":");
    write_str(&mut out, meta.model_name);
    out.extend_from_slice(b",\"model_version\":");
    write_str(&mut out, meta.model_version);
    if let Some(id) = meta.id {
        out.extend_from_slice(b",\"id\":");
        write_str(&mut out, id);
    }
    out.extend_from_slice(b",\"outputs\":[");
    let mut binary_total = 0usize;
    for (i, &(name, tensor, binary)) in selected.iter().enumerate() {
        let count = check_output(name, tensor)?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_str(&mut out, name);
        out.extend_from_slice(b",\"datatype\":\"");
        out.extend_from_slice(V2Datatype::from_dtype(tensor.dtype).name().as_bytes());
        out.extend_from_slice(b"\",\"shape\":");
        out.extend_from_slice(shape_string(&tensor.shape).as_bytes());
        if binary {
            let size = raw_size(tensor, count);
            binary_total = binary_total.saturating_add(size);
            out.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            out.extend_from_slice(size.to_string().as_bytes());
            out.extend_from_slice(b"}}");
        } else {
            if let Values::Bytes(strings) = &tensor.values {
                if let Some(at) = strings.iter().position(|s| std::str::from_utf8(s).is_err()) {
                    return Err(ConvertError::request(format!(
                        "output '{}' element {at} is not UTF-8, which JSON cannot carry: ask for it with \"binary_data\": true",
                        quote(name)
                    )));
                }
            }
            out.extend_from_slice(b",\"data\":");
            write_nested(&mut out, &tensor.values, &[count], 0, Strings::Text);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"]}");
    if !selected.iter().any(|s| s.2) {
        return Ok(InferResponse { body: out, header_len: None });
    }
    let header_len = out.len();
    out.reserve(binary_total);
    for &(name, tensor, _) in selected.iter().filter(|s| s.2) {
        write_raw(tensor, &mut out).map_err(|e| ConvertError::backend(format!("output {name}: {}", e.message)))?;
    }
    Ok(InferResponse { body: out, header_len: Some(header_len) })
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

/// Raw bytes of an output: fixed-size elements, or each BYTES element and its length.
fn raw_size(tensor: &Tensor, count: usize) -> usize {
    match &tensor.values {
        Values::Bytes(strings) => strings.iter().map(|s| BYTES_LENGTH_PREFIX + s.len()).sum(),
        _ => V2Datatype::from_dtype(tensor.dtype).raw_len(count).unwrap_or(0),
    }
}

/// Appends an output's raw bytes: fixed-size elements laid out as TF's `tensor_content` (the
/// same layout), BYTES length-prefixed.
fn write_raw(tensor: &Tensor, out: &mut Vec<u8>) -> Result<(), ConvertError> {
    match &tensor.values {
        Values::Bytes(strings) => strings.iter().try_for_each(|s| push_raw_bytes(out, s, Blame::Backend)),
        values => write_content(tensor.dtype, values, 0..values.len(), out).map_err(ConvertError::backend),
    }
}

/// The protocol's error body, `{"error": "..."}`, for a message built with
/// [`quote`](tfgate_common::echo::quote)d request values (they reach the client clipped).
pub fn error_body(message: &str) -> Vec<u8> {
    tfgate_common::error_body::error_body(&for_client(message)).into_bytes()
}
