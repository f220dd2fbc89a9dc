//! A discrete-event simulation of the whole request path around the pure [`ModelQueue`]:
//! streams of requests (closed loop: each client sends again when answered; or open loop:
//! Poisson arrivals), each with its caller's class, deadline and patience (a caller who gives up
//! hangs up, and the daemon takes its queued rows out), the trip to the daemon and back, the
//! model task's timer, and an accelerator with `executors` executors that serve batches in
//! arrival order for `fixed + per_row x rows` (a batch whose call was given up at its deadline
//! still runs to its end, as on TF Serving). Time is simulated (nanoseconds from an arbitrary
//! origin), so every run is deterministic and instant.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::batching::policy::{Admission, Arrival, BatchId, Class, Limits, ModelQueue, Next, Part, Reason, RequestId};

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

/// How requests come.
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

/// One source of requests: how they come, and their callers.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    pub load: Load,
    pub subject: &'static str,
    pub class: Class,
    /// The deadline the daemon gives each request (its `timeout_ms`, or the client's own).
    pub deadline: Duration,
    /// The caller hangs up after this (then the daemon takes its queued rows out).
    pub give_up: Option<Duration>,
}

impl Stream {
    pub fn new(load: Load) -> Stream {
        Stream { load, subject: "", class: Class::default(), deadline: Duration::from_secs(10), give_up: None }
    }
}

/// What one stream saw in a stretch of time.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    pub sent: usize,
    /// Answers that reached a caller still waiting.
    pub in_time: usize,
    /// Latencies of those answers, in seconds.
    pub latencies: Vec<f64>,
    /// Rows of those answers.
    pub rows: usize,
}

impl StreamReport {
    pub fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
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
    /// Requests refused on arrival (they could not be answered in time), and how long each
    /// refusal took to reach its caller, in seconds.
    pub refused: usize,
    pub refusal_latencies: Vec<f64>,
    /// Callers who hung up with no answer at all.
    pub gave_up: usize,
    /// Rows the backend ran (padding aside), and of those the rows whose answers reached a
    /// caller still waiting.
    pub rows_run: usize,
    pub rows_run_in_time: usize,
    pub streams: Vec<StreamReport>,
}

impl Report {
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.seconds
    }

    pub fn mean_batch(&self) -> f64 {
        self.rows_in_batches as f64 / self.batches.max(1) as f64
    }

    pub fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }

    /// Answers that reached a waiting caller, per second.
    pub fn in_time_per_second(&self) -> f64 {
        self.streams.iter().map(|s| s.in_time).sum::<usize>() as f64 / self.seconds
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0.0)
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
    /// The backend finished a batch.
    Answered {
        batch: BatchId,
    },
    /// A batch's call reached its callers' deadline unanswered: the daemon answers them, and
    /// awaits the backend's answer all the same (the backend computes the batch anyway).
    CallDeadline {
        batch: BatchId,
    },
    /// An answer reaches its caller.
    Received {
        id: RequestId,
    },
    /// An error (a refusal, an expiry) reaches its caller.
    Failed {
        id: RequestId,
        refused: bool,
    },
    /// The caller hangs up.
    GiveUp {
        id: RequestId,
    },
    /// The daemon learns that a caller hung up.
    Cancel {
        id: RequestId,
    },
}

struct Request {
    client: usize,
    rows: usize,
    sent: u64,
    arrived: u64,
    /// The caller has an answer, or hung up.
    over: bool,
}

struct InFlight {
    sent: u64,
    requests: Vec<(RequestId, usize)>,
    /// Its callers were answered at their deadline: it is computed for nobody.
    overran: bool,
}

