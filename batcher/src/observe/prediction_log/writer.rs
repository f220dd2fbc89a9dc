//! The prediction log's writer thread: entries are redacted, encoded and framed here (never on
//! the request path), buffered, and written each time the queue is drained. It owns the current
//! file: it closes it for a new one by size and age, deletes the oldest beyond `max_files`,
//! closes it cleanly (synced) at rotation, reload and shutdown, and at start cuts off the
//! half-written last record a crash may have left in the newest file.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prost::Message;

use super::entry::PredictionEntry;
use super::redact::Redaction;
use super::rotation::{file_name, is_log_file, must_rotate, to_delete, Format, Rotation};
use super::tfrecord;
use crate::metrics::Metrics;
use crate::observe::log_file::{LogFile, WriteHealth};
use crate::observe::queue::LogWriter;

/// A buffer this large is written without waiting for the queue to drain.
const WRITE_AT: usize = 1 << 20;
/// The buffer's usual size. Once written, a buffer that grew past [`KEEP_AT_MOST`] (a large
/// record: a 60 MB request's tensors) is given back and a buffer of this size taken instead, or
/// the daemon would hold the largest record ever sampled for the rest of its life.
const BUFFER_BYTES: usize = 64 << 10;
const KEEP_AT_MOST: usize = 2 * WRITE_AT;
/// After a failed open, the next attempt waits this long (records meanwhile are lost).
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// What the writer needs to know; a reload hands it new ones.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub dir: PathBuf,
    pub format: Format,
    pub rotation: Rotation,
    pub redaction: Redaction,
}

pub enum PredictionCommand {
    /// Close the current file and go on with these settings in a new one (SIGHUP).
    Reopen(Box<WriterSettings>),
}

struct Current {
    file: LogFile,
    opened: Instant,
}

pub struct PredictionWriter {
    settings: WriterSettings,
    current: Option<Current>,
    buffer: Vec<u8>,
    /// Records in `buffer`, by model.
    pending: HashMap<String, u64>,
    health: WriteHealth,
    metrics: Arc<Metrics>,
    open_failed_at: Option<Instant>,
}

impl PredictionWriter {
    /// Creates the directory if needed, repairs the newest file a crash may have cut, and opens
    /// a new file (so that a directory that cannot be written is an error at start-up).
    pub fn open(settings: WriterSettings, metrics: Arc<Metrics>) -> std::io::Result<PredictionWriter> {
        std::fs::create_dir_all(&settings.dir)?;
        repair_newest(&settings.dir, settings.format);
        let mut writer = PredictionWriter {
            settings,
            current: None,
            buffer: Vec::with_capacity(BUFFER_BYTES),
            pending: HashMap::new(),
            health: WriteHealth::new("prediction log"),
            metrics,
            open_failed_at: None,
        };
        writer.open_next(Instant::now())?;
        Ok(writer)
    }

