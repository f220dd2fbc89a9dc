//! A remote key source (JWKS fetched by subrequest) as a pure, time-driven state machine: the
//! nginx shell performs the fetches and reports back; every method takes `now` (seconds).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::keys::KeySet;

/// The timings of a [`KeySource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshConfig {
    /// Key lifetime when the fetch gives none (`tfgate_jwt_key_cache` / `max-age` absent).
    pub default_ttl: i64,
    /// Lifetimes are raised to at least this (a `max-age=0` IdP would mean a fetch per request).
    pub min_ttl: i64,
    /// A fetch without an answer after this long counts as failed.
    pub fetch_timeout: i64,
    /// Wait after a failed fetch; doubles on each further failure up to `max_backoff`.
    pub backoff: i64,
    pub max_backoff: i64,
    /// At most one refetch for unknown `kid`s per this many seconds.
    pub unknown_kid_cooldown: i64,
    /// How many unknown kids are remembered (negative cache).
    pub negative_cache_size: usize,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            default_ttl: 600,
            min_ttl: 10,
            fetch_timeout: 10,
            backoff: 5,
            max_backoff: 60,
            unknown_kid_cooldown: 30,
            negative_cache_size: 1024,
        }
    }
}

/// What to do with a request that needs this source's keys.
#[derive(Clone, Debug)]
pub enum KeysDecision {
    /// Verify with these keys.
    Use(Rc<KeySet>),
    /// Verify with these keys, and start a fetch (not waited for) to refresh them.
    UseAndRefreshInBackground(Rc<KeySet>),
    /// No keys yet and a fetch is in flight: park the request until it completes.
    WaitForFetch,
    /// No keys yet: start the fetch and park the request.
    StartFetchAndWait,
    /// No keys and the last fetch failed recently: answer 503.
    Unavailable,
}

/// What to do after [`super::JwtError::UnknownKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefetchDecision {
    /// Start a fetch, park the request, verify again when it completes.
    Refetch,
    /// A fetch is already in flight: park the request and verify again when it completes.
    Wait,
    /// Answer 401 now.
    Reject,
}

/// One remote key source of one worker.
#[derive(Debug)]
pub struct KeySource {
    config: RefreshConfig,
    keys: Option<Rc<KeySet>>,
    fresh_until: i64,
    refresh_at: i64,
    fetch_in_flight_since: Option<i64>,
    /// Identifies the latest fetch, so a late answer to an abandoned one cannot end a newer one.
    fetch_id: u64,
    retry_at: i64,
    failures: u32,
    last_unknown_kid_refetch: Option<i64>,
    /// Kids a fetch in flight was started for or waited on (bounded).
    pending_kids: HashSet<String>,
    /// Kid → until when it is rejected without a refetch.
    negative: HashMap<String, i64>,
}

impl KeySource {
    pub fn new(config: RefreshConfig) -> Self {
        KeySource {
            config,
            keys: None,
            fresh_until: i64::MIN,
            refresh_at: i64::MIN,
            fetch_in_flight_since: None,
            fetch_id: 0,
            retry_at: i64::MIN,
            failures: 0,
            last_unknown_kid_refetch: None,
            pending_kids: HashSet::new(),
            negative: HashMap::new(),
        }
    }

    /// The last good keys.
    pub fn keys(&self) -> Option<&Rc<KeySet>> {
        self.keys.as_ref()
    }

    /// True until the first successful fetch.
    pub fn keys_unavailable(&self) -> bool {
        self.keys.is_none()
    }

    /// Whether the keys are past their lifetime (they are still used: stale-if-error).
    pub fn is_stale(&self, now: i64) -> bool {
        now >= self.fresh_until
    }

    /// Whether a fetch is in flight and not yet timed out.
    pub fn fetch_in_flight(&self, now: i64) -> bool {
        self.fetch_in_flight_since.is_some_and(|since| now < since.saturating_add(self.config.fetch_timeout))
    }

    /// Decides for a request. A refresh starts a little before the keys expire (at 90% of the
    /// lifetime) so a busy worker never runs on stale keys; stale keys are still used while the
    /// refresh runs or keeps failing.
    pub fn on_request(&mut self, now: i64) -> KeysDecision {
        self.expire_fetch(now);
        let idle = self.fetch_in_flight_since.is_none() && now >= self.retry_at;
        match &self.keys {
            Some(keys) if now < self.refresh_at || !idle => KeysDecision::Use(Rc::clone(keys)),
            Some(keys) => {
                let keys = Rc::clone(keys);
                self.start_fetch(now);
                KeysDecision::UseAndRefreshInBackground(keys)
            }
            None if self.fetch_in_flight_since.is_some() => KeysDecision::WaitForFetch,
            None if idle => {
                self.start_fetch(now);
                KeysDecision::StartFetchAndWait
            }
            None => KeysDecision::Unavailable,
        }
    }

