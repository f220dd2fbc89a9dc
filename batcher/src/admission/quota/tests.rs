//! The quota service over the memory store, its clock injected: every window kind, requests
//! and rows, the bucket, plans and their fallbacks, per-model limits, store failures, reloads.

use super::*;
use crate::config::Config;

const S: u64 = 1_000_000;
/// 2026-04-13T13:05:42Z, in microseconds.
const T0: u64 = 1_776_085_542 * S;

fn settings(quotas: &str) -> QuotaSettings {
    let text = format!("listen = \"/tmp/q.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:1\"]\n{quotas}");
    Config::parse(&text).unwrap_or_else(|e| panic!("{e}")).quotas.expect("[quotas]")
}

fn quotas(text: &str) -> Quotas {
    Quotas::new(Some(&settings(text)), Arc::new(Metrics::default()))
}

fn alice() -> Caller {
    Caller { subject: "alice".into(), client: "10.0.0.1".into(), plan: None }
}

fn with_plan(plan: &str) -> Caller {
    Caller { plan: Some(plan.into()), ..alice() }
}

async fn admitted(q: &Quotas, caller: &Caller, model: &str, rows: u64, now: u64) -> Standing {
    match q.admit_at(caller, model, rows, now).await {
        Ok(Some(standing)) => standing,
        Ok(None) => panic!("not limited"),
        Err(refusal) => panic!("refused: {}", refusal.error),
    }
}

async fn refused(q: &Quotas, caller: &Caller, model: &str, rows: u64, now: u64) -> Refusal {
    match q.admit_at(caller, model, rows, now).await {
        Err(refusal) => refusal,
        Ok(_) => panic!("admitted"),
    }
}

/// Fills a window of `limit` requests at `now`, then checks the next request waits exactly
/// until `end` and that the window after it starts from zero.
async fn window_holds(kind: &str, limit: u64, now: u64, end: u64) {
    let q = quotas(&format!("[quotas.plans.default]\nrequests = \"{limit}/{kind}\"\n"));
    for _ in 0..limit {
        admitted(&q, &alice(), "m", 1, now).await;
    }
    let refusal = refused(&q, &alice(), "m", 1, now).await;
    let wait = (end - now).div_ceil(S) as u32;
    assert_eq!(refusal.error.code, tonic::Code::ResourceExhausted, "{kind}");
    assert_eq!(refusal.error.retry_after, Some(wait), "{kind}");
    assert_eq!(
        refusal.standing.ratelimit_field().unwrap(),
        format!("\"default:requests_{kind}\";r=0;t={wait}"),
        "{kind}"
    );
    // The last microsecond of the window is still in it; the next window starts afresh.
    refused(&q, &alice(), "m", 1, end - 1).await;
    let standing = admitted(&q, &alice(), "m", 1, end).await;
    assert!(standing.ratelimit_field().unwrap().contains(&format!("r={}", limit - 1)), "{kind}");
}

#[tokio::test]
async fn every_calendar_window_ends_on_the_utc_calendar() {
    window_holds("minute", 3, T0, 1_776_085_560 * S).await;
    window_holds("hour", 2, T0, 1_776_088_800 * S).await;
    window_holds("day", 2, T0, 1_776_124_800 * S).await;
    // 2026-05-01T00:00:00Z.
    window_holds("month", 4, T0, 1_777_593_600 * S).await;
}

#[tokio::test]
async fn rows_and_requests_are_counted_apart_and_a_refusal_counts_nothing() {
    let q = quotas("[quotas.plans.default]\nrequests = \"3/day\"\nrows = \"10/day\"\n");
    let standing = admitted(&q, &alice(), "m", 6, T0).await;
    assert_eq!(
        standing.ratelimit_field().unwrap(),
        "\"default:requests_day\";r=2;t=39258, \"default:rows_day\";r=4;t=39258"
    );
    // 6 + 6 rows > 10: refused by rows alone, and the request is not counted either.
    let refusal = refused(&q, &alice(), "m", 6, T0).await;
    assert_eq!(refusal.standing.ratelimit_field().unwrap(), "\"default:rows_day\";r=4;t=39258");
    assert!(refusal.error.message.contains("10 rows per day"), "{}", refusal.error.message);
    let standing = admitted(&q, &alice(), "m", 4, T0).await;
    assert!(standing.ratelimit_field().unwrap().starts_with("\"default:requests_day\";r=1;"));
    // Rows left, requests spent: an empty request is still a request.
    let standing = admitted(&q, &alice(), "m", 0, T0).await;
    assert!(standing.ratelimit_field().unwrap().starts_with("\"default:requests_day\";r=0;"));
    let refusal = refused(&q, &alice(), "m", 0, T0).await;
    assert!(refusal.standing.ratelimit_field().unwrap().starts_with("\"default:requests_day\";r=0;"));
    // Another caller has counters of its own.
    admitted(&q, &Caller { subject: "bob".into(), ..alice() }, "m", 10, T0).await;
}

