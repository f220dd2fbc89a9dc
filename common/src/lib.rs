//! Code shared by the nginx module and the batching daemon.
//!
//! Both sides must agree byte for byte on what a TF Serving REST path means and on the
//! shape of an error answer, so the grammar and the error body live here once.

pub mod error_body;
pub mod headers;
pub mod rest_path;
pub mod version;

pub use error_body::error_body;
pub use rest_path::{parse_rest_path, Method, ModelPath, PathError, VersionSelector};
pub use version::{format_version_list, parse_version, parse_version_list};
