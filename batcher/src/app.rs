//! Everything a request handler needs, built once at start-up and shared by all connections.

use crate::backend::passthrough::RestPassthrough;
use crate::backend::{Backend, SignatureCache, SIGNATURE_TTL};
use crate::config::Config;

pub struct App {
    pub config: Config,
    /// TF Serving over gRPC (the first `backend.grpc` target until the pool arrives).
    pub backend: Backend,
    pub signatures: SignatureCache,
    /// Classify/regress forwarding, when `backend.rest` is set.
    pub passthrough: Option<RestPassthrough>,
}

impl App {
    /// Must run inside the tokio runtime (the gRPC channel spawns its worker there).
    pub fn new(config: Config) -> App {
        // The config guarantees at least one target.
        let backend = Backend::connect_lazy(&config.backend.grpc[0]);
        let passthrough = config.backend.rest.as_ref().map(RestPassthrough::new);
        App {
            config,
            backend,
            signatures: SignatureCache::new(SIGNATURE_TTL),
            passthrough,
        }
    }
}
