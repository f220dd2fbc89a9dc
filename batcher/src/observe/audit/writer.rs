//! The audit log's writer thread: records become JSON lines in a buffer, written out each time
//! the queue is drained (or the buffer fills), all or nothing per write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::AuditRecord;
use crate::clock::Rfc3339Writer;
use crate::metrics::Metrics;
use crate::observe::log_file::{Destination, LogFile, WriteHealth};
use crate::observe::queue::LogWriter;

/// A buffer this large is written without waiting for the queue to drain.
const WRITE_AT: usize = 1 << 20;
/// After a failed open, the next attempt waits this long (records meanwhile are lost).
const REOPEN_AFTER: Duration = Duration::from_secs(1);

pub enum AuditCommand {
    /// Close the file and open `Destination` (the same path after logrotate moved the file, or
    /// a new one from a reload).
    Reopen(Destination),
}

pub struct AuditWriter {
    destination: Destination,
    file: Option<LogFile>,
    buffer: Vec<u8>,
    /// Records in `buffer`.
    pending: u64,
    health: WriteHealth,
    metrics: Arc<Metrics>,
    open_failed_at: Option<Instant>,
    clock: Rfc3339Writer,
}

impl AuditWriter {
    /// A writer for `destination`, already opened (so that a path that cannot be written is an
    /// error at start-up, not a silent loss).
    pub fn open(destination: Destination, metrics: Arc<Metrics>) -> std::io::Result<AuditWriter> {
        let file = LogFile::open(&destination)?;
        Ok(AuditWriter {
            destination,
            file: Some(file),
            buffer: Vec::with_capacity(64 << 10),
            pending: 0,
            health: WriteHealth::new("audit log"),
            metrics,
            open_failed_at: None,
            clock: Rfc3339Writer::default(),
        })
    }

    fn file(&mut self, now: Instant) -> Result<&mut LogFile, std::io::Error> {
        if self.file.is_none() {
            if self.open_failed_at.is_some_and(|at| now.duration_since(at) < REOPEN_AFTER) {
                return Err(std::io::Error::other("not open (the last attempt failed)"));
            }
            match LogFile::open(&self.destination) {
                Ok(file) => {
                    self.open_failed_at = None;
                    self.file = Some(file);
                }
                Err(e) => {
                    self.open_failed_at = Some(now);
                    return Err(e);
                }
            }
        }
        self.file.as_mut().ok_or_else(|| std::io::Error::other("not open"))
    }
}

impl LogWriter for AuditWriter {
    type Item = AuditRecord;
    type Command = AuditCommand;

    fn write(&mut self, record: AuditRecord) {
        record.write_json(&mut self.buffer, &mut self.clock);
        self.pending += 1;
        if self.buffer.len() >= WRITE_AT {
            self.flush(Instant::now());
        }
    }

    fn flush(&mut self, now: Instant) {
        if self.buffer.is_empty() {
            return;
        }
        let (records, bytes) = (std::mem::take(&mut self.pending), self.buffer.len());
        let buffer = std::mem::take(&mut self.buffer);
        let written = self.file(now).and_then(|file| file.write(&buffer));
        self.buffer = buffer;
        self.buffer.clear();
        match written {
            Ok(()) => {
                self.metrics.audit_records.add(&[], records);
                self.metrics.audit_bytes.add(&[], bytes as u64);
                self.health.succeeded(&self.destination);
            }
            Err(e) => {
                self.metrics.audit_dropped.add(&["write_error"], records);
                self.health.failed(&self.destination, &e, records);
            }
        }
    }

    fn command(&mut self, command: AuditCommand) {
        match command {
            AuditCommand::Reopen(destination) => {
                self.flush(Instant::now());
                self.close();
                if destination != self.destination {
                    tracing::info!("audit log: now writing to {destination} (was {})", self.destination);
                }
                self.destination = destination;
                self.file = None;
                self.open_failed_at = None;
                if let Err(e) = self.file(Instant::now()) {
                    tracing::error!("audit log: cannot open {}: {e}; retrying with the next records", self.destination);
                }
            }
        }
    }

    fn close(&mut self) {
        self.flush(Instant::now());
        if let Some(mut file) = self.file.take() {
            let _ = file.sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Code, RequestInfo};
    use std::time::SystemTime;

    fn record(id: &str) -> AuditRecord {
        let now = Instant::now();
        let mut info = RequestInfo::from_headers(&Default::default(), None, now);
        info.request_id = id.to_string();
        let mut record = AuditRecord::start(&info, "rest", SystemTime::now());
        record.finish(200, Code::Ok, None, now);
        record
    }

    #[test]
    fn lines_are_written_and_the_file_reopened_after_a_move() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let metrics = Arc::new(Metrics::default());
        let mut writer = AuditWriter::open(Destination::File(path.clone()), metrics.clone()).unwrap();
        writer.write(record("a"));
        writer.write(record("b"));
        writer.flush(Instant::now());
        // logrotate moves the file, then signals: the next lines go to a new file at the path.
        let moved = dir.path().join("audit.jsonl.1");
        std::fs::rename(&path, &moved).unwrap();
        writer.write(record("c"));
        writer.command(AuditCommand::Reopen(Destination::File(path.clone())));
        writer.write(record("d"));
        writer.close();
        let ids = |p: &std::path::Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].as_str().unwrap().to_string()
                })
                .collect()
        };
        assert_eq!(ids(&moved), ["a", "b", "c"]);
        assert_eq!(ids(&path), ["d"]);
        assert!(metrics.render().contains("tfgate_audit_records_total 4"));
    }

    #[test]
    fn a_path_that_cannot_be_opened_is_an_error_at_start() {
        let metrics = Arc::new(Metrics::default());
        let missing = Destination::File("/nonexistent-dir/audit.jsonl".into());
        assert!(AuditWriter::open(missing, metrics).is_err());
    }

    #[test]
    fn records_that_cannot_be_written_are_counted_as_lost() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let path = dir.path().join("sub").join("audit.jsonl");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut writer = AuditWriter::open(Destination::File(path.clone()), metrics.clone()).unwrap();
        // The directory goes away: reopening fails, the records are counted, not kept.
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir(dir.path().join("sub")).unwrap();
        writer.command(AuditCommand::Reopen(Destination::File(path)));
        writer.write(record("x"));
        writer.flush(Instant::now());
        assert!(metrics.render().contains("tfgate_audit_dropped_total{reason=\"write_error\"} 1"));
    }
}
