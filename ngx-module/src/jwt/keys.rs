//! Key sets: the keys a key document (a JWKS, or PEM) gives, several sources merged, and which
//! keys may verify a given token.

use super::key::Key;
use super::policy::Alg;
use super::{jwk, pem};

/// How many keys [`KeySet::candidates`] offers for one token (keys without `kid` are tried in
/// order when the token names none of them): bounds the work one token can cause.
pub const MAX_CANDIDATES: usize = 4;
/// Key documents larger than this are refused.
pub const MAX_DOCUMENT_LEN: usize = 1 << 20;

/// A set of keys from one or more sources.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a key document: a JWKS (or a single JWK) when it starts with `{`, else PEM.
    /// Returns the keys and the reasons individual keys were skipped (for the log; they contain
    /// key ids, never key material). Fails when the document is unreadable or has keys of which
    /// none is usable. An explicitly empty JWKS (`{"keys": []}`) is an empty set: emptying a key
    /// file is how an operator revokes every key.
    pub fn parse(document: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        if document.len() > MAX_DOCUMENT_LEN {
            return Err(format!("key document larger than {MAX_DOCUMENT_LEN} bytes"));
        }
        let jwks = document.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let (keys, skipped) = if jwks { jwk::parse_jwks(document)? } else { pem::parse_pem(document)? };
        if keys.is_empty() && !(jwks && skipped.is_empty()) {
            let why = if skipped.is_empty() { "no keys".to_owned() } else { skipped.join("; ") };
            return Err(format!("no usable key ({why})"));
        }
        Ok((KeySet { keys }, skipped))
    }

    /// All keys of several sets, in order.
    pub fn merge<'a>(sets: impl IntoIterator<Item = &'a KeySet>) -> KeySet {
        KeySet { keys: sets.into_iter().flat_map(|set| set.keys.iter().cloned()).collect() }
    }

    /// The keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    /// The first of [`KeySet::candidates`].
    pub fn find(&self, kid: Option<&str>, alg: Alg) -> Option<&Key> {
        self.candidates(kid, alg).into_iter().next()
    }

    /// The keys that may verify a token with this `kid` and `alg`, at most [`MAX_CANDIDATES`],
    /// tried in order by [`super::verify`]:
    /// * the token has a `kid`: the keys with that kid allowing `alg`; if there are none, the
    ///   keys *without* a kid allowing `alg` (a PEM key verifies tokens whatever their kid);
    /// * the token has no `kid`: the kid-less keys allowing `alg`; if there are none, the one
    ///   key allowing `alg` when there is exactly one (a JWKS with several keys needs the kid:
    ///   a forged kid-less token must not cost one verification per key).
    ///
    /// A key with a different kid is never tried. Empty: see [`KeySet::has_kid`] to tell an
    /// unknown kid (worth a refetch) from a known kid with the wrong algorithm.
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> Vec<&Key> {
        let allowed = self.keys.iter().filter(|k| k.allows(alg));
        let mut out: Vec<&Key> = match kid {
            Some(kid) => allowed.clone().filter(|k| k.kid() == Some(kid)).take(MAX_CANDIDATES).collect(),
            None => Vec::new(),
        };
        if out.is_empty() {
            out.extend(allowed.clone().filter(|k| k.kid().is_none()).take(MAX_CANDIDATES));
        }
        if kid.is_none() && out.is_empty() {
            let mut keyed = allowed.filter(|k| k.kid().is_some());
            if let (Some(only), None) = (keyed.next(), keyed.next()) {
                out.push(only);
            }
        }
        out
    }
}
