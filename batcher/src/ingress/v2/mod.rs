//! The Open Inference Protocol ("KServe v2") on the daemon's two sockets, the third ingress:
//! paths under `/v2` on the REST socket ([`rest`]) and `inference.GRPCInferenceService` on the
//! gRPC socket ([`grpc`]). Each decodes a call into the core's [`Call`](crate::pipeline::Call)
//! and encodes the pipeline's outcome, as TF Serving's ingresses do: an inference is a Predict
//! (the same budget, quotas, signatures and batch queues: v2 and TF Serving clients share
//! batches), model readiness a model status, model metadata the model's signature.
//!
//! The server-level calls (liveness, readiness, server metadata: `server`) concern no model
//! and no caller's quota: they are answered here, and not observed (health probes would fill
//! the audit log).

pub mod grpc;
mod model;
pub mod rest;
mod server;

/// The REST socket's paths this ingress serves (any other path under `/v2` too: it answers
/// them with the protocol's error).
pub fn is_rest_path(path: &str) -> bool {
    path.starts_with("/v2")
}

/// The gRPC socket's paths this ingress serves (an unknown method of the service is answered
/// UNIMPLEMENTED here).
pub fn is_grpc_path(path: &str) -> bool {
    path.starts_with(grpc::SERVICE_PREFIX)
}
