//! Readiness notification (`Type=notify`, `Type=notify-reload`) through the `sd-notify` crate:
//! without `$NOTIFY_SOCKET` nothing is sent. Sending never fails the daemon: the messages only
//! inform the manager, so a failure is logged and forgotten.
//!
//! sd-notify (0.5) connects only to socket paths; systemd may also pass an abstract socket
//! (`@name`, as in containers), which is sent to here with the crate's own message format.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use sd_notify::NotifyState;

/// `READY=1` with a status line (the daemon is serving).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// `RELOADING=1` stamped with CLOCK_MONOTONIC, which systemd uses to match a reload to its
/// request (`Type=notify-reload`, systemd 253 and later).
pub fn reloading(status: &str) {
    let status = one_line(status);
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status(&status)]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status(&status)]),
    }
}

/// `STOPPING=1`: the daemon is draining.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(&one_line(status))]);
}

fn send(states: &[NotifyState<'_>]) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let shown = || states.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    let sent = match socket.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => send_abstract(name, states),
        None => sd_notify::notify(states),
    };
    match sent {
        Ok(()) => tracing::debug!("told systemd: {}", shown()),
        Err(e) => tracing::warn!("cannot notify systemd ({}): {e}", shown()),
    }
}

fn send_abstract(name: &[u8], states: &[NotifyState<'_>]) -> std::io::Result<()> {
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(message.as_bytes(), &SocketAddr::from_abstract_name(name)?).map(drop)
}

/// A value cannot span lines: each line is a field of its own.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_stay_one_field() {
        assert_eq!(one_line("serving\non x\r"), "serving on x ");
        assert_eq!(NotifyState::Status(&one_line("a\nb")).to_string(), "STATUS=a b");
    }
}
