//! The load shapes, whatever the protocol: closed loop (each client sends its next request when
//! its last one is answered) and open loop (Poisson arrivals on a schedule fixed in advance;
//! a request's latency counts from its scheduled time, so a slow server cannot slow the load
//! down and hide its queue).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Barrier};

use crate::args::Load;
use crate::report::{Outcome, Recorder};

/// How long a failing client waits before trying again (keeps a dead target from spinning).
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How long answers are awaited once the measured time is over (open loop).
const DRAIN: Duration = Duration::from_secs(30);

/// One connection's worth of requests.
pub trait Client: Send + 'static {
    fn send(&mut self) -> impl Future<Output = Outcome> + Send;
    /// Drops the request in flight the way an impatient caller does (HTTP/1.1: closes the
    /// connection; HTTP/2: resets the stream, which dropping the call's future already did).
    fn hang_up(&mut self);
}

/// Sends one request, hanging up after `give_up` if it is set.
async fn send_within<C: Client>(client: &mut C, give_up: Option<Duration>) -> Outcome {
    let Some(limit) = give_up else { return client.send().await };
    match tokio::time::timeout(limit, client.send()).await {
        Ok(outcome) => outcome,
        Err(_) => {
            client.hang_up();
            Outcome::GaveUp
        }
    }
}

/// Opens clients.
pub trait Connect: Clone + Send + Sync + 'static {
    type Client: Client;
    fn connect(&self) -> impl Future<Output = Result<Self::Client, String>> + Send;
}

/// When requests count and when the load stops.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    stop_at: Instant,
}

impl Window {
    fn measures(&self, at: Instant) -> bool {
        at >= self.measure_from && at <= self.stop_at
    }
}

/// Requests left to send when `--requests` caps them.
struct Budget(Option<AtomicU64>);

impl Budget {
    fn take(&self) -> bool {
        match &self.0 {
            None => true,
            Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }
}

/// Runs the load; returns the latencies and the time they were measured over (the whole
/// window, or less when `--requests` ran out first).
pub async fn run<C: Connect>(connect: C, load: &Load) -> Result<(Recorder, Duration), String> {
    let clients = load.concurrency as usize;
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(connect.connect().await?);
    }
    let start = Instant::now();
    // A capped run (a burst) measures every request, warm-up or not.
    let measure_from = if load.requests.is_some() { start } else { start + load.warmup };
    let window = Window { measure_from, stop_at: measure_from + load.duration };
    let budget = Arc::new(Budget(load.requests.map(AtomicU64::new)));
    let recorder = match load.rate {
        None => closed_loop(connect, connected, window, budget, load.give_up).await?,
        Some(rate) if rate > 0.0 => open_loop(connected, window, budget, rate, load).await,
        Some(rate) => return Err(format!("--rate must be positive, got {rate}")),
    };
    let measured = Instant::now().min(window.stop_at).saturating_duration_since(window.measure_from);
    Ok((recorder, measured))
}

async fn closed_loop<C: Connect>(
    connect: C,
    clients: Vec<C::Client>,
    window: Window,
    budget: Arc<Budget>,
    give_up: Option<Duration>,
) -> Result<Recorder, String> {
    // Every client starts at once: with `-c N --requests N`, a burst of N concurrent requests.
    let barrier = Arc::new(Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (connect, barrier, budget) = (connect.clone(), barrier.clone(), budget.clone());
            tokio::spawn(async move {
                let mut recorder = Recorder::default();
                barrier.wait().await;
                while Instant::now() < window.stop_at && budget.take() {
                    let started = Instant::now();
                    let outcome = send_within(&mut client, give_up).await;
                    if window.measures(Instant::now()) {
                        recorder.record(started.elapsed(), outcome);
                    }
                    if outcome != Outcome::Answered {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                    if outcome == Outcome::Failed {
                        if let Ok(fresh) = connect.connect().await {
                            client = fresh;
                        }
                    }
                }
                recorder
            })
        })
        .collect();
    let mut recorders = Vec::new();
    for task in tasks {
        recorders.push(task.await.map_err(|e| e.to_string())?);
    }
    Ok(Recorder::merge(recorders))
}

async fn open_loop<C: Client>(
    clients: Vec<C>,
    window: Window,
    budget: Arc<Budget>,
    rate: f64,
    load: &Load,
) -> Recorder {
    let (idle_tx, mut idle) = mpsc::unbounded_channel();
    for client in clients {
        let _ = idle_tx.send(client);
    }
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let mut arrivals = Arrivals::new(rate, load.seed, Instant::now());
    let give_up = load.give_up;
    let mut in_flight = Vec::new();
    loop {
        let scheduled = arrivals.next_at();
        if scheduled > window.stop_at || !budget.take() {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        // Waiting for a free connection is part of the request's latency.
        let Some(mut client) = idle.recv().await else { break };
        let (idle_tx, recorder) = (idle_tx.clone(), recorder.clone());
        in_flight.push(tokio::spawn(async move {
            // The caller's patience counts from when it wanted to send, like its latency.
            let patience = give_up.map(|limit| limit.saturating_sub(scheduled.elapsed()));
            let outcome = match patience {
                Some(left) if left.is_zero() => Outcome::GaveUp,
                _ => send_within(&mut client, patience).await,
            };
            if window.measures(scheduled) {
                let mut recorder = recorder.lock().unwrap_or_else(|e| e.into_inner());
                recorder.record(scheduled.elapsed(), outcome);
            }
            let _ = idle_tx.send(client);
        }));
        in_flight.retain(|task| !task.is_finished());
    }
    let drained = tokio::time::timeout(DRAIN, async {
        for task in in_flight {
            let _ = task.await;
        }
    })
    .await;
    let mut recorder = recorder.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if drained.is_err() {
        recorder.note_unanswered();
    }
    recorder.sort();
    recorder
}

/// Poisson arrivals: exponential gaps of mean 1/rate, from a fixed seed.
struct Arrivals {
    rate: f64,
    state: u64,
    at: Instant,
}

impl Arrivals {
    fn new(rate: f64, seed: u64, start: Instant) -> Arrivals {
        Arrivals { rate, state: seed.max(1), at: start }
    }

    fn next_at(&mut self) -> Instant {
        // xorshift64*: plenty for spacing requests.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let uniform = (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        let gap = -(1.0 - uniform).ln() / self.rate;
        self.at += Duration::from_secs_f64(gap.min(60.0));
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_average_the_rate() {
        let start = Instant::now();
        let mut arrivals = Arrivals::new(1000.0, 7, start);
        let mut last = start;
        for _ in 0..10_000 {
            last = arrivals.next_at();
        }
        let seconds = (last - start).as_secs_f64();
        assert!((9.5..10.5).contains(&seconds), "10,000 arrivals at 1000/s took {seconds} s");
    }

    #[test]
    fn a_budget_runs_out() {
        let budget = Budget(Some(AtomicU64::new(2)));
        assert!(budget.take() && budget.take() && !budget.take());
        assert!(Budget(None).take());
    }
}