    /// Opens a new file and deletes the oldest beyond `max_files`.
    fn open_next(&mut self, now: Instant) -> std::io::Result<()> {
        let time = SystemTime::now();
        let mut attempt = 0;
        let file = loop {
            let path = self.settings.dir.join(file_name(time, self.settings.format, attempt));
            match LogFile::open_path(&path, true) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                other => break other?,
            }
        };
        self.current = Some(Current { file, opened: now });
        self.metrics.prediction_log_files.inc(&[]);
        self.delete_oldest();
        Ok(())
    }

    fn delete_oldest(&self) {
        let Ok(entries) = std::fs::read_dir(&self.settings.dir) else { return };
        let names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| is_log_file(name, self.settings.format))
            .collect();
        for name in to_delete(names, self.settings.rotation.max_files) {
            if let Err(e) = std::fs::remove_file(self.settings.dir.join(&name)) {
                tracing::warn!("prediction log: cannot delete {name} (max_files): {e}");
            }
        }
    }

    /// Writes out the buffer, then closes the file.
    fn close_current(&mut self) {
        self.write_buffer(Instant::now());
        if let Some(mut current) = self.current.take() {
            if let Err(e) = current.file.sync() {
                tracing::warn!(
                    "prediction log: syncing {}: {e}",
                    current.file.path().unwrap_or(Path::new("")).display()
                );
            }
        }
    }

    fn write_buffer(&mut self, now: Instant) {
        if self.buffer.is_empty() {
            return;
        }
        let records: u64 = self.pending.values().sum();
        let bytes = self.buffer.len();
        let buffer = std::mem::take(&mut self.buffer);
        let result = self.file(now).and_then(|file| file.write(&buffer));
        self.buffer = if buffer.capacity() > KEEP_AT_MOST { Vec::with_capacity(BUFFER_BYTES) } else { buffer };
        self.buffer.clear();
        let target = self.settings.dir.display().to_string();
        match result {
            Ok(()) => {
                for (model, n) in self.pending.drain() {
                    self.metrics.prediction_log_records.add(&[&model], n);
                }
                self.metrics.prediction_log_bytes.add(&[], bytes as u64);
                self.health.succeeded(&target);
            }
            Err(e) => {
                self.pending.clear();
                self.metrics.prediction_log_dropped.add(&["write_error"], records);
                self.health.failed(&target, &e, records);
            }
        }
    }

    fn file(&mut self, now: Instant) -> std::io::Result<&mut LogFile> {
        if self.current.is_none() {
            if self.open_failed_at.is_some_and(|at| now.duration_since(at) < REOPEN_AFTER) {
                return Err(std::io::Error::other("no file open (the last attempt failed)"));
            }
            if let Err(e) = self.open_next(now) {
                self.open_failed_at = Some(now);
                return Err(e);
            }
            self.open_failed_at = None;
        }
        self.current.as_mut().map(|c| &mut c.file).ok_or_else(|| std::io::Error::other("no file open"))
    }

    /// The entry in the file's format.
    fn encode(&self, entry: PredictionEntry) -> Result<Vec<u8>, String> {
        let redacted = entry.redact(&self.settings.redaction)?;
        let mut out = Vec::new();
        match self.settings.format {
            Format::TfRecord => tfrecord::frame(&redacted.into_proto().encode_to_vec(), &mut out),
            Format::Jsonl => redacted.write_json(&mut out),
        }
        Ok(out)
    }
}

impl LogWriter for PredictionWriter {
    type Item = PredictionEntry;
    type Command = PredictionCommand;

    fn write(&mut self, entry: PredictionEntry) {
        let model = entry.target.model.clone();
        let record = match self.encode(entry) {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(model, "prediction log: record skipped: {e}");
                self.metrics.prediction_log_dropped.inc(&["invalid"]);
                return;
            }
        };
        let now = Instant::now();
        let rotate = self.current.as_ref().is_some_and(|c| {
            let len = c.file.len() + self.buffer.len() as u64;
            must_rotate(&self.settings.rotation, len, c.opened, now, record.len() as u64)
        });
        if rotate {
            self.close_current();
        }
        self.buffer.extend_from_slice(&record);
        *self.pending.entry(model).or_default() += 1;
        if self.buffer.len() >= WRITE_AT {
            self.write_buffer(now);
        }
    }

    fn flush(&mut self, now: Instant) {
        self.write_buffer(now);
        let aged =
            self.current.as_ref().is_some_and(|c| must_rotate(&self.settings.rotation, c.file.len(), c.opened, now, 0));
        if aged {
            // The next record opens the next file: no empty files while traffic is idle.
            self.close_current();
        }
    }

    fn command(&mut self, command: PredictionCommand) {
        match command {
            PredictionCommand::Reopen(settings) => {
                self.close_current();
                if settings.dir != self.settings.dir || settings.format != self.settings.format {
                    tracing::info!(
                        "prediction log: now writing {} files to {}",
                        settings.format.extension(),
                        settings.dir.display()
                    );
                    if let Err(e) = std::fs::create_dir_all(&settings.dir) {
                        tracing::error!("prediction log: cannot create {}: {e}", settings.dir.display());
                    }
                }
                self.settings = *settings;
                self.open_failed_at = None;
                // A file for what comes next, so that a directory that cannot be written shows now.
                if let Err(e) = self.open_next(Instant::now()) {
                    self.open_failed_at = Some(Instant::now());
                    tracing::error!("prediction log: cannot open a file in {}: {e}", self.settings.dir.display());
                }
                self.delete_oldest();
            }
        }
    }

    fn close(&mut self) {
        self.close_current();
    }
}

