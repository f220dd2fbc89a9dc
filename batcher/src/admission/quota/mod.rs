//! Per-caller quotas and rate limits (`[quotas]`): plans of limits, a token bucket (`rate`,
//! `burst`) and counts per calendar window (`requests`, `rows`), checked before a request joins
//! a batch queue. Ingress-neutral: [`Quotas::admit`] answers with a [`Standing`] (each ingress
//! writes its own headers or metadata from it) or a [`Refusal`] whose [`CoreError`] is
//! RESOURCE_EXHAUSTED with `retry_after` (429 in REST).
//!
//! Pure core, no I/O and no clock (`now` is an argument):
//! - [`limits`]: `"20/s"`, `"10000/day"`; [`calendar`]: UTC windows;
//! - [`decide`]: the token bucket and window counters, and the decision over all of them;
//! - [`plan`]: plans per model, the counters of one admission, the plan a header selects;
//! - [`standing`]: the draft-ietf-httpapi-ratelimit-headers fields.
//!
//! Shells: [`store`] (memory, Redis) and [`Quotas`] (this file): metrics, throttled logs, the
//! store kept across reloads.

pub mod calendar;
pub mod decide;
pub mod limits;
pub mod plan;
pub mod settings;
pub mod standing;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::warn;

use self::decide::Wait;
use self::plan::{Fallback, LimitSet};
pub use self::settings::{OnStoreFailure, QuotaSettings, StoreSetting};
use self::standing::seconds;
pub use self::standing::Standing;
use self::store::{Store, StoreError};
use crate::log_limit::LogLimit;
use crate::metrics::Metrics;
use crate::request::{Caller, Class, CoreError};
use crate::swap::Swap;

/// A request the quotas refused (or could not count, with `on_store_failure = "deny"`).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// RESOURCE_EXHAUSTED with `retry_after` (none when the request can never fit), or
    /// UNAVAILABLE when the store failed.
    pub error: CoreError,
    pub standing: Standing,
}

/// The quota settings in force and their store.
struct Active {
    settings: Arc<QuotaSettings>,
    store: Arc<Store>,
}

pub struct Quotas {
    active: Swap<Option<Active>>,
    metrics: Arc<Metrics>,
    plan_warnings: Mutex<LogLimit>,
    store_warnings: Mutex<LogLimit>,
}

const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// Longest `Retry-After` of a refusal for a full memory store, in seconds.
const STORE_FULL_MAX_RETRY_S: u64 = 60;

impl Quotas {
    /// Must run inside the tokio runtime (the store's tasks start here).
    pub fn new(settings: Option<&QuotaSettings>, metrics: Arc<Metrics>) -> Quotas {
        let active = settings.map(|settings| Active {
            settings: Arc::new(settings.clone()),
            store: Arc::new(Store::open(settings, &metrics)),
        });
        Quotas {
            active: Swap::new(active),
            metrics,
            plan_warnings: Mutex::new(LogLimit::new(WARNING_INTERVAL)),
            store_warnings: Mutex::new(LogLimit::new(WARNING_INTERVAL)),
        }
    }

    /// Applies reloaded settings; the store, and so every counter, is kept unless `store` (or,
    /// for Redis, `timeout_ms`) changed. Returns whether a new store was opened.
    pub fn reconfigure(&self, settings: Option<&QuotaSettings>) -> bool {
        let running = self.active.get();
        let running = (*running).as_ref().map(|active| active.store.clone());
        let kept = match (&running, settings) {
            (Some(store), Some(settings)) if store.serves(settings) => Some(store.clone()),
            _ => None,
        };
        if kept.is_none() {
            if let Some(store) = &running {
                store.retire();
            }
        }
        let Some(settings) = settings else {
            self.metrics.quota_store_up.remove(&[]);
            self.active.replace(Arc::new(None));
            return running.is_some();
        };
        let reopened = kept.is_none();
        let store = kept.unwrap_or_else(|| Arc::new(Store::open(settings, &self.metrics)));
        self.active.replace(Arc::new(Some(Active { settings: Arc::new(settings.clone()), store })));
        reopened
    }

    /// What an operator must fix for the store in force to work, if anything (for `/healthz`).
    pub fn problem(&self) -> Option<String> {
        (*self.active.get()).as_ref()?.store.problem()
    }

