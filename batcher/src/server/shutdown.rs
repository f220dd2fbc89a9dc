//! SIGTERM and SIGINT both mean: stop accepting, finish what is in flight, exit 0.

use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct ShutdownSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers; done before announcing readiness, so that a signal sent right
    /// after `listening on` is never lost to the default action.
    pub fn install() -> Result<ShutdownSignals, String> {
        let install =
            |kind| signal(kind).map_err(|e| format!("cannot install signal handlers: {e}"));
        Ok(ShutdownSignals {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first of them and names it.
    pub async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
