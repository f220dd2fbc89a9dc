//! The audit log (`[audit]`): one JSON line per request answered, REST or gRPC, written by a
//! thread of its own. A request hands its record over without waiting; when the queue is full
//! the record is dropped and counted (`tfgate_audit_dropped_total{reason="queue_full"}`), and
//! records a failing disk could not take are counted too (`reason="write_error"`), with a
//! warning when writing stops and another when it resumes.

mod record;
mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use record::{summarize, AuditRecord, BatchSummary};
pub use writer::{AuditCommand, AuditWriter};

use super::log_file::Destination;
use super::queue::{LogQueue, Refused};
use crate::metrics::Metrics;

/// How long the daemon waits at shutdown for the queued records to be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[audit]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub destination: Destination,
    /// Records waiting to be written, at most.
    pub queue_size: usize,
}

pub struct AuditLog {
    queue: LogQueue<AuditWriter>,
    metrics: Arc<Metrics>,
    /// Records the queue holds (a reload that changes it starts a new log).
    pub queue_size: usize,
}

impl AuditLog {
    /// Opens the destination and starts the writer thread.
    pub fn start(settings: &AuditSettings, metrics: Arc<Metrics>) -> Result<AuditLog, String> {
        let writer = AuditWriter::open(settings.destination.clone(), metrics.clone())
            .map_err(|e| format!("audit.path: cannot open {}: {e}", settings.destination))?;
        let queue = LogQueue::start("tfgate-audit", writer, settings.queue_size, usize::MAX)
            .map_err(|e| format!("audit log: cannot start its thread: {e}"))?;
        Ok(AuditLog { queue, metrics, queue_size: settings.queue_size })
    }

    /// Queues a finished request's record; never waits.
    pub fn submit(&self, record: AuditRecord) {
        // Records are small (header values are cut at 256 bytes): `queue_size` bounds them.
        match self.queue.try_push(record, 0) {
            Ok(()) => {}
            Err(Refused::Full) => self.metrics.audit_dropped.inc(&["queue_full"]),
            Err(Refused::Closed) => self.metrics.audit_dropped.inc(&["closed"]),
        }
    }

    /// Reopens the file (SIGHUP: logrotate moved it), possibly at a new path.
    pub fn reopen(&self, destination: Destination) {
        self.queue.command(AuditCommand::Reopen(destination));
    }

    /// Writes what is queued and closes the file.
    pub fn close(&self) {
        self.queue.close(CLOSE_TIMEOUT);
    }
}
