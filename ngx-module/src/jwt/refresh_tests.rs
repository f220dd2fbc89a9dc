//! [`KeySource`] driven by a fake clock.

use super::super::keys::KeySet;
use super::*;
use tfgate_jwt_testkit::{hs_jwk, jwks};

fn set(kids: &[&str]) -> KeySet {
    let keys: Vec<_> = kids.iter().map(|kid| hs_jwk(kid, 32)).collect();
    KeySet::parse(jwks(&keys).as_bytes()).unwrap().0
}

fn kids(d: &KeysDecision) -> Vec<String> {
    match d {
        KeysDecision::Use(k) | KeysDecision::UseAndRefreshInBackground(k) => {
            k.keys().iter().filter_map(|k| k.kid().map(str::to_owned)).collect()
        }
        _ => Vec::new(),
    }
}

fn loaded(now: i64) -> KeySource {
    let mut s = KeySource::new(RefreshConfig::default());
    assert!(matches!(s.on_request(now), KeysDecision::StartFetchAndWait));
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["old"])), Some(100), now));
    s
}

#[test]
fn first_request_fetches_others_wait() {
    let mut s = KeySource::new(RefreshConfig::default());
    assert!(s.keys_unavailable());
    assert!(matches!(s.on_request(0), KeysDecision::StartFetchAndWait));
    for t in 0..5 {
        assert!(matches!(s.on_request(t), KeysDecision::WaitForFetch));
    }
    assert!(s.fetch_in_flight(5));
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["a"])), None, 5));
    assert!(!s.keys_unavailable() && !s.fetch_in_flight(5));
    assert_eq!(kids(&s.on_request(6)), vec!["a"]);
    assert!(matches!(s.on_request(6), KeysDecision::Use(_)));
    // Default lifetime 600 s: background refresh from 90% of it, one at a time.
    assert!(matches!(s.on_request(5 + 539), KeysDecision::Use(_)));
    assert!(matches!(s.on_request(5 + 540), KeysDecision::UseAndRefreshInBackground(_)));
    assert!(matches!(s.on_request(5 + 541), KeysDecision::Use(_)));
}

#[test]
fn failed_first_fetch_answers_unavailable_then_retries_with_backoff() {
    let mut s = KeySource::new(RefreshConfig::default());
    assert!(matches!(s.on_request(0), KeysDecision::StartFetchAndWait));
    assert!(!s.on_fetch_done(s.fetch_id(), Err("connect refused".into()), None, 1));
    assert!(s.keys_unavailable());
    assert!(matches!(s.on_request(2), KeysDecision::Unavailable));
    assert!(matches!(s.on_request(6), KeysDecision::StartFetchAndWait), "5 s backoff");
    assert!(!s.on_fetch_done(s.fetch_id(), Err("500".into()), None, 6));
    assert!(matches!(s.on_request(15), KeysDecision::Unavailable), "10 s the second time");
    assert!(matches!(s.on_request(16), KeysDecision::StartFetchAndWait));
    // A fetch that never answers times out after 10 s and counts as a failure.
    assert!(matches!(s.on_request(20), KeysDecision::WaitForFetch));
    assert!(!s.fetch_in_flight(26));
    assert!(matches!(s.on_request(27), KeysDecision::Unavailable));
    assert!(matches!(s.on_request(26 + 20), KeysDecision::StartFetchAndWait));
}

#[test]
fn failure_keeps_the_last_good_keys() {
    let mut s = loaded(0);
    assert!(s.is_stale(100) && !s.is_stale(99));
    assert!(matches!(s.on_request(90), KeysDecision::UseAndRefreshInBackground(_)));
    assert!(!s.on_fetch_done(s.fetch_id(), Err("timeout".into()), None, 91));
    for t in 92..96 {
        assert!(matches!(s.on_request(t), KeysDecision::Use(_)), "no hammering during backoff");
    }
    assert!(matches!(s.on_request(96), KeysDecision::UseAndRefreshInBackground(_)));
    assert!(!s.on_fetch_done(s.fetch_id(), Err("timeout".into()), None, 96));
    let d = s.on_request(1000);
    assert_eq!(kids(&d), vec!["old"], "stale keys stay in use while the IdP is down");
}

#[test]
fn rotation_refetches_once_and_old_and_new_kids_work() {
    let mut s = loaded(0);
    assert_eq!(s.on_unknown_kid("new", 10), RefetchDecision::Refetch);
    assert_eq!(s.on_unknown_kid("new", 10), RefetchDecision::Wait, "a burst waits for the same fetch");
    assert!(matches!(s.on_request(10), KeysDecision::Use(_)));
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["old", "new"])), Some(100), 11));
    let d = s.on_request(12);
    assert_eq!(kids(&d), vec!["old", "new"]);
}

