//! The wire formats calls come in on. Each ingress only decodes its requests into the core's
//! [`Call`](crate::request::Call) and encodes the pipeline's
//! [`Outcome`](crate::pipeline::Outcome) back; everything between happens once, in
//! `pipeline`.
//!
//! - [`rest`]: TF Serving's REST API, HTTP/1.1 from nginx over a Unix socket.
//! - [`grpc`]: TF Serving's gRPC API, HTTP/2 from nginx over a Unix socket.
//! - [`v2`]: the Open Inference Protocol ("KServe v2"), REST and gRPC, on the same two sockets
//!   (by path: `/v2...`, `/inference.GRPCInferenceService/...`).
//! - [`read`]: reading a request body within the memory budget; [`ratelimit`]: the RateLimit
//!   fields every ingress writes.

pub mod grpc;
pub mod ratelimit;
pub mod read;
pub mod rest;
pub mod v2;
