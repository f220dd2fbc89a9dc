//! `tfgate-batcher`: nginx proxies accepted TF Serving REST requests to this daemon over a Unix
//! socket; it converts them to gRPC calls to TensorFlow Serving, batching concurrent Predict
//! calls per model.
//!
//! Layout (`request.rs` reads as a map of the request path):
//! - [`request`]: the one internal request both ingresses build, and the core's one error.
//! - [`ingress`]: the wire formats (TF Serving REST from nginx); errors mapped back to them.
//! - [`admission`]: whether a request is taken on now (the memory budget, per-caller quotas).
//! - [`batching`]: the batching policy (pure) and the per-model queue tasks that apply it.
//! - [`backend`]: the pool of TF Serving gRPC targets, the signature cache, the classify/regress
//!   REST passthrough.
//! - [`convert`]: REST JSON <-> tensors, status and metadata JSON; pure, no I/O.
//! - [`target`]: which model version a request is for.
//! - [`observe`]: the metrics, the audit log and the prediction log (written by threads of
//!   their own, fed after the answer).
//! - [`config`]: the TOML file, validated into typed settings (per-model batching included).
//! - [`server`]: the Unix socket, connections, the health listener, SIGHUP reloads, graceful
//!   shutdown. [`systemd`]: readiness notification and socket activation.
//! - [`app`]: the wiring: the services a request uses, built at start-up; [`swap`]: the values a
//!   reload replaces while requests keep the snapshot they started with.
//! - [`oidc`]: `oidc-config`, an nginx snippet from an IdP's OpenID Connect discovery document.
//! - [`cli`]: the command line (used by `main.rs`).

pub mod admission;
pub mod app;
pub mod backend;
pub mod batching;
pub mod cli;
pub mod config;
pub mod convert;
pub mod ingress;
pub mod observe;
pub mod oidc;
pub mod pipeline;
pub mod request;
pub mod server;
pub mod swap;
pub mod systemd;
pub mod target;
