//! TLS for the daemon's outbound legs (TF Serving, Redis): the files an operator names, loaded
//! and checked into a rustls client configuration ([`ClientTls`]), the expiry of the
//! certificates in them (for metrics and warnings), and what a failed handshake means in words
//! an operator can act on ([`failure`]). Pure apart from reading the files; the connections are
//! made by their users (`backend::tls_connector`, the Redis store).

pub mod expiry;
pub mod failure;
mod material;

pub use material::{ClientTls, FileStamp, TlsFiles};
