//! A discrete-event simulation of the whole request path around the pure [`ModelQueue`]:
//! clients (closed loop: each sends again when answered; or open loop: Poisson arrivals), the
//! trip to the daemon and back, the model task's timer, and an accelerator with `executors`
//! executors that serve batches in arrival order for `fixed + per_row x rows`. Time is simulated
//! (nanoseconds from an arbitrary origin), so every run is deterministic and instant.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::batching::policy::{Arrival, BatchId, Limits, ModelQueue, Next, Reason, RequestId};

/// The accelerator.
#[derive(Debug, Clone, Copy)]
pub struct Accelerator {
    pub fixed_us: f64,
    pub per_row_us: f64,
    pub executors: usize,
}

impl Accelerator {
    pub fn new(fixed_us: f64, per_row_us: f64) -> Accelerator {
        Accelerator { fixed_us, per_row_us, executors: 1 }
    }

    /// Rows per second with every executor running batches of `rows`.
    pub fn bound(&self, rows: usize) -> f64 {
        self.executors as f64 * rows as f64 / ((self.fixed_us + self.per_row_us * rows as f64) * 1e-6)
    }

    fn cost_ns(&self, rows: usize) -> u64 {
        ((self.fixed_us + self.per_row_us * rows as f64) * 1e3) as u64
    }
}

/// Where requests come from.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// `clients` clients, each sending its next request as soon as it has its answer.
    Closed { clients: usize },
    /// Poisson arrivals at this many requests per second, whatever the answers do.
    Open { rate: f64 },
}

/// The trip around the daemon, as on one machine: nginx and the socket on the way in (with
/// jitter: requests of a wave do not arrive together), gRPC to the backend and back, and the
/// answer's way out. The timer wakes a little late, as a real one does.
#[derive(Debug, Clone, Copy)]
pub struct Path {
    pub inbound_us: f64,
    pub inbound_jitter_us: f64,
    pub rpc_us: f64,
    pub outbound_us: f64,
    pub timer_slack_us: f64,
}

impl Path {
    /// The mean time a request spends outside the backend, in seconds.
    pub fn round_trip(&self) -> f64 {
        (self.inbound_us + self.inbound_jitter_us / 2.0 + 2.0 * self.rpc_us + self.outbound_us) * 1e-6
    }
}

impl Default for Path {
    fn default() -> Path {
        Path { inbound_us: 150.0, inbound_jitter_us: 150.0, rpc_us: 60.0, outbound_us: 120.0, timer_slack_us: 60.0 }
    }
}

/// What one stretch of simulated time saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests answered in the stretch.
    pub answered: usize,
    pub seconds: f64,
    pub expired: usize,
    pub batches: usize,
    pub rows_in_batches: usize,
    /// Latency of each answered request, from when its client meant to send it, in seconds.
    pub latencies: Vec<f64>,
    /// Time each request spent in the queue (arrival to dispatch), in seconds.
    pub queued: Vec<f64>,
    pub reasons: HashMap<&'static str, usize>,
}

impl Report {
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.seconds
    }

    pub fn mean_batch(&self) -> f64 {
        self.rows_in_batches as f64 / self.batches.max(1) as f64
    }

    pub fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A client sends (closed loop: after its answer; open loop: on schedule).
    Send {
        client: usize,
    },
    Arrive {
        id: RequestId,
    },
    Wake,
    Answered {
        batch: BatchId,
    },
    Received {
        id: RequestId,
    },
}

struct Request {
    client: usize,
    sent: u64,
    arrived: u64,
}

struct InFlight {
    sent: u64,
    requests: Vec<RequestId>,
}

pub struct Sim {
    queue: ModelQueue<&'static str>,
    pub accelerator: Accelerator,
    pub path: Path,
    load: Load,
    now: u64,
    origin: Instant,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    executors_free: Vec<u64>,
    requests: HashMap<RequestId, Request>,
    batches: HashMap<BatchId, InFlight>,
    next_id: RequestId,
    wake_at: Option<u64>,
    random: u64,
    report: Report,
}

impl Sim {
    pub fn new(limits: Limits, accelerator: Accelerator, load: Load) -> Sim {
        let mut sim = Sim {
            queue: ModelQueue::new(limits),
            accelerator,
            path: Path::default(),
            load: Load::Closed { clients: 0 },
            now: 0,
            origin: Instant::now(),
            seq: 0,
            events: BinaryHeap::new(),
            executors_free: vec![0; accelerator.executors],
            requests: HashMap::new(),
            batches: HashMap::new(),
            next_id: 1,
            wake_at: None,
            random: 0x9e37_79b9_7f4a_7c15,
            report: Report::default(),
        };
        sim.set_load(load);
        sim
    }

