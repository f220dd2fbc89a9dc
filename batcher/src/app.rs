//! Everything a request handler needs, built at start-up and shared by all connections. The
//! parts a reload may change (the configuration, the backend pool, the REST passthrough) are
//! [`Swap`]s: a request works with the snapshot it started with.

use std::sync::Arc;

use crate::admission::{MemoryBudget, Quotas, StoreSetting};
use crate::backend::passthrough::RestPassthrough;
use crate::backend::{Discovery, Pool, SignatureCache, SIGNATURE_TTL};
use crate::batching::Batcher;
use crate::config::{Config, ReloadPlan};
use crate::metrics::Metrics;
use crate::observe::Logs;
use crate::row_cache::RowCaches;
use crate::swap::Swap;

/// How often `[backend.tls]`'s files are checked for a change: a stat of each, cheap.
const TLS_FILES_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

pub struct App {
    config: Swap<Config>,
    /// TF Serving over gRPC: every `backend.grpc` target, `dns://` names as last resolved.
    pool: Arc<Swap<Pool>>,
    /// Replaces `pool` as names resolve and reloads apply.
    discovery: Discovery,
    /// Classify/regress forwarding, when `backend.rest` is set.
    passthrough: Swap<Option<RestPassthrough>>,
    pub signatures: Arc<SignatureCache>,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    /// Request bytes held at once, across all requests.
    pub memory: MemoryBudget,
    /// The audit and prediction logs.
    pub logs: Logs,
    /// Per-caller plans of limits; their counters outlive reloads.
    pub quotas: Arc<Quotas>,
    /// `[models.NAME] row_cache`: each model's cached rows; a reload keeps a model's cache
    /// while its settings stay the same.
    pub row_caches: RowCaches,
}

