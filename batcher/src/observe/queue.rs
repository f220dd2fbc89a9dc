//! The hand-off between the request path and a log's writer thread: a bounded queue that a
//! request pushes to without ever waiting (a full queue drops the record, and the caller counts
//! it), and a thread that owns the file.
//!
//! The thread is not woken per record: it sleeps for [`POLL`] (or until a command or a full
//! queue wakes it), then drains the queue in one go and writes the lot. A request therefore
//! pays a lock-free push and no system call; records reach the file within about `POLL`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer sleeps between two drains of the queue.
pub const POLL: Duration = Duration::from_millis(10);

/// What a log's writer thread does with what the queue hands it.
pub trait LogWriter: Send + 'static {
    type Item: Send + 'static;
    type Command: Send + 'static;

    fn write(&mut self, item: Self::Item);
    /// The queue is empty for now: write out what is buffered, and do timed work (rotation).
    fn flush(&mut self, now: Instant);
    fn command(&mut self, command: Self::Command);
    /// The daemon is stopping (or the log was turned off): everything queued was written;
    /// close the file cleanly.
    fn close(&mut self);
}

enum Control<C> {
    Apply(C),
    Close,
}

/// Why a record was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds as many records (or bytes) as it may.
    Full,
    /// The writer has stopped.
    Closed,
}

pub struct LogQueue<W: LogWriter> {
    items: SyncSender<(W::Item, usize)>,
    commands: Mutex<Sender<Control<W::Command>>>,
    /// Bytes of the records queued, against `max_bytes`.
    held: Arc<AtomicUsize>,
    max_bytes: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<W: LogWriter> LogQueue<W> {
    /// Starts the writer thread, named `name`, with room for `capacity` records of at most
    /// `max_bytes` together.
    pub fn start(name: &str, writer: W, capacity: usize, max_bytes: usize) -> std::io::Result<LogQueue<W>> {
        let (items, received) = mpsc::sync_channel(capacity.max(1));
        let (commands, controls) = mpsc::channel();
        let held = Arc::new(AtomicUsize::new(0));
        let drained = held.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(writer, received, controls, drained))?;
        Ok(LogQueue { items, commands: Mutex::new(commands), held, max_bytes, thread: Mutex::new(Some(thread)) })
    }

    /// Queues `item` (about `bytes` of memory) unless the queue is full; never waits. `bytes` = 0:
    /// the record counts against the number of records only (small records of known size).
    pub fn try_push(&self, item: W::Item, bytes: usize) -> Result<(), Refused> {
        if bytes == 0 {
            return match self.items.try_send((item, 0)) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    self.wake();
                    Err(Refused::Full)
                }
                Err(TrySendError::Disconnected(_)) => Err(Refused::Closed),
            };
        }
        let before = self.held.fetch_add(bytes, Ordering::Relaxed);
        if before > 0 && before + bytes > self.max_bytes {
            self.held.fetch_sub(bytes, Ordering::Relaxed);
            self.wake();
            return Err(Refused::Full);
        }
        match self.items.try_send((item, bytes)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.held.fetch_sub(bytes, Ordering::Relaxed);
                match e {
                    TrySendError::Full(_) => {
                        // Drain now rather than at the end of the sleep.
                        self.wake();
                        Err(Refused::Full)
                    }
                    TrySendError::Disconnected(_) => Err(Refused::Closed),
                }
            }
        }
    }

    /// Hands the writer a command (applied before the next records are written).
    pub fn command(&self, command: W::Command) {
        let _ = lock(&self.commands).send(Control::Apply(command));
        self.wake();
    }

    /// Writes what is queued, closes the file and ends the thread, waiting up to `timeout`.
    pub fn close(&self, timeout: Duration) {
        let _ = lock(&self.commands).send(Control::Close);
        self.wake();
        let Some(thread) = lock(&self.thread).take() else { return };
        let deadline = Instant::now() + timeout;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                tracing::warn!("{}: still writing after {} s; not waiting", thread_name(&thread), timeout.as_secs());
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = thread.join();
    }

    fn wake(&self) {
        if let Some(thread) = lock(&self.thread).as_ref() {
            thread.thread().unpark();
        }
    }
}

