//! The output of a log: a file opened for appending, or stdout. A write is all or nothing: when
//! one fails midway (a full disk), the file is cut back to where it was, so a record is never
//! left half-written for the next one to be appended to. [`WriteHealth`] says when writing
//! stopped and when it came back, with the number of records lost meanwhile.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::log_limit::LogLimit;

/// Where a log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl Destination {
    /// `-` is stdout.
    pub fn parse(path: &str) -> Destination {
        if path == "-" {
            Destination::Stdout
        } else {
            Destination::File(PathBuf::from(path))
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Stdout => f.write_str("stdout"),
            Destination::File(path) => write!(f, "{}", path.display()),
        }
    }
}

pub enum LogFile {
    Stdout,
    File {
        file: File,
        path: PathBuf,
        /// The file's length after the last whole write.
        good_len: u64,
    },
}

impl LogFile {
    /// Opens `destination` for appending (creating the file with mode 0640).
    pub fn open(destination: &Destination) -> std::io::Result<LogFile> {
        match destination {
            Destination::Stdout => Ok(LogFile::Stdout),
            Destination::File(path) => LogFile::open_path(path, false),
        }
    }

    /// Opens `path` for appending; `new`: it must not exist yet.
    ///
    /// Symbolic links: a `new` file (the prediction log's) is created with O_CREAT|O_EXCL, which
    /// never follows one (a link in its place is an error). An existing file (the audit log's
    /// `path`) is followed on purpose: the operator names that path and may point it elsewhere,
    /// as with nginx's `access_log`; it is only ever appended to, and cut back to no less than
    /// its length at opening. Keep the log directory writable by the daemon's user alone.
    pub fn open_path(path: &Path, new: bool) -> std::io::Result<LogFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = OpenOptions::new();
        options.append(true).mode(0o640);
        if new {
            options.create_new(true);
        } else {
            options.create(true);
        }
        let file = options.open(path)?;
        let good_len = file.metadata()?.len();
        Ok(LogFile::File { file, path: path.to_path_buf(), good_len })
    }

    /// Bytes in the file (0 for stdout).
    pub fn len(&self) -> u64 {
        match self {
            LogFile::Stdout => 0,
            LogFile::File { good_len, .. } => *good_len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            LogFile::Stdout => None,
            LogFile::File { path, .. } => Some(path),
        }
    }

    /// Appends all of `bytes`, or nothing.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            LogFile::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            LogFile::File { file, good_len, .. } => {
                // Where this write starts is the file's length now, which is not ours alone to
                // know: logrotate's `copytruncate` (unsupported, docs/operations.md) cuts the
                // file to nothing under us, and cutting back to the older, longer length after a
                // failed write would fill the file with zero bytes up to it.
                if let Ok(metadata) = file.metadata() {
                    *good_len = metadata.len();
                }
                Self::append(file, good_len, bytes)
            }
        }
    }

    fn append(file: &mut File, good_len: &mut u64, bytes: &[u8]) -> std::io::Result<()> {
        match file.write_all(bytes) {
            Ok(()) => {
                *good_len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Appending writes at the end whatever the offset: cutting the file back
                // is enough for the next write to start on a record boundary.
                let _ = file.set_len(*good_len);
                Err(e)
            }
        }
    }

    /// Makes what was written durable (at rotation and shutdown).
    pub fn sync(&mut self) -> std::io::Result<()> {
        match self {
            LogFile::Stdout => Ok(()),
            LogFile::File { file, .. } => file.sync_data(),
        }
    }
}

/// Whether a log is being written, and what it lost while it was not.
pub struct WriteHealth {
    /// `audit log`, `prediction log`: how the log lines name it.
    what: &'static str,
    failing: Option<Failing>,
    limit: LogLimit,
}

struct Failing {
    since: Instant,
    lost: u64,
}

impl WriteHealth {
    pub fn new(what: &'static str) -> WriteHealth {
        WriteHealth { what, failing: None, limit: LogLimit::new(Duration::from_secs(10)) }
    }

    /// `records` could not be written to `target` because of `error`.
    pub fn failed(&mut self, target: &dyn std::fmt::Display, error: &std::io::Error, records: u64) {
        let now = Instant::now();
        let failing = self.failing.get_or_insert(Failing { since: now, lost: 0 });
        failing.lost += records;
        if let Some(more) = self.limit.event(now) {
            tracing::warn!(
                "{}: cannot write to {target}: {error}; {} record(s) lost so far ({more} more failures since the last warning)",
                self.what,
                failing.lost
            );
        }
    }

    /// A write to `target` succeeded: if writing had failed, say that it recovered.
    pub fn succeeded(&mut self, target: &dyn std::fmt::Display) {
        if let Some(failing) = self.failing.take() {
            tracing::warn!(
                "{}: writing to {target} again after {} s; {} record(s) were lost meanwhile",
                self.what,
                failing.since.elapsed().as_secs(),
                failing.lost
            );
            self.limit = LogLimit::new(Duration::from_secs(10));
        }
    }

    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_reopens_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut file = LogFile::open(&Destination::File(path.clone())).unwrap();
        file.write(b"one\n").unwrap();
        assert_eq!(file.len(), 4);
        drop(file);
        let mut file = LogFile::open(&Destination::parse(path.to_str().unwrap())).unwrap();
        assert_eq!(file.len(), 4);
        file.write(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        assert!(LogFile::open_path(&path, true).is_err(), "new: an existing file is refused");
        let link = dir.path().join("b.log");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(LogFile::open_path(&link, true).is_err(), "new: a link, even a dangling one, is refused");
        assert!(!dir.path().join("elsewhere").exists());
        assert_eq!(Destination::parse("-"), Destination::Stdout);
    }

    #[test]
    fn a_file_cut_under_the_writer_is_written_from_its_new_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut file = LogFile::open(&Destination::File(path.clone())).unwrap();
        file.write(b"one\n").unwrap();
        // logrotate's copytruncate.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        file.write(b"two\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        assert_eq!(file.len(), 4, "a failed write now would cut back to 4 bytes, not extend the file to 8");
    }
}
