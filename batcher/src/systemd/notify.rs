//! `sd_notify` without libsystemd: under `Type=notify`, systemd passes `$NOTIFY_SOCKET`, an
//! AF_UNIX datagram socket (a path, or `@name` in the abstract namespace), and reads
//! newline-separated `KEY=VALUE` state lines from it. Without the variable, nothing is sent.
//! Sending never blocks and never fails the daemon: the messages only inform the manager.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    Path(String),
    /// The name after `@` (the kernel's form starts with a NUL byte instead).
    Abstract(Vec<u8>),
}

/// Reads `$NOTIFY_SOCKET`'s value: `None` for an empty value (nothing to notify).
pub fn parse_notify_socket(value: &str) -> Result<Option<NotifyTarget>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if let Some(name) = value.strip_prefix('@') {
        return Ok(Some(NotifyTarget::Abstract(name.as_bytes().to_vec())));
    }
    if value.starts_with('/') {
        return Ok(Some(NotifyTarget::Path(value.to_string())));
    }
    Err(format!(
        "NOTIFY_SOCKET={value:?} is neither an absolute path nor @abstract (vsock is not supported); not notifying systemd"
    ))
}

/// `READY=1` with a status line (the daemon is serving).
pub fn ready(status: &str) -> String {
    format!("READY=1\nSTATUS={}", one_line(status))
}

/// `RELOADING=1` stamped with CLOCK_MONOTONIC in microseconds, which systemd uses to match a
/// reload to its request (`Type=notify-reload`, systemd 253 and later).
pub fn reloading(monotonic_usec: u64, status: &str) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\nSTATUS={}", one_line(status))
}

/// `STOPPING=1`: the daemon is draining.
pub fn stopping(status: &str) -> String {
    format!("STOPPING=1\nSTATUS={}", one_line(status))
}

/// A value cannot span lines: each line is a field of its own.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The notification socket, when systemd gave one.
pub struct Notifier {
    peer: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a malformed value is logged and ignored.
    pub fn from_env() -> Notifier {
        let value = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
        let peer = match parse_notify_socket(&value) {
            Ok(Some(target)) => match connect(&target) {
                Ok(peer) => Some(peer),
                Err(e) => {
                    tracing::warn!("NOTIFY_SOCKET={value:?}: {e}; not notifying systemd");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        Notifier { peer }
    }

    /// Whether a manager listens (messages are sent).
    pub fn is_active(&self) -> bool {
        self.peer.is_some()
    }

    pub fn send(&self, message: &str) {
        let Some((socket, address)) = &self.peer else {
            return;
        };
        match socket.send_to_addr(message.as_bytes(), address) {
            Ok(_) => tracing::debug!("told systemd: {}", message.replace('\n', " ")),
            Err(e) => tracing::warn!("cannot notify systemd ({}): {e}", message.replace('\n', " ")),
        }
    }
}

fn connect(target: &NotifyTarget) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    let address = match target {
        NotifyTarget::Path(path) => SocketAddr::from_pathname(path)?,
        NotifyTarget::Abstract(name) => SocketAddr::from_abstract_name(name)?,
    };
    let socket = UnixDatagram::unbound()?;
    // A manager that does not read must not stall the runtime thread that notifies.
    socket.set_nonblocking(true)?;
    Ok((socket, address))
}

/// CLOCK_MONOTONIC now, in microseconds (std's `Instant` uses the same clock but hides it).
pub fn monotonic_usec() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec to the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if rc != 0 {
        return 0;
    }
    (now.tv_sec as u64).saturating_mul(1_000_000).saturating_add(now.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_forms() {
        assert_eq!(parse_notify_socket(""), Ok(None));
        assert_eq!(
            parse_notify_socket("/run/systemd/notify"),
            Ok(Some(NotifyTarget::Path("/run/systemd/notify".into())))
        );
        assert_eq!(
            parse_notify_socket("@/org/freedesktop/systemd1/notify/123"),
            Ok(Some(NotifyTarget::Abstract(b"/org/freedesktop/systemd1/notify/123".to_vec())))
        );
        assert!(parse_notify_socket("vsock:2:1234").is_err());
        assert!(parse_notify_socket("relative/path").is_err());
    }

    #[test]
    fn messages_are_one_field_per_line() {
        assert_eq!(ready("serving\non x"), "READY=1\nSTATUS=serving on x");
        assert_eq!(reloading(42, "reloading"), "RELOADING=1\nMONOTONIC_USEC=42\nSTATUS=reloading");
        assert_eq!(stopping("draining"), "STOPPING=1\nSTATUS=draining");
        assert!(monotonic_usec() > 0);
    }

    #[test]
    fn sends_to_a_listening_socket_of_either_form() {
        let dir = std::env::temp_dir().join(format!("tfgate-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier { peer: Some(connect(&NotifyTarget::Path(path.display().to_string())).unwrap()) };
        notifier.send(&ready("ok"));
        let mut buffer = [0u8; 256];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=ok");
        std::fs::remove_file(&path).unwrap();

        let name = format!("tfgate-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier { peer: Some(connect(&NotifyTarget::Abstract(name.into_bytes())).unwrap()) };
        notifier.send(&stopping("bye"));
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1\nSTATUS=bye");
    }
}
