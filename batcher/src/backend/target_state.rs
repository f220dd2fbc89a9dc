//! One backend target as the pool tracks it: its channel, its calls in flight (the balancing
//! criterion) and its health. Shared by `Arc`, so that a reload keeping a target hands the new
//! pool the same channel and counters; a target a reload drops lives on until the calls still
//! running on it finish, and then takes its metric series with it.
//!
//! Health is a small state machine ([`Health`], pure, its clock passed in): a transport failure
//! puts the target down; while down it gets no call as long as another target is up, and once
//! its backoff (doubling from 50 ms to 5 s with each failure in a row) is over, one probe at a
//! time finds out whether it is back. So a dead target costs one failed call, not one per
//! backoff period, and a replica that comes back is found within about 5 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::Uri;

use super::{Backend, Protocol, TargetTls};
use crate::metrics::Metrics;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) struct TargetState {
    pub backend: Backend,
    /// How the target is secured: a pool keeps the target across a reload only when this is
    /// unchanged (rotated files build new connections).
    pub tls: Option<TargetTls>,
    pub outstanding: AtomicUsize,
    health: Mutex<Health>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
pub(super) struct Health {
    pub down: bool,
    failures: u32,
    /// Down: when a probe may next find out whether the target is back.
    retry_at: Option<Instant>,
    /// Down: a probe is on its way (one at a time).
    probing: bool,
    /// Whether the target has an AVAILABLE version of the model (from health checks).
    pub serves: HashMap<String, bool>,
}

impl Health {
    /// A transport failure at `now`; true when the target was up until then.
    pub fn failed(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        let backoff = MIN_BACKOFF.saturating_mul(1u32 << self.failures.min(10).saturating_sub(1)).min(MAX_BACKOFF);
        self.retry_at = Some(now + backoff);
        self.probing = false;
        !std::mem::replace(&mut self.down, true)
    }

    /// An answer from TF Serving (any status); true when the target was down until then.
    pub fn answered(&mut self) -> bool {
        self.failures = 0;
        self.retry_at = None;
        self.probing = false;
        std::mem::replace(&mut self.down, false)
    }

    /// Whether the target is down with its backoff over, and no probe on its way.
    pub fn due(&self, now: Instant) -> bool {
        self.down && !self.probing && self.retry_at.is_none_or(|at| at <= now)
    }

    /// A claimed probe that could not run.
    pub fn probe_ended(&mut self) {
        self.probing = false;
    }

    /// Whether a probe should start now; if so it is counted as started, so that only one runs.
    pub fn claim_probe(&mut self, now: Instant) -> bool {
        let due = self.due(now);
        self.probing |= due;
        due
    }
}

impl TargetState {
    /// Must run inside the tokio runtime (the channel spawns its worker there).
    pub fn new(uri: &Uri, tls: Option<TargetTls>, protocol: Protocol, metrics: Arc<Metrics>) -> Arc<TargetState> {
        let backend = Backend::connect_lazy(uri, tls.as_ref(), protocol, &metrics);
        metrics.backend_up.set(&[backend.target()], 1);
        metrics.backend_outstanding.set(&[backend.target()], 0);
        Arc::new(TargetState {
            backend,
            tls,
            outstanding: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
            metrics,
        })
    }

    /// Counts one call in flight until the returned guard drops. A guard, not a matching
    /// decrement after the call, because the caller's future may be dropped mid-call (a client
    /// disconnecting): the count must still come back down, or balancing avoids this target
    /// for ever after.
    pub fn call_started(&self) -> InFlight<'_> {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        self.metrics.backend_outstanding.add(&[self.backend.target()], 1);
        InFlight(self)
    }

    pub fn health(&self) -> MutexGuard<'_, Health> {
        // A poisoned lock only means a panic elsewhere; the flags are still sound.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A transport failure: down, probed again after a backoff.
    pub fn mark_down(&self) {
        if self.health().failed(Instant::now()) {
            tracing::warn!(target = self.backend.target(), "backend target marked down");
        }
        self.metrics.backend_up.set(&[self.backend.target()], 0);
    }

    /// Whether this target is secured as `tls` says (the same loaded files, the same name).
    pub fn secured_as(&self, tls: Option<&TargetTls>) -> bool {
        match (&self.tls, tls) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(&a.client, &b.client) || (a.client == b.client && a.server_name == b.server_name)
            }
            _ => false,
        }
    }

    pub fn mark_up(&self) {
        if self.health().answered() {
            tracing::info!(target = self.backend.target(), "backend target is up again");
        }
        self.metrics.backend_up.set(&[self.backend.target()], 1);
    }
}

impl Drop for TargetState {
    /// Reached only once no pool lists the target and no call runs on it: a target removed by a
    /// reload. (Re-added by a later reload while old calls still ran on it, it gets a state of
    /// its own, whose series come back with its next call or probe.)
    fn drop(&mut self) {
        let name = [self.backend.target()];
        self.metrics.backend_up.remove(&name);
        self.metrics.backend_outstanding.remove(&name);
        if let Some(state) = self.backend.tls_state() {
            state.forget();
        }
    }
}

/// One call counted in [`TargetState::outstanding`]; dropping it ends the call.
pub(super) struct InFlight<'a>(&'a TargetState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.backend_outstanding.add(&[self.0.backend.target()], -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_down_target_is_probed_once_per_backoff_and_the_backoff_grows() {
        let t0 = Instant::now();
        let mut health = Health::default();
        assert!(!health.due(t0), "an up target is never probed");
        assert!(health.failed(t0));
        let mut now = t0;
        for backoff in [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000] {
            assert!(!health.claim_probe(now + ms(backoff - 1)), "not before its backoff ({backoff} ms)");
            now += ms(backoff);
            assert!(health.claim_probe(now));
            assert!(!health.claim_probe(now + ms(60_000)), "one probe at a time");
            assert!(!health.failed(now + ms(1)), "already down");
            now += ms(1);
        }
        assert!(health.answered());
        assert!(!health.down && !health.due(now + ms(60_000)));
        // Back to the shortest backoff after an answer.
        health.failed(now);
        assert!(health.claim_probe(now + ms(50)));
    }
}