#[tokio::test]
async fn more_rows_than_the_whole_quota_is_refused_without_a_retry_hint() {
    let q = quotas("[quotas.plans.default]\nrate = \"1/s\"\nrows = \"100/hour\"\n");
    let refusal = refused(&q, &alice(), "m", 101, T0).await;
    assert_eq!((refusal.error.code, refusal.error.retry_after), (tonic::Code::ResourceExhausted, None));
    assert!(refusal.error.message.contains("never"), "{}", refusal.error.message);
    // Nothing was taken from the bucket either.
    admitted(&q, &alice(), "m", 100, T0).await;
}

#[tokio::test]
async fn the_rate_allows_a_burst_then_one_request_per_interval() {
    let q = quotas("[quotas.plans.default]\nrate = \"20/s\"\nburst = 40\n");
    assert_eq!(q.limits(None, "m").unwrap().policy_field(), "\"default:rate\";q=40;w=2");
    for i in 0..40 {
        let standing = admitted(&q, &alice(), "m", 1, T0).await;
        assert_eq!(
            standing.ratelimit_field().unwrap(),
            format!("\"default:rate\";r={};t={}", 39 - i, if i < 20 { 1 } else { 2 })
        );
    }
    let refusal = refused(&q, &alice(), "m", 1, T0).await;
    assert_eq!(refusal.error.retry_after, Some(1));
    assert_eq!(refusal.standing.ratelimit_field().unwrap(), "\"default:rate\";r=0;t=1");
    admitted(&q, &alice(), "m", 1, T0 + S / 20).await;
    refused(&q, &alice(), "m", 1, T0 + S / 20).await;
}

#[tokio::test]
async fn plans_come_from_the_header_and_unknown_or_malformed_ones_get_the_default() {
    let q = quotas(
        "[quotas.plans.default]\nrequests = \"1/minute\"\n[quotas.plans.gold]\nrequests = \"3/minute\"\n[quotas.plans.free]\n",
    );
    for _ in 0..3 {
        assert_eq!(admitted(&q, &with_plan("gold"), "m", 1, T0).await.plan(), "gold");
    }
    // The counters are the caller's: the same requests, measured against another plan.
    assert_eq!(refused(&q, &alice(), "m", 1, T0).await.standing.plan(), "default");
    assert_eq!(refused(&q, &with_plan("platinum"), "m", 1, T0).await.standing.plan(), "default");
    assert_eq!(refused(&q, &with_plan("gold,silver"), "m", 1, T0).await.standing.plan(), "default");
    assert_eq!(q.metrics.quota_plan_fallbacks.get(&["unknown"]), 1);
    assert_eq!(q.metrics.quota_plan_fallbacks.get(&["malformed"]), 1);
    assert_eq!(q.metrics.quota_refused.get(&["default", "requests_minute"]), 3);
    assert_eq!(q.metrics.quota_admitted.get(&["gold"]), 3);
    // An empty plan limits nothing: no counter, no header.
    assert!(q.admit_at(&with_plan("free"), "m", 1, T0).await.unwrap().is_none());
    assert!(q.limits(Some("free"), "m").is_none());
}

#[tokio::test]
async fn a_model_table_counts_its_own_limits_and_shares_the_rest() {
    let q = quotas(
        "[quotas.plans.default]\nrequests = \"3/minute\"\nrows = \"100/day\"\n\
         [quotas.plans.default.models.big]\nrequests = \"1/minute\"\n",
    );
    let standing = admitted(&q, &alice(), "big", 10, T0).await;
    assert_eq!(
        standing.policy_field(),
        "\"default:big:requests_minute\";q=1;w=60, \"default:rows_day\";q=100;qu=\"rows\";w=86400"
    );
    let refusal = refused(&q, &alice(), "big", 1, T0).await;
    assert!(refusal.error.message.contains("of model big"), "{}", refusal.error.message);
    // Other models have the plan's request limit, and share its rows with big.
    let standing = admitted(&q, &alice(), "small", 10, T0).await;
    assert!(standing.ratelimit_field().unwrap().contains("\"default:rows_day\";r=80;"));
    admitted(&q, &alice(), "small", 1, T0).await;
    admitted(&q, &alice(), "small", 1, T0).await;
    refused(&q, &alice(), "small", 1, T0).await;
}

