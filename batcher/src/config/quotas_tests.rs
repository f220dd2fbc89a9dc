use std::time::Duration;

use crate::admission::quota::plan::{Counted, LimitKind};
use crate::admission::quota::settings::{OnStoreFailure, StoreSetting, DEFAULT_KEY_PREFIX, DEFAULT_TIMEOUT};
use crate::admission::quota::QuotaSettings;
use crate::config::{Config, ReloadPlan};

fn config(quotas: &str) -> Result<Config, String> {
    let text = format!("listen = \"/tmp/q.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:1\"]\n{quotas}");
    Config::parse(&text).map_err(|e| e.0)
}

fn parse(quotas: &str) -> Result<Option<QuotaSettings>, String> {
    config(quotas).map(|c| c.quotas)
}

fn summary(quotas: &str) -> String {
    config(quotas).unwrap().summary()
}

fn quotas(text: &str) -> QuotaSettings {
    parse(text).unwrap_or_else(|e| panic!("{e}")).expect("[quotas]")
}

fn error(text: &str) -> String {
    parse(text).expect_err(text)
}

#[test]
fn no_table_no_quotas_and_the_spec_example_parses() {
    assert_eq!(parse(""), Ok(None));
    let q = quotas(
        r#"
[quotas]
store = "memory"
[quotas.plans.default]
rate = "20/s"
burst = 40
requests = "10000/day"
rows = "100000/day"
[quotas.plans.gold]
rows = "10000000/month"
"#,
    );
    assert_eq!(
        (q.store.clone(), q.on_store_failure, q.timeout),
        (StoreSetting::Memory, OnStoreFailure::Allow, DEFAULT_TIMEOUT)
    );
    assert_eq!(q.key_prefix, DEFAULT_KEY_PREFIX);
    let default = &q.plans["default"].limits;
    let ids: Vec<&str> = default.limits.iter().map(|l| l.id()).collect();
    assert_eq!(ids, ["rate", "requests_day", "rows_day"]);
    assert!(
        matches!(default.limits[0].kind, LimitKind::Rate { bucket, .. } if bucket.burst == 40 && bucket.interval_us == 50_000)
    );
    let gold = &q.plans["gold"].limits;
    assert!(
        matches!(gold.limits[..], [ref l] if l.kind == LimitKind::Quota { counted: Counted::Rows, count: 10_000_000, window: crate::admission::quota::limits::Window::Month })
    );
    let summary = summary("[quotas.plans.default]\nrate = \"20/s\"\n");
    assert!(
        summary.contains("[quotas] store=memory (memory_max_keys=1000000) on_store_failure=allow timeout_ms=100"),
        "{summary}"
    );
    assert!(summary.contains("[quotas.plans.default] 20 requests per second (burst 20)"), "{summary}");
}

#[test]
fn arrays_of_windows_sort_and_a_model_table_overrides_single_keys() {
    let q = quotas(
        r#"
[quotas.plans.default]
rate = "10/s"
requests = ["10000/day", "600/minute"]
rows = "1000/hour"
[quotas.plans.default.models.big]
rate = "1/s"
rows = []
"#,
    );
    let ids: Vec<(&str, Option<&str>)> =
        q.plans["default"].limits.limits.iter().map(|l| (l.id(), l.model.as_deref())).collect();
    assert_eq!(ids, [("rate", None), ("requests_minute", None), ("requests_day", None), ("rows_hour", None)]);
    let big: Vec<(&str, Option<&str>)> =
        q.plans["default"].for_model("big").limits.iter().map(|l| (l.id(), l.model.as_deref())).collect();
    // Its own rate, the plan's request windows, and no rows limit (an empty array lifts it).
    assert_eq!(big, [("rate", Some("big")), ("requests_minute", None), ("requests_day", None)]);
    assert!(summary("[quotas.plans.default.models.big]\nrate = \"1/s\"\n")
        .contains("[quotas.plans.default.models.big] 1 requests per second (burst 1) of model big"));
}

