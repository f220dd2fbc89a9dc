//! The models the batcher has seen: one queue task each, started on first use with the settings
//! that apply to the model, and told of new settings when a reload changes them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::Semaphore;

use super::model_task::{ModelTask, Msg};
use super::policy::Limits;
use super::Shared;
use crate::config::{BatchSettings, Config};

#[derive(Clone)]
pub(super) struct ModelHandle {
    pub inbox: UnboundedSender<Msg>,
    /// `max_queue` permits.
    pub queue_slots: Arc<Semaphore>,
    pub settings: BatchSettings,
}

/// `[batching]`, `[models.NAME]` and the running model tasks, kept together so that a reload
/// and a model's first request never see different settings.
pub(super) struct Models {
    defaults: BatchSettings,
    overrides: BTreeMap<String, BatchSettings>,
    handles: HashMap<String, ModelHandle>,
}

impl Models {
    pub fn new(config: &Config) -> Models {
        Models { defaults: config.batching.clone(), overrides: config.models.clone(), handles: HashMap::new() }
    }

    /// The model's task, started on first use.
    pub fn handle(&mut self, name: &str, shared: &Arc<Shared>) -> ModelHandle {
        if let Some(handle) = self.handles.get(name) {
            return handle.clone();
        }
        let settings = self.settings_for(name).clone();
        let (inbox, receiver) = mpsc::unbounded_channel();
        let task = ModelTask {
            model: name.to_string(),
            limits: limits(&settings),
            shared: shared.clone(),
            done: inbox.clone(),
        };
        tokio::spawn(task.run(receiver));
        let handle =
            ModelHandle { inbox, queue_slots: Arc::new(Semaphore::new(settings.max_queue as usize)), settings };
        self.handles.insert(name.to_string(), handle.clone());
        handle
    }

    /// Applies reloaded settings. Queued requests stay queued: they keep their deadline and go
    /// out in batches built with the new limits; new requests get the new timeout.
    pub fn reconfigure(&mut self, config: &Config) {
        self.defaults = config.batching.clone();
        self.overrides = config.models.clone();
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
            resize_queue(&handle.queue_slots, handle.settings.max_queue, settings.max_queue);
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
        max_delay: settings.max_delay,
        max_inflight: settings.max_inflight_batches as usize,
        allowed_batch_sizes: settings.allowed_batch_sizes.iter().map(|&s| s as usize).collect(),
    }
}

/// Changes the queue bound in place. Permits held by queued requests return to this same
/// semaphore, so a smaller bound takes the free permits now and the rest as the queue drains
/// (tokio's semaphore serves the waiting acquisition first), never letting more requests in.
fn resize_queue(slots: &Arc<Semaphore>, old: u32, new: u32) {
    if new > old {
        slots.add_permits((new - old) as usize);
    } else if new < old {
        let deficit = (old - new) as usize;
        let taken = slots.forget_permits(deficit);
        let rest = deficit - taken;
        if rest > 0 {
            let slots = slots.clone();
            tokio::spawn(async move {
                if let Ok(permits) = slots.acquire_many_owned(rest as u32).await {
                    permits.forget();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_queue_bound_follows_the_settings() {
        let slots = Arc::new(Semaphore::new(4));
        resize_queue(&slots, 4, 6);
        assert_eq!(slots.available_permits(), 6);
        // Three requests queued, then the bound shrinks to 2: none more may enter, and the bound
        // is 2 once they have left.
        let held: Vec<_> = (0..3).map(|_| slots.clone().try_acquire_owned().unwrap()).collect();
        resize_queue(&slots, 6, 2);
        assert_eq!(slots.available_permits(), 0);
        tokio::task::yield_now().await;
        drop(held);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.available_permits(), 2);
    }
}
