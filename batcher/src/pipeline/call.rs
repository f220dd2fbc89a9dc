//! The one call every ingress decodes its wire format into: who calls, what for, its memory,
//! and its payload, in the core's terms.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::header::HeaderValue;
use tfgate_proto::inference::ModelInferRequest;
use tfgate_proto::tensorflow::TensorProto;

use crate::admission::Reservation;
use crate::convert::v2_json::OutputRequest;
use crate::request::{CoreError, Ingress, RequestInfo, Route};

/// A call decoded from its wire: everything the pipeline needs, in the core's terms.
pub struct Call {
    pub info: RequestInfo,
    pub ingress: Ingress,
    pub route: Route,
    /// The size of the request on the wire (body, or gRPC message).
    pub bytes_in: u64,
    /// The memory the call holds: its body as it arrived (and its decoded form).
    pub memory: Reservation,
    pub payload: Payload,
}

/// What a call carries besides its route.
pub enum Payload {
    /// Status and metadata: the route says it all.
    Empty,
    /// A REST Predict body: JSON, read into tensors once the signature is known.
    Json(Bytes),
    /// A gRPC Predict request's tensors, as the client wrote them.
    Protos(ProtoInputs),
    /// Classify, Regress, MultiInference: forwarded as they are, counted by their examples.
    Examples { count: u64, forward: Forward },
    /// An Open Inference Protocol inference (REST or gRPC), read into tensors once the model's
    /// signature is known.
    V2(V2Payload),
}

/// A v2 inference as it came.
pub enum V2Payload {
    /// `POST .../infer`: the body, and the JSON's length when binary tensor data follows it
    /// (`Inference-Header-Content-Length`, checked against the body).
    Rest { body: Bytes, header_len: Option<usize> },
    /// `ModelInfer`: the decoded message (its raw contents are slices of the message, not
    /// copies).
    Grpc(Box<V2Message>),
}

/// A decoded `ModelInferRequest`, and what it holds.
pub struct V2Message {
    pub request: ModelInferRequest,
    /// What decoding the message holds, besides the message itself (reserved by the ingress
    /// before decoding).
    pub decoded_bytes: usize,
    /// Bytes of its raw contents.
    pub raw_bytes: usize,
}

/// What a v2 request asks of its answer.
#[derive(Debug, Clone, Default)]
pub struct V2Reply {
    /// Its `id`, echoed.
    pub id: Option<String>,
    /// The outputs it wants, and in which form.
    pub outputs: OutputRequest,
}

/// A gRPC Predict request's parts.
pub struct ProtoInputs {
    pub signature_name: String,
    pub inputs: HashMap<String, TensorProto>,
    /// The outputs the client wants (empty: all of them).
    pub output_filter: Vec<String>,
    /// What the decoded message holds in memory (reserved by the ingress before decoding).
    pub decoded_bytes: usize,
}

/// How a call the daemon does not batch reaches the backend.
pub enum Forward {
    /// To TF Serving's REST API (`[backend] rest`), as the client wrote it.
    Rest { content_type: Option<HeaderValue>, body: Bytes },
    /// To TF Serving's gRPC API, the message with nginx's version merged into its model spec.
    Grpc { message: Bytes },
}

/// A request that could not be decoded into a call: the pipeline answers it with `error`, and
/// observes it like any other.
pub struct Refused {
    pub info: RequestInfo,
    pub ingress: Ingress,
    /// As far as it was read.
    pub route: Option<Route>,
    pub bytes_in: u64,
    pub error: CoreError,
}

/// What an ingress hands the pipeline.
pub type Decoded = Result<Call, Box<Refused>>;