    /// The limits a caller of plan `named` has for `model`, without counting anything (for the
    /// `RateLimit-Policy` of answers that are not counted); `None`: not limited.
    pub fn limits(&self, named: Option<&str>, model: &str) -> Option<Arc<LimitSet>> {
        let active = self.active.get();
        let limits = (*active).as_ref()?.settings.limits(named, model).0?;
        (!limits.is_unlimited()).then(|| limits.clone())
    }

    /// Admits a request of `rows` rows by `caller` for `model`, or refuses it; counts it only
    /// if every limit has room. `Ok(None)`: the caller has no limits.
    pub async fn admit(&self, caller: &Caller, model: &str, rows: u64) -> Result<Option<Standing>, Refusal> {
        self.admit_at(caller, model, rows, store::now_us()).await.map_err(|mut refusal| {
            refusal.error = refusal.error.with_reason("quota");
            refusal
        })
    }

    /// The plan `caller`'s requests count against (`default` when none is configured).
    pub fn plan_of(&self, caller: &Caller) -> String {
        let active = self.active.get();
        match ((*active).as_ref(), caller.plan.as_deref()) {
            (Some(active), Some(named)) if active.settings.plans.contains_key(named) => named.to_string(),
            _ => plan::DEFAULT_PLAN.to_string(),
        }
    }

    /// The class (priority, weight) `caller`'s plan gives its requests in the batch queues.
    pub fn class(&self, caller: &Caller) -> Class {
        let active = self.active.get();
        (*active).as_ref().map_or_else(Class::default, |active| active.settings.class(caller.plan.as_deref()))
    }

