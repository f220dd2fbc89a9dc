//! The two parts of the systemd protocol the daemon speaks, both optional and both plain
//! environment variables plus sockets (no libsystemd): readiness notification (`Type=notify`,
//! [`notify`]) and socket activation ([`activation`]). Outside systemd neither does anything.

pub mod activation;
pub mod notify;

pub use notify::Notifier;
