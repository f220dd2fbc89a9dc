//! Counters of the Predict calls served, exposed by the `control` endpoint so that integration
//! tests can check how a client (the batcher) called the model:
//! `{"predict_calls":N,"predict_items":N,"predict_errors":N,"max_batch":N,"batch_sizes":{"B":N,...},"last_traceparent":"...","tls_handshakes":N,"tls_failures":N}`.
//! v2 ModelInfer calls count as Predict calls (they run the same way), and once there has been
//! one, `"infer_calls":N` says how many of the calls were ModelInfer.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Predict counters. Calls rejected before running count in `predict_errors` only.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub predict_calls: u64,
    pub predict_items: u64,
    pub predict_errors: u64,
    pub max_batch: u64,
    pub batch_sizes: BTreeMap<u64, u64>,
    /// The `traceparent` metadata of the last Predict call that had one.
    pub last_traceparent: Option<String>,
    /// TLS handshakes completed and failed (with `--tls-cert`).
    pub tls_handshakes: u64,
    pub tls_failures: u64,
    /// v2 ModelInfer calls received (each also counted as a Predict once accepted).
    pub infer_calls: u64,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one accepted Predict call of `batch` items.
    pub fn record_predict(&self, batch: u64) {
        let mut c = self.lock();
        c.predict_calls += 1;
        c.predict_items += batch;
        c.max_batch = c.max_batch.max(batch);
        *c.batch_sizes.entry(batch).or_default() += 1;
    }

    pub fn record_traceparent(&self, value: &str) {
        self.lock().last_traceparent = Some(value.to_string());
    }

    pub fn record_tls_handshake(&self, succeeded: bool) {
        let mut c = self.lock();
        if succeeded {
            c.tls_handshakes += 1;
        } else {
            c.tls_failures += 1;
        }
    }

    /// Records a v2 ModelInfer call, before it is checked.
    pub fn record_infer(&self) {
        self.lock().infer_calls += 1;
    }

    /// Records a rejected Predict call.
    pub fn record_error(&self) {
        self.lock().predict_errors += 1;
    }

    pub fn snapshot(&self) -> Counters {
        self.lock().clone()
    }

    pub fn reset(&self) {
        *self.lock() = Counters::default();
    }

    pub fn to_json(&self) -> String {
        let c = self.snapshot();
        let sizes: serde_json::Map<String, serde_json::Value> =
            c.batch_sizes.iter().map(|(b, n)| (b.to_string(), (*n).into())).collect();
        let mut json = serde_json::json!({
            "predict_calls": c.predict_calls,
            "predict_items": c.predict_items,
            "predict_errors": c.predict_errors,
            "max_batch": c.max_batch,
            "batch_sizes": sizes,
            "last_traceparent": c.last_traceparent,
            "tls_handshakes": c.tls_handshakes,
            "tls_failures": c.tls_failures,
        });
        // Only once there is one: the stats of a run without v2 calls stay as they were.
        if c.infer_calls > 0 {
            json["infer_calls"] = c.infer_calls.into();
        }
        json.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = Stats::default();
        s.record_predict(4);
        s.record_predict(1);
        s.record_predict(4);
        s.record_error();
        s.record_tls_handshake(true);
        s.record_tls_handshake(false);
        s.record_tls_handshake(true);
        let c = s.snapshot();
        assert_eq!((c.tls_handshakes, c.tls_failures), (2, 1));
        assert_eq!((c.predict_calls, c.predict_items, c.max_batch, c.predict_errors), (3, 9, 4, 1));
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["batch_sizes"], serde_json::json!({"1": 1, "4": 2}));
        assert_eq!(json["predict_items"], 9);
        assert!(json.get("infer_calls").is_none(), "no v2 call: not shown");
        s.record_infer();
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["infer_calls"], 1);
        s.reset();
        assert_eq!(s.snapshot(), Counters::default());
    }
}
