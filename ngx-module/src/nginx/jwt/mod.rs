//! JWT checks at the nginx edge: where the keys come from (files re-read when they change, a
//! JWKS fetched by subrequest), the per-worker verified-token cache, and what a request does
//! while keys are being fetched. The decisions themselves are in [`crate::jwt`].

mod files;
mod key_generation;
mod park;
mod remote;
mod runtime;

pub(crate) use files::{FileKeys, Reload};
pub(crate) use park::{park, unpark};
pub(crate) use remote::{start_fetch, RemoteKeys};
pub(crate) use runtime::{Fetch, JwtRuntime, Outcome};