fn thread_name(thread: &JoinHandle<()>) -> String {
    thread.thread().name().unwrap_or("log writer").to_string()
}

fn run<W: LogWriter>(
    mut writer: W,
    items: Receiver<(W::Item, usize)>,
    controls: Receiver<Control<W::Command>>,
    held: Arc<AtomicUsize>,
) {
    loop {
        let mut closing = false;
        while let Ok(control) = controls.try_recv() {
            match control {
                Control::Apply(command) => writer.command(command),
                Control::Close => closing = true,
            }
        }
        loop {
            match items.try_recv() {
                Ok((item, bytes)) => {
                    if bytes > 0 {
                        held.fetch_sub(bytes, Ordering::Relaxed);
                    }
                    writer.write(item);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
            }
        }
        writer.flush(Instant::now());
        if closing {
            writer.close();
            return;
        }
        std::thread::park_timeout(POLL);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it was given, for the test to look at once the thread has ended.
    struct Collect(Arc<Mutex<Vec<String>>>);

    impl LogWriter for Collect {
        type Item = u32;
        type Command = &'static str;
        fn write(&mut self, item: u32) {
            lock(&self.0).push(item.to_string());
        }
        fn flush(&mut self, _: Instant) {}
        fn command(&mut self, command: &'static str) {
            lock(&self.0).push(command.to_string());
        }
        fn close(&mut self) {
            lock(&self.0).push("closed".to_string());
        }
    }

    #[test]
    fn everything_queued_is_written_before_the_close() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let queue = LogQueue::start("test", Collect(seen.clone()), 100, 1 << 20).unwrap();
        for i in 0..50 {
            queue.try_push(i, 10).unwrap();
        }
        queue.command("reopen");
        queue.close(Duration::from_secs(5));
        let seen = lock(&seen).clone();
        assert_eq!(seen.last().map(String::as_str), Some("closed"));
        let numbers: Vec<&String> = seen.iter().filter(|s| s.parse::<u32>().is_ok()).collect();
        assert_eq!(numbers.len(), 50);
        assert!(seen.contains(&"reopen".to_string()));
        assert_eq!(queue.try_push(1, 1), Err(Refused::Closed));
    }

    /// Holds the writer inside a command: the first barrier says it is there, the second lets
    /// it go.
    struct Stuck(Arc<std::sync::Barrier>);

    impl LogWriter for Stuck {
        type Item = ();
        type Command = ();
        fn write(&mut self, _: ()) {}
        fn flush(&mut self, _: Instant) {}
        fn command(&mut self, _: ()) {
            self.0.wait();
            self.0.wait();
        }
        fn close(&mut self) {}
    }

    fn stuck(capacity: usize, max_bytes: usize) -> (LogQueue<Stuck>, Arc<std::sync::Barrier>) {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let queue = LogQueue::start("test", Stuck(barrier.clone()), capacity, max_bytes).unwrap();
        queue.command(());
        barrier.wait();
        (queue, barrier)
    }

    #[test]
    fn a_full_queue_refuses_without_waiting() {
        let (queue, barrier) = stuck(4, 1 << 20);
        let results: Vec<_> = (0..10).map(|_| queue.try_push((), 1)).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
        assert!(results.iter().skip(4).all(|r| *r == Err(Refused::Full)));
        barrier.wait();
        queue.close(Duration::from_secs(5));
    }

    #[test]
    fn the_byte_bound_holds_but_one_large_record_always_fits() {
        let (queue, barrier) = stuck(100, 1000);
        assert!(queue.try_push((), 5000).is_ok(), "alone, a record larger than the bound is taken");
        assert_eq!(queue.try_push((), 1), Err(Refused::Full));
        barrier.wait();
        queue.close(Duration::from_secs(5));
    }
}
