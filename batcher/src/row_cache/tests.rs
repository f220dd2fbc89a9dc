use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::convert::{Dtype, Tensor, Values};
use crate::row_cache::plan::Source;

fn facts(version: Option<i64>) -> Arc<BatchFacts> {
    Arc::new(BatchFacts {
        id: 1,
        rows: 1,
        target: Arc::from("http://t"),
        sent: Instant::now(),
        backend: Duration::ZERO,
        version,
        cost: Duration::ZERO,
        packed: Vec::new(),
        shared: true,
    })
}

fn row(value: f32, version: Option<i64>) -> SharedRow {
    let y = Tensor { dtype: Dtype::Float, shape: vec![1, 64], values: Values::F32(vec![value; 64]) };
    SharedRow { outputs: Arc::new(BTreeMap::from([("y".to_string(), y)])), row: 0, facts: facts(version) }
}

fn cache(bytes: u64) -> Arc<RowCache> {
    Arc::new(RowCache::new("m", RowCacheSettings { bytes, ttl: None }, Arc::new(Metrics::default())))
}

/// A deadline no call here reaches.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn target(version: VersionRef) -> ModelTarget {
    ModelTarget { model: "m".to_string(), version }
}

#[test]
fn a_completed_row_answers_the_next_call_and_its_waiting_followers() {
    let cache = cache(1 << 20);
    let t = target(VersionRef::Number(1));
    let (first, leads) = cache.plan(&t, &[[1; 32]], far(), Instant::now());
    assert_eq!(first.rows, vec![Source::Lead(0)]);
    // A second call for the same row while the first computes it follows it.
    let (second, no_leads) = cache.plan(&t, &[[1; 32]], far(), Instant::now());
    assert_eq!(second.rows, vec![Source::Follow(0)]);
    assert!(no_leads.rows.is_empty());
    let follow = second.follows.into_iter().next().unwrap();
    leads.complete(&[row(3.5, Some(1))], &[row(3.5, Some(1))]);
    assert!(follow.borrow().is_some(), "the follower got the row");
    let (third, _) = cache.plan(&t, &[[1; 32]], far(), Instant::now());
    assert_eq!(third.rows, vec![Source::Hit(0)]);
    assert_eq!(cache.metrics.row_cache_hits.get(&["m"]), 1);
    assert_eq!(cache.metrics.rows_deduplicated.get(&["m"]), 1);
}

#[test]
fn a_lead_that_fails_releases_its_followers_and_its_keys() {
    let cache = cache(1 << 20);
    let t = target(VersionRef::Number(1));
    let (_, leads) = cache.plan(&t, &[[2; 32]], far(), Instant::now());
    let (second, _) = cache.plan(&t, &[[2; 32]], far(), Instant::now());
    let follow = second.follows.into_iter().next().unwrap();
    drop(leads);
    assert!(follow.has_changed().is_err(), "the follower sees the lead gone");
    let (third, leads) = cache.plan(&t, &[[2; 32]], far(), Instant::now());
    assert_eq!(third.rows, vec![Source::Lead(0)], "the key is free to be sent again");
    drop(leads);
}

#[test]
fn latest_is_answered_only_by_the_version_seen_answering_recently() {
    let cache = cache(1 << 20);
    let t = target(VersionRef::Latest);
    let now = Instant::now();
    let (_, leads) = cache.plan(&t, &[[3; 32]], far(), now);
    cache.saw_version(&t, Some(1), now);
    leads.complete(&[row(1.0, Some(1))], &[row(1.0, Some(1))]);
    assert!(matches!(cache.plan(&t, &[[3; 32]], far(), now).0.rows[0], Source::Hit(_)));
    // Version 2 answers latest now: version 1's entries no longer answer.
    cache.saw_version(&t, Some(2), now);
    assert!(matches!(cache.plan(&t, &[[3; 32]], far(), now).0.rows[0], Source::Lead(_)));
    // Not heard from the backend for longer than VERSION_RECHECK: sent again.
    cache.saw_version(&t, Some(1), now);
    let later = now + VERSION_RECHECK + Duration::from_millis(1);
    assert!(matches!(cache.plan(&t, &[[3; 32]], far(), later).0.rows[0], Source::Lead(_)));
}

