//! `tfgate-batcher`: nginx proxies accepted TF Serving REST requests to this daemon over a Unix
//! socket; it converts them to gRPC calls to TensorFlow Serving, batching concurrent Predict
//! calls per model.
//!
//! Layout, pure core first:
//! - [`config`]: the TOML file, validated into typed settings (per-model batching included).
//! - [`target`]: which model version a request is for.
//! - [`convert`]: REST JSON <-> tensors, status and metadata JSON; no I/O.
//! - [`batching`]: the batching policy (pure) and the per-model queue tasks that apply it.
//! - [`backend`]: the pool of TF Serving gRPC targets, the signature cache, the classify/regress
//!   REST passthrough.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`rest`]: routing a request to its handler; error answers.
//! - [`server`]: the Unix socket, connections, the health listener, SIGHUP reloads, graceful
//!   shutdown. [`systemd`]: readiness notification and socket activation.
//! - [`swap`]: the values a reload replaces while requests keep the snapshot they started with.
//! - [`oidc`]: `oidc-config`, an nginx snippet from an IdP's OpenID Connect discovery document.
//! - [`cli`]: the command line (used by `main.rs`).

pub mod app;
pub mod backend;
pub mod batching;
pub mod cli;
pub mod config;
pub mod convert;
pub mod metrics;
pub mod oidc;
pub mod rest;
pub mod server;
pub mod swap;
pub mod systemd;
pub mod target;
