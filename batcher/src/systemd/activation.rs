//! Socket activation (`sd_listen_fds` without libsystemd): systemd (or
//! `systemd-socket-activate`) binds the socket and passes it as fd 3, announcing it with
//! `LISTEN_PID` (ours, so a child that inherited the variables does not take it) and
//! `LISTEN_FDS` (how many, from fd 3 on). The socket belongs to the manager: the daemon uses it
//! as it is, never changes its mode and never removes it.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// `SD_LISTEN_FDS_START`: the first passed descriptor.
pub const LISTEN_FDS_START: RawFd = 3;

/// How many sockets the environment passes to this process (`pid`), if any. A mistake in the
/// variables is an error: the operator meant to pass a socket.
pub fn passed_fds(listen_pid: Option<&str>, listen_fds: Option<&str>, pid: u32) -> Result<usize, String> {
    let Some(listen_pid) = listen_pid else {
        return Ok(0);
    };
    let Ok(for_pid) = listen_pid.trim().parse::<u32>() else {
        return Err(format!("LISTEN_PID={listen_pid:?} is not a process id"));
    };
    if for_pid != pid {
        // Meant for another process (we inherited it): not ours to take.
        return Ok(0);
    }
    match listen_fds.map(|n| n.trim().parse::<usize>()) {
        Some(Ok(count)) => Ok(count),
        Some(Err(_)) => Err(format!("LISTEN_FDS={:?} is not a number", listen_fds.unwrap_or_default())),
        None => Err("LISTEN_PID is set but LISTEN_FDS is not".to_string()),
    }
}

/// The socket passed as fd 3, made ready for tokio. `Ok(None)` when none was passed.
pub fn take_listener() -> Result<Option<std::os::unix::net::UnixListener>, String> {
    let pid = std::process::id();
    let count =
        passed_fds(std::env::var("LISTEN_PID").ok().as_deref(), std::env::var("LISTEN_FDS").ok().as_deref(), pid)?;
    if count == 0 {
        return Ok(None);
    }
    if count > 1 {
        tracing::warn!("{count} sockets passed by the service manager; using the first (fd 3) only");
    }
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err("the passed socket (fd 3) was already taken".to_string());
    }
    // Checked on the raw number first: owning a descriptor that is not open would be unsound.
    set_cloexec(LISTEN_FDS_START)?;
    check_listening_stream(LISTEN_FDS_START)?;
    // SAFETY: the socket activation protocol hands this process fd 3, open (checked above), for
    // it to own; it stays open from exec on (so nothing else in the process was given that
    // number), and the flag above makes sure it is wrapped only once.
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let listener = std::os::unix::net::UnixListener::from(fd);
    // Fails for any family but AF_UNIX, which is what the daemon serves on.
    listener.local_addr().map_err(|e| format!("the passed socket (fd 3) is not a Unix socket: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("the passed socket (fd 3): {e}"))?;
    Ok(Some(listener))
}

/// A datagram socket or one nobody called listen() on would only fail later, at accept.
fn check_listening_stream(fd: RawFd) -> Result<(), String> {
    let kind = socket_option(fd, libc::SO_TYPE)
        .map_err(|e| format!("fd 3 passed by the service manager is not a socket: {e}"))?;
    if kind != libc::SOCK_STREAM {
        return Err("the passed socket (fd 3) is not a stream socket (ListenStream=)".to_string());
    }
    match socket_option(fd, libc::SO_ACCEPTCONN) {
        Ok(0) => Err("the passed socket (fd 3) is not listening".to_string()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("the passed socket (fd 3): {e}")),
    }
}

fn socket_option(fd: RawFd, option: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes to `value`, an int of that size.
    let rc =
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, option, (&mut value as *mut libc::c_int).cast(), &mut length) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Passed descriptors come without close-on-exec; set it, as `sd_listen_fds` does. Fails for a
/// descriptor that is not open.
fn set_cloexec(fd: RawFd) -> Result<(), String> {
    // SAFETY: fcntl with integer arguments only; an fd that is not open is an EBADF error.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            flags
        } else {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC)
        }
    };
    if rc < 0 {
        return Err(format!(
            "a socket was announced as fd {fd} (LISTEN_FDS), but: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_sockets_passed_to_this_process_count() {
        assert_eq!(passed_fds(None, None, 7), Ok(0));
        assert_eq!(passed_fds(None, Some("1"), 7), Ok(0));
        assert_eq!(passed_fds(Some("7"), Some("1"), 7), Ok(1));
        assert_eq!(passed_fds(Some("7"), Some("2"), 7), Ok(2));
        assert_eq!(passed_fds(Some("7"), Some("0"), 7), Ok(0));
        // Inherited from a parent that was activated: not ours.
        assert_eq!(passed_fds(Some("8"), Some("1"), 7), Ok(0));
        assert!(passed_fds(Some("x"), Some("1"), 7).is_err());
        assert!(passed_fds(Some("7"), Some("many"), 7).is_err());
        assert!(passed_fds(Some("7"), None, 7).is_err());
    }

    #[test]
    fn a_listening_unix_stream_socket_passes_the_checks() {
        let dir = std::env::temp_dir().join(format!("tfgate-activation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(check_listening_stream(listener.as_raw_fd()), Ok(()));
        set_cloexec(listener.as_raw_fd()).unwrap();
        let datagram = std::os::unix::net::UnixDatagram::unbound().unwrap();
        assert!(check_listening_stream(datagram.as_raw_fd()).unwrap_err().contains("not a stream"));
        let (connected, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(check_listening_stream(connected.as_raw_fd()).unwrap_err().contains("not listening"));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(check_listening_stream(file.as_raw_fd()).unwrap_err().contains("not a socket"));
        // A number nothing is open under: refused before anything owns it.
        assert!(set_cloexec(-1).unwrap_err().contains("LISTEN_FDS"));
        std::fs::remove_file(&path).unwrap();
    }
}
