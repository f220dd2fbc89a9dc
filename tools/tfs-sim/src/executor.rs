//! The cost model: a fixed pool of executors (like the streams of one accelerator) that each run
//! one call at a time for `FIXED + PER_ITEM x batch` microseconds; other calls wait in FIFO order.
//!
//! Executors are OS threads sleeping with `std::thread::sleep`, which has microsecond resolution
//! (tokio's timer rounds to milliseconds, too coarse for small costs).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Duration of one call: `fixed_us + per_item_us * batch` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub fixed_us: u64,
    pub per_item_us: u64,
}

impl Cost {
    pub fn for_batch(&self, batch: u64) -> Duration {
        Duration::from_micros(self.fixed_us.saturating_add(self.per_item_us.saturating_mul(batch)))
    }
}

/// A queued call: when it was queued, how long it occupies an executor, and the work, which gets
/// the instant at which it may complete.
struct Job {
    queued: Instant,
    cost: Duration,
    work: Box<dyn FnOnce(Instant) + Send>,
}

/// A pool of executor threads fed from one FIFO queue.
pub struct Executors {
    queue: mpsc::Sender<Job>,
}

impl Executors {
    /// Starts `count` executor threads (at least one).
    pub fn start(count: usize) -> Executors {
        let (queue, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..count.max(1) {
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("tfs-sim-exec-{i}"))
                .spawn(move || executor_loop(&rx))
                .expect("spawn executor thread");
        }
        Executors { queue }
    }

    /// Runs `work` on the next free executor, which stays busy for `cost` in total (the work's
    /// own time included). Returns `None` if the executors are gone.
    pub async fn run<R, F>(&self, cost: Duration, work: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work = Box::new(move |done_at: Instant| {
            let result = work();
            let now = Instant::now();
            if done_at > now {
                thread::sleep(done_at - now);
            }
            // The caller may have gone away (client cancelled); the work is done anyway, as on a
            // real accelerator.
            let _ = tx.send(result);
        });
        let job = Job { queued: Instant::now(), cost, work };
        self.queue.send(job).ok()?;
        rx.await.ok()
    }
}

/// One executor: takes jobs in FIFO order and completes each at
/// `max(previous completion, time queued) + cost`. Scheduling from the previous *planned*
/// completion (not from when the sleeping thread actually woke up) keeps the sleep's wake-up
/// latency from adding up under load: a saturated executor completes exactly one call per cost.
fn executor_loop(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut free_at: Option<Instant> = None;
    loop {
        // Hold the lock only while taking the next job, so executors take jobs in order.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return }; // all senders gone: shutting down
        let start = free_at.map_or(job.queued, |f| f.max(job.queued));
        let done_at = start + job.cost;
        free_at = Some(done_at);
        (job.work)(done_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_for_batch() {
        let c = Cost { fixed_us: 100, per_item_us: 7 };
        assert_eq!(c.for_batch(0), Duration::from_micros(100));
        assert_eq!(c.for_batch(3), Duration::from_micros(121));
        assert_eq!(Cost { fixed_us: u64::MAX, per_item_us: 1 }.for_batch(5), Duration::from_micros(u64::MAX));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_executor_serializes_calls() {
        let ex = Arc::new(Executors::start(1));
        let start = Instant::now();
        let cost = Duration::from_millis(15);
        let a = tokio::spawn({
            let ex = Arc::clone(&ex);
            async move { ex.run(cost, || 1).await }
        });
        let b = tokio::spawn({
            let ex = Arc::clone(&ex);
            async move { ex.run(cost, || 2).await }
        });
        assert_eq!(a.await.unwrap(), Some(1));
        assert_eq!(b.await.unwrap(), Some(2));
        assert!(start.elapsed() >= 2 * cost, "{:?}", start.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_executors_run_in_parallel() {
        let ex = Arc::new(Executors::start(2));
        let start = Instant::now();
        let cost = Duration::from_millis(40);
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let ex = Arc::clone(&ex);
                tokio::spawn(async move { ex.run(cost, || ()).await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let took = start.elapsed();
        assert!(took >= cost && took < 2 * cost, "{took:?}");
    }
}
