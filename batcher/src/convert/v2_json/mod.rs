//! The Open Inference Protocol's ("KServe v2") REST inference bodies <-> [`Tensor`]s, with no
//! I/O: the request (`POST .../infer`) as JSON or with the binary tensor data extension, the
//! answer in either form, and the `{"error": "..."}` body.
//!
//! As for TF Serving's REST JSON ([`request`](crate::convert::request)), a request is read in two steps so
//! that the caller can charge its memory budget in between: [`InferBody::parse`] (or
//! [`InferBody::parse_with_binary`]) checks the outline (names, datatypes, shapes, where each
//! input's elements are, every size) without building a tensor; [`InferBody::tensor_bytes`] is
//! then a bound on what the tensors will take; [`InferBody::into_request`] builds them. Element
//! values go straight into typed buffers through the same streaming parser as TF Serving's JSON
//! ([`nested`](crate::convert::nested)): no JSON value tree, no allocation per numeric element.
//!
//! Choices where the protocol leaves room (what Triton and KServe do, checked in their sources):
//! - NaN and infinities: the bare tokens `NaN`, `Infinity`, `-Infinity` (and `Inf`, `-Inf`) are
//!   read, as Triton reads them (rapidjson with NaN and Inf allowed) and as the TF Serving path
//!   does ([`nonfinite`](crate::convert::nonfinite)); answers write `NaN`, `Infinity`, `-Infinity`, as
//!   Triton writes them.
//! - FP16 and BF16 in JSON: Triton and KServe refuse them ("use the binary data format"); tfgate
//!   reads JSON numbers, rounded to the nearest value (a finite number beyond the type's range is
//!   refused), and writes them as numbers. Binary data carries them exactly.
//! - BYTES in JSON are JSON strings, so UTF-8 text only (a document that is not UTF-8, or a lone
//!   surrogate escape, is refused when parsed). Arbitrary bytes travel as binary data. An answer
//!   never alters bytes: a BYTES output that is not UTF-8 asked for in JSON is an error that says
//!   to ask for it with `binary_data` (replacing bytes would hand the client other data).
//! - `data` is flat, or nested exactly as the shape (Triton also takes other nestings of the
//!   same count; tritonclient and KServe's SDK send flat lists). TF Serving's `{"b64": ...}` is
//!   not a v2 element and is refused.
//! - Integers are range-checked for their datatype (Triton narrows with a cast); a float datatype
//!   refuses integers it cannot hold exactly (as the TF Serving path does).
//!
//! Memory: a shape is checked against [`MAX_ELEMENTS`](crate::convert::tensor::MAX_ELEMENTS) and against
//! the bytes that carry it (JSON `data` needs a separator per element; a binary part must be
//! exactly shape × element size) before anything is sized by it, so a shape of 10^12 elements is
//! an error, never an allocation.

mod request;
mod response;

pub(crate) use self::request::{decode_raw, raw_strings};
pub use self::request::{split_binary_body, InferBody, InferRequest};
pub use self::response::{
    error_body, infer_response, infer_response_from, infer_response_json, InferResponse, ResponseMeta,
};
pub use crate::convert::v2_answer::{OutputRequest, RequestedOutput};

/// Most dimensions of a shape (TensorFlow's own limit), so a shape list cannot size a buffer.
pub const MAX_RANK: usize = 254;

/// Most inputs, or requested outputs, in one request: far beyond any model's signature, and a
/// bound on the work done per entry before the signature is consulted.
pub const MAX_TENSORS: usize = 1024;

/// Longest request `id`: ids are correlation strings, and one is held through the batch wait
/// and written into the answer, so a longer one is refused rather than carried.
pub const MAX_ID_BYTES: usize = 1024;

/// The name of the HTTP header giving the JSON part's length in a binary body.
pub const HEADER_LENGTH_HEADER: &str = "Inference-Header-Content-Length";

#[cfg(test)]
mod tests;
