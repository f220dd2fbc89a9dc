//! One location's JWT check: its policy, key sources and verified-token cache, driven by the
//! pure core. Returns what the request should do; the access handler does it.

use std::cell::RefCell;
use std::rc::Rc;

use super::files::{FileKeys, Reload};
use super::key_generation;
use super::remote::RemoteKeys;
use crate::jwt::{token, JwtError, KeysDecision, Policy, RefetchDecision, Verified, VerifiedCache};

/// A verified-token cache shared by the locations that inherit it. Its key includes the
/// policy fingerprint, so sharing never lets a token pass a stricter location.
pub(crate) struct SharedCache {
    cache: VerifiedCache,
    generation: u64,
}

pub(crate) enum Outcome {
    Accepted(Rc<Verified>),
    Refused(JwtError),
    /// Keys are being fetched: try again when they arrive.
    Wait,
}

/// A JWKS fetch the request must start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// The request waits for it.
    Waited,
    /// The request goes on; the keys are refreshed behind it.
    Background,
}

pub(crate) struct Check {
    pub outcome: Outcome,
    pub fetch: Option<Fetch>,
    pub file_reload: Option<Reload>,
}

pub(crate) struct JwtRuntime {
    pub policy: Policy,
    pub fingerprint: u64,
    pub realm: String,
    files: Option<Rc<FileKeys>>,
    remote: Option<Rc<RemoteKeys>>,
    cache: Rc<RefCell<SharedCache>>,
    cache_size: usize,
}

impl JwtRuntime {
    pub fn new(
        policy: Policy,
        realm: String,
        files: Option<Rc<FileKeys>>,
        remote: Option<Rc<RemoteKeys>>,
        cache_size: usize,
        shared_cache: Option<Rc<RefCell<SharedCache>>>,
    ) -> JwtRuntime {
        let fingerprint = policy.fingerprint();
        let cache = shared_cache.unwrap_or_else(|| {
            Rc::new(RefCell::new(SharedCache { cache: VerifiedCache::new(cache_size), generation: 0 }))
        });
        JwtRuntime { policy, fingerprint, realm, files, remote, cache, cache_size }
    }

    pub fn cache_size(&self) -> usize {
        self.cache_size
    }

    pub fn cache(&self) -> Rc<RefCell<SharedCache>> {
        Rc::clone(&self.cache)
    }

    /// Whether this runtime verifies with exactly these key sources. A cache may only be
    /// shared between locations that trust the same keys: its key holds the policy, not them.
    pub fn uses_keys(&self, files: &Option<Rc<FileKeys>>, remote: &Option<Rc<RemoteKeys>>) -> bool {
        fn same<T>(a: &Option<Rc<T>>, b: &Option<Rc<T>>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => Rc::ptr_eq(a, b),
                _ => false,
            }
        }
        same(&self.files, files) && same(&self.remote, remote)
    }

    pub fn remote(&self) -> Option<&RemoteKeys> {
        self.remote.as_deref()
    }

    /// Checks `token` at `now` (seconds).
    pub fn check(&self, token: &str, now: i64) -> Check {
        let mut check = Check { outcome: Outcome::Wait, fetch: None, file_reload: None };
        // Files first (at most a stat per second): a key removed from a file must stop
        // authorising cached tokens too.
        let file_keys = self.files.as_ref().map(|files| {
            let (keys, reload) = files.keys(now);
            if matches!(reload, Reload::Reloaded { .. }) {
                key_generation::bump();
            }
            check.file_reload = Some(reload);
            keys
        });
        let mut shared = self.cache.borrow_mut();
        let generation = key_generation::current();
        if shared.generation != generation {
            shared.cache.clear();
            shared.generation = generation;
        }
        if let Some(hit) = shared.cache.get(self.fingerprint, token, now) {
            check.outcome = Outcome::Accepted(hit);
            return check;
        }
        let decision = self.remote.as_ref().map(|r| r.source.borrow_mut().on_request(now));
        // Without keys, a token that is not even shaped like one is a 401, not a wait or a 503.
        let waits = matches!(
            decision,
            Some(KeysDecision::Unavailable | KeysDecision::WaitForFetch | KeysDecision::StartFetchAndWait)
        );
        if waits && file_keys.is_none() {
            if let Err(malformed) = token::split(token) {
                check.outcome = Outcome::Refused(malformed.into());
                return check;
            }
        }
        let remote_keys = match decision {
            None | Some(KeysDecision::Unavailable) if file_keys.is_some() => None,
            None => None,
            Some(KeysDecision::Unavailable) => {
                check.outcome = Outcome::Refused(JwtError::KeysUnavailable);
                return check;
            }
            Some(KeysDecision::Use(keys)) => Some(keys),
            Some(KeysDecision::UseAndRefreshInBackground(keys)) => {
                check.fetch = Some(Fetch::Background);
                Some(keys)
            }
            Some(KeysDecision::WaitForFetch) => return check,
            Some(KeysDecision::StartFetchAndWait) => {
                check.fetch = Some(Fetch::Waited);
                return check;
            }
        };

        let mut unknown_kid = None;
        for keys in [remote_keys, file_keys].into_iter().flatten() {
            match shared.cache.verify(token, &keys, &self.policy, self.fingerprint, now) {
                Err(JwtError::UnknownKey { kid }) => unknown_kid = Some(kid),
                Ok(verified) => {
                    check.outcome = Outcome::Accepted(verified);
                    return check;
                }
                Err(refused) => {
                    check.outcome = Outcome::Refused(refused);
                    return check;
                }
            }
        }
        let Some(kid) = unknown_kid else {
            check.outcome = Outcome::Refused(JwtError::KeysUnavailable);
            return check;
        };
        check.outcome = match self.remote.as_ref().map(|r| r.source.borrow_mut().on_unknown_kid(&kid, now)) {
            Some(RefetchDecision::Refetch) => {
                check.fetch = Some(Fetch::Waited);
                Outcome::Wait
            }
            Some(RefetchDecision::Wait) => Outcome::Wait,
            Some(RefetchDecision::Reject) | None => Outcome::Refused(JwtError::UnknownKey { kid }),
        };
        check
    }
}
