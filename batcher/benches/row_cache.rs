//! What the row cache costs per row on the request path (issue 23: at most 1 us a lookup): the
//! key (SHA-256 over the row's bytes), then the lookup (the store, the rows in flight), for a
//! hit and for a miss, and storing a computed answer, for a one-value row and an MNIST-sized
//! one (784 floats).
//!
//!     cargo bench -p tfgate-batcher --bench row_cache
//!
//! Prints one line per case: nanoseconds per row, the median of 7 timed passes.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tfgate_batcher::batching::BatchFacts;
use tfgate_batcher::convert::{Dtype, Tensor, Values};
use tfgate_batcher::metrics::Metrics;
use tfgate_batcher::row_cache::key::{call_prefix, row_keys};
use tfgate_batcher::row_cache::{RowCache, RowCacheSettings, SharedRow};
use tfgate_batcher::target::{ModelTarget, VersionRef};

const ROWS: usize = 64;

/// A deadline no call here reaches.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}
const PASSES: usize = 7;

fn main() {
    let target = ModelTarget { model: "m".to_string(), version: VersionRef::Number(1) };
    let prefix = call_prefix(&target, "serving_default");
    for width in [1usize, 784] {
        let inputs = |offset: f32| {
            let values = (0..ROWS * width).map(|i| i as f32 + offset).collect();
            BTreeMap::from([(
                "x".to_string(),
                Tensor { dtype: Dtype::Float, shape: vec![ROWS, width], values: Values::F32(values) },
            )])
        };
        let warm = inputs(0.0);
        let cold = inputs(0.5);
        let keys_ns = per_row(|| {
            black_box(row_keys(&prefix, black_box(&warm), ROWS).unwrap());
        });
        let cache =
            Arc::new(RowCache::new("m", RowCacheSettings { bytes: 64 << 20, ttl: None }, Arc::new(Metrics::default())));
        let keys = row_keys(&prefix, &warm, ROWS).unwrap();
        let (_, leads) = cache.plan(&target, &keys, far(), Instant::now());
        let answers: Vec<SharedRow> = (0..ROWS).map(|_| answer(width)).collect();
        leads.complete(&answers, &answers);
        let misses = row_keys(&prefix, &cold, ROWS).unwrap();
        let hit_ns = per_row(|| {
            let (plan, _) = cache.plan(&target, black_box(&keys), far(), Instant::now());
            assert_eq!(plan.hits.len(), ROWS);
        });
        // A miss registers the row as in flight; dropping the leads takes it out again.
        let miss_ns = per_row(|| {
            let (plan, leads) = cache.plan(&target, black_box(&misses), far(), Instant::now());
            assert_eq!(plan.leads.len(), ROWS);
            drop(leads);
        });
        // A miss then keeps its answer (new keys every time; past 64 MiB, older ones go).
        let mut next = 0u64;
        let store_ns = per_row(|| {
            let fresh: Vec<[u8; 32]> = (0..ROWS as u64)
                .map(|i| {
                    let mut key = [0u8; 32];
                    key[..8].copy_from_slice(&(next * ROWS as u64 + i).to_le_bytes());
                    key
                })
                .collect();
            next += 1;
            let (plan, leads) = cache.plan(&target, &fresh, far(), Instant::now());
            assert_eq!(plan.leads.len(), ROWS);
            leads.complete(&answers, &answers);
        }) - miss_ns;
        println!(
            "row of {width:>3} float(s): key {keys_ns:>6.0} ns/row, hit {hit_ns:>6.0} ns/row, miss {miss_ns:>6.0} ns/row, storing an answer {store_ns:>6.0} ns/row; key + hit {:>6.0} ns/row",
            keys_ns + hit_ns
        );
    }
}

fn answer(width: usize) -> SharedRow {
    let y = Tensor { dtype: Dtype::Float, shape: vec![1, width], values: Values::F32(vec![1.0; width]) };
    SharedRow {
        outputs: Arc::new(BTreeMap::from([("y".to_string(), y)])),
        row: 0,
        facts: Arc::new(BatchFacts {
            id: 1,
            rows: ROWS,
            target: Arc::from("t"),
            sent: Instant::now(),
            backend: Duration::ZERO,
            version: Some(1),
            cost: Duration::ZERO,
            packed: Vec::new(),
            shared: true,
        }),
    }
}

/// Nanoseconds per row of `f` (which handles ROWS rows), the median of PASSES passes of about
/// 200 ms each.
fn per_row(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < Duration::from_millis(50) {
        f();
        calls += 1;
    }
    let per_pass = (calls * 4).max(1);
    let mut samples: Vec<f64> = (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_pass {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(per_pass) / ROWS as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[PASSES / 2]
}
