//! Keeps the pool in force in line with `backend.grpc`: `http://` entries as written, each
//! `dns://NAME:PORT` entry as every address NAME resolved to last. One task per name resolves it
//! (`task`, through `resolve`) every `resolve_interval_ms`, sooner when the records' TTL is
//! shorter, and soon after one of its targets fails; an answer that changes the addresses builds
//! a successor pool (`Pool::succeed`: targets present in both keep their connection and state),
//! swapped in for new calls while calls in flight finish on the pool they started on, so a
//! removed replica stops getting batches at once and drops no call. A failed or empty resolution
//! keeps the last good addresses. The pure rules are in `plan` and `schedule`.
//!
//! A name that never resolved has no target: with no other target, calls are answered
//! UNAVAILABLE (503) until it does; the daemon starts all the same, as it does when a fixed
//! target is down, since replicas often come up after the gateway.

mod plan;
mod resolve;
mod schedule;
mod task;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::info;

use self::plan::Change;
use self::resolve::Answer;
use self::task::NameTask;
use super::health;
use super::pool::{Pool, PoolTarget};
use crate::backend::{BackendConfig, DnsName};
use crate::metrics::Metrics;
use crate::swap::Swap;

/// Owns the resolving tasks; they stop when it is dropped.
pub struct Discovery {
    keeper: Arc<Keeper>,
}

/// What the tasks report to.
struct Keeper {
    pool: Arc<Swap<Pool>>,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Names with no resolution attempted yet (for [`Discovery::first_answers`]).
    unanswered: watch::Sender<usize>,
}

struct State {
    backend: BackendConfig,
    /// Bumped by each reconfiguration: a task of an older one reports nothing more.
    generation: u64,
    names: BTreeMap<DnsName, Known>,
    tasks: Vec<JoinHandle<()>>,
}

struct Known {
    /// The last good answer's targets.
    addresses: Vec<SocketAddr>,
    answered: bool,
    /// Shared with the pool's targets of this name.
    resolve_again: Arc<Notify>,
}

impl Discovery {
    /// The pool of `backend` (its URLs now, its names once they resolve) and the tasks that
    /// resolve the names. Must run inside the tokio runtime.
    pub fn start(backend: &BackendConfig, metrics: Arc<Metrics>) -> Discovery {
        let state = State {
            backend: backend.clone(),
            generation: 0,
            names: known_names(backend, BTreeMap::new()),
            tasks: Vec::new(),
        };
        let pool = Arc::new(Pool::with_targets(pool_targets(&state), backend.timeout, metrics.clone()));
        if let Some(interval) = backend.health_interval {
            health::spawn(&pool, interval);
        }
        let (unanswered, _) = watch::channel(state.names.len());
        let keeper =
            Arc::new(Keeper { pool: Arc::new(Swap::from_arc(pool)), metrics, state: Mutex::new(state), unanswered });
        let mut state = keeper.lock();
        keeper.show_targets(&state);
        state.tasks = spawn_tasks(&keeper, &state);
        drop(state);
        Discovery { keeper }
    }

    /// The pool in force, replaced as names resolve and reloads apply.
    pub fn pool(&self) -> Arc<Swap<Pool>> {
        self.keeper.pool.clone()
    }

    /// Applies a reloaded `[backend]`: a new pool at once (names still listed keep their last
    /// addresses), and fresh tasks for the names, which resolve them at once (with the new
    /// `resolver`).
    pub fn reconfigure(&self, backend: &BackendConfig) {
        let mut state = self.keeper.lock();
        state.generation += 1;
        for task in state.tasks.drain(..) {
            task.abort();
        }
        let previous = std::mem::take(&mut state.names);
        for name in previous.keys().filter(|name| !backend.dns_names().contains(name)) {
            self.keeper.metrics.backend_targets.remove(&[&name.to_string()]);
        }
        state.names = known_names(backend, previous);
        state.backend = backend.clone();
        self.keeper.install(&state);
        self.keeper.show_targets(&state);
        self.keeper.count_unanswered(&state);
        state.tasks = spawn_tasks(&self.keeper, &state);
    }

