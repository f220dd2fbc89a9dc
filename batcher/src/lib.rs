//! `tfgate-batcher`: nginx passes accepted TF Serving calls (REST and gRPC) to this daemon over
//! Unix sockets; it applies quotas, converts them to tensors, batches concurrent Predict calls
//! per model into gRPC calls to TensorFlow Serving, and logs what it did.
//!
//! Read `pipeline/mod.rs` first: it lists every step a call takes, in order. The modules, from
//! the top of the dependency graph down (each uses only those below it, which
//! `scripts/check-imports.py` checks):
//! - [`server`]: the Unix sockets, connections, the health listener, SIGHUP reloads, graceful
//!   shutdown ([`systemd`]: readiness notification, socket activation); [`cli`], [`oidc`].
//! - [`ingress`]: the wire formats, TF Serving's REST and gRPC APIs: each only decodes a
//!   request into the core's call and encodes the outcome back.
//! - [`pipeline`]: the one path every call takes (policy, budget, conversion, admission,
//!   batching, backend), observed from its beginning to its end.
//! - [`app`]: the services built at start-up; [`config`]: the TOML file, parsed into the
//!   settings each part owns.
//! - [`observe`]: each call's metrics and audit line, the prediction log.
//! - [`batching`]: the batching policy (pure) and the per-model queue tasks that apply it.
//! - [`admission`] (memory budget, quotas), [`backend`] (TF Serving targets, signatures, the
//!   REST passthrough).
//! - [`request`]: who calls and what for, the core's one error and status vocabulary.
//! - [`convert`] (JSON and protobuf <-> tensors; pure), [`target`] (which model version),
//!   [`tls`] (the outbound legs' TLS files and handshake failures), [`metrics`], [`log_limit`],
//!   [`clock`] (wall-clock times as logs and messages write them), `reactor` (descriptors
//!   registered with tokio by hand),
//!   [`swap`] (values a reload replaces).

pub mod admission;
pub mod app;
pub mod backend;
pub mod batching;
pub mod cli;
pub mod clock;
pub mod config;
pub mod convert;
pub mod ingress;
pub mod log_limit;
pub mod metrics;
pub mod observe;
pub mod oidc;
pub mod pipeline;
pub(crate) mod reactor;
pub mod request;
pub mod row_cache;
pub mod server;
pub mod swap;
pub mod systemd;
pub mod target;
pub mod tls;
pub mod trace;
