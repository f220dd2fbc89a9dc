//! Writing an inference answer, as JSON or with binary outputs, and the error body.

use tfgate_common::echo::{for_client, quote};

use crate::convert::json_writer::{write_elements, write_str, Strings};
use crate::convert::nested::shape_string;
use crate::convert::tensor::Values;
use crate::convert::v2_answer::OutputRequest;
use crate::convert::v2_answer::{select, AnswerOutput};
use crate::convert::v2_dtype::V2Datatype;
use crate::convert::{AnswerSource, ConvertError, Outputs};

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
    infer_response_from(meta, AnswerSource::Whole(outputs), wanted)
}

/// As [`infer_response`], from the call's rows of one or more batches, each element written
/// from the batch's own tensor.
pub fn infer_response_from(
    meta: &ResponseMeta<'_>,
    source: AnswerSource<'_>,
    wanted: &OutputRequest,
) -> Result<InferResponse, ConvertError> {
    let selected = select(source, wanted)?;
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
    for (i, output) in selected.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_str(&mut out, output.name);
        out.extend_from_slice(b",\"datatype\":\"");
        out.extend_from_slice(V2Datatype::from_dtype(output.dtype).name().as_bytes());
        out.extend_from_slice(b"\",\"shape\":");
        out.extend_from_slice(shape_string(&output.shape).as_bytes());
        if output.binary {
            let size = output.raw_size();
            binary_total = binary_total.saturating_add(size);
            out.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            out.extend_from_slice(size.to_string().as_bytes());
            out.extend_from_slice(b"}}");
        } else {
            check_text(output)?;
            out.extend_from_slice(b",\"data\":[");
            let mut separate = false;
            for (values, range) in &output.parts {
                write_elements(&mut out, values, range.clone(), &mut separate, Strings::Text);
            }
            out.extend_from_slice(b"]}");
        }
    }
    out.extend_from_slice(b"]}");
    if !selected.iter().any(|o| o.binary) {
        return Ok(InferResponse { body: out, header_len: None });
    }
    let header_len = out.len();
    out.reserve(binary_total);
    for output in selected.iter().filter(|o| o.binary) {
        output.write_raw(&mut out)?;
    }
    Ok(InferResponse { body: out, header_len: Some(header_len) })
}

/// JSON strings carry text only: a BYTES output that is not UTF-8 must be asked for as binary
/// data (replacing its bytes would hand the client other data).
fn check_text(output: &AnswerOutput<'_>) -> Result<(), ConvertError> {
    let mut at = 0;
    for (values, range) in &output.parts {
        let Values::Bytes(strings) = values else { return Ok(()) };
        for i in range.clone() {
            if strings.get(i).is_some_and(|s| std::str::from_utf8(s).is_err()) {
                return Err(ConvertError::request(format!(
                    "output '{}' element {at} is not UTF-8, which JSON cannot carry: ask for it with \"binary_data\": true",
                    quote(output.name)
                )));
            }
            at += 1;
        }
    }
    Ok(())
}

/// The protocol's error body, `{"error": "..."}`, for a message built with
/// [`quote`](tfgate_common::echo::quote)d request values (they reach the client clipped).
pub fn error_body(message: &str) -> Vec<u8> {
    tfgate_common::error_body::error_body(&for_client(message)).into_bytes()
}
