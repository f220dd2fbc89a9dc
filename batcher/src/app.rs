//! Everything a request handler needs, built once at start-up and shared by all connections.

use std::sync::Arc;

use crate::backend::passthrough::RestPassthrough;
use crate::backend::{Pool, SignatureCache, SIGNATURE_TTL};
use crate::batching::Batcher;
use crate::config::Config;
use crate::metrics::Metrics;

pub struct App {
    pub config: Config,
    /// TF Serving over gRPC: every `backend.grpc` target.
    pub pool: Arc<Pool>,
    pub signatures: Arc<SignatureCache>,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    /// Classify/regress forwarding, when `backend.rest` is set.
    pub passthrough: Option<RestPassthrough>,
}

impl App {
    /// Must run inside the tokio runtime (the gRPC channels and the health checks spawn their
    /// tasks there).
    pub fn new(config: Config) -> App {
        let metrics = Arc::new(Metrics::default());
        let pool = Arc::new(Pool::new(&config.backend, metrics.clone()));
        if let Some(interval) = config.backend.health_interval {
            crate::backend::spawn_health_checks(pool.clone(), interval);
        }
        let signatures = Arc::new(SignatureCache::new(SIGNATURE_TTL));
        let batcher = Batcher::new(&config, pool.clone(), signatures.clone(), metrics.clone());
        let passthrough = config.backend.rest.as_ref().map(RestPassthrough::new);
        App {
            config,
            pool,
            signatures,
            batcher,
            metrics,
            passthrough,
        }
    }
}