    /// Decides after a token's `kid` was not found: at most one refetch per cooldown for the
    /// whole source, never during a failure backoff; a kid that a refetch did not bring is
    /// rejected without another look until the cooldown ends.
    pub fn on_unknown_kid(&mut self, kid: &str, now: i64) -> RefetchDecision {
        self.expire_fetch(now);
        if self.negative.get(kid).is_some_and(|until| now < *until) {
            return RefetchDecision::Reject;
        }
        if self.fetch_in_flight_since.is_some() {
            self.remember_pending(kid);
            return RefetchDecision::Wait;
        }
        let cooling =
            self.last_unknown_kid_refetch.is_some_and(|t| now < t.saturating_add(self.config.unknown_kid_cooldown));
        if cooling || now < self.retry_at || self.keys.is_none() {
            return RefetchDecision::Reject;
        }
        self.last_unknown_kid_refetch = Some(now);
        self.start_fetch(now);
        self.remember_pending(kid);
        RefetchDecision::Refetch
    }

    /// The id of the latest fetch: the shell passes it back with the fetch's outcome.
    pub fn fetch_id(&self) -> u64 {
        self.fetch_id
    }

    fn start_fetch(&mut self, now: i64) {
        self.fetch_in_flight_since = Some(now);
        self.fetch_id = self.fetch_id.wrapping_add(1);
    }

    fn is_current(&self, fetch: u64) -> bool {
        self.fetch_in_flight_since.is_some() && fetch == self.fetch_id
    }

    /// The fetch ended without an answer through no fault of the IdP (the client whose
    /// connection carried the subrequest went away): the next request may fetch at once.
    pub fn on_fetch_aborted(&mut self, fetch: u64) {
        if self.is_current(fetch) {
            self.fetch_in_flight_since = None;
            self.pending_kids.clear();
        }
    }

    /// Reports a fetch: `Ok` replaces the keys (lifetime `ttl_secs`, else the default);
    /// `Err` keeps the last good keys and backs off. Returns true when the keys were replaced
    /// (the shell then clears its verified-token cache and wakes the parked requests, which it
    /// also does on failure).
    /// An answer to an older, abandoned fetch still brings its keys, but neither ends nor
    /// fails the fetch in flight.
    pub fn on_fetch_done(
        &mut self,
        fetch: u64,
        result: Result<KeySet, String>,
        ttl_secs: Option<u64>,
        now: i64,
    ) -> bool {
        let current = self.is_current(fetch);
        if current {
            self.fetch_in_flight_since = None;
        }
        let pending = if current { std::mem::take(&mut self.pending_kids) } else { HashSet::new() };
        match result {
            Ok(keys) => {
                let ttl = ttl_secs.map_or(self.config.default_ttl, |t| i64::try_from(t).unwrap_or(i64::MAX));
                let ttl = ttl.max(self.config.min_ttl);
                self.fresh_until = now.saturating_add(ttl);
                self.refresh_at = now.saturating_add(ttl.saturating_sub(ttl / 10));
                self.failures = 0;
                self.retry_at = i64::MIN;
                self.negative.clear();
                let until =
                    self.last_unknown_kid_refetch.unwrap_or(now).saturating_add(self.config.unknown_kid_cooldown);
                if now < until {
                    let room = self.config.negative_cache_size;
                    self.negative
                        .extend(pending.into_iter().filter(|kid| !keys.has_kid(kid)).take(room).map(|k| (k, until)));
                }
                self.keys = Some(Rc::new(keys));
                true
            }
            Err(_) => {
                if current {
                    self.fail(now);
                }
                false
            }
        }
    }

    fn fail(&mut self, now: i64) {
        let shift = self.failures.min(16);
        let backoff = self.config.backoff.saturating_mul(1i64 << shift).min(self.config.max_backoff);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = now.saturating_add(backoff.max(0));
    }

    /// A fetch in flight past the timeout counts as failed (at the moment it timed out).
    fn expire_fetch(&mut self, now: i64) {
        if let Some(since) = self.fetch_in_flight_since {
            let deadline = since.saturating_add(self.config.fetch_timeout);
            if now >= deadline {
                self.fetch_in_flight_since = None;
                self.pending_kids.clear();
                self.fail(deadline);
            }
        }
    }

    fn remember_pending(&mut self, kid: &str) {
        if self.pending_kids.len() < self.config.negative_cache_size {
            self.pending_kids.insert(kid.to_owned());
        }
    }
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
