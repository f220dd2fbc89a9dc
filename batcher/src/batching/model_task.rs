//! The task that owns one model's queue: it feeds arrivals, cancellations and finished batches
//! to the pure [`ModelQueue`], answers expired requests with 504, and starts each batch the
//! policy releases as a task of its own (so joining tensors and the gRPC call never hold up the
//! queue). Messages come in one channel; bursts are drained before deciding, so requests that
//! arrived together can leave together. Waits use a microsecond timer (`timer`).
//!
//! The task ends when nothing can send to it any more: its handle was dropped from the model map
//! after a long idle time (see `models`), and no request or batch of it is still in flight. It
//! keeps only a weak sender to itself for that reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, WeakUnboundedSender};

use super::backend_call::{self, ReadyBatch, ReadyPart};
use super::inbox::{Msg, Submission};
use super::key::GroupKey;
use super::policy::{padded_size, Admission, Batch, Limits, ModelQueue, Next, Reason, RequestId};
use super::queue_slots::QueueSlot;
use super::timer::Timer;
use super::{RequestData, Shared};
use crate::request::{Code, CoreError};

struct Entry {
    data: Arc<RequestData>,
    _permit: QueueSlot,
    arrived: Instant,
}

pub(super) struct ModelTask {
    pub model: String,
    pub limits: Limits,
    pub shared: Arc<Shared>,
    /// For the batches to report back on (weak: see the module doc).
    pub done: WeakUnboundedSender<Msg>,
}

impl ModelTask {
    pub async fn run(mut self, mut inbox: UnboundedReceiver<Msg>) {
        let mut queue = ModelQueue::new(self.limits.clone());
        let mut entries: HashMap<RequestId, Entry> = HashMap::new();
        let mut timer = Timer::new();
        loop {
            let now = Instant::now();
            for (id, rows_sent) in queue.expire(now) {
                if let Some(entry) = entries.remove(&id) {
                    self.expired(&entry, rows_sent);
                }
            }
            let wake = loop {
                match queue.next(now) {
                    Next::Dispatch(batch) => {
                        let arrived = batch.oldest_arrival;
                        self.start(batch, &mut entries, now.saturating_duration_since(arrived))
                    }
                    Next::Late(late) => {
                        for (id, rows_sent) in late {
                            if let Some(entry) = entries.remove(&id) {
                                self.late(&entry, rows_sent);
                            }
                        }
                    }
                    Next::WaitUntil(at) => break Some(at),
                    Next::Idle => break None,
                }
            };
            self.publish(&queue);
            let message = match wake {
                Some(at) => {
                    timer.arm(at);
                    tokio::select! {
                        message = inbox.recv() => message,
                        () = timer.fired() => continue,
                    }
                }
                None => inbox.recv().await,
            };
            let Some(message) = message else { return };
            self.handle(message, &mut queue, &mut entries);
            while let Ok(message) = inbox.try_recv() {
                self.handle(message, &mut queue, &mut entries);
            }
        }
    }

    fn handle(&mut self, message: Msg, queue: &mut ModelQueue<GroupKey>, entries: &mut HashMap<RequestId, Entry>) {
        match message {
            Msg::Submit(submission) => {
                let Submission { arrival, data, permit } = *submission;
                let (id, arrived, deadline) = (arrival.id, arrival.arrived, arrival.deadline);
                match queue.push(arrival, Instant::now()) {
                    Admission::Queued => {
                        entries.insert(id, Entry { data, _permit: permit, arrived });
                    }
                    Admission::Refused { retry_after } => self.refused(&data, deadline, retry_after),
                }
            }
            Msg::Cancel { id, counted } => {
                if queue.cancel(id) {
                    entries.remove(&id);
                    if counted {
                        self.reject("cancelled");
                    }
                }
            }
            Msg::Done { batch, latency, abandoned: false } => queue.batch_done(batch, latency),
            Msg::Done { batch, abandoned: true, .. } => queue.batch_abandoned(batch, Instant::now()),
            Msg::Reconfigure(limits) => {
                queue.set_limits(limits.clone());
                self.limits = limits;
            }
        }
    }

