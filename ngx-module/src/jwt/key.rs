//! One verification key, parsed once: each key is pinned to the algorithms its type (and its JWK
//! `alg`) allows, so a key can never verify a token under another algorithm (no RSA key used
//! as an HMAC secret, no ES384 cost on an RSA key...). The document parsers (`jwk`, `pem`) build
//! keys with the constructors here; [`super::keys`] holds the set a document gives.

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::rsa::RsaParameters;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};

use super::ed25519;
use super::policy::Alg;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;
/// The largest RSA modulus accepted, in bits (aws-lc's limit for these algorithms).
pub const MAX_RSA_BITS: u32 = 8192;

#[derive(Clone)]
enum Verifier {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

/// One verification key: its `kid` and one ready verifier per algorithm it may verify.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    verifiers: Vec<(Alg, Verifier)>,
}

impl fmt::Debug for Key {
    // Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<&str> = self.algorithms().map(Alg::name).collect();
        f.debug_struct("Key").field("kid", &self.kid).field("algorithms", &algs).finish()
    }
}

impl Key {
    /// The key id, if the key has one (PEM keys have none).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key verifies.
    pub fn algorithms(&self) -> impl Iterator<Item = Alg> + '_ {
        self.verifiers.iter().map(|(alg, _)| *alg)
    }

    /// Whether this key verifies `alg`.
    pub fn allows(&self, alg: Alg) -> bool {
        self.verifiers.iter().any(|(a, _)| *a == alg)
    }

    /// Checks `signature` over `message` with `alg` (false when the key does not allow `alg`).
    /// ES* signatures are the JOSE fixed-size `r || s`; HMAC tags are compared in constant time.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        match self.verifiers.iter().find(|(a, _)| *a == alg) {
            Some((_, Verifier::Public(key))) => key.verify_sig(message, signature).is_ok(),
            Some((_, Verifier::Hmac(key))) => hmac::verify(key, message, signature).is_ok(),
            None => false,
        }
    }

    /// An RSA key from a PKCS#1 `RSAPublicKey` DER; `algs` are RS*/PS* (checked).
    pub(crate) fn rsa(kid: Option<String>, pkcs1_der: &[u8], algs: &[Alg]) -> Result<Key, String> {
        let bits = RsaParameters::public_modulus_len(pkcs1_der).map_err(|_| "malformed RSA key".to_owned())?;
        if bits < MIN_RSA_BITS {
            return Err(format!("RSA key of {bits} bits (at least {MIN_RSA_BITS} needed)"));
        }
        if bits > MAX_RSA_BITS {
            return Err(format!("RSA key of {bits} bits (at most {MAX_RSA_BITS} supported)"));
        }
        Key::public(kid, pkcs1_der, algs)
    }

    /// A public key (EC uncompressed point or SPKI, Ed25519 raw or SPKI, RSA PKCS#1 or SPKI).
    pub(crate) fn public(kid: Option<String>, bytes: &[u8], algs: &[Alg]) -> Result<Key, String> {
        if algs.contains(&Alg::EdDSA) {
            // Raw (JWK `x`) or SPKI: the compressed point is the last 32 bytes either way.
            let point = bytes
                .len()
                .checked_sub(ed25519::KEY_LEN)
                .and_then(|start| bytes.get(start..))
                .and_then(|raw| <&[u8; ed25519::KEY_LEN]>::try_from(raw).ok())
                .ok_or("Ed25519 key too short")?;
            ed25519::check_public_key(point)?;
        }
        let mut verifiers = Vec::with_capacity(algs.len());
        for alg in algs {
            let algorithm = verification_algorithm(*alg).ok_or("not a public-key algorithm")?;
            let key = ParsedPublicKey::new(algorithm, bytes).map_err(|_| format!("key rejected for {}", alg.name()))?;
            verifiers.push((*alg, Verifier::Public(key)));
        }
        Key::new(kid, verifiers)
    }

    /// An HMAC secret; each HS* needs a secret at least as long as its hash (RFC 7518 3.2):
    /// algorithms the secret is too short for are dropped.
    pub(crate) fn hmac(kid: Option<String>, secret: &[u8], algs: &[Alg]) -> Result<Key, String> {
        let mut verifiers = Vec::new();
        for alg in algs {
            let (algorithm, min_len) = match alg {
                Alg::HS256 => (hmac::HMAC_SHA256, 32),
                Alg::HS384 => (hmac::HMAC_SHA384, 48),
                Alg::HS512 => (hmac::HMAC_SHA512, 64),
                _ => return Err("not an HMAC algorithm".to_owned()),
            };
            if secret.len() >= min_len {
                verifiers.push((*alg, Verifier::Hmac(Box::new(hmac::Key::new(algorithm, secret)))));
            }
        }
        if verifiers.is_empty() {
            return Err(format!("oct key of {} bytes is too short for its algorithms", secret.len()));
        }
        Key::new(kid, verifiers)
    }

    fn new(kid: Option<String>, verifiers: Vec<(Alg, Verifier)>) -> Result<Key, String> {
        if verifiers.is_empty() {
            return Err("no usable algorithm".to_owned());
        }
        Ok(Key { kid, verifiers })
    }
}

fn verification_algorithm(alg: Alg) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Alg::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Alg::EdDSA => &signature::ED25519,
        Alg::HS256 | Alg::HS384 | Alg::HS512 => return None,
    })
}

/// The algorithms of an RSA key.
pub(crate) const RSA_ALGS: [Alg; 6] = [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512];
/// The algorithms of an `oct` key.
pub(crate) const HMAC_ALGS: [Alg; 3] = [Alg::HS256, Alg::HS384, Alg::HS512];
