//! The wire formats requests come in: each ingress turns its requests into the core's
//! [`PredictCall`](crate::request::PredictCall) and the core's errors into its own answers.
//!
//! - [`rest`]: TF Serving's REST API, HTTP/1.1 from nginx over a Unix socket.

pub mod grpc;
pub mod rest;
