//! Active health checks: every `backend.health_interval_ms`, each target is asked for the
//! GetModelStatus of every model served so far. Any answer from TF Serving (even NOT_FOUND)
//! means the target is up; whether it has an AVAILABLE version of a model steers that model's
//! calls to targets that do. A transport failure marks the target down, like a failed call.

use std::sync::Arc;
use std::time::Duration;

use tfgate_proto::tensorflow::serving::model_version_status::State;

use super::error::is_transport_failure;
use super::{status_request, with_deadline, Pool};
use crate::target::{ModelTarget, VersionRef};

/// Longest a single health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Asked when no model is known yet: any answer proves the target is alive.
const PROBE_MODEL: &str = "tfgate-health-probe";

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
            for index in 0..pool.targets.len() {
                probe(&pool, index, interval.min(PROBE_TIMEOUT)).await;
            }
        }
    });
}

async fn probe(pool: &Pool, index: usize, timeout: Duration) {
    let mut models = pool.known_models();
    if models.is_empty() {
        models.push(PROBE_MODEL.to_string());
    }
    let backend = pool.targets[index].backend.clone();
    for model in models {
        let target = ModelTarget { model: model.clone(), version: VersionRef::Latest };
        let request = with_deadline(status_request(&target), timeout);
        let answer = tokio::time::timeout(timeout, backend.model_status(request)).await;
        match answer {
            Ok(Ok(status)) => {
                pool.mark_up(index);
                let available = status.model_version_status.iter().any(|v| v.state == State::Available as i32);
                pool.set_serves(index, &model, available);
            }
            Ok(Err(status)) if !is_transport_failure(&status) => {
                pool.mark_up(index);
                if status.code() == tonic::Code::NotFound {
                    pool.set_serves(index, &model, false);
                }
            }
            Ok(Err(_)) | Err(_) => {
                pool.mark_down(index);
                return;
            }
        }
    }
}
