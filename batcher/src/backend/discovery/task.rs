//! The task that keeps one `dns://` name resolved: resolve, hand the answer to the keeper, wait
//! for the next time (see `schedule`) or for a failing target of the name, again. It ends when
//! a reload replaces it or the daemon's keeper goes away.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::warn;

use super::resolve::{Answer, DnsResolver};
use super::{schedule, Keeper};
use crate::backend::DnsName;
use crate::log_limit::LogLimit;

/// A name that keeps failing to resolve is reported this often (with the count since).
const WARN_EVERY: Duration = Duration::from_secs(30);

pub(super) struct NameTask {
    pub name: DnsName,
    pub server: Option<SocketAddr>,
    pub interval: Duration,
    /// Notified when a target of this name fails.
    pub resolve_again: Arc<Notify>,
    /// The keeper's configuration generation this task belongs to.
    pub generation: u64,
    pub keeper: Weak<Keeper>,
}

impl NameTask {
    pub async fn run(self) {
        // Made on first use, and again after it could not be (resolv.conf may be fixed later).
        let mut resolver: Option<DnsResolver> = None;
        let mut warnings = LogLimit::new(WARN_EVERY);
        loop {
            let started = Instant::now();
            if resolver.is_none() {
                resolver = DnsResolver::new(self.server).map_err(|e| self.warn(&mut warnings, &e, None)).ok();
            }
            let answer = match &resolver {
                Some(resolver) => resolver.resolve(&self.name).await,
                None => Answer::Failed("no resolver".to_string()),
            };
            let Some(keeper) = self.keeper.upgrade() else { return };
            let Some(targets) = keeper.record(self.generation, &self.name, &answer) else { return };
            drop(keeper);
            let wait = match &answer {
                Answer::Addresses { ttl, .. } => schedule::after_answer(self.interval, *ttl),
                Answer::Empty(why) | Answer::Failed(why) => {
                    if resolver.is_some() {
                        self.warn(&mut warnings, why, Some(targets));
                    }
                    schedule::after_failure(self.interval, targets > 0)
                }
            };
            self.wait(started, Instant::now() + wait).await;
        }
    }

    /// Until `scheduled`, or sooner (rate-limited) when a target of the name fails.
    async fn wait(&self, last_started: Instant, scheduled: Instant) {
        let scheduled_at = tokio::time::Instant::from_std(scheduled);
        tokio::select! {
            () = tokio::time::sleep_until(scheduled_at) => {}
            () = self.resolve_again.notified() => {
                let at = schedule::early(last_started, Instant::now(), scheduled);
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            }
        }
    }

    fn warn(&self, warnings: &mut LogLimit, why: &str, targets: Option<usize>) {
        let Some(more) = warnings.event(Instant::now()) else { return };
        let name = &self.name;
        match targets {
            Some(0) => warn!(
                "backend {name}: resolution failed: {why}; no target known for it yet, so it serves no call \
                 ({more} more failure(s) since the last warning)"
            ),
            Some(n) => warn!(
                "backend {name}: resolution failed: {why}; keeping its last {n} target(s) \
                 ({more} more failure(s) since the last warning)"
            ),
            None => warn!("backend {name}: {why} ({more} more failure(s) since the last warning)"),
        }
    }
}
