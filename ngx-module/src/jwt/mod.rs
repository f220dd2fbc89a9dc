//! Bearer-token (JWT/OIDC) checks: the pure core, independent of nginx.
//!
//! Everything here is plain safe Rust that never panics on input (the module is built with
//! `panic = "abort"`): no `unwrap`, no fallible indexing, checked/saturating arithmetic.
//! Nothing here logs, and no error text contains token or key material.
//!
//! # Flow of one request (what the nginx shell does)
//! 1. [`extract_bearer`] on the `Authorization` header with the location's
//!    [`Policy::max_token_len`]: `Ok(None)` means no token ([`JwtError::Missing`]).
//! 2. Keys: file keys are parsed once at configuration time with [`KeySet::parse`]; a remote JWKS
//!    is driven by one [`KeySource`] per worker: [`KeySource::on_request`] says whether to use the
//!    keys, start a fetch (subrequest) and wait, wait for the fetch already in flight, or answer
//!    503 ([`JwtError::KeysUnavailable`]). The shell reports the fetch with
//!    [`KeySource::on_fetch_done`] (it parses the body with [`KeySet::parse`] and the
//!    `Cache-Control: max-age` itself) and clears the [`VerifiedCache`] when keys change.
//!    Several sources are combined with [`KeySet::merge`].
//! 3. [`VerifiedCache::verify`] (or [`verify`] directly): a cache hit, keyed by the token bytes
//!    and [`Policy::fingerprint`], costs about a microsecond; a miss verifies the signature with
//!    keys parsed once, then the claims, and caches the result until the token's `exp`.
//! 4. On [`JwtError::UnknownKey`] from a remote source, [`KeySource::on_unknown_kid`] decides
//!    whether this is the one refetch allowed per cooldown (then verify again after the fetch),
//!    whether to wait for a fetch already in flight, or to reject.
//! 5. Answer with [`JwtError::status`], [`JwtError::www_authenticate`], [`JwtError::json_body`],
//!    and set `$tfgate_jwt_result` from [`JwtError::result`] (or `"ok"`), `$tfgate_jwt_sub` from
//!    [`Verified::sub`], `$tfgate_jwt_claim_NAME` from [`Verified::claim_as_string`].
//!
//! Claim values are returned raw: they may contain any character, including CR/LF. Anything that
//! puts them into a header must reject or escape control characters.

pub mod bearer;
pub mod cache;
mod cache_control;
mod canonical;
pub mod claims;
mod der;
mod ed25519;
pub mod error;
mod jwk;
pub mod key;
pub mod keys;
mod pem;
pub mod policy;
pub mod refresh;
pub mod token;
pub mod verify;

#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod verify_tests;

pub use bearer::extract_bearer;
pub use cache::VerifiedCache;
pub use cache_control::max_age_of;
pub use claims::{ClaimOp, ClaimRule};
pub use error::JwtError;
pub use key::Key;
pub use keys::KeySet;
pub use policy::{Alg, Policy};
pub use refresh::{KeySource, KeysDecision, RefetchDecision, RefreshConfig};
pub use token::TokenError;
pub use verify::{verify, Verified};
