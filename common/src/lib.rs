//! Code shared by the nginx module and the batching daemon.
//!
//! Both sides must agree byte for byte on what a TF Serving REST path means and on the
//! shape of an error answer, so the grammar and the error body live here once; and both read
//! protobuf's wire format field by field (the module for a gRPC request's model, the daemon to
//! rewrite the model of a message it forwards as it is), with one reader.

pub mod echo;
pub mod error_body;
pub mod headers;
pub mod rest_path;
pub mod v2_grpc_spec;
pub mod v2_path;
pub mod version;
pub mod wire;

pub use error_body::error_body;
pub use rest_path::{check_name, parse_rest_path, shown, Method, ModelPath, PathError, VersionSelector};
pub use v2_grpc_spec::{read_v2_spec, V2Spec, V2SpecError};
pub use v2_path::{parse_v2_path, parse_v2_version, V2ModelMethod, V2ModelPath, V2Path};
pub use version::{format_version_list, parse_version, parse_version_list};
