//! Redaction of logged tensors by input or output name: `redact_drop` leaves the tensor out of
//! the record; `redact_hash` replaces it by a DT_STRING tensor of the same shape whose elements
//! are the lowercase hex HMAC-SHA256, under the configured key, of each element's bytes (a
//! string's own bytes; a number's little-endian bytes at its dtype's width, as in
//! `tensor_content`). Equal values give equal hashes, so a redacted column can still be joined
//! or counted, but cannot be read back without the key. In Python:
//!
//! ```python
//! hmac.new(key, value_bytes, hashlib.sha256).hexdigest()
//! ```

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::hmac;

use crate::convert::content::write_content;
use crate::convert::{ByteStrings, Dtype, Tensor, Values};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Keep,
    Drop,
    Hash,
}

/// `redact_drop`, `redact_hash` and the key, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactSettings {
    pub drop: BTreeSet<String>,
    pub hash: BTreeSet<String>,
    pub key: Option<HashKey>,
}

/// The HMAC key (never shown in logs or `check-config`).
#[derive(Clone, PartialEq, Eq)]
pub struct HashKey(pub Vec<u8>);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashKey({} bytes)", self.0.len())
    }
}

#[derive(Clone)]
pub struct Redaction {
    drop: BTreeSet<String>,
    hash: BTreeSet<String>,
    key: Option<hmac::Key>,
}

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Redaction").field("drop", &self.drop).field("hash", &self.hash).finish()
    }
}

impl Redaction {
    /// `key` is needed when `hash` names anything (the configuration checks it).
    pub fn new(drop: BTreeSet<String>, hash: BTreeSet<String>, key: Option<&[u8]>) -> Redaction {
        let key = key.map(|k| hmac::Key::new(hmac::HMAC_SHA256, k));
        Redaction { drop, hash, key }
    }

    pub fn from_settings(settings: &RedactSettings) -> Redaction {
        Redaction::new(settings.drop.clone(), settings.hash.clone(), settings.key.as_ref().map(|k| k.0.as_slice()))
    }

    pub fn none() -> Redaction {
        Redaction::new(BTreeSet::new(), BTreeSet::new(), None)
    }

    pub fn action(&self, name: &str) -> Action {
        if self.drop.contains(name) {
            Action::Drop
        } else if self.hash.contains(name) {
            // Without a key (never configured so) a tensor to hash is dropped, not kept.
            if self.key.is_some() {
                Action::Hash
            } else {
                Action::Drop
            }
        } else {
            Action::Keep
        }
    }

    /// Whether a tensor of this name is kept in some form (so worth copying for the log).
    pub fn keeps(&self, name: &str) -> bool {
        self.action(name) != Action::Drop
    }

    /// The tensors as the log records them.
    pub fn apply(&self, tensors: BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
        if self.drop.is_empty() && self.hash.is_empty() {
            return tensors;
        }
        tensors
            .into_iter()
            .filter_map(|(name, tensor)| match self.action(&name) {
                Action::Keep => Some((name, tensor)),
                Action::Drop => None,
                Action::Hash => {
                    let key = self.key.as_ref()?;
                    Some((name, hash_tensor(key, &tensor)))
                }
            })
            .collect()
    }
}

/// Each element replaced by the hex HMAC of its bytes; the shape kept.
fn hash_tensor(key: &hmac::Key, tensor: &Tensor) -> Tensor {
    let mut hashes = ByteStrings::default();
    let mut push = |bytes: &[u8]| {
        let tag = hmac::sign(key, bytes);
        // 64 bytes per element: far below the 4 GiB a ByteStrings holds.
        let _ = hashes.push(hex(tag.as_ref()).as_bytes());
    };
    match (&tensor.values, tensor.dtype.byte_width()) {
        (Values::Bytes(strings), _) => strings.iter().for_each(&mut push),
        (values, Some(width)) => {
            let mut content = Vec::with_capacity(values.len() * width);
            if write_content(tensor.dtype, values, 0..values.len(), &mut content).is_ok() {
                content.chunks_exact(width).for_each(&mut push);
            }
        }
        (_, None) => {}
    }
    Tensor { dtype: Dtype::String, shape: tensor.shape.clone(), values: Values::Bytes(hashes) }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dropped_hashed_and_kept() {
        let redaction = Redaction::new(names(&["ssn"]), names(&["email", "age"]), Some(b"key"));
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "ssn".to_string(),
            Tensor { dtype: Dtype::String, shape: vec![1], values: Values::Bytes(vec![b"123".to_vec()].into()) },
        );
        tensors.insert(
            "email".to_string(),
            Tensor {
                dtype: Dtype::String,
                shape: vec![2],
                values: Values::Bytes(vec![b"a@b".to_vec(), b"a@b".to_vec()].into()),
            },
        );
        tensors.insert(
            "age".to_string(),
            Tensor { dtype: Dtype::Int32, shape: vec![1, 1], values: Values::I32(vec![42]) },
        );
        tensors.insert("x".to_string(), Tensor { dtype: Dtype::Float, shape: vec![1], values: Values::F32(vec![1.5]) });
        let out = redaction.apply(tensors);
        assert_eq!(out.keys().collect::<Vec<_>>(), ["age", "email", "x"]);
        assert_eq!(out["x"].values, Values::F32(vec![1.5]));
        // HMAC-SHA256(key = b"key", b"a@b"), from Python's hmac module.
        let email = &out["email"];
        assert_eq!(email.dtype, Dtype::String);
        assert_eq!(email.shape, vec![2]);
        let Values::Bytes(hashes) = &email.values else { panic!() };
        let expected = hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"key"), b"a@b").as_ref());
        assert_eq!(hashes.get(0), Some(expected.as_bytes()));
        assert_eq!(hashes.get(0), hashes.get(1), "equal values, equal hashes");
        // A number hashes its little-endian bytes.
        let Values::Bytes(age) = &out["age"].values else { panic!() };
        let expected = hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"key"), &42i32.to_le_bytes()).as_ref());
        assert_eq!(age.get(0), Some(expected.as_bytes()));
        assert_eq!(out["age"].shape, vec![1, 1]);
    }

    #[test]
    fn known_vector_and_no_key_means_drop() {
        // RFC 4231 test case 2.
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"), b"what do ya want for nothing?");
        assert_eq!(hex(tag.as_ref()), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let keyless = Redaction::new(BTreeSet::new(), names(&["email"]), None);
        assert_eq!(keyless.action("email"), Action::Drop);
        assert!(!keyless.keeps("email") && keyless.keeps("x"));
        assert!(!format!("{:?}", Redaction::new(BTreeSet::new(), names(&["e"]), Some(b"secret"))).contains("secret"));
    }
}
