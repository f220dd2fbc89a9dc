//! The models the batcher has seen: one queue task each, started on first use with the settings
//! that apply to the model, and told of new settings when a reload changes them. A model not
//! asked for in [`IDLE_EXIT`] is forgotten; its task ends once its last request has left.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedSender};

use super::inbox::Msg;
use super::model_task::ModelTask;
use super::policy::{Dispatch, Limits};
use super::queue_slots::QueueSlots;
use super::BatchSettings;
use super::Shared;
use crate::metrics::Metrics;

/// How long a model may go without requests before its task is let go.
pub(super) const IDLE_EXIT: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub(super) struct ModelHandle {
    pub inbox: UnboundedSender<Msg>,
    /// `max_queue`, shared fairly between callers.
    pub queue_slots: Arc<QueueSlots>,
    pub settings: BatchSettings,
    last_used: Instant,
}

/// `[batching]`, `[models.NAME]` and the running model tasks, kept together so that a reload
/// and a model's first request never see different settings.
pub(super) struct Models {
    defaults: BatchSettings,
    overrides: BTreeMap<String, BatchSettings>,
    handles: HashMap<String, ModelHandle>,
    last_sweep: Instant,
}

impl Models {
    pub fn new(defaults: &BatchSettings, overrides: &BTreeMap<String, BatchSettings>) -> Models {
        Models {
            defaults: defaults.clone(),
            overrides: overrides.clone(),
            handles: HashMap::new(),
            last_sweep: Instant::now(),
        }
    }

    /// The model's task, started on first use (or again after it was let go).
    pub fn handle(&mut self, name: &str, shared: &Arc<Shared>) -> ModelHandle {
        let now = Instant::now();
        self.sweep(now);
        if let Some(handle) = self.handles.get_mut(name).filter(|h| !h.inbox.is_closed()) {
            handle.last_used = now;
            return handle.clone();
        }
        let settings = self.settings_for(name).clone();
        let (inbox, receiver) = mpsc::unbounded_channel();
        let task = ModelTask {
            model: name.to_string(),
            limits: limits(&settings),
            shared: shared.clone(),
            done: inbox.downgrade(),
        };
        tokio::spawn(task.run(receiver));
        let queue_slots = QueueSlots::new(settings.max_queue as usize);
        shared.metrics.max_batch_size.set(&[name], i64::from(settings.max_batch_size));
        let handle = ModelHandle { inbox, queue_slots, settings, last_used: now };
        self.handles.insert(name.to_string(), handle.clone());
        handle
    }

    /// Drops the handles of models idle for [`IDLE_EXIT`] (looked at once a minute at most):
    /// a model task lives as long as someone can send to it.
    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.last_sweep) < IDLE_EXIT / 5 {
            return;
        }
        self.last_sweep = now;
        self.handles.retain(|_, h| now.duration_since(h.last_used) < IDLE_EXIT);
    }

    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.handles.len()
    }

    /// Applies reloaded settings. Queued requests stay queued: they keep their deadline and go
    /// out in batches built with the new limits; new requests get the new timeout.
    pub fn reconfigure(
        &mut self,
        defaults: &BatchSettings,
        overrides: &BTreeMap<String, BatchSettings>,
        metrics: &Metrics,
    ) {
        self.defaults = defaults.clone();
        self.overrides = overrides.clone();
        let names: Vec<String> = self.handles.keys().cloned().collect();
        for name in names {
            let settings = self.settings_for(&name).clone();
            let Some(handle) = self.handles.get_mut(&name) else {
                continue;
            };
            if settings == handle.settings {
                continue;
            }
            let new_limits = limits(&settings);
            if new_limits != limits(&handle.settings) {
                let _ = handle.inbox.send(Msg::Reconfigure(new_limits));
            }
            handle.queue_slots.set_limit(settings.max_queue as usize);
            metrics.max_batch_size.set(&[&name], i64::from(settings.max_batch_size));
            tracing::info!(model = %name, "batching settings now {}", settings.describe());
            handle.settings = settings;
        }
    }

    fn settings_for(&self, name: &str) -> &BatchSettings {
        self.overrides.get(name).unwrap_or(&self.defaults)
    }
}

pub(super) fn limits(settings: &BatchSettings) -> Limits {
    Limits {
        max_batch_size: settings.max_batch_size as usize,
        dispatch: settings.dispatch,
        max_delay: match settings.dispatch {
            Dispatch::Adaptive => {
                Some(settings.max_delay.map_or(settings.latency_budget, |cap| cap.min(settings.latency_budget)))
            }
            Dispatch::Fixed => settings.max_delay,
        },
        max_inflight: settings.max_inflight_batches as usize,
        allowed_batch_sizes: settings.allowed_batch_sizes.iter().map(|&s| s as usize).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_model_task_ends_once_nothing_can_reach_it() {
        let config = crate::config::Config::parse(
            "listen = \"/tmp/x.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:1\"]\nhealth_interval_ms = 0\n",
        )
        .unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let pool = Arc::new(crate::swap::Swap::new(crate::backend::Pool::new(&config.backend, metrics.clone())));
        let shared = Arc::new(Shared {
            pool,
            signatures: Arc::new(crate::backend::SignatureCache::new(Duration::from_secs(60))),
            metrics,
            unbatchable: Default::default(),
            calls: Default::default(),
        });
        let mut models = Models::new(&config.batching, &config.models);
        let first = models.handle("m", &shared);
        assert_eq!(models.running(), 1);
        // Idle for longer than IDLE_EXIT: the next request for any model lets it go.
        let long_ago = Instant::now() - IDLE_EXIT - Duration::from_secs(1);
        models.handles.get_mut("m").unwrap().last_used = long_ago;
        models.last_sweep = long_ago;
        let other = models.handle("other", &shared);
        assert_eq!(models.running(), 1, "only the model in use is kept");
        // Each running task holds `shared`; two run now.
        let tasks = || Arc::strong_count(&shared) - 1;
        tokio::task::yield_now().await;
        assert_eq!(tasks(), 2, "a request still holding the handle keeps the task");
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(tasks(), 1, "the idle task ended");
        // A new request for the model starts a fresh one.
        let again = models.handle("m", &shared);
        tokio::task::yield_now().await;
        assert!(!again.inbox.is_closed());
        assert_eq!(tasks(), 2);
        drop(other);
    }
}
