//! One TF Serving target as the pool tracks it: its channel, its calls in flight (the balancing
//! criterion) and its health. Shared by `Arc`, so that a reload keeping a target hands the new
//! pool the same channel and counters; a target a reload drops lives on until the calls still
//! running on it finish, and then takes its metric series with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::Uri;

use super::Backend;
use crate::observe::Metrics;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) struct TargetState {
    pub backend: Backend,
    pub outstanding: AtomicUsize,
    health: Mutex<Health>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
pub(super) struct Health {
    pub down: bool,
    failures: u32,
    pub retry_at: Option<Instant>,
    /// Whether the target has an AVAILABLE version of the model (from health checks).
    pub serves: HashMap<String, bool>,
}

impl TargetState {
    /// Must run inside the tokio runtime (the channel spawns its worker there).
    pub fn new(uri: &Uri, metrics: Arc<Metrics>) -> Arc<TargetState> {
        let backend = Backend::connect_lazy(uri);
        metrics.backend_up.set(&[backend.target()], 1);
        metrics.backend_outstanding.set(&[backend.target()], 0);
        Arc::new(TargetState {
            backend,
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

    /// A transport failure: avoided for a backoff doubling from 50 ms to 5 s.
    pub fn mark_down(&self) {
        let mut health = self.health();
        health.failures = health.failures.saturating_add(1);
        let backoff = MIN_BACKOFF.saturating_mul(1u32 << health.failures.min(10).saturating_sub(1)).min(MAX_BACKOFF);
        health.retry_at = Some(Instant::now() + backoff);
        if !health.down {
            health.down = true;
            tracing::warn!(target = self.backend.target(), "backend target marked down");
        }
        self.metrics.backend_up.set(&[self.backend.target()], 0);
    }

    pub fn mark_up(&self) {
        let mut health = self.health();
        health.failures = 0;
        health.retry_at = None;
        if health.down {
            health.down = false;
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