/// Cuts the newest log file of `format` in `dir` back to its last whole record. Only a regular
/// file the daemon could have written is cut: a symbolic link named like a log file is left
/// alone (logged), never followed, or start-up would truncate whatever it points at.
fn repair_newest(dir: &Path, format: Format) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut newest: Option<String> = None;
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else { continue };
        if !is_log_file(&name, format) {
            continue;
        }
        // The entry's own type: a link is not followed here.
        match entry.file_type() {
            Ok(kind) if kind.is_file() => {}
            Ok(kind) if kind.is_symlink() => {
                tracing::warn!("prediction log: {name} is a symbolic link, not a file the daemon wrote; left alone");
                continue;
            }
            _ => continue,
        }
        if newest.as_ref().is_none_or(|n| name > *n) {
            newest = Some(name);
        }
    }
    let Some(name) = newest else { return };
    let path = dir.join(&name);
    match repair(&path, format) {
        Ok(0) => {}
        Ok(cut) => tracing::warn!("prediction log: {name} ended in a partial record (a crash?); {cut} byte(s) cut off"),
        Err(e) => tracing::warn!("prediction log: cannot check {name}: {e}"),
    }
}

/// Truncates `path` to its whole records; returns the bytes cut off. Refuses a symbolic link
/// (`O_NOFOLLOW`: one swapped in since the directory was read included).
fn repair(path: &Path, format: Format) -> std::io::Result<u64> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let len = file.metadata()?.len();
    let whole = match format {
        Format::TfRecord => tfrecord::complete_len(len, |offset| {
            let mut header = [0u8; 12];
            file.read_exact_at(&mut header, offset).ok().map(|()| header)
        }),
        Format::Jsonl => {
            // Back from the end to the last newline, a block at a time.
            let mut end = len;
            let mut block = vec![0u8; 64 << 10];
            loop {
                if end == 0 {
                    break 0;
                }
                let start = end.saturating_sub(block.len() as u64);
                let chunk = &mut block[..(end - start) as usize];
                file.read_exact_at(chunk, start)?;
                if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                    break start + i as u64 + 1;
                }
                end = start;
            }
        }
    };
    if whole < len {
        file.set_len(whole)?;
    }
    Ok(len - whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{Dtype, Outputs, Tensor, Values};
    use crate::observe::prediction_log::entry::OutputRows;
    use crate::target::{ModelTarget, VersionRef};
    use std::collections::BTreeMap;
    use tfgate_proto::tensorflow::serving::PredictionLog;

    fn entry(id: usize) -> PredictionEntry {
        let x = Tensor { dtype: Dtype::Float, shape: vec![1], values: Values::F32(vec![id as f32]) };
        let mut outputs = Outputs::new();
        outputs.insert("y".to_string(), x.clone());
        PredictionEntry {
            time: SystemTime::now(),
            request_id: format!("r{id}"),
            target: ModelTarget { model: "m".to_string(), version: VersionRef::Latest },
            signature_name: String::new(),
            version: Some(1),
            sampling_rate: 1.0,
            inputs: BTreeMap::from([("x".to_string(), x)]),
            outputs: OutputRows::Whole(Arc::new(outputs)),
            output_filter: Vec::new(),
        }
    }

    fn settings(dir: &Path, max_file_bytes: u64, max_files: usize) -> WriterSettings {
        WriterSettings {
            dir: dir.to_path_buf(),
            format: Format::TfRecord,
            rotation: Rotation { max_file_bytes, max_file_age: None, max_files },
            redaction: Redaction::none(),
        }
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        names
    }

    fn ids(path: &Path) -> Vec<String> {
        let data = std::fs::read(path).unwrap();
        tfrecord::read_all(&data)
            .unwrap()
            .iter()
            .map(|r| PredictionLog::decode(r.as_slice()).unwrap().log_metadata.unwrap().request_origin)
            .collect()
    }

    #[test]
    fn files_rotate_by_size_and_the_oldest_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        // Records are about 100 bytes: 3 per file of at most 400.
        let mut writer = PredictionWriter::open(settings(dir.path(), 400, 3), metrics.clone()).unwrap();
        for i in 0..30 {
            writer.write(entry(i));
            writer.flush(Instant::now());
        }
        writer.close();
        let kept = files(dir.path());
        assert_eq!(kept.len(), 3, "{kept:?}");
        let all: Vec<String> = kept.iter().flat_map(|p| ids(p)).collect();
        let last: Vec<String> = (30 - all.len()..30).map(|i| format!("r{i}")).collect();
        assert_eq!(all, last, "the newest records, in order, none lost in the kept files");
        assert!(kept.iter().all(|p| std::fs::metadata(p).unwrap().len() <= 400));
        assert!(metrics.render().contains("tfgate_prediction_log_records_total{model=\"m\"} 30"));
    }

    #[test]
    fn a_half_written_record_is_cut_off_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut writer = PredictionWriter::open(settings(dir.path(), 1 << 20, 0), metrics.clone()).unwrap();
        writer.write(entry(1));
        writer.write(entry(2));
        writer.close();
        let path = files(dir.path()).remove(0);
        let whole = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the second record.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole - 7).unwrap();
        let writer = PredictionWriter::open(settings(dir.path(), 1 << 20, 0), metrics).unwrap();
        drop(writer);
        assert_eq!(ids(&path), ["r1"]);
    }

    #[test]
    fn a_large_records_buffer_is_given_back_once_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            PredictionWriter::open(settings(dir.path(), 1 << 30, 0), Arc::new(Metrics::default())).unwrap();
        let mut large = entry(1);
        let x = Tensor { dtype: Dtype::Float, shape: vec![4 << 20], values: Values::F32(vec![0.5; 4 << 20]) };
        large.inputs.insert("x".to_string(), x);
        writer.write(large);
        assert!(writer.buffer.capacity() <= KEEP_AT_MOST, "{} bytes kept", writer.buffer.capacity());
        // Small records keep their buffer between writes.
        writer.write(entry(2));
        writer.flush(Instant::now());
        let capacity = writer.buffer.capacity();
        writer.write(entry(3));
        writer.flush(Instant::now());
        assert_eq!(writer.buffer.capacity(), capacity);
        writer.close();
        let ids = ids(&files(dir.path())[0]);
        assert_eq!(ids, ["r1", "r2", "r3"]);
    }

    #[test]
    fn jsonl_repair_cuts_after_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predictions-x.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        assert_eq!(repair(&path, Format::Jsonl).unwrap(), 5);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        assert_eq!(repair(&path, Format::Jsonl).unwrap(), 0);
    }

    #[test]
    fn a_symlink_named_like_a_log_file_is_never_followed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        // Neither a whole record nor a whole line: a repair would cut it to nothing.
        let precious = dir.path().join("precious.db");
        std::fs::write(&precious, b"no trailing newline, not a TFRecord").unwrap();
        let newest = "predictions-29991231T235959.999999Z";
        for format in [Format::TfRecord, Format::Jsonl] {
            let link = logs.join(format!("{newest}.{}", format.extension()));
            std::os::unix::fs::symlink(&precious, &link).unwrap();
            let mut settings = settings(&logs, 1 << 20, 0);
            settings.format = format;
            PredictionWriter::open(settings, Arc::new(Metrics::default())).unwrap().close();
            assert_eq!(std::fs::read(&precious).unwrap(), b"no trailing newline, not a TFRecord", "{format:?}");
            assert!(repair(&link, format).is_err(), "O_NOFOLLOW refuses the link itself");
        }
        // The newest regular file is still repaired when a link sorts after it.
        let real = files(&logs).into_iter().find(|p| p.extension().is_some_and(|e| e == "tfrecord") && !p.is_symlink());
        let real = real.expect("the file the first writer opened");
        std::fs::write(&real, b"\x05\0\0").unwrap();
        PredictionWriter::open(settings(&logs, 1 << 20, 0), Arc::new(Metrics::default())).unwrap().close();
        assert_eq!(std::fs::metadata(&real).unwrap().len(), 0);
    }
}