    /// Changes the load from now on: more clients start at once; fewer stop after their answer.
    pub fn set_load(&mut self, load: Load) {
        let starting = match (self.load, load) {
            (Load::Closed { clients: before }, Load::Closed { clients }) => before..clients.max(before),
            (_, Load::Closed { clients }) => 0..clients,
            (_, Load::Open { .. }) => 0..1,
        };
        self.load = load;
        for client in starting {
            self.schedule(self.now, Event::Send { client });
        }
    }

    /// Runs `seconds` of simulated time and reports on it.
    pub fn run(&mut self, seconds: f64) -> Report {
        self.report = Report { seconds, ..Report::default() };
        let end = self.now + (seconds * 1e9) as u64;
        while let Some(&Reverse((at, _, event))) = self.events.peek() {
            if at > end {
                break;
            }
            self.events.pop();
            self.now = at;
            self.handle(event);
            self.step();
        }
        self.now = end;
        std::mem::take(&mut self.report)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Send { client } => self.send(client),
            Event::Arrive { id } => {
                let instant = self.instant(self.now);
                if let Some(request) = self.requests.get_mut(&id) {
                    request.arrived = self.now;
                }
                self.queue.push(Arrival {
                    id,
                    group: "g",
                    mergeable: true,
                    subject: String::new(),
                    rows: 1,
                    arrived: instant,
                    deadline: instant + Duration::from_secs(10),
                });
            }
            Event::Wake => self.wake_at = None,
            Event::Answered { batch } => {
                let Some(flight) = self.batches.remove(&batch) else { return };
                let latency = Duration::from_nanos(self.now - flight.sent);
                self.queue.batch_done(batch, Some(latency));
                let outbound = self.us(self.path.outbound_us);
                for id in flight.requests {
                    self.schedule(self.now + outbound, Event::Received { id });
                }
            }
            Event::Received { id } => {
                let Some(request) = self.requests.remove(&id) else { return };
                self.report.answered += 1;
                self.report.latencies.push((self.now - request.sent) as f64 * 1e-9);
                if let Load::Closed { clients } = self.load {
                    if request.client < clients {
                        self.schedule(self.now, Event::Send { client: request.client });
                    }
                }
            }
        }
    }

    fn send(&mut self, client: usize) {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(id, Request { client, sent: self.now, arrived: 0 });
        let inbound = self.path.inbound_us + self.path.inbound_jitter_us * self.uniform();
        self.schedule(self.now + self.us(inbound), Event::Arrive { id });
        if let Load::Open { rate } = self.load {
            let gap = -self.uniform().max(1e-12).ln() / rate;
            self.schedule(self.now + (gap * 1e9) as u64, Event::Send { client: 0 });
        }
    }

    /// What the model task does after every event: expire, dispatch, arm the timer.
    fn step(&mut self) {
        let now = self.instant(self.now);
        for (id, _) in self.queue.expire(now) {
            self.requests.remove(&id);
            self.report.expired += 1;
        }
        loop {
            match self.queue.next(now) {
                Next::Dispatch(batch) => self.dispatch(batch.id, batch.reason, batch.padded_rows, batch.parts),
                Next::WaitUntil(at) => {
                    let at = self.nanos(at) + self.us(self.path.timer_slack_us);
                    if self.wake_at.is_none_or(|armed| at < armed) {
                        self.wake_at = Some(at);
                        self.schedule(at, Event::Wake);
                    }
                    break;
                }
                Next::Idle => break,
            }
        }
    }

    fn dispatch(&mut self, id: BatchId, reason: Reason, rows: usize, parts: Vec<crate::batching::policy::Part>) {
        self.report.batches += 1;
        self.report.rows_in_batches += rows;
        *self.report.reasons.entry(reason.as_str()).or_default() += 1;
        let mut requests = Vec::with_capacity(parts.len());
        for part in parts {
            if let Some(request) = self.requests.get(&part.id) {
                self.report.queued.push((self.now - request.arrived) as f64 * 1e-9);
            }
            requests.push(part.id);
        }
        // The earliest free executor takes it when it gets there (batches reach the backend in
        // the order they were sent, so this is first come, first served).
        let reaches = self.now + self.us(self.path.rpc_us);
        let executor = (0..self.executors_free.len()).min_by_key(|&i| self.executors_free[i]).unwrap_or(0);
        let done = reaches.max(self.executors_free[executor]) + self.accelerator.cost_ns(rows);
        self.executors_free[executor] = done;
        self.batches.insert(id, InFlight { sent: self.now, requests });
        self.schedule(done + self.us(self.path.rpc_us), Event::Answered { batch: id });
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos)
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn us(&self, micros: f64) -> u64 {
        (micros * 1e3) as u64
    }

    /// Uniform in [0, 1), from a fixed seed.
    fn uniform(&mut self) -> f64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random >> 11) as f64 / (1u64 << 53) as f64
    }
}
