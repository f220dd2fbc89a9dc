//! The prediction log's files: their names, when the current one is closed for a new one, and
//! which old ones are deleted. Pure functions; the writer applies them.
//!
//! Files are named `predictions-<UTC time it was opened>.<tfrecord|jsonl>`, e.g.
//! `predictions-20250102T030405.000006Z.tfrecord`, so names sort in time order; a name already
//! taken (two files within a microsecond) gets `-1`, `-2`... before the extension.

use std::time::{Duration, Instant, SystemTime};

use crate::clock;

pub const PREFIX: &str = "predictions-";

/// How records are written (`format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TFRecord files of serialized `tensorflow.serving.PredictionLog`.
    TfRecord,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "tfrecord" => Some(Format::TfRecord),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::TfRecord => "tfrecord",
            Format::Jsonl => "jsonl",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// A file is closed before a record would take it past this size.
    pub max_file_bytes: u64,
    /// A file open this long is closed (after its last record), if it holds any.
    pub max_file_age: Option<Duration>,
    /// Files kept in the directory, the current one included; the oldest go first. 0: all.
    pub max_files: usize,
}

/// The name of a file opened at `time`; `attempt` > 0 when the plain name was taken.
pub fn file_name(time: SystemTime, format: Format, attempt: u32) -> String {
    let stamp = clock::compact(time);
    match attempt {
        0 => format!("{PREFIX}{stamp}.{}", format.extension()),
        n => format!("{PREFIX}{stamp}-{n}.{}", format.extension()),
    }
}

/// Whether `name` is one of the log's files (of this format): only those are ever deleted.
pub fn is_log_file(name: &str, format: Format) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(format.extension()))
        .is_some_and(|stamp| stamp.ends_with('.') && stamp.len() > 1 && !stamp.contains('/'))
}

/// Whether the current file (`len` bytes, opened at `opened`) is closed before a record of
/// `next` bytes is written (`next` = 0: whether to close it now, on age). An empty file is never
/// closed: a record larger than `max_file_bytes` gets a file of its own.
pub fn must_rotate(rotation: &Rotation, len: u64, opened: Instant, now: Instant, next: u64) -> bool {
    if len == 0 {
        return false;
    }
    len.saturating_add(next) > rotation.max_file_bytes
        || rotation.max_file_age.is_some_and(|age| now.saturating_duration_since(opened) >= age)
}

/// The files to delete so that at most `keep` remain (0: none is deleted): the oldest.
pub fn to_delete(mut names: Vec<String>, keep: usize) -> Vec<String> {
    if keep == 0 || names.len() <= keep {
        return Vec::new();
    }
    names.sort();
    let excess = names.len() - keep;
    names.truncate(excess);
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn names_sort_in_time_and_are_recognised() {
        let t = UNIX_EPOCH + Duration::from_micros(1_735_787_045_000_006);
        let name = file_name(t, Format::TfRecord, 0);
        assert_eq!(name, "predictions-20250102T030405.000006Z.tfrecord");
        assert_eq!(file_name(t, Format::Jsonl, 2), "predictions-20250102T030405.000006Z-2.jsonl");
        let later = file_name(t + Duration::from_secs(1), Format::TfRecord, 0);
        assert!(name < later);
        assert!(is_log_file(&name, Format::TfRecord));
        assert!(!is_log_file(&name, Format::Jsonl));
        for other in ["predictions-.tfrecord", "notes.tfrecord", "predictions-x.tfrecord.gz", "predictions-x.jsonl"] {
            assert!(!is_log_file(other, Format::TfRecord), "{other}");
        }
    }

    #[test]
    fn rotation_by_size_and_age() {
        let rotation = Rotation { max_file_bytes: 100, max_file_age: Some(Duration::from_secs(60)), max_files: 3 };
        let opened = Instant::now();
        assert!(!must_rotate(&rotation, 60, opened, opened, 40));
        assert!(must_rotate(&rotation, 60, opened, opened, 41));
        assert!(!must_rotate(&rotation, 0, opened, opened, 1000), "an empty file takes any record");
        assert!(must_rotate(&rotation, 1, opened, opened + Duration::from_secs(60), 0));
        assert!(!must_rotate(&rotation, 0, opened, opened + Duration::from_secs(600), 0));
        let never = Rotation { max_file_age: None, ..rotation };
        assert!(!must_rotate(&never, 1, opened, opened + Duration::from_secs(600_000), 0));
    }

    #[test]
    fn the_oldest_files_go() {
        let names: Vec<String> = ["c", "a", "d", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(to_delete(names.clone(), 3), ["a"]);
        assert_eq!(to_delete(names.clone(), 1), ["a", "b", "c"]);
        assert!(to_delete(names.clone(), 4).is_empty());
        assert!(to_delete(names, 0).is_empty());
    }
}