#[test]
fn the_store_stays_within_its_bytes_under_a_flood_of_distinct_rows() {
    let bound = 64 << 10;
    let cache = cache(bound);
    let t = target(VersionRef::Number(1));
    for i in 0..5_000u32 {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_le_bytes());
        let (_, leads) = cache.plan(&t, &[key], far(), Instant::now());
        leads.complete(&[row(i as f32, Some(1))], &[row(i as f32, Some(1))]);
    }
    let held = cache.bytes();
    assert!(held <= bound && held > bound / 2, "{held} bytes held for a bound of {bound}");
    assert!(cache.metrics.row_cache_evictions.get(&["m", "size"]) > 4_000);
}

#[test]
fn without_bytes_rows_are_shared_in_flight_but_not_kept() {
    let cache = cache(0);
    let t = target(VersionRef::Number(1));
    let (_, leads) = cache.plan(&t, &[[4; 32]], far(), Instant::now());
    assert_eq!(cache.plan(&t, &[[4; 32]], far(), Instant::now()).0.rows, vec![Source::Follow(0)]);
    leads.complete(&[row(1.0, Some(1))], &[]);
    assert_eq!(cache.plan(&t, &[[4; 32]], far(), Instant::now()).0.rows, vec![Source::Lead(0)]);
}

#[test]
fn a_reload_keeps_a_cache_whose_settings_did_not_change() {
    let metrics = Arc::new(Metrics::default());
    let settings = |bytes| BTreeMap::from([("m".to_string(), RowCacheSettings { bytes, ttl: None })]);
    let caches = RowCaches::new(&settings(1 << 20), metrics);
    let before = caches.get("m").unwrap();
    caches.reconfigure(&settings(1 << 20));
    assert!(Arc::ptr_eq(&before, &caches.get("m").unwrap()));
    caches.reconfigure(&settings(2 << 20));
    assert!(!Arc::ptr_eq(&before, &caches.get("m").unwrap()));
    caches.reconfigure(&BTreeMap::new());
    assert!(caches.get("m").is_none());
}

#[test]
fn a_row_is_followed_only_from_a_call_due_no_later() {
    let cache = cache(1 << 20);
    let t = target(VersionRef::Number(1));
    let now = Instant::now();
    let (_, slow) = cache.plan(&t, &[[5; 32]], now + Duration::from_secs(10), now);
    // Due sooner than the call computing it: computed here too, and later calls follow this one.
    let (urgent, fast) = cache.plan(&t, &[[5; 32]], now + Duration::from_secs(1), now);
    assert_eq!(urgent.rows, vec![Source::Lead(0)]);
    let (patient, _) = cache.plan(&t, &[[5; 32]], now + Duration::from_secs(5), now);
    assert_eq!(patient.rows, vec![Source::Follow(0)]);
    // The first call ending does not unregister the second's row.
    drop(slow);
    let (again, _) = cache.plan(&t, &[[5; 32]], now + Duration::from_secs(5), now);
    assert_eq!(again.rows, vec![Source::Follow(0)]);
    drop(fast);
}

#[test]
fn an_answer_to_an_older_call_does_not_bring_its_version_back() {
    let cache = cache(1 << 20);
    let t = target(VersionRef::Latest);
    let now = Instant::now();
    let (_, leads) = cache.plan(&t, &[[6; 32]], far(), now);
    leads.complete(&[row(1.0, Some(1))], &[row(1.0, Some(1))]);
    cache.saw_version(&t, Some(2), now);
    // A slow call of version 1, sent before version 2 was seen, comes back late.
    cache.saw_version(&t, Some(1), now - Duration::from_millis(10));
    assert!(matches!(cache.plan(&t, &[[6; 32]], far(), now).0.rows[0], Source::Lead(_)));
}
