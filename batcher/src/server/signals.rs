//! The signals the daemon acts on: SIGTERM and SIGINT stop it (stop accepting, finish what is
//! in flight, exit 0); SIGHUP reloads the configuration.

use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Stop(&'static str),
    Reload,
}

impl Signals {
    /// Installs the handlers; done before announcing readiness, so that a signal sent right
    /// after `listening on` (or READY=1) is never lost to the default action, which for SIGHUP
    /// would end the process.
    pub fn install() -> Result<Signals, String> {
        let install = |kind| signal(kind).map_err(|e| format!("cannot install signal handlers: {e}"));
        Ok(Signals {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    /// Waits for the next of them.
    pub async fn received(&mut self) -> Received {
        tokio::select! {
            _ = self.terminate.recv() => Received::Stop("SIGTERM"),
            _ = self.interrupt.recv() => Received::Stop("SIGINT"),
            _ = self.hangup.recv() => Received::Reload,
        }
    }
}
