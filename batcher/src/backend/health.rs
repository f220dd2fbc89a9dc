//! Active health checks: every `backend.health_interval_ms`, each target is asked whether it
//! has every model served so far ready (TF Serving: GetModelStatus; a v2 server: ModelReady).
//! Any answer (even NOT_FOUND) means the target is up; whether the model is ready (TF Serving:
//! an AVAILABLE version) steers that model's calls to targets that do. Before any model is known
//! the target is asked whether it answers at all (TF Serving: a placeholder model's status; v2:
//! ServerReady). A transport failure marks the target down, like a failed call. The same probe,
//! made alone, finds out whether a target that is down is back (`reprobe`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::error::is_transport_failure;
use super::target_state::TargetState;
use super::Pool;

/// Longest a single health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the periodic checks of `pool`; they end with the pool (replaced by a reload, once its
/// last call has finished) or with the runtime.
pub fn spawn(pool: &Arc<Pool>, interval: Duration) {
    let pool = Arc::downgrade(pool);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            // All targets at once: one after another, each unreachable address (a probe that
            // times out) would hold up the checks of the rest.
            let mut probes = JoinSet::new();
            let models = pool.known_models();
            for (target, on_failure) in pool.targets.iter().zip(&pool.on_failure) {
                let (target, models, on_failure) = (target.clone(), models.clone(), on_failure.clone());
                probes.spawn(async move {
                    probe(&target, models, interval.min(PROBE_TIMEOUT), on_failure.as_deref()).await
                });
            }
            drop(pool);
            while probes.join_next().await.is_some() {}
        }
    });
}

/// A probe of a target that is down, its backoff over (claimed by the pool): it brings the target
/// back, or sets its next backoff, without a client's call paying for either.
pub(super) fn reprobe(target: Arc<TargetState>, models: Vec<String>, on_failure: Option<Arc<Notify>>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move { probe(&target, models, PROBE_TIMEOUT, on_failure.as_deref()).await });
        }
        // Outside the runtime no probe can run: the next call's choice claims one again.
        Err(_) => target.health().probe_ended(),
    }
}

/// Whether each of `models` is ready (whether the target answers at all when none is known):
/// any answer marks the target up, and whether a model is ready steers its calls; a transport
/// failure marks it down and tells `on_failure` (the `dns://` name is resolved again).
async fn probe(target: &TargetState, models: Vec<String>, timeout: Duration, on_failure: Option<&Notify>) {
    let down = || {
        target.mark_down();
        if let Some(resolve_again) = on_failure {
            resolve_again.notify_one();
        }
    };
    if models.is_empty() {
        match tokio::time::timeout(timeout, target.backend.answers(timeout)).await {
            Ok(Ok(())) => target.mark_up(),
            Ok(Err(_)) | Err(_) => down(),
        }
        return;
    }
    for model in models {
        let answer = tokio::time::timeout(timeout, target.backend.model_ready(&model, timeout)).await;
        match answer {
            Ok(Ok(ready)) => {
                target.mark_up();
                target.health().serves.insert(model, ready);
            }
            Ok(Err(status)) if !is_transport_failure(&status) => {
                target.mark_up();
                if status.code() == tonic::Code::NotFound {
                    target.health().serves.insert(model, false);
                }
            }
            Ok(Err(_)) | Err(_) => return down(),
        }
    }
}