    /// Charges `cost` of accelerator time to `caller`'s compute limits for `model`, once its
    /// call is answered; written in the background (nothing waits on it).
    pub fn charge(&self, caller: &Caller, model: &str, cost: Duration) {
        let active = self.active.get();
        let Some(active) = active.as_ref() else { return };
        let Some(limits) = active.settings.limits(caller.plan.as_deref(), model).0 else { return };
        let key = caller.quota_key();
        let now = store::now_us();
        let micros = u64::try_from(cost.as_micros()).unwrap_or(u64::MAX);
        let Some(charge) = limits.charge(&active.settings.key_prefix, &key, micros, now) else { return };
        let store = active.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.apply(&key, charge, now).await {
                tracing::debug!("a compute charge was not written: {e}");
            }
        });
    }

    /// [`Quotas::admit`] at a given time (microseconds since the epoch).
    pub async fn admit_at(
        &self,
        caller: &Caller,
        model: &str,
        rows: u64,
        now_us: u64,
    ) -> Result<Option<Standing>, Refusal> {
        let active = self.active.get();
        let Some(active) = active.as_ref() else { return Ok(None) };
        let settings = &active.settings;
        let (limits, fallback) = settings.limits(caller.plan.as_deref(), model);
        if let Some(fallback) = fallback {
            self.plan_fell_back(caller.plan.as_deref().unwrap_or_default(), fallback);
        }
        let Some(limits) = limits.filter(|limits| !limits.is_unlimited()) else {
            return Ok(None);
        };
        let key = caller.quota_key();
        let admission = limits.admission(&settings.key_prefix, &key, rows, now_us);
        match active.store.apply(&key, admission, now_us).await {
            Ok(decision) if decision.admitted => {
                self.metrics.quota_admitted.inc(&[&limits.plan]);
                Ok(Some(Standing::new(limits.clone(), decision.limits.into_iter().enumerate().collect())))
            }
            Ok(decision) => {
                let refusing: Vec<_> =
                    decision.limits.into_iter().enumerate().filter(|(_, state)| state.wait != Wait::No).collect();
                Err(self.refused(limits, refusing, rows))
            }
            Err(StoreError::Full { retry_after_us }) => Err(self.store_full(settings, limits, retry_after_us)),
            Err(error) => self.store_failed(settings, limits, &error),
        }
    }

    /// A new caller the memory store has no room for. Refused whatever `on_store_failure` says:
    /// admitting it uncounted would let any number of new callers (new addresses cost nothing)
    /// through with no limit at all.
    fn store_full(&self, settings: &QuotaSettings, limits: &Arc<LimitSet>, retry_after_us: u64) -> Refusal {
        self.metrics.quota_store_errors.inc(&["full"]);
        self.metrics.quota_refused.inc(&[&limits.plan, "store_full"]);
        let event = self.store_warnings.lock().unwrap_or_else(|e| e.into_inner()).event(std::time::Instant::now());
        if let Some(more) = event {
            warn!(
                "quota store memory: memory_max_keys ({}) records held, none of them expired: new callers are refused \
                 until one expires, callers already counted are served as before; raise memory_max_keys or use \
                 store = \"redis://...\" ({more} more refusals since the last warning)",
                settings.memory_max_keys
            );
        }
        // A hint, not a promise (another new caller may take the room first); capped, since a
        // reload raising memory_max_keys can make room long before the soonest expiry.
        let retry = seconds(retry_after_us).clamp(1, STORE_FULL_MAX_RETRY_S);
        let error = CoreError::exhausted(
            format!("quota store is full: no new caller can be counted now; retry in {retry} s"),
            retry as u32,
        );
        Refusal { error, standing: Standing::new(limits.clone(), Vec::new()) }
    }

    /// The refusal of a request by the limits in `refusing`: the wait is the longest of theirs.
    fn refused(&self, limits: &Arc<LimitSet>, refusing: Vec<(usize, decide::LimitState)>, rows: u64) -> Refusal {
        let wait = |state: &decide::LimitState| match state.wait {
            Wait::For(micros) => micros,
            Wait::No | Wait::Never => u64::MAX,
        };
        let binding = refusing.iter().max_by_key(|(_, state)| wait(state)).map(|(i, state)| (*i, *state));
        let (index, state) =
            binding.unwrap_or((0, decide::LimitState { remaining: 0, reset_us: 0, wait: Wait::Never }));
        let limit = limits.limits.get(index);
        let label = limit.map_or("unknown", |l| l.id());
        self.metrics.quota_refused.inc(&[&limits.plan, label]);
        let described = limit.map_or_else(String::new, |l| l.describe());
        let error = match state.wait {
            Wait::For(micros) => {
                let retry = seconds(micros).clamp(1, u64::from(u32::MAX)) as u32;
                CoreError::exhausted(
                    format!("quota exceeded: plan {} allows {described}; retry in {retry} s", limits.plan),
                    retry,
                )
            }
            Wait::No | Wait::Never => CoreError::new(
                tonic::Code::ResourceExhausted,
                format!(
                    "this request's {rows} rows exceed the whole quota of plan {} ({described}): it can never be admitted; send fewer rows per request",
                    limits.plan
                ),
            ),
        };
        Refusal { error, standing: Standing::new(limits.clone(), refusing) }
    }

    fn store_failed(
        &self,
        settings: &QuotaSettings,
        limits: &Arc<LimitSet>,
        error: &StoreError,
    ) -> Result<Option<Standing>, Refusal> {
        self.metrics.quota_store_errors.inc(&[error.reason()]);
        let decision = settings.on_store_failure;
        let event = self.store_warnings.lock().unwrap_or_else(|e| e.into_inner()).event(std::time::Instant::now());
        if let Some(more) = event {
            let outcome = match decision {
                OnStoreFailure::Allow => "admitted uncounted",
                OnStoreFailure::Deny => "refused",
            };
            warn!(
                "quota store {}: {error}; requests {outcome} (on_store_failure = \"{}\") ({more} more since the last warning)",
                settings.store.shown(),
                decision.as_str()
            );
        }
        let standing = Standing::new(limits.clone(), Vec::new());
        match decision {
            OnStoreFailure::Allow => {
                self.metrics.quota_admitted.inc(&[&limits.plan]);
                Ok(Some(standing))
            }
            OnStoreFailure::Deny => {
                self.metrics.quota_refused.inc(&[&limits.plan, "store_unavailable"]);
                let error = CoreError::unavailable(format!(
                    "the quota store cannot be reached ({error}); requests are refused meanwhile (on_store_failure = \"deny\")"
                ))
                .with_retry_after(1);
                Err(Refusal { error, standing })
            }
        }
    }

    fn plan_fell_back(&self, named: &str, fallback: Fallback) {
        self.metrics.quota_plan_fallbacks.inc(&[fallback.as_str()]);
        let event = self.plan_warnings.lock().unwrap_or_else(|e| e.into_inner()).event(std::time::Instant::now());
        if let Some(more) = event {
            let shown: String = named.chars().take(80).collect();
            let why = match fallback {
                Fallback::Unknown => "names no plan in [quotas.plans]",
                Fallback::Malformed => "is not a plan name (letters, digits, _ - . ; at most 64)",
            };
            warn!("X-Tfgate-Plan {shown:?} {why}: the default plan applies ({more} more since the last warning)");
        }
    }
}

#[cfg(test)]
mod tests;