    /// Hands a released batch to a task of its own.
    fn start(&self, batch: Batch<GroupKey>, entries: &mut HashMap<RequestId, Entry>, oldest_wait: Duration) {
        let now = Instant::now();
        let metrics = &self.shared.metrics;
        let mut parts = Vec::with_capacity(batch.parts.len());
        for part in batch.parts {
            let Some(entry) = entries.get(&part.id) else {
                continue;
            };
            let (data, arrived) = (entry.data.clone(), entry.arrived);
            if part.last {
                entries.remove(&part.id);
            }
            // A client that left after the policy chose it: its rows are not sent. (Its
            // cancellation message removes any rows still queued and counts it, unless these
            // were its last rows.)
            if data.reply.is_closed() {
                if part.last {
                    self.reject("cancelled");
                }
                continue;
            }
            if part.rows.start == 0 {
                metrics
                    .queue_delay_seconds
                    .observe(&[&self.model], now.saturating_duration_since(arrived).as_secs_f64());
            }
            parts.push(ReadyPart { data, rows: part.rows });
        }
        let rows: usize = parts.iter().map(|p| p.rows.len()).sum();
        // Whoever released this batch holds a sender to this task, so this upgrade succeeds.
        let Some(done) = self.done.upgrade() else {
            return;
        };
        if parts.is_empty() {
            let _ = done.send(Msg::Done { batch: batch.id, latency: None, abandoned: false });
            return;
        }
        let alone = batch.reason == Reason::Alone;
        let padded_rows = if alone { rows } else { padded_size(rows, &self.limits.allowed_batch_sizes) };
        let model = [self.model.as_str()];
        metrics.batches.inc(&[&self.model, batch.reason.as_str()]);
        metrics.batch_rows.observe(&model, rows as f64);
        if padded_rows > rows {
            metrics.batch_padding_rows.add(&model, (padded_rows - rows) as u64);
        }
        tracing::debug!(
            model = %self.model,
            rows,
            requests = parts.len(),
            reason = batch.reason.as_str(),
            waited_us = oldest_wait.as_micros() as u64,
            "batch released"
        );
        let ready = ReadyBatch {
            parts,
            alone,
            allowed_batch_sizes: self.limits.allowed_batch_sizes.clone(),
            id: batch.id,
            cost: batch.cost,
        };
        let shared = self.shared.clone();
        // The call's future (6.5 KiB: the pool's retries, tonic's call) is built on the task's
        // first poll and boxed there: spawned as it is, it was copied whole at each step of
        // tokio's spawn.
        tokio::spawn(async move { Box::pin(backend_call::run(shared, ready, done)).await });
    }

    fn expired(&self, entry: &Entry, rows_sent: usize) {
        self.reject("timeout");
        let waited = entry.arrived.elapsed().as_millis();
        let sent = if rows_sent == 0 {
            "it was not sent to the model".to_string()
        } else {
            format!("{rows_sent} of its {} rows had been sent to the model, the rest were not", entry.data.rows)
        };
        let _ = entry.data.reply.send(Err(CoreError::new(
            Code::DeadlineExceeded,
            format!(
                "request to model {} timed out after {waited} ms in the batching queue (timeout_ms); {sent}",
                self.model
            ),
        )
        .with_reason("timeout")));
    }

    /// A request that cannot be answered before its deadline, refused as it arrives.
    fn refused(&self, data: &RequestData, deadline: Instant, retry_after: Duration) {
        self.reject("deadline");
        let allowed = deadline.saturating_duration_since(data.arrived).as_millis();
        let seconds = u32::try_from(retry_after.as_secs().max(1)).unwrap_or(u32::MAX);
        let _ = data.reply.send(Err(CoreError::unavailable(format!(
            "model {} cannot answer this request within its deadline ({allowed} ms): the queue ahead of it and \
             the model's cost would take longer; retry later",
            self.model
        ))
        .with_retry_after(seconds)
        .with_reason("deadline")));
    }

    /// A request whose rows could not finish before its deadline even if sent now.
    fn late(&self, entry: &Entry, rows_sent: usize) {
        self.reject("late");
        let sent = if rows_sent == 0 { String::new() } else { format!("; {rows_sent} of its rows had been sent") };
        let _ = entry.data.reply.send(Err(CoreError::new(
            Code::DeadlineExceeded,
            format!(
                "request to model {} could not be answered before its deadline, so it was not sent to the model{sent}",
                self.model
            ),
        )
        .with_reason("late")));
    }

    fn reject(&self, reason: &str) {
        self.shared.metrics.rejected.inc(&[&self.model, reason]);
    }

    fn publish(&self, queue: &ModelQueue<GroupKey>) {
        let metrics = &self.shared.metrics;
        let model = [self.model.as_str()];
        metrics.queue_requests.set(&model, queue.queued_requests() as i64);
        metrics.queue_rows.set(&model, queue.queued_rows() as i64);
        metrics.inflight_batches.set(&model, queue.inflight() as i64);
    }
}
