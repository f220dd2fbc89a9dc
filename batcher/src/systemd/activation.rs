//! Socket activation (`sd_listen_fds`, through the `sd-notify` crate): systemd (or
//! `systemd-socket-activate`) binds the socket and passes it as fd 3, announcing it with
//! `LISTEN_PID` (ours, so a child that inherited the variables does not take it) and
//! `LISTEN_FDS` (how many, from fd 3 on). The socket belongs to the manager: the daemon uses it
//! as it is, never changes its mode and never removes it.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::SockRef;

/// `SD_LISTEN_FDS_START`: the first passed descriptor.
pub const LISTEN_FDS_START: RawFd = 3;

/// The socket passed as fd 3, made ready for tokio. `Ok(None)` when none was passed. A mistake
/// in the variables is an error: the operator meant to pass a socket.
pub fn take_listener() -> Result<Option<std::os::unix::net::UnixListener>, String> {
    // Checks LISTEN_PID (a child that inherited the variables does not take the socket) and
    // sets close-on-exec on the passed descriptors, as sd_listen_fds does.
    let mut fds = sd_notify::listen_fds().map_err(|e| format!("socket activation (LISTEN_PID/LISTEN_FDS): {e}"))?;
    let count = fds.len();
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if count > 1 {
        tracing::warn!("{count} sockets passed by the service manager; using the first (fd {fd}) only");
    }
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err("the passed socket (fd 3) was already taken".to_string());
    }
    // SAFETY: the socket activation protocol hands this process the descriptors from 3 on,
    // open (sd_notify::listen_fds just set close-on-exec on them, which fails for a closed one),
    // for it to own; they stay open from exec on (so nothing else in the process was given that
    // number), and the flag above makes sure the first is wrapped only once.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    check_listening_stream(&fd)?;
    let listener = std::os::unix::net::UnixListener::from(fd);
    // Fails for any family but AF_UNIX, which is what the daemon serves on.
    listener.local_addr().map_err(|e| format!("the passed socket (fd 3) is not a Unix socket: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("the passed socket (fd 3): {e}"))?;
    Ok(Some(listener))
}

/// A datagram socket or one nobody called listen() on would only fail later, at accept.
fn check_listening_stream(fd: &OwnedFd) -> Result<(), String> {
    let socket = SockRef::from(fd);
    let kind = socket.r#type().map_err(|e| format!("fd 3 passed by the service manager is not a socket: {e}"))?;
    if kind != socket2::Type::STREAM {
        return Err("the passed socket (fd 3) is not a stream socket (ListenStream=)".to_string());
    }
    match socket.is_listener() {
        Ok(false) => Err("the passed socket (fd 3) is not listening".to_string()),
        Ok(true) => Ok(()),
        Err(e) => Err(format!("the passed socket (fd 3): {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned<T: Into<OwnedFd>>(socket: T) -> OwnedFd {
        socket.into()
    }

    #[test]
    fn a_listening_unix_stream_socket_passes_the_checks() {
        let dir = std::env::temp_dir().join(format!("tfgate-activation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = owned(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert_eq!(check_listening_stream(&listener), Ok(()));
        let datagram = owned(std::os::unix::net::UnixDatagram::unbound().unwrap());
        assert!(check_listening_stream(&datagram).unwrap_err().contains("not a stream"));
        let (connected, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(check_listening_stream(&owned(connected)).unwrap_err().contains("not listening"));
        let file = owned(std::fs::File::open("/dev/null").unwrap());
        assert!(check_listening_stream(&file).unwrap_err().contains("not a socket"));
        std::fs::remove_file(&path).unwrap();
    }
}
