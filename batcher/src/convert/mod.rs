//! TF Serving REST JSON and gRPC `TensorProto`s <-> tensors, with no I/O: everything here is a
//! plain function of its arguments, tested exhaustively, and the [`Tensor`]s it produces are
//! what the batcher joins and splits by rows.
//!
//! - [`dtype`]: the element types the daemon reads and writes; [`leaf`]: how one JSON value
//!   becomes one element.
//! - [`tensor`]: [`Tensor`], a typed flat buffer plus shape, to and from `TensorProto`.
//! - [`nested`]: nested JSON lists -> flat buffers; [`json_writer`]: flat buffers -> JSON text.
//! - [`nonfinite`]: NaN and Infinity in request bodies (HALF / BFLOAT16 use the `half` crate).
//! - [`signature`]: the parts of a model's `SignatureDef`s the conversion needs.
//! - [`request`]: a Predict body (`instances` / `inputs`) to input tensors.
//! - [`response`]: output tensors (whole, or a request's rows of batches) to
//!   `{"predictions": ...}` / `{"outputs": ...}`.
//! - [`model_json`]: GetModelStatus / GetModelMetadata answers in TF Serving's JSON.
//! - The Open Inference Protocol ("v2"): [`v2_dtype`] (its datatypes), [`v2_json`] (REST bodies),
//!   [`v2_grpc`] (gRPC messages), [`v2_answer`] (the outputs an answer carries, for both),
//!   [`v2_signature`] (requests checked against a TF signature; model metadata).

pub mod content;
pub mod dtype;
pub mod grpc_request;
pub mod json_writer;
pub mod leaf;
pub mod model_json;
pub mod nested;
pub mod nonfinite;
pub mod request;
pub mod response;
pub mod signature;
pub mod tensor;
pub mod v2_answer;
pub mod v2_dtype;
pub mod v2_grpc;
pub mod v2_json;
pub mod v2_signature;

pub use dtype::Dtype;
pub use request::{Format, PredictBody, PredictInputs};
pub use response::{decode_outputs, predict_response_json, AnswerSource, Outputs, RowSlice, RowsWriter};
pub use signature::{SignatureSpec, Signatures};
pub use tensor::{ByteStrings, Tensor, Values};

/// Who is at fault when a conversion fails, which decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The client's body or its fit with the model's signature (400).
    Request,
    /// What the backend sent cannot be read (500).
    Backend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    pub blame: Blame,
    pub message: String,
}

impl ConvertError {
    pub fn request(message: impl Into<String>) -> Self {
        ConvertError { blame: Blame::Request, message: message.into() }
    }

    pub fn backend(message: impl Into<String>) -> Self {
        ConvertError { blame: Blame::Backend, message: message.into() }
    }
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConvertError {}
