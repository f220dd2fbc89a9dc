//! TF Serving's gRPC API and the Open Inference Protocol's as the module sees them, without
//! nginx: which requests are gRPC calls, which method a request path names, which model its
//! message asks for (read straight from the protobuf wire format, the tensors skipped unread;
//! a v2 message's reader is `tfgate_common::v2_grpc_spec`), and how a refusal is worded as a
//! gRPC status.

pub mod content_type;
pub mod frame;
pub mod method;
pub mod spec;
pub mod status;

pub use content_type::{grpc_framing, request_framing, Framing};
pub use frame::{check_body_len, read_frame, Frame, FrameError};
pub use method::{GrpcCall, GrpcMethod};
pub use spec::{read_model_spec, ModelSpec, SpecError, VersionChoice};
pub use status::{grpc_code_for_http, percent_encode_message};
pub use tfgate_common::wire::Rope;
