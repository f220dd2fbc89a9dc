//! `ngx_http_tfgate_module`: tfgate inside the nginx workers, for TF Serving's REST API and its
//! gRPC API alike.
//!
//! Layout: the decisions (which model a REST path or a gRPC call's message asks for, whether the
//! caller may have it, what to answer) are plain safe Rust in modules that know nothing of nginx
//! and are unit-tested without it; everything that touches nginx's C structures lives under
//! `nginx` (feature `nginx`, on by default), which is the only place with `unsafe`.

pub mod access;
pub mod catalog;
pub mod grpc;
pub mod jwt;
pub mod route;

#[cfg(all(feature = "nginx", not(test)))]
mod nginx;
