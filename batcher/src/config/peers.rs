//! `allowed_peers`: who may use the daemon's Unix sockets, as uids. The daemon trusts what nginx
//! tells it in the `X-Tfgate-*` headers (subject, plan, version), so any process that can open
//! the socket could speak as any caller; with this list, a connection from another uid is
//! refused whatever the socket's permissions. Names are resolved through the system's NSS
//! (`getpwnam`), once, when the configuration is read.

use super::{err, ConfigError};

/// The uids allowed on the sockets; `None` in the configuration: anyone who can open them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPeers {
    /// As written, for messages.
    pub names: Vec<String>,
    pub uids: Vec<u32>,
}

impl AllowedPeers {
    pub fn allows(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }
}

/// Most entries: a list is a few users (nginx's, perhaps a monitoring agent's).
const MAX_PEERS: usize = 64;

pub fn resolve(raw: Option<Vec<String>>) -> Result<Option<AllowedPeers>, ConfigError> {
    let Some(names) = raw else { return Ok(None) };
    if names.is_empty() {
        return err("allowed_peers: an empty list would refuse every connection; remove the key to allow anyone who can open the socket");
    }
    if names.len() > MAX_PEERS {
        return err(format!("allowed_peers: at most {MAX_PEERS} entries"));
    }
    let mut uids = Vec::with_capacity(names.len());
    for name in &names {
        let uid = match name.parse::<u32>() {
            Ok(uid) if name.bytes().all(|b| b.is_ascii_digit()) => uid,
            _ => lookup(name)?,
        };
        if !uids.contains(&uid) {
            uids.push(uid);
        }
    }
    Ok(Some(AllowedPeers { names, uids }))
}

fn lookup(name: &str) -> Result<u32, ConfigError> {
    if name.is_empty() || name.len() > 256 || name.contains(['\0', ':', '/']) {
        return err(format!("allowed_peers: {name:?} is not a user name or uid"));
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => err(format!("allowed_peers: no user {name:?} on this system (getent passwd {name})")),
        Err(e) => err(format!("allowed_peers: cannot look up the user {name:?}: {e}")),
    }
}

/// A warning for a socket mode that lets every local user connect while no `allowed_peers`
/// decides who gets served (kept a warning: test and development set-ups do this on purpose).
pub fn open_socket_warning(mode: u32, peers: Option<&AllowedPeers>) -> Option<String> {
    (mode & 0o002 != 0 && peers.is_none()).then(|| {
        format!(
            "socket_mode {mode:04o} lets every local user connect and speak as any caller (X-Tfgate-* headers are trusted); set allowed_peers (e.g. [\"www-data\"]) or a mode without o+w"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uids_resolve() {
        let peers = resolve(Some(vec!["root".to_string(), "33".to_string(), "0".to_string()])).unwrap().unwrap();
        assert_eq!(peers.uids, vec![0, 33]);
        assert!(peers.allows(33) && peers.allows(0) && !peers.allows(1000));
        assert_eq!(resolve(None).unwrap(), None);
    }

    #[test]
    fn unknown_users_and_empty_lists_are_refused() {
        let e = resolve(Some(vec!["no-such-user-tfgate".to_string()])).unwrap_err().0;
        assert!(e.contains("no user \"no-such-user-tfgate\""), "{e}");
        assert!(resolve(Some(Vec::new())).unwrap_err().0.contains("empty list"));
        assert!(resolve(Some(vec!["a:b".to_string()])).unwrap_err().0.contains("not a user name"));
        assert!(resolve(Some(vec!["-1".to_string()])).is_err());
    }

    #[test]
    fn a_world_writable_socket_needs_the_list() {
        assert!(open_socket_warning(0o666, None).unwrap().contains("allowed_peers"));
        let peers = AllowedPeers { names: vec!["33".into()], uids: vec![33] };
        assert_eq!(open_socket_warning(0o666, Some(&peers)), None);
        assert_eq!(open_socket_warning(0o660, None), None);
    }
}
