//! The per-worker verified-token cache (single-threaded: one per nginx worker, no locks).

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;

use super::error::JwtError;
use super::keys::KeySet;
use super::policy::Policy;
use super::verify::{verify, Verified};

/// Expired entries are swept at most this often when the cache is full (seconds).
const SWEEP_INTERVAL: i64 = 1;

struct Slot {
    fingerprint: u64,
    token: Box<[u8]>,
    verified: Rc<Verified>,
    seq: u64,
}

/// Bounded cache of verified tokens. The key is the policy fingerprint *and* the full token
/// bytes (a hash only locates the slot: a hash collision can never authorize a token); an
/// entry lives until the token's `exp` (no leeway). When full: expired entries are swept (at
/// most once a second), else the oldest insertion goes.
pub struct VerifiedCache {
    capacity: usize,
    /// Per-process random seed of the slot hash.
    seed: u64,
    slots: HashMap<u64, Slot>,
    /// Insertion order: (slot key, seq); stale pairs (replaced/removed slots) are skipped.
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
    last_sweep: i64,
}

impl VerifiedCache {
    /// A cache of at most `capacity` entries; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity,
            seed: RandomState::new().hash_one(0u64),
            slots: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            last_sweep: i64::MIN,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Drops everything (call when keys change).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.order.clear();
    }

    /// A seeded word-at-a-time hash: this runs on every request, and SipHash over a ~1 KB
    /// token cost more than the rest of a cache hit. A collision can only evict or miss: a
    /// hit still requires the stored token bytes and fingerprint to match exactly.
    fn slot_key(&self, fingerprint: u64, token: &[u8]) -> u64 {
        const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut hash = self.seed ^ fingerprint ^ (token.len() as u64);
        let mut chunks = token.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(MULTIPLIER).rotate_left(31);
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(MULTIPLIER);
        hash ^ (hash >> 29)
    }

    /// The cached verification of `token` under the policy with this fingerprint, if not
    /// expired at `now`.
    pub fn get(&mut self, fingerprint: u64, token: &str, now: i64) -> Option<Rc<Verified>> {
        if self.capacity == 0 {
            return None;
        }
        let key = self.slot_key(fingerprint, token.as_bytes());
        let slot = self.slots.get(&key)?;
        if slot.fingerprint != fingerprint || *slot.token != *token.as_bytes() {
            return None;
        }
        if slot.verified.exp <= now {
            self.slots.remove(&key);
            return None;
        }
        Some(Rc::clone(&slot.verified))
    }

    /// Remembers a verified token (not if it expires by `now`).
    pub fn insert(&mut self, fingerprint: u64, token: &str, verified: Rc<Verified>, now: i64) {
        if self.capacity == 0 || verified.exp <= now {
            return;
        }
        let key = self.slot_key(fingerprint, token.as_bytes());
        if !self.slots.contains_key(&key) && self.slots.len() >= self.capacity {
            self.make_room(now);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let slot = Slot { fingerprint, token: token.as_bytes().into(), verified, seq };
        match self.slots.entry(key) {
            Entry::Occupied(mut e) => {
                e.insert(slot);
            }
            Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
        self.order.push_back((key, seq));
        if self.order.len() > self.capacity.saturating_mul(2).saturating_add(16) {
            let slots = &self.slots;
            self.order.retain(|(k, s)| slots.get(k).is_some_and(|slot| slot.seq == *s));
        }
    }

    fn make_room(&mut self, now: i64) {
        if now.saturating_sub(self.last_sweep) >= SWEEP_INTERVAL {
            self.last_sweep = now;
            self.slots.retain(|_, slot| slot.verified.exp > now);
        }
        while self.slots.len() >= self.capacity {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.slots.get(&key).is_some_and(|slot| slot.seq == seq) {
                self.slots.remove(&key);
            }
        }
    }

    /// [`verify`] through the cache: a hit skips everything; a success is cached.
    /// `fingerprint` must be `policy.fingerprint()` (computed once per location).
    pub fn verify(
        &mut self,
        token: &str,
        keys: &KeySet,
        policy: &Policy,
        fingerprint: u64,
        now: i64,
    ) -> Result<Rc<Verified>, JwtError> {
        if let Some(hit) = self.get(fingerprint, token, now) {
            return Ok(hit);
        }
        let verified = Rc::new(verify(token, keys, policy, now)?);
        self.insert(fingerprint, token, Rc::clone(&verified), now);
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn v(exp: i64) -> Rc<Verified> {
        Rc::new(Verified { sub: Some("s".into()), exp, claims: Map::new() })
    }

    #[test]
    fn hits_expire_with_the_token_and_depend_on_the_policy() {
        let mut c = VerifiedCache::new(4);
        c.insert(1, "tok", v(100), 10);
        assert_eq!(c.get(1, "tok", 99).map(|v| v.exp), Some(100));
        assert!(c.get(2, "tok", 10).is_none(), "another policy");
        assert!(c.get(1, "tok2", 10).is_none());
        assert!(c.get(1, "tok", 100).is_none(), "expires at exp");
        assert!(c.is_empty());
        c.insert(1, "old", v(5), 10);
        assert!(c.is_empty(), "already expired tokens are not cached");
        let mut off = VerifiedCache::new(0);
        off.insert(1, "tok", v(100), 10);
        assert!(off.get(1, "tok", 10).is_none());
    }

    #[test]
    fn bounded_expired_first_then_fifo() {
        let mut c = VerifiedCache::new(3);
        c.insert(1, "a", v(100), 0);
        c.insert(1, "b", v(20), 0);
        c.insert(1, "c", v(100), 0);
        c.insert(1, "d", v(100), 30); // "b" expired: swept instead of evicting "a"
        assert_eq!(c.len(), 3);
        assert!(c.get(1, "a", 30).is_some() && c.get(1, "d", 30).is_some());
        c.insert(1, "e", v(100), 30); // nothing expired (sweep skipped too): oldest "a" goes
        assert!(c.get(1, "a", 30).is_none());
        assert!(c.get(1, "c", 30).is_some() && c.get(1, "e", 30).is_some());
        // Re-inserting the same key does not grow the cache.
        for _ in 0..100 {
            c.insert(1, "e", v(100), 30);
        }
        assert_eq!(c.len(), 3);
        assert!(c.order.len() <= 3 * 2 + 16);
        c.clear();
        assert!(c.is_empty() && c.get(1, "c", 30).is_none());
    }

    #[test]
    fn churn_stays_bounded() {
        let mut c = VerifiedCache::new(100);
        for i in 0..10_000i64 {
            c.insert(7, &format!("t{i}"), v(1_000_000), i / 100);
            assert!(c.len() <= 100);
            assert!(c.order.len() <= 216);
        }
        assert!(c.get(7, "t9999", 100).is_some() && c.get(7, "t0", 100).is_none());
    }
}