#[tokio::test]
async fn a_store_failure_allows_or_denies_as_configured() {
    for (policy, allowed) in [("allow", true), ("deny", false)] {
        let q = quotas(&format!(
            "[quotas]\non_store_failure = \"{policy}\"\n[quotas.plans.default]\nrequests = \"5/minute\"\n"
        ));
        let active = q.active.get();
        let settings = &(*active).as_ref().unwrap().settings;
        let limits = q.limits(None, "m").unwrap();
        match q.store_failed(settings, &limits, &StoreError::Timeout) {
            Ok(Some(standing)) => {
                assert!(allowed);
                assert_eq!(standing.ratelimit_field(), None, "nothing is known of the counters");
                assert_eq!(standing.policy_field(), "\"default:requests_minute\";q=5;w=60");
            }
            Err(refusal) => {
                assert!(!allowed);
                assert_eq!((refusal.error.code, refusal.error.retry_after), (tonic::Code::Unavailable, Some(1)));
                assert_eq!(q.metrics.quota_refused.get(&["default", "store_unavailable"]), 1);
            }
            Ok(None) => panic!("not limited"),
        }
        assert_eq!(q.metrics.quota_store_errors.get(&["timeout"]), 1);
    }
}

#[tokio::test]
async fn a_full_memory_store_refuses_new_callers_whatever_on_store_failure_says() {
    for policy in ["allow", "deny"] {
        let q = quotas(&format!(
            "[quotas]\non_store_failure = \"{policy}\"\nmemory_max_keys = 2\n[quotas.plans.default]\nrequests = \"2/minute\"\n\
             [quotas.plans.default.models.big]\nrequests = \"1/minute\"\n"
        ));
        let bob = Caller { subject: "bob".into(), ..alice() };
        admitted(&q, &alice(), "m", 1, T0).await;
        admitted(&q, &bob, "m", 1, T0).await;
        // 2026-04-13T13:05:42Z: the minute's windows end in 18 s, and with them the records.
        for (caller, model) in [(Caller { subject: "carol".into(), ..alice() }, "m"), (alice(), "big")] {
            let refusal = refused(&q, &caller, model, 1, T0).await;
            assert_eq!((refusal.error.code, refusal.error.retry_after), (tonic::Code::ResourceExhausted, Some(18)));
            assert!(refusal.error.message.starts_with("quota store is full"), "{}", refusal.error.message);
            assert_eq!(refusal.standing.ratelimit_field(), None);
            assert_eq!(refusal.standing.policy_field(), q.limits(None, model).unwrap().policy_field());
        }
        // Alice and Bob are counted and limited as before.
        admitted(&q, &bob, "m", 1, T0).await;
        refused(&q, &bob, "m", 1, T0).await;
        assert_eq!(q.metrics.quota_refused.get(&["default", "store_full"]), 2, "{policy}");
        assert_eq!(q.metrics.quota_store_errors.get(&["full"]), 2);
        assert_eq!(q.metrics.quota_admitted.get(&["default"]), 3, "nobody admitted uncounted");
    }
}

#[tokio::test]
async fn a_reload_keeps_the_counters_unless_the_store_changes() {
    let q = quotas("[quotas.plans.default]\nrequests = \"2/day\"\n");
    admitted(&q, &alice(), "m", 1, T0).await;
    admitted(&q, &alice(), "m", 1, T0).await;
    // New limits, same store: what was used still counts.
    assert!(!q.reconfigure(Some(&settings(
        "[quotas]\nmemory_max_keys = 5000\n[quotas.plans.default]\nrequests = \"3/day\"\n"
    ))));
    let standing = admitted(&q, &alice(), "m", 1, T0).await;
    assert!(standing.ratelimit_field().unwrap().contains("r=0"));
    refused(&q, &alice(), "m", 1, T0).await;
    // Quotas off, then on again: a new store, from nothing.
    assert!(q.reconfigure(None));
    assert!(q.admit_at(&alice(), "m", 1, T0).await.unwrap().is_none());
    assert!(q.reconfigure(Some(&settings("[quotas.plans.default]\nrequests = \"3/day\"\n"))));
    admitted(&q, &alice(), "m", 1, T0).await;
}

#[tokio::test]
async fn callers_without_quotas_cost_nothing() {
    let q = Quotas::new(None, Arc::new(Metrics::default()));
    assert!(q.admit_at(&alice(), "m", 1, T0).await.unwrap().is_none());
    assert!(q.limits(None, "m").is_none());
}