#[test]
fn a_flood_of_random_kids_causes_one_refetch_per_cooldown() {
    let mut s = loaded(0);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut refetches = 0;
    let mut now = 10;
    for i in 0..10_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let kid = format!("{state:x}");
        match s.on_unknown_kid(&kid, now) {
            RefetchDecision::Refetch => refetches += 1,
            RefetchDecision::Wait | RefetchDecision::Reject => {}
        }
        if i == 100 {
            assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["old"])), Some(600), now));
        }
        if i % 1000 == 999 {
            now += 2; // the whole flood spans 20 s < 30 s cooldown
        }
    }
    assert_eq!(refetches, 1);
    // After the cooldown one more refetch is allowed.
    assert_eq!(s.on_unknown_kid("another", 41), RefetchDecision::Refetch);
}

#[test]
fn a_kid_still_unknown_after_the_refetch_is_negatively_cached() {
    let mut s = loaded(0);
    assert_eq!(s.on_unknown_kid("ghost", 10), RefetchDecision::Refetch);
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["old"])), Some(10), 11));
    assert_eq!(s.on_unknown_kid("ghost", 12), RefetchDecision::Reject);
    // While a background refresh is in flight, a negatively cached kid does not even wait.
    assert!(matches!(s.on_request(20), KeysDecision::UseAndRefreshInBackground(_)));
    assert_eq!(s.on_unknown_kid("ghost", 21), RefetchDecision::Reject);
    assert_eq!(s.on_unknown_kid("other", 21), RefetchDecision::Wait);
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["old"])), Some(600), 22));
    assert_eq!(s.on_unknown_kid("other", 23), RefetchDecision::Reject);
    assert_eq!(s.on_unknown_kid("ghost", 39), RefetchDecision::Reject);
    assert_eq!(s.on_unknown_kid("ghost", 40), RefetchDecision::Refetch, "rejected only until the cooldown ends");
}

#[test]
fn unknown_kid_never_refetches_during_failure_backoff_or_without_keys() {
    let mut s = KeySource::new(RefreshConfig::default());
    assert_eq!(s.on_unknown_kid("k", 0), RefetchDecision::Reject);
    let mut s = loaded(0);
    assert!(matches!(s.on_request(90), KeysDecision::UseAndRefreshInBackground(_)));
    assert_eq!(s.on_unknown_kid("k", 90), RefetchDecision::Wait, "background fetch may bring it");
    assert!(!s.on_fetch_done(s.fetch_id(), Err("down".into()), None, 91));
    assert_eq!(s.on_unknown_kid("k", 92), RefetchDecision::Reject, "backoff");
    assert_eq!(s.on_unknown_kid("k", 96), RefetchDecision::Refetch);
}

#[test]
fn ttl_is_clamped_and_huge_values_do_not_overflow() {
    let mut s = KeySource::new(RefreshConfig::default());
    assert!(matches!(s.on_request(0), KeysDecision::StartFetchAndWait));
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["a"])), Some(0), 0));
    assert!(matches!(s.on_request(8), KeysDecision::Use(_)), "max-age=0 is raised to 10 s");
    assert!(matches!(s.on_request(9), KeysDecision::UseAndRefreshInBackground(_)));
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["a"])), Some(u64::MAX), i64::MAX - 5));
    assert!(matches!(s.on_request(i64::MAX - 1), KeysDecision::Use(_)));
    assert_eq!(s.on_unknown_kid("x", i64::MAX - 1), RefetchDecision::Refetch);
    assert_eq!(s.on_unknown_kid("y", i64::MAX - 1), RefetchDecision::Wait);
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["a"])), Some(1), i64::MIN));
}

#[test]
fn a_late_answer_to_an_abandoned_fetch_does_not_end_the_newer_one() {
    let mut s = KeySource::new(RefreshConfig::default());
    assert!(matches!(s.on_request(0), KeysDecision::StartFetchAndWait));
    let first = s.fetch_id();
    // The first fetch times out (10 s), backs off (5 s); a second one starts.
    assert!(matches!(s.on_request(16), KeysDecision::StartFetchAndWait));
    assert_ne!(s.fetch_id(), first);
    assert!(!s.on_fetch_done(first, Err("late failure".into()), None, 17));
    assert!(s.fetch_in_flight(17), "the newer fetch is still in flight");
    assert!(matches!(s.on_request(17), KeysDecision::WaitForFetch));
    assert!(s.on_fetch_done(s.fetch_id(), Ok(set(&["a"])), None, 18));
    assert_eq!(kids(&s.on_request(18)), vec!["a"]);
}

#[test]
fn an_aborted_fetch_is_not_a_failure() {
    let mut s = KeySource::new(RefreshConfig::default());
    assert!(matches!(s.on_request(0), KeysDecision::StartFetchAndWait));
    s.on_fetch_aborted(s.fetch_id());
    assert!(matches!(s.on_request(0), KeysDecision::StartFetchAndWait), "no backoff after a client abort");
}