#[test]
fn stores_and_failure_policies() {
    let q = quotas("[quotas]\nstore = \"redis://10.0.0.20:6379/2\"\non_store_failure = \"deny\"\ntimeout_ms = 50\nkey_prefix = \"prod:\"\n[quotas.plans.default]\n");
    assert!(matches!(&q.store, StoreSetting::Redis(t) if t.url == "redis://10.0.0.20:6379/2" && t.shown == t.url));
    assert_eq!(
        (q.on_store_failure, q.timeout, q.key_prefix.as_str()),
        (OnStoreFailure::Deny, Duration::from_millis(50), "prod:")
    );
    let q = quotas("[quotas]\nstore = \"redis://:s3cret@redis.internal:6379\"\n[quotas.plans.default]\n");
    let StoreSetting::Redis(target) = &q.store else { panic!() };
    assert_eq!(target.shown, "redis://***@redis.internal:6379");
    assert!(!q.describe().contains("s3cret"));
    for (store, needle) in [
        ("rediss://h", "HOST:PORT"),
        ("redis://h", "HOST:PORT"),
        ("redis://:6379", "HOST:PORT"),
        ("redis://h:0", "HOST:PORT"),
        ("redis://h:6379/x", "database"),
        ("memcached://h:1", "unknown store"),
        ("redis://:pw@h:99999", "HOST:PORT"),
    ] {
        let e = error(&format!("[quotas]\nstore = \"{store}\"\n[quotas.plans.default]\n"));
        assert!(e.starts_with("quotas.store:") && e.contains(needle), "{store}: {e}");
        assert!(!e.contains("pw@"), "{e}");
    }
}

/// `rediss://` with the TLS keys, the ACL user and a password read from its file (never shown).
#[test]
fn redis_over_tls_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "hunter2-quota\n").unwrap();
    let text = format!(
        "[quotas]\nstore = \"rediss://redis.internal:6380/0\"\nusername = \"tfgate\"\npassword_file = \"{}\"\n[quotas.plans.default]\n",
        password.display()
    );
    let q = quotas(&text);
    let StoreSetting::Redis(target) = &q.store else { panic!() };
    assert!(target.tls.is_some(), "rediss:// is TLS, against the system's CA store without ca_file");
    assert_eq!(target.username.as_deref(), Some("tfgate"));
    assert_eq!(target.password.as_ref().map(|p| p.0.as_str()), Some("hunter2-quota"));
    assert!(!format!("{q:?}").contains("hunter2") && !q.describe().contains("hunter2"));

    let e = error("[quotas]\nstore = \"redis://h:6379\"\nca_file = \"/x.pem\"\n[quotas.plans.default]\n");
    assert!(e.starts_with("quotas.ca_file: only for a TLS store"), "{e}");
    let e = error("[quotas]\nstore = \"rediss://h:6379\"\nca_file = \"/nonexistent.pem\"\n[quotas.plans.default]\n");
    assert!(e.starts_with("quotas.ca_file: cannot read"), "{e}");
    let e = error("[quotas]\nstore = \"redis://h:6379\"\npassword_file = \"/nonexistent\"\n[quotas.plans.default]\n");
    assert!(e.starts_with("quotas.password_file: cannot read"), "{e}");
    std::fs::write(&password, "two\nlines\n").unwrap();
    let e = error(&format!(
        "[quotas]\nstore = \"redis://h:6379\"\npassword_file = \"{}\"\n[quotas.plans.default]\n",
        password.display()
    ));
    assert!(e.contains("on one line") && !e.contains("two"), "{e}");
    std::fs::write(&password, "one").unwrap();
    let e = error(&format!(
        "[quotas]\nstore = \"redis://:pw@h:6379\"\npassword_file = \"{}\"\n[quotas.plans.default]\n",
        password.display()
    ));
    assert!(e.contains("has a password too"), "{e}");
}

