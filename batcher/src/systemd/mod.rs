//! The two parts of the systemd protocol the daemon speaks, both optional and both plain
//! environment variables plus sockets (the `sd-notify` crate, no libsystemd): readiness
//! notification (`Type=notify`, [`notify`]) and socket activation ([`activation`]). Outside
//! systemd neither does anything.
//!
//! The daemon's only `unsafe`: taking ownership of the descriptor systemd passes.
#![allow(unsafe_code)]

pub mod activation;
pub mod notify;