    /// Waits until every name has had a first answer (good or not), at most `timeout`; whether
    /// they all had.
    pub async fn first_answers(&self, timeout: Duration) -> bool {
        let mut unanswered = self.keeper.unanswered.subscribe();
        let answered = tokio::time::timeout(timeout, unanswered.wait_for(|n| *n == 0)).await;
        matches!(answered, Ok(Ok(_)))
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for task in self.keeper.lock().tasks.drain(..) {
            task.abort();
        }
    }
}

impl Keeper {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-updated in a way that matters: at worst a
        // name's addresses are one answer old.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one resolution of `name` into account; how many targets the name has now, or `None`
    /// when the task is from an older configuration (it should end).
    fn record(&self, generation: u64, name: &DnsName, answer: &Answer) -> Option<usize> {
        let mut state = self.lock();
        if state.generation != generation {
            return None;
        }
        let known = state.names.get_mut(name)?;
        let first = !known.answered;
        known.answered = true;
        let label = name.to_string();
        let (result, change) = match answer {
            Answer::Addresses { addresses, .. } => {
                let change = Change::between(&known.addresses, addresses);
                known.addresses.clone_from(addresses);
                ("ok", change)
            }
            Answer::Empty(_) => ("empty", Change::default()),
            Answer::Failed(_) => ("error", Change::default()),
        };
        let targets = known.addresses.len();
        self.metrics.backend_resolutions.inc(&[&label, result]);
        if !change.is_empty() {
            info!("backend {name}: {targets} target(s) now ({change})");
            self.metrics.backend_targets.set(&[&label], targets as i64);
            self.install(&state);
        }
        if first {
            self.count_unanswered(&state);
        }
        Some(targets)
    }

    /// Swaps in a pool built from the current state.
    fn install(&self, state: &State) {
        let pool = Arc::new(Pool::succeed(&self.pool.get(), pool_targets(state), state.backend.timeout));
        if let Some(interval) = state.backend.health_interval {
            health::spawn(&pool, interval);
        }
        self.pool.replace(pool);
    }

    fn show_targets(&self, state: &State) {
        for (name, known) in &state.names {
            self.metrics.backend_targets.set(&[&name.to_string()], known.addresses.len() as i64);
        }
    }

    fn count_unanswered(&self, state: &State) {
        self.unanswered.send_replace(state.names.values().filter(|k| !k.answered).count());
    }
}

/// The names of `backend`, with what `previous` knew of those it lists too.
fn known_names(backend: &BackendConfig, mut previous: BTreeMap<DnsName, Known>) -> BTreeMap<DnsName, Known> {
    backend
        .dns_names()
        .into_iter()
        .map(|name| {
            let known = previous.remove(name).unwrap_or_else(|| Known {
                addresses: Vec::new(),
                answered: false,
                resolve_again: Arc::new(Notify::new()),
            });
            (name.clone(), known)
        })
        .collect()
}

fn pool_targets(state: &State) -> Vec<PoolTarget> {
    let addresses = |name: &DnsName| state.names.get(name).map(|k| k.addresses.clone()).unwrap_or_default();
    plan::pool_targets(&state.backend.grpc, state.backend.dns_over_tls, addresses)
        .into_iter()
        .map(|(uri, name)| PoolTarget {
            tls: state.backend.target_tls(&uri, name),
            protocol: state.backend.protocol,
            on_failure: name.and_then(|n| state.names.get(n)).map(|k| k.resolve_again.clone()),
            uri,
        })
        .collect()
}

fn spawn_tasks(keeper: &Arc<Keeper>, state: &State) -> Vec<JoinHandle<()>> {
    state
        .names
        .iter()
        .map(|(name, known)| {
            let task = NameTask {
                name: name.clone(),
                server: state.backend.resolver,
                interval: state.backend.resolve_interval,
                resolve_again: known.resolve_again.clone(),
                generation: state.generation,
                keeper: Arc::downgrade(keeper),
            };
            tokio::spawn(task.run())
        })
        .collect()
}