#[test]
fn mistakes_name_the_key() {
    for (text, needle) in [
        ("[quotas]\n", "quotas.plans.default: missing"),
        ("[quotas.plans.gold]\n", "quotas.plans.default: missing"),
        ("[quotas]\non_store_failure = \"maybe\"\n[quotas.plans.default]\n", "quotas.on_store_failure"),
        ("[quotas]\ntimeout_ms = 0\n[quotas.plans.default]\n", "quotas.timeout_ms"),
        ("[quotas]\nmemory_max_keys = 0\n[quotas.plans.default]\n", "quotas.memory_max_keys"),
        ("[quotas]\nkey_prefix = \"a\\nb\"\n[quotas.plans.default]\n", "quotas.key_prefix"),
        ("[quotas.plans.default]\n[quotas.plans.\"gold plan\"]\n", "quotas.plans.gold plan: a plan name"),
        ("[quotas.plans.default]\nrate = \"20/ms\"\n", "quotas.plans.default.rate"),
        ("[quotas.plans.default]\nburst = 5\n", "quotas.plans.default.burst: needs rate"),
        ("[quotas.plans.default]\nrate = \"1/day\"\nburst = 1000000000000\n", "quotas.plans.default.burst"),
        ("[quotas.plans.default]\nrate = \"1/s\"\nburst = 0\n", "quotas.plans.default.burst"),
        ("[quotas.plans.default]\nrequests = \"5/s\"\n", "quotas.plans.default.requests"),
        ("[quotas.plans.default]\nrows = [\"5/day\", \"6/day\"]\n", "quotas.plans.default.rows: two limits per day"),
        ("[quotas.plans.default.models.m]\nrows = \"x\"\n", "quotas.plans.default.models.m.rows"),
        ("[quotas.plans.default.models.\"\"]\n", "quotas.plans.default.models: a model name"),
        ("[quotas.plans.default]\nrequests = 5\n", "requests"),
        ("[quotas.plans.default]\nrate_limit = \"5/s\"\n", "rate_limit"),
        ("[quotas.plans.default.models.m]\nmodels = {}\n", "models"),
        ("[quotas]\nstores = \"memory\"\n[quotas.plans.default]\n", "stores"),
        ("[quotas.plans.default]\npriority = 11\n", "quotas.plans.default.priority: must be between -10 and 10"),
        ("[quotas.plans.default]\nweight = 0\n", "quotas.plans.default.weight: must be between 1 and 1000"),
        ("[quotas.plans.default]\ncompute = \"60/hour\"\n", "quotas.plans.default.compute"),
        ("[quotas.plans.default]\ncompute = [\"1s/day\", \"2s/day\"]\n", "two limits per day"),
    ] {
        let e = error(text);
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn plans_set_their_class_and_compute() {
    let q = quotas(
        "[quotas.plans.default]\n[quotas.plans.gold]\npriority = 2\nweight = 3\ncompute = [\"60s/hour\", \"10m/day\"]\n",
    );
    let gold = &q.plans["gold"];
    assert_eq!((gold.class.priority, gold.class.weight), (2, 3));
    assert_eq!((q.plans["default"].class.priority, q.plans["default"].class.weight), (0, 1));
    assert_eq!(q.class(Some("gold")), gold.class);
    assert_eq!(q.class(Some("unknown")), q.plans["default"].class);
    let kinds: Vec<_> = gold.limits.limits.iter().map(|l| l.kind).collect();
    assert!(kinds.contains(&LimitKind::Quota {
        counted: Counted::Compute,
        count: 60_000_000,
        window: crate::admission::quota::limits::Window::Hour
    }));
    assert!(gold.limits.has_compute() && gold.limits.policy_field().contains("qu=\"compute-microseconds\""));
}

#[test]
fn reloads_tell_plans_from_stores() {
    let config = |quotas: &str| {
        Config::parse(&format!("listen = \"/tmp/q.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:1\"]\n{quotas}"))
            .unwrap()
    };
    let memory = config("[quotas.plans.default]\nrate = \"1/s\"\n");
    let plan = ReloadPlan::between(&memory, &config("[quotas.plans.default]\nrate = \"2/s\"\n"));
    assert!(plan.quotas && !plan.quota_store && !plan.is_empty() && !plan.batching);
    let plan = ReloadPlan::between(
        &memory,
        &config("[quotas]\nmemory_max_keys = 10\n[quotas.plans.default]\nrate = \"1/s\"\n"),
    );
    assert!(plan.quotas && !plan.quota_store);
    let redis = config("[quotas]\nstore = \"redis://127.0.0.1:6379\"\n[quotas.plans.default]\nrate = \"1/s\"\n");
    assert!(ReloadPlan::between(&memory, &redis).quota_store);
    let slower = config(
        "[quotas]\nstore = \"redis://127.0.0.1:6379\"\ntimeout_ms = 500\n[quotas.plans.default]\nrate = \"1/s\"\n",
    );
    assert!(ReloadPlan::between(&redis, &slower).quota_store);
    assert!(ReloadPlan::between(&memory, &config("")).quota_store);
    assert!(ReloadPlan::between(&memory, &memory).is_empty());
}
