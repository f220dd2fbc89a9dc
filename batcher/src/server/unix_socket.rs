//! The Unix socket nginx connects to: the one systemd passed (socket activation), else bound
//! from `listen`. When binding, a stale file from a crashed run is replaced, a live one
//! (another daemon still serving) or a non-socket file is never touched.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Where the daemon accepts nginx's connections.
pub enum ApiSocket {
    /// Bound by the daemon from `listen`, removed at shutdown.
    Bound(BoundSocket),
    /// Passed by the service manager (fd 3): its mode and its file are the manager's business.
    Passed { listener: UnixListener, name: String },
}

impl ApiSocket {
    /// The passed socket if there is one, else `listen` bound with `mode`.
    pub fn open(listen: &Path, mode: u32) -> Result<ApiSocket, String> {
        let Some(passed) = crate::systemd::activation::take_listener()? else {
            return bind(listen, mode, "listen").map(ApiSocket::Bound);
        };
        let name = match passed.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)) {
            Some(path) => path.display().to_string(),
            None => "an unnamed or abstract socket".to_string(),
        };
        tracing::info!(
            "socket activation: serving on the socket passed by the service manager (fd 3, {name}); listen = {} is not bound",
            listen.display()
        );
        let listener = UnixListener::from_std(passed).map_err(|e| format!("the passed socket (fd 3): {e}"))?;
        Ok(ApiSocket::Passed { listener, name })
    }

    pub fn listener(&self) -> &UnixListener {
        match self {
            ApiSocket::Bound(bound) => &bound.listener,
            ApiSocket::Passed { listener, .. } => listener,
        }
    }

    /// The socket, for logs and the status line.
    pub fn describe(&self) -> String {
        match self {
            ApiSocket::Bound(bound) => bound.path.display().to_string(),
            ApiSocket::Passed { name, .. } => format!("{name} (passed by systemd)"),
        }
    }

    /// Stops listening; removes the file only if the daemon created it. A passed socket stays
    /// with the manager, which queues connections for the next start.
    pub fn close(self) {
        match self {
            ApiSocket::Bound(bound) => bound.close(),
            ApiSocket::Passed { listener, .. } => drop(listener),
        }
    }
}

/// A bound socket, remembered by inode so that shutdown removes only the file it created.
pub struct BoundSocket {
    pub listener: UnixListener,
    path: PathBuf,
    identity: (u64, u64),
}

/// Binds `path`; `key` names the config key in messages.
pub fn bind(path: &Path, mode: u32, key: &str) -> Result<BoundSocket, String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!("{key}: another process is already serving on {shown}"));
            }
            std::fs::remove_file(path).map_err(|e| format!("{key}: cannot remove stale socket {shown}: {e}"))?;
        }
        Ok(_) => return Err(format!("{key}: {shown} exists and is not a socket; not removing it")),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{key}: cannot inspect {shown}: {e}")),
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("{key}: cannot bind {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("socket_mode: cannot chmod {shown} to {mode:04o}: {e}"))?;
    let meta = std::fs::metadata(path).map_err(|e| format!("{key}: cannot inspect {shown}: {e}"))?;
    Ok(BoundSocket { listener, path: path.to_path_buf(), identity: (meta.dev(), meta.ino()) })
}

impl BoundSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops listening and removes the socket file, unless it was replaced meanwhile.
    pub fn close(self) {
        drop(self.listener);
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.identity => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!("cannot remove socket {}: {e}", self.path.display());
                }
            }
            _ => tracing::debug!("socket {} was replaced or removed; leaving it", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tfgate-batcher-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.sock")
    }

    #[tokio::test]
    async fn binds_chmods_replaces_stale_and_cleans_up() {
        let path = temp_path("bind");
        let _ = std::fs::remove_file(&path);
        // A stale socket file: bound once, listener dropped without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let socket = bind(&path, 0o600, "listen").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let second = bind(&path, 0o600, "listen").err().unwrap();
        assert!(second.contains("already serving"), "{second}");
        socket.close();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn never_removes_a_regular_file() {
        let path = temp_path("file");
        std::fs::write(&path, "keep me").unwrap();
        assert!(bind(&path, 0o660, "listen").err().unwrap().contains("not a socket"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
        std::fs::remove_file(&path).unwrap();
    }
}