impl App {
    /// Must run inside the tokio runtime (the gRPC channels and the health checks spawn their
    /// tasks there). Fails when a log's file or directory cannot be written.
    pub fn new(config: Config) -> Result<App, String> {
        let metrics = Arc::new(Metrics::default());
        metrics.start_time.set(&[], crate::clock::unix_seconds(std::time::SystemTime::now()));
        // Loss counters start at 0 for every reason: a series that appears with its first
        // losses has no earlier sample, so `increase()` (the alerts of
        // deploy/prometheus/tfgate.rules.yml) would miss exactly those.
        for reason in ["queue_full", "write_error", "closed"] {
            metrics.audit_dropped.add(&[reason], 0);
        }
        for reason in ["queue_full", "write_error", "invalid", "closed"] {
            metrics.prediction_log_dropped.add(&[reason], 0);
        }
        let logs = Logs::start(&config.logs, metrics.clone())?;
        let discovery = Discovery::start(&config.backend, metrics.clone());
        let pool = discovery.pool();
        let signatures = Arc::new(SignatureCache::new(SIGNATURE_TTL));
        let batcher = Batcher::new(&config.batching, &config.models, pool.clone(), signatures.clone(), metrics.clone());
        let passthrough = Swap::new(config.backend.rest.as_ref().map(RestPassthrough::new));
        let memory = MemoryBudget::new(config.max_body_bytes_in_flight);
        let quotas = Arc::new(Quotas::new(config.quotas.as_ref(), metrics.clone()));
        let row_caches = RowCaches::new(&config.row_caches, metrics.clone());
        let app = App {
            config: Swap::new(config),
            pool,
            discovery,
            passthrough,
            signatures,
            batcher,
            metrics,
            memory,
            logs,
            quotas,
            row_caches,
        };
        app.show_certificates(&app.config());
        Ok(app)
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// What `/healthz` lists under `ok`: what an operator must fix.
    pub fn problems(&self) -> Vec<String> {
        let pool = self.pool.get();
        let mut problems: Vec<String> = pool
            .tls_failures()
            .into_iter()
            .map(|(target, failure)| format!("backend {target}: TLS: {}", failure.message))
            .collect();
        problems.extend(self.quotas.problem());
        problems
    }

    /// Publishes the configured certificates' expiry and warns about those expired or close to it.
    fn show_certificates(&self, config: &Config) {
        let now = std::time::SystemTime::now();
        let redis_tls = config.quotas.as_ref().and_then(|q| match &q.store {
            StoreSetting::Redis(target) => target.tls.clone(),
            StoreSetting::Memory => None,
        });
        for (section, tls) in [("backend.tls", config.backend.tls.clone()), ("quotas", redis_tls)] {
            if let Some(tls) = &tls {
                for warning in tls.expiry_warnings(section, now) {
                    tracing::warn!("{warning}");
                }
            }
            let expiries = [
                ("ca_file", tls.as_ref().and_then(|t| t.ca_not_after)),
                ("cert_file", tls.as_ref().and_then(|t| t.cert_not_after)),
            ];
            for (file, at) in expiries {
                let key = format!("{section}.{file}");
                match at {
                    Some(at) => self.metrics.certificate_expiry.set(&[&key], crate::tls::expiry::unix_seconds(at)),
                    None => self.metrics.certificate_expiry.remove(&[&key]),
                }
            }
        }
    }

    /// Every few seconds, reloads `[backend.tls]`'s files when one changed on disk (a rotated
    /// certificate), as a SIGHUP would: new connections use them, calls in flight finish on the
    /// old ones. A file that does not load leaves the running ones in force.
    pub fn watch_tls_files(self: &Arc<App>) {
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut failed_for: Option<crate::tls::TlsFiles> = None;
            loop {
                tokio::time::sleep(TLS_FILES_CHECK).await;
                let Some(app) = app.upgrade() else { return };
                let running = app.config();
                let Some(tls) = running.backend.tls.as_ref().filter(|tls| tls.files_changed()) else { continue };
                match crate::tls::ClientTls::load(&tls.files, "backend.tls", crate::backend::GRPC_ALPN) {
                    Ok(loaded) if loaded == **tls => {}
                    Ok(loaded) => {
                        let mut new = (*running).clone();
                        new.backend.tls = Some(Arc::new(loaded));
                        app.apply(new);
                        failed_for = None;
                        tracing::info!("backend.tls: a file changed on disk; new connections use it");
                    }
                    // Reported once per change (a rotation writes files one at a time).
                    Err(e) if failed_for.as_ref() != Some(&tls.files) => {
                        tracing::warn!(
                            "backend.tls: a file changed on disk but does not load, the loaded ones stay in force: {e}"
                        );
                        failed_for = Some(tls.files.clone());
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// The backend pool in force.
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.get()
    }

    /// Waits until every `dns://` name has had a first answer, at most `timeout`; whether they
    /// all had.
    pub async fn first_answers(&self, timeout: std::time::Duration) -> bool {
        self.discovery.first_answers(timeout).await
    }

    pub fn passthrough(&self) -> Arc<Option<RestPassthrough>> {
        self.passthrough.get()
    }

    /// Applies a reloaded (already valid) configuration: batching settings, backends, logs and
    /// quota plans now, for requests and batches from now on; calls in flight finish on the pool they started
    /// on. Returns the plan, for the log (listener changes are in `restart_needed`).
    pub fn apply(&self, new: Config) -> ReloadPlan {
        let running = self.config.get();
        let plan = ReloadPlan::between(&running, &new);
        let new = ReloadPlan::running_after(&running, new);
        if plan.grpc {
            self.discovery.reconfigure(&new.backend);
            // Other targets may serve other versions: learn the signatures again.
            self.signatures.clear();
        }
        if plan.rest {
            let passthrough = new.backend.rest.as_ref().map(RestPassthrough::new);
            self.passthrough.replace(Arc::new(passthrough));
        }
        if plan.batching {
            self.batcher.reconfigure(&new.batching, &new.models);
        }
        // Every SIGHUP reopens the logs' files: it is logrotate's signal too.
        self.logs.reopen(&new.logs);
        if plan.quotas {
            self.quotas.reconfigure(new.quotas.as_ref());
        }
        self.row_caches.reconfigure(&new.row_caches);
        self.show_certificates(&new);
        self.config.replace(Arc::new(new));
        plan
    }
}
