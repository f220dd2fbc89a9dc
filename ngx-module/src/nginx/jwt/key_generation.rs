//! This worker's key generation: a counter bumped whenever any of its key sources changes (a
//! key file re-read, a JWKS fetch that replaced the keys). The verified-token caches compare it
//! with the generation they were filled under and drop verdicts made with keys that may have
//! been withdrawn. It lives apart from the JWKS fetch (`remote`, which bumps it) and the check
//! (`runtime`, which reads it and bumps it on a file reload), so neither of those needs the other.

use std::cell::Cell;

thread_local! {
    static KEY_GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Records that a key source of this worker changed.
pub(crate) fn bump() {
    KEY_GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
}

/// The current generation.
pub(crate) fn current() -> u64 {
    KEY_GENERATION.with(Cell::get)
}