pub struct Sim {
    queue: ModelQueue<&'static str>,
    pub accelerator: Accelerator,
    pub path: Path,
    streams: Vec<Stream>,
    /// The stream of each client (a closed stream's clients, one sender per open stream).
    clients: Vec<usize>,
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
        Sim::with_streams(limits, accelerator, vec![Stream::new(load)])
    }

    pub fn with_streams(limits: Limits, accelerator: Accelerator, streams: Vec<Stream>) -> Sim {
        let mut sim = Sim {
            queue: ModelQueue::new(limits),
            accelerator,
            path: Path::default(),
            streams: Vec::new(),
            clients: Vec::new(),
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
        for stream in streams {
            sim.streams.push(Stream { load: Load::Closed { clients: 0 }, ..stream });
            sim.set_stream_load(sim.streams.len() - 1, stream.load);
        }
        sim
    }

    /// Changes the first stream's load from now on: more clients start at once; fewer stop after
    /// their answer.
    pub fn set_load(&mut self, load: Load) {
        self.set_stream_load(0, load);
    }

    fn set_stream_load(&mut self, stream: usize, load: Load) {
        let count = |load: Load| match load {
            Load::Closed { clients } => clients,
            Load::Open { .. } => 1,
        };
        let before = count(self.streams[stream].load);
        self.streams[stream].load = load;
        // Clients from `before` on start again (or for the first time).
        let mine: Vec<usize> = (0..self.clients.len()).filter(|&c| self.clients[c] == stream).collect();
        for index in before..count(load) {
            let client = match mine.get(index) {
                Some(&client) => client,
                None => {
                    self.clients.push(stream);
                    self.clients.len() - 1
                }
            };
            self.schedule(self.now, Event::Send { client });
        }
    }

    /// Runs `seconds` of simulated time and reports on it.
    pub fn run(&mut self, seconds: f64) -> Report {
        self.report =
            Report { seconds, streams: vec![StreamReport::default(); self.streams.len()], ..Report::default() };
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

    /// Whether `client` (of its stream's current load) still sends.
    fn active(&self, client: usize) -> bool {
        let stream = self.clients[client];
        let index = self.clients[..client].iter().filter(|&&s| s == stream).count();
        match self.streams[stream].load {
            Load::Closed { clients } => index < clients,
            Load::Open { .. } => index == 0,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Send { client } => {
                if self.active(client) {
                    self.send(client);
                }
            }
            Event::Arrive { id } => self.arrive(id),
            Event::Wake => self.wake_at = None,
            Event::Answered { batch } => {
                let Some(flight) = self.batches.remove(&batch) else { return };
                self.report.rows_run += flight.requests.iter().map(|(_, rows)| rows).sum::<usize>();
                let latency = Duration::from_nanos(self.now - flight.sent);
                self.queue.batch_done(batch, Some(latency));
                if flight.overran {
                    return;
                }
                let outbound = self.us(self.path.outbound_us);
                for (id, _) in flight.requests {
                    self.schedule(self.now + outbound, Event::Received { id });
                }
            }
            Event::CallDeadline { batch } => {
                let Some(flight) = self.batches.get_mut(&batch) else { return };
                flight.overran = true;
                let ids: Vec<RequestId> = flight.requests.iter().map(|(id, _)| *id).collect();
                let outbound = self.us(self.path.outbound_us);
                for id in ids {
                    self.schedule(self.now + outbound, Event::Failed { id, refused: false });
                }
            }
            Event::Received { id } => self.received(id),
            Event::Failed { id, refused } => self.failed(id, refused),
            Event::GiveUp { id } => {
                let Some(request) = self.requests.get_mut(&id) else { return };
                if request.over {
                    return;
                }
                request.over = true;
                self.report.gave_up += 1;
                let client = request.client;
                let inbound = self.us(self.path.inbound_us);
                self.schedule(self.now + inbound, Event::Cancel { id });
                self.next_send(client);
            }
            Event::Cancel { id } => {
                self.queue.cancel(id);
            }
        }
    }

    fn arrive(&mut self, id: RequestId) {
        let instant = self.instant(self.now);
        let now = self.now;
        let Some(request) = self.requests.get_mut(&id) else { return };
        request.arrived = now;
        let (client, rows, sent) = (request.client, request.rows, request.sent);
        let stream = self.streams[self.clients[client]];
        let arrival = Arrival {
            id,
            group: "g",
            mergeable: true,
            subject: stream.subject.to_string(),
            rows,
            arrived: instant,
            deadline: self.instant(sent) + stream.deadline,
            class: stream.class,
        };
        if let Admission::Refused { .. } = self.queue.push(arrival, instant) {
            let outbound = self.us(self.path.outbound_us);
            self.schedule(self.now + outbound, Event::Failed { id, refused: true });
        }
    }

    fn received(&mut self, id: RequestId) {
        let Some(request) = self.requests.remove(&id) else { return };
        let client = request.client;
        if request.over {
            return;
        }
        let stream = self.clients[client];
        let latency = (self.now - request.sent) as f64 * 1e-9;
        self.report.answered += 1;
        self.report.latencies.push(latency);
        self.report.rows_run_in_time += request.rows;
        let report = &mut self.report.streams[stream];
        report.in_time += 1;
        report.rows += request.rows;
        report.latencies.push(latency);
        self.next_send(client);
    }

    fn failed(&mut self, id: RequestId, refused: bool) {
        let Some(request) = self.requests.remove(&id) else { return };
        if request.over {
            return;
        }
        if refused {
            self.report.refused += 1;
            self.report.refusal_latencies.push((self.now - request.sent) as f64 * 1e-9);
        } else {
            self.report.expired += 1;
        }
        self.next_send(request.client);
    }

    /// A closed-loop client sends again once its request is over.
    fn next_send(&mut self, client: usize) {
        if let Load::Closed { .. } = self.streams[self.clients[client]].load {
            if self.active(client) {
                self.schedule(self.now, Event::Send { client });
            }
        }
    }

    fn send(&mut self, client: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let stream = self.clients[client];
        self.requests.insert(id, Request { client, rows: 1, sent: self.now, arrived: 0, over: false });
        self.report.streams[stream].sent += 1;
        let inbound = self.path.inbound_us + self.path.inbound_jitter_us * self.uniform();
        self.schedule(self.now + self.us(inbound), Event::Arrive { id });
        if let Some(give_up) = self.streams[stream].give_up {
            self.schedule(self.now + give_up.as_nanos() as u64, Event::GiveUp { id });
        }
        if let Load::Open { rate } = self.streams[stream].load {
            let gap = -self.uniform().max(1e-12).ln() / rate;
            self.schedule(self.now + (gap * 1e9) as u64, Event::Send { client });
        }
    }

    /// What the model task does after every event: expire, dispatch, arm the timer.
    fn step(&mut self) {
        let now = self.instant(self.now);
        let expired = self.queue.expire(now);
        self.fail_all(expired);
        loop {
            match self.queue.next(now) {
                Next::Dispatch(batch) => self.dispatch(batch.id, batch.reason, batch.padded_rows, batch.parts),
                Next::Late(late) => self.fail_all(late),
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

    /// Requests answered with an error by the daemon now.
    fn fail_all(&mut self, requests: Vec<(RequestId, usize)>) {
        let outbound = self.us(self.path.outbound_us);
        for (id, _) in requests {
            self.schedule(self.now + outbound, Event::Failed { id, refused: false });
        }
    }

    fn dispatch(&mut self, id: BatchId, reason: Reason, rows: usize, parts: Vec<Part>) {
        self.report.batches += 1;
        self.report.rows_in_batches += rows;
        *self.report.reasons.entry(reason.as_str()).or_default() += 1;
        let mut requests = Vec::with_capacity(parts.len());
        let mut deadline = 0;
        for part in parts {
            if let Some(request) = self.requests.get(&part.id) {
                self.report.queued.push((self.now - request.arrived) as f64 * 1e-9);
                let stream = self.streams[self.clients[request.client]];
                deadline = deadline.max(request.sent + stream.deadline.as_nanos() as u64);
            }
            requests.push((part.id, part.rows.len()));
        }
        // The earliest free executor takes it when it gets there (batches reach the backend in
        // the order they were sent, so this is first come, first served).
        let reaches = self.now + self.us(self.path.rpc_us);
        let executor = (0..self.executors_free.len()).min_by_key(|&i| self.executors_free[i]).unwrap_or(0);
        let done = reaches.max(self.executors_free[executor]) + self.accelerator.cost_ns(rows);
        self.executors_free[executor] = done;
        self.batches.insert(id, InFlight { sent: self.now, requests, overran: false });
        let answered = done + self.us(self.path.rpc_us);
        if deadline > 0 && answered > deadline {
            // The most patient request's deadline: its callers are answered then.
            self.schedule(deadline, Event::CallDeadline { batch: id });
        }
        self.schedule(answered, Event::Answered { batch: id });
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
