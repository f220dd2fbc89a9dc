//! Keys from files (`tfgate_jwt_key_file`): parsed at configuration time, so `nginx -t` reports
//! a bad file, then re-read by each worker when a file changes, at most one stat per second.

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::rc::Rc;

use crate::jwt::KeySet;

/// Identifies a file's content cheaply: a changed file has a new mtime, size or inode
/// (editors and `mv` replace the inode).
type Stamp = (i64, i64, u64, u64);

pub(crate) struct FileKeys {
    paths: Vec<String>,
    state: RefCell<State>,
}

struct State {
    keys: Rc<KeySet>,
    stamps: Vec<Option<Stamp>>,
    checked_at: i64,
}

/// What a re-check found, for the caller to log.
pub(crate) enum Reload {
    Unchanged,
    Reloaded {
        keys: usize,
    },
    /// The files changed but do not parse: the last good keys stay in use.
    Failed(String),
}

impl FileKeys {
    pub fn load(path: &str) -> Result<FileKeys, String> {
        Self::from_paths(vec![path.to_owned()])
    }

    /// The same files plus `path` (the directive is repeatable).
    pub fn with_file(&self, path: &str) -> Result<FileKeys, String> {
        let mut paths = self.paths.clone();
        paths.push(path.to_owned());
        Self::from_paths(paths)
    }

    fn from_paths(paths: Vec<String>) -> Result<FileKeys, String> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let keys = parse_all(&paths)?;
        Ok(FileKeys { paths, state: RefCell::new(State { keys: Rc::new(keys), stamps, checked_at: 0 }) })
    }

    /// The current keys, re-reading the files first if a second has passed and they changed.
    pub fn keys(&self, now: i64) -> (Rc<KeySet>, Reload) {
        let mut state = self.state.borrow_mut();
        if now <= state.checked_at {
            return (Rc::clone(&state.keys), Reload::Unchanged);
        }
        state.checked_at = now;
        let stamps: Vec<Option<Stamp>> = self.paths.iter().map(|p| stamp(p)).collect();
        if stamps == state.stamps {
            return (Rc::clone(&state.keys), Reload::Unchanged);
        }
        state.stamps = stamps;
        let outcome = match parse_all(&self.paths) {
            Ok(keys) => {
                let count = keys.len();
                state.keys = Rc::new(keys);
                Reload::Reloaded { keys: count }
            }
            Err(reason) => Reload::Failed(reason),
        };
        (Rc::clone(&state.keys), outcome)
    }
}

fn stamp(path: &str) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.mtime(), meta.mtime_nsec(), meta.size(), meta.ino()))
}

fn parse_all(paths: &[String]) -> Result<KeySet, String> {
    let mut sets = Vec::with_capacity(paths.len());
    for path in paths {
        let document = std::fs::read(path).map_err(|e| format!("cannot read \"{path}\": {e}"))?;
        let (keys, _skipped) = KeySet::parse(&document).map_err(|e| format!("\"{path}\": {e}"))?;
        sets.push(keys);
    }
    Ok(KeySet::merge(&sets))
}
