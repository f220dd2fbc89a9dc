//! The daemon's two request logs, as one service for the ingresses: started from the
//! configuration, reopened on every SIGHUP (logrotate's signal, and how reloaded settings take
//! effect), closed after the last request at shutdown.

use std::sync::Arc;

use super::audit::{AuditLog, AuditSettings};
use super::prediction_log::{PredictionLog, PredictionLogSettings};
use crate::metrics::Metrics;
use crate::swap::Swap;

/// `[audit]` and `[prediction_log]`, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogsConfig {
    pub audit: Option<AuditSettings>,
    pub prediction_log: Option<PredictionLogSettings>,
}

pub struct Logs {
    audit: Swap<Option<AuditLog>>,
    predictions: Swap<Option<PredictionLog>>,
    metrics: Arc<Metrics>,
}

impl Logs {
    /// Opens the logs configured; a file or directory that cannot be written is an error.
    pub fn start(config: &LogsConfig, metrics: Arc<Metrics>) -> Result<Logs, String> {
        let audit = config.audit.as_ref().map(|s| AuditLog::start(s, metrics.clone())).transpose()?;
        let predictions = match config.prediction_log.as_ref().map(|s| PredictionLog::start(s, metrics.clone())) {
            Some(Err(e)) => {
                if let Some(audit) = &audit {
                    audit.close();
                }
                return Err(e);
            }
            other => other.transpose()?,
        };
        Ok(Logs { audit: Swap::new(audit), predictions: Swap::new(predictions), metrics })
    }

    /// No logs (for tests of other parts).
    pub fn off(metrics: Arc<Metrics>) -> Logs {
        Logs { audit: Swap::new(None), predictions: Swap::new(None), metrics }
    }

    pub fn audit(&self) -> Arc<Option<AuditLog>> {
        self.audit.get()
    }

    pub fn predictions(&self) -> Arc<Option<PredictionLog>> {
        self.predictions.get()
    }

    /// SIGHUP: both logs reopen their files (logrotate moved them) with the settings of `config`;
    /// a log turned on starts, one turned off is closed. A log that cannot start is left as it
    /// was, with an error in the daemon's log.
    pub fn reopen(&self, config: &LogsConfig) {
        self.reopen_audit(config.audit.as_ref());
        self.reopen_predictions(config.prediction_log.as_ref());
        if config.audit.is_some() || config.prediction_log.is_some() {
            tracing::info!("reload: log files reopened");
        }
    }

    fn reopen_audit(&self, settings: Option<&AuditSettings>) {
        let running = self.audit.get();
        match (running.as_ref(), settings) {
            (None, None) => {}
            (Some(log), Some(settings)) if log.queue_size == settings.queue_size => {
                log.reopen(settings.destination.clone())
            }
            (_, Some(settings)) => match AuditLog::start(settings, self.metrics.clone()) {
                Ok(log) => self.replace_audit(Some(log)),
                Err(e) => tracing::error!("reload: the audit log stays as it was: {e}"),
            },
            (Some(_), None) => self.replace_audit(None),
        }
    }

    fn reopen_predictions(&self, settings: Option<&PredictionLogSettings>) {
        let running = self.predictions.get();
        match (running.as_ref(), settings) {
            (None, None) => {}
            (Some(log), Some(settings)) => match log.reopen(settings) {
                // The same writer and queue: the old handle must not close them.
                Some(reopened) => drop(self.predictions.replace(Arc::new(Some(reopened)))),
                None => self.start_predictions(settings),
            },
            (None, Some(settings)) => self.start_predictions(settings),
            (Some(_), None) => self.replace_predictions(None),
        }
    }

    fn start_predictions(&self, settings: &PredictionLogSettings) {
        match PredictionLog::start(settings, self.metrics.clone()) {
            Ok(log) => self.replace_predictions(Some(log)),
            Err(e) => tracing::error!("reload: the prediction log stays as it was: {e}"),
        }
    }

    fn replace_audit(&self, log: Option<AuditLog>) {
        if let Some(old) = self.audit.replace(Arc::new(log)).as_ref() {
            old.close();
        }
    }

    fn replace_predictions(&self, log: Option<PredictionLog>) {
        if let Some(old) = self.predictions.replace(Arc::new(log)).as_ref() {
            old.close();
        }
    }

    /// Writes what is queued and closes both logs (after the last request).
    pub fn close(&self) {
        if let Some(audit) = self.audit.get().as_ref() {
            audit.close();
        }
        if let Some(predictions) = self.predictions.get().as_ref() {
            predictions.close();
        }
    }
}
