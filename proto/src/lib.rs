//! TensorFlow Serving's gRPC API and the Open Inference Protocol's ("KServe v2"), the subsets
//! tfgate speaks, compiled with prost and tonic from the project's own wire-compatible `.proto`
//! files (see `proto/`).
//!
//! Module layout follows the protobuf packages:
//! - [`tensorflow`]: `TensorProto`, `TensorShapeProto`, `DataType`, `SignatureDef`, `TensorInfo`.
//! - [`tensorflow::error`]: `Code` (canonical status codes).
//! - [`tensorflow::serving`]: `ModelSpec`, Predict / GetModelMetadata / GetModelStatus messages,
//!   and the `PredictionService` and `ModelService` clients and servers; `PredictionLog` (with
//!   `LogMetadata` and `SamplingConfig`), the record of TF Serving's request logs.
//! - [`inference`]: the Open Inference Protocol: `ModelInferRequest` / `ModelInferResponse`,
//!   `InferTensorContents`, `InferParameter`, the health and metadata messages, and the
//!   `GRPCInferenceService` client and server (the standard RPCs; none of Triton's extensions).
//!
//! Omitted upstream pieces (Classify, Regress, MultiInference, HandleReloadConfigRequest, the logs
//! of calls other than Predict, and a few fields) are reserved in the .proto files, never reused.

#[allow(clippy::all, missing_docs)]
pub mod tensorflow {
    include!(concat!(env!("OUT_DIR"), "/tensorflow.rs"));

    /// Package `tensorflow.error`.
    pub mod error {
        include!(concat!(env!("OUT_DIR"), "/tensorflow.error.rs"));
    }

    /// Package `tensorflow.serving`.
    pub mod serving {
        include!(concat!(env!("OUT_DIR"), "/tensorflow.serving.rs"));
    }
}

/// Package `inference`: the Open Inference Protocol's gRPC API.
#[allow(clippy::all, missing_docs)]
pub mod inference {
    include!(concat!(env!("OUT_DIR"), "/inference.rs"));
}

/// Type URL of the `google.protobuf.Any` in `GetModelMetadataResponse.metadata["signature_def"]`.
pub const SIGNATURE_DEF_MAP_TYPE_URL: &str = "type.googleapis.com/tensorflow.serving.SignatureDefMap";

/// The `metadata_field` value (and response map key) for signature metadata.
pub const SIGNATURE_DEF_FIELD: &str = "signature_def";

/// The signature used when a request names none.
pub const DEFAULT_SIGNATURE: &str = "serving_default";

/// `SignatureDef.method_name` of predict signatures.
pub const PREDICT_METHOD_NAME: &str = "tensorflow/serving/predict";

#[cfg(test)]
mod tests;
