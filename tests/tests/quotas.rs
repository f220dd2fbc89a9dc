//! Per-caller quotas end to end: real nginx with the module (the plan from a token claim), the
//! daemon, tfs-sim and Debian's redis-server. The draft's headers exactly; plans, unknown and
//! malformed ones; two daemons sharing one Redis; Redis killed and restarted under both
//! failure policies; a SIGHUP reload keeping the counters; anonymous callers by address; a full
//! memory store refusing new callers; a split request counted once; and nginx's `limit_req` as
//! docs/batcher.md advises it.
//!
//! Windows here are months (or buckets), so no test meets a window's end while it runs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tfgate_jwt_testkit::{ed, jwks, sign_token, Signer};
use tfgate_tests::batching_stack::{metric_value, BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::daemon_ops::{run_batcher, wait_for_log};
use tfgate_tests::{DaemonConfig, Nginx, NginxConfig, Redis, Response, Stack};

const PREDICT: &str = "/v1/models/half_plus_two/versions/1:predict";
const ONE_ROW: &str = r#"{"instances": [1.0]}"#;
const ISSUER: &str = "https://idp.test";

fn rows(n: usize) -> String {
    json!({ "instances": vec![1.0; n] }).to_string()
}

/// A request as nginx passes it: the subject (and plan) as trusted headers.
fn post_as(client: &UnixClient, subject: &str, plan: Option<&str>, body: &str) -> Response {
    let mut headers = vec![("X-Tfgate-Subject", subject), ("X-Tfgate-Client", "10.0.0.1")];
    if let Some(plan) = plan {
        headers.push(("X-Tfgate-Plan", plan));
    }
    client.post(PREDICT, &headers, body)
}

/// `(r, t)` of the one item of a `RateLimit` field named `name`.
fn remaining_and_reset(response: &Response, name: &str) -> (u64, u64) {
    let field = response.header("ratelimit").unwrap_or_else(|| panic!("no RateLimit: {response:?}"));
    let item = field
        .split(", ")
        .find(|item| item.starts_with(&format!("\"{name}\";")))
        .unwrap_or_else(|| panic!("no {name} in {field}"));
    let param = |key: &str| {
        item.split(';').find_map(|p| p.strip_prefix(&format!("{key}="))).and_then(|v| v.parse().ok()).unwrap()
    };
    (param("r"), param("t"))
}

fn seconds_to_next_month() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    // Good to a second or two: the test and the daemon read the clock at different moments.
    let output = std::process::Command::new("date").args(["-u", "-d", &format!("@{now}"), "+%Y %m"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().unwrap());
    let (year, month) = (parts.next().unwrap(), parts.next().unwrap());
    let (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let output = std::process::Command::new("date")
        .args(["-u", "-d", &format!("{year}-{month:02}-01T00:00:00Z"), "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().parse::<u64>().unwrap() - now
}

const PLANS: &str = r#"
[quotas.plans.default]
requests = "2/month"
[quotas.plans.gold]
rate = "1/minute"
burst = 3
"#;

#[test]
fn the_plan_comes_from_a_token_claim_and_answers_carry_the_drafts_headers() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed();
    let keys = dir.path().join("jwks.json");
    std::fs::write(&keys, jwks(&[key.jwk("k")])).unwrap();
    let sim = ControlledSim::start(&[]);
    let daemon = BatchDaemon::start(dir.path(), &[sim.grpc_url()], "", PLANS);
    let nginx = Nginx::start(
        dir.path(),
        &daemon.socket,
        &NginxConfig {
            location_extra: format!(
                "tfgate_route on; tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_issuer {ISSUER}; \
                 proxy_set_header X-Tfgate-Plan $tfgate_jwt_claim_plan;",
                keys.display()
            ),
            ..NginxConfig::default()
        },
    );
    let token = |subject: &str, plan: Option<&str>| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut claims = json!({"iss": ISSUER, "sub": subject, "exp": now + 600, "iat": now});
        if let Some(plan) = plan {
            claims["plan"] = Value::from(plan);
        }
        format!(
            "Bearer {}",
            sign_token(r#"{"alg":"EdDSA","kid":"k"}"#, &claims.to_string(), "EdDSA", &Signer::Ed(&key))
        )
    };
    let client = nginx.client();
    let predict = |bearer: &str| {
        client.send("POST", "/v1/models/half_plus_two:predict", &[("Authorization", bearer)], Some(ONE_ROW))
    };

    // gold: a bucket of 3, one more a minute.
    let gold = token("gina-7f3", Some("gold"));
    let first = predict(&gold);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("ratelimit-policy"), Some("\"gold:rate\";q=3;w=180"));
    assert_eq!(first.header("ratelimit"), Some("\"gold:rate\";r=2;t=60"));
    // The bucket is full again 60 s per request later (a second less if the clock turned one
    // between the requests).
    let (r, t) = remaining_and_reset(&predict(&gold), "gold:rate");
    assert!(r == 1 && (119..=120).contains(&t), "r={r} t={t}");
    let (r, t) = remaining_and_reset(&predict(&gold), "gold:rate");
    assert!(r == 0 && (179..=180).contains(&t), "r={r} t={t}");
    let refused = predict(&gold);
    let message = refused.assert_json_error(429);
    assert!(message.contains("quota exceeded: plan gold allows 1 requests per minute (burst 3)"), "{message}");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    assert_eq!(refused.header("ratelimit"), Some(format!("\"gold:rate\";r=0;t={retry}").as_str()));
    assert_eq!(refused.header("ratelimit-policy"), Some("\"gold:rate\";q=3;w=180"));
    // An answer that counts nothing (status) still tells the policy.
    let status = client.send("GET", "/v1/models/half_plus_two", &[("Authorization", &gold)], None);
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(
        (status.header("ratelimit-policy"), status.header("ratelimit")),
        (Some("\"gold:rate\";q=3;w=180"), None)
    );

    // No plan claim: the default plan; a client cannot name its own plan.
    let dan = token("dan-7f3", None);
    let answer = client.send(
        "POST",
        "/v1/models/half_plus_two:predict",
        &[("Authorization", &dan), ("X-Tfgate-Plan", "gold")],
        Some(ONE_ROW),
    );
    assert_eq!(answer.header("ratelimit-policy"), Some("\"default:requests_month\";q=2;w=2592000"));
    let (r, t) = remaining_and_reset(&answer, "default:requests_month");
    assert_eq!(r, 1);
    assert!(t.abs_diff(seconds_to_next_month()) <= 2, "t={t}");

    // A plan nobody configured, and claims that are no plan name (UTF-8, too long), get the
    // default plan: the caller is served, and the operator warned.
    for (subject, plan) in [("una-7f3", "platinum"), ("mal-7f3", "g\u{14d}ld"), ("long-7f3", &"g".repeat(300)[..])] {
        let answer = predict(&token(subject, Some(plan)));
        assert_eq!(answer.status, 200, "{plan}: {}", answer.body);
        assert_eq!(answer.header("ratelimit-policy"), Some("\"default:requests_month\";q=2;w=2592000"), "{plan}");
    }
    wait_for_log(
        &daemon.process,
        "X-Tfgate-Plan \"platinum\" names no plan in [quotas.plans]: the default plan applies",
        1,
    );

    let metrics = daemon.metrics_text();
    for (series, value) in [
        ("tfgate_quota_admitted_total{plan=\"gold\"}", 3.0),
        ("tfgate_quota_refused_total{plan=\"gold\",limit=\"rate\"}", 1.0),
        ("tfgate_quota_admitted_total{plan=\"default\"}", 4.0),
        ("tfgate_quota_plan_fallbacks_total{reason=\"unknown\"}", 1.0),
        ("tfgate_quota_plan_fallbacks_total{reason=\"malformed\"}", 2.0),
        ("tfgate_quota_store_up", 1.0),
    ] {
        assert_eq!(metric_value(&metrics, series), Some(value), "{series}:\n{metrics}");
    }
    for subject in ["gina-7f3", "dan-7f3", "una-7f3"] {
        assert!(!metrics.contains(subject), "a per-subject series: {subject}");
    }
}

#[test]
fn two_daemons_sharing_one_redis_enforce_one_quota() {
    let redis = Redis::start();
    let sim = ControlledSim::start(&[]);
    let tables = format!(
        "[quotas]\nstore = \"{}\"\n[quotas.plans.default]\nrequests = \"6/month\"\nrows = \"28/month\"\n",
        redis.url()
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = BatchDaemon::start(dir_a.path(), &[sim.grpc_url()], "", &tables);
    let b = BatchDaemon::start(dir_b.path(), &[sim.grpc_url()], "", &tables);
    let (ca, cb) = (a.client(), b.client());
    // Rows: 10 on a, 10 on b; 10 more is refused on either and counts nothing, 5 fit.
    assert_eq!(post_as(&ca, "alice", None, &rows(10)).status, 200);
    assert_eq!(remaining_and_reset(&post_as(&cb, "alice", None, &rows(10)), "default:rows_month").0, 8);
    let refused = post_as(&ca, "alice", None, &rows(10));
    refused.assert_json_error(429);
    assert_eq!(refused.header("ratelimit").map(|f| f.starts_with("\"default:rows_month\";r=8;")), Some(true));
    assert_eq!(remaining_and_reset(&post_as(&cb, "alice", None, &rows(5)), "default:rows_month").0, 3);
    // Requests: 3 counted so far; 3 more in turns, then both refuse.
    for (i, client) in [&ca, &cb, &ca].into_iter().enumerate() {
        let answer = post_as(client, "alice", None, ONE_ROW);
        assert_eq!(remaining_and_reset(&answer, "default:requests_month").0, 2 - i as u64, "{}", answer.body);
    }
    post_as(&ca, "alice", None, ONE_ROW).assert_json_error(429);
    post_as(&cb, "alice", None, ONE_ROW).assert_json_error(429);
    // Another caller is untouched; the counters live in Redis under the caller's key.
    assert_eq!(post_as(&cb, "bob", None, ONE_ROW).status, 200);
    let keys = redis.cli(&["--scan", "--pattern", "tfgate:quota:*"]);
    assert!(keys.lines().any(|k| k == "tfgate:quota:{sub%3Aalice}"), "{keys}");
    // It lives as long as its last counter: this month, and 60 s more.
    let ttl = redis.cli(&["TTL", "tfgate:quota:{sub%3Aalice}"]);
    let ttl: u64 = ttl.parse().unwrap_or_else(|_| panic!("TTL: {ttl:?}"));
    assert!(ttl.abs_diff(seconds_to_next_month() + 60) <= 5, "{ttl}");
    let admitted = |d: &BatchDaemon| d.metric("tfgate_quota_admitted_total{plan=\"default\"}");
    assert_eq!(admitted(&a) + admitted(&b), 7.0);
}

fn outage(policy: &str) {
    let mut redis = Redis::start();
    let sim = ControlledSim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let tables = format!(
        "[quotas]\nstore = \"{}\"\non_store_failure = \"{policy}\"\n[quotas.plans.default]\nrequests = \"1000/month\"\n",
        redis.url()
    );
    let daemon = BatchDaemon::start(dir.path(), &[sim.grpc_url()], "", &tables);
    let client = daemon.client();
    assert_eq!(remaining_and_reset(&post_as(&client, "alice", None, ONE_ROW), "default:requests_month").0, 999);

    redis.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = post_as(&client, "alice", None, ONE_ROW);
        // Never a hang: the store is given timeout_ms (100 ms), then the policy decides.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(answer.header("ratelimit"), None, "nothing is known of the counters");
        assert_eq!(answer.header("ratelimit-policy"), Some("\"default:requests_month\";q=1000;w=2592000"));
        match policy {
            "allow" => assert_eq!(answer.status, 200, "{}", answer.body),
            _ => {
                let message = answer.assert_json_error(503);
                assert!(message.contains("quota store"), "{message}");
                assert_eq!(answer.header("retry-after"), Some("1"));
            }
        }
    }
    assert_eq!(daemon.metric("tfgate_quota_store_up"), 0.0);
    let errors = daemon.metric("tfgate_quota_store_errors_total{reason=\"unreachable\"}")
        + daemon.metric("tfgate_quota_store_errors_total{reason=\"timeout\"}");
    assert_eq!(errors, 5.0);
    wait_for_log(&daemon.process, "quota store", 1);

    // Back, empty (no persistence): counting starts again once the daemon has reconnected.
    redis.restart();
    let started = Instant::now();
    loop {
        let answer = post_as(&client, "alice", None, ONE_ROW);
        if answer.header("ratelimit").is_some() {
            assert_eq!(answer.status, 200);
            assert_eq!(remaining_and_reset(&answer, "default:requests_month").0, 999);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never reconnected:\n{}", daemon.process.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.metric("tfgate_quota_store_up"), 1.0);
    wait_for_log(&daemon.process, "connected again", 1);
}

#[test]
fn redis_killed_then_restarted_with_requests_allowed_meanwhile() {
    outage("allow");
}

#[test]
fn redis_killed_then_restarted_with_requests_denied_meanwhile() {
    outage("deny");
}

#[test]
fn a_reload_keeps_the_counters() {
    let sim = ControlledSim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let daemon =
        BatchDaemon::start(dir.path(), &[sim.grpc_url()], "", "[quotas.plans.default]\nrequests = \"3/month\"\n");
    let client = daemon.client();
    for _ in 0..2 {
        assert_eq!(post_as(&client, "alice", None, ONE_ROW).status, 200);
    }
    // A larger quota and a new limit: the two requests already made still count.
    let config = dir.path().join("batcher.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("requests = \"3/month\"", "requests = \"4/month\"\nrows = \"100/month\""))
        .unwrap();
    daemon.process.signal("HUP");
    wait_for_log(&daemon.process, "reload applied: quotas (counters kept)", 1);
    let answer = post_as(&client, "alice", None, ONE_ROW);
    assert_eq!(remaining_and_reset(&answer, "default:requests_month").0, 1);
    assert_eq!(remaining_and_reset(&answer, "default:rows_month").0, 99);
    assert_eq!(post_as(&client, "alice", None, ONE_ROW).status, 200);
    post_as(&client, "alice", None, ONE_ROW).assert_json_error(429);
    // Quotas removed: nobody is limited, and answers carry no header.
    std::fs::write(&config, text.replace("[quotas.plans.default]\nrequests = \"3/month\"", "")).unwrap();
    daemon.process.signal("HUP");
    wait_for_log(&daemon.process, "reload applied: quotas (a new store", 1);
    let answer = post_as(&client, "alice", None, ONE_ROW);
    assert_eq!((answer.status, answer.header("ratelimit-policy")), (200, None));
}

#[test]
fn anonymous_callers_are_told_apart_by_the_address_nginx_passes() {
    let sim = ControlledSim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let daemon =
        BatchDaemon::start(dir.path(), &[sim.grpc_url()], "", "[quotas.plans.default]\nrequests = \"1/month\"\n");
    let client = daemon.client();
    let from = |address: &str| client.post(PREDICT, &[("X-Tfgate-Client", address)], ONE_ROW);
    assert_eq!(from("10.0.0.1").status, 200);
    from("10.0.0.1").assert_json_error(429);
    assert_eq!(from("10.0.0.2").status, 200);
    // Without an address (no proxy snippet), every connection's requests share one quota.
    assert_eq!(client.post(PREDICT, &[], ONE_ROW).status, 200);
    client.post(PREDICT, &[], ONE_ROW).assert_json_error(429);
}

#[test]
fn a_full_memory_store_refuses_new_callers_and_keeps_counting_the_others() {
    let sim = ControlledSim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // on_store_failure = "allow" (the default) must not let new callers through uncounted.
    let daemon = BatchDaemon::start(
        dir.path(),
        &[sim.grpc_url()],
        "",
        "[quotas]\nmemory_max_keys = 50\n[quotas.plans.default]\nrequests = \"5/month\"\n",
    );
    let client = daemon.client();
    let from = |address: &str| client.post(PREDICT, &[("X-Tfgate-Client", address)], ONE_ROW);
    // 40 anonymous callers by address (each IPv6 address is a caller) and 10 by subject.
    let addresses: Vec<String> = (0..40).map(|n| format!("2001:db8::{n:x}")).collect();
    for address in &addresses {
        assert_eq!(from(address).status, 200);
    }
    for n in 0..10 {
        assert_eq!(post_as(&client, &format!("user-{n}"), None, ONE_ROW).status, 200);
    }
    for caller in ["2001:db8::ffff", "someone-new"] {
        for _ in 0..20 {
            let refused = if caller.contains(':') { from(caller) } else { post_as(&client, caller, None, ONE_ROW) };
            let message = refused.assert_json_error(429);
            assert!(message.starts_with("quota store is full"), "{message}");
            let retry: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
            assert!((1..=60).contains(&retry), "{retry}");
            assert_eq!(refused.header("ratelimit-policy"), Some("\"default:requests_month\";q=5;w=2592000"));
        }
    }
    // Callers already counted still are, up to their quota and no further.
    for client_of in [&addresses[0], &addresses[39]] {
        for left in (0..4).rev() {
            assert_eq!(remaining_and_reset(&from(client_of), "default:requests_month").0, left);
        }
        from(client_of).assert_json_error(429);
    }
    assert_eq!(remaining_and_reset(&post_as(&client, "user-3", None, ONE_ROW), "default:requests_month").0, 3);
    assert_eq!(sim.stats()["predict_items"].as_u64(), Some(50 + 8 + 1), "only counted requests reached the model");
    assert_eq!(daemon.metric("tfgate_quota_refused_total{plan=\"default\",limit=\"store_full\"}"), 40.0);
    assert_eq!(daemon.metric("tfgate_quota_store_records"), 50.0);
    wait_for_log(&daemon.process, "memory_max_keys (50) records held", 1);
}

#[test]
fn a_request_split_across_batches_is_counted_once_with_all_its_rows() {
    let sim = ControlledSim::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let daemon = BatchDaemon::start(
        dir.path(),
        &[sim.grpc_url()],
        "",
        "[batching]\nmax_batch_size = 4\n[quotas.plans.default]\nrequests = \"10/month\"\nrows = \"100/month\"\n",
    );
    let answer = post_as(&daemon.client(), "alice", None, &rows(10));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["predictions"].as_array().map(Vec::len), Some(10));
    assert_eq!(remaining_and_reset(&answer, "default:requests_month").0, 9);
    assert_eq!(remaining_and_reset(&answer, "default:rows_month").0, 90);
    assert!(daemon.metric("tfgate_batches_total{model=\"half_plus_two\",reason=\"full\"}") >= 2.0);
    // A malformed body is refused before its quotas are asked, as is a classify request with
    // no backend.rest to go to: neither counts.
    post_as(&daemon.client(), "alice", None, "{\"instances\": ").assert_json_error(400);
    let classify = daemon.client().post(
        "/v1/models/half_plus_two:classify",
        &[("X-Tfgate-Subject", "alice")],
        r#"{"examples": [{"x": 1.0}]}"#,
    );
    classify.assert_json_error(501);
    assert!(classify.header("ratelimit-policy").is_some());
    // Examples the quota could not count are refused, never run uncounted.
    let repeated = daemon.client().post(
        "/v1/models/half_plus_two:classify",
        &[("X-Tfgate-Subject", "alice")],
        r#"{"examples": [], "examples": [{"x": 1.0}]}"#,
    );
    repeated.assert_json_error(400);
    let answer = post_as(&daemon.client(), "alice", None, ONE_ROW);
    assert_eq!(remaining_and_reset(&answer, "default:requests_month").0, 8);
}

#[test]
fn check_config_shows_the_plans_and_names_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, quotas: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("listen = \"/tmp/q.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\n{quotas}"),
        )
        .unwrap();
        path.display().to_string()
    };
    let good = write("good.toml", &format!("[quotas]\nstore = \"redis://:pw@127.0.0.1:6379/1\"\n{PLANS}"));
    let (code, stdout, _) = run_batcher(&["check-config", &good]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("[quotas] store=redis://***@127.0.0.1:6379/1 on_store_failure=allow"), "{stdout}");
    assert!(stdout.contains("[quotas.plans.gold] 1 requests per minute (burst 3)"), "{stdout}");
    let bad = write("bad.toml", "[quotas.plans.default]\nrows = \"5/fortnight\"\n");
    let (code, _, stderr) = run_batcher(&["check-config", &bad]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("quotas.plans.default.rows"), "{stderr}");
}

/// docs/batcher.md: an edge limit per caller is keyed by the bearer token, because `limit_req`
/// runs before the token is checked: a zone keyed by `$tfgate_jwt_sub` counts nothing.
#[test]
fn an_edge_limit_per_caller_is_keyed_by_the_token_not_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed();
    let keys = dir.path().join("jwks.json");
    std::fs::write(&keys, jwks(&[key.jwk("k")])).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss": ISSUER, "sub": "alice", "exp": now + 600});
    let bearer = format!(
        "Bearer {}",
        sign_token(r#"{"alg":"EdDSA","kid":"k"}"#, &claims.to_string(), "EdDSA", &Signer::Ed(&key))
    );
    let statuses = |zone_key: &str| {
        let nginx = NginxConfig {
            http_extra: format!("limit_req_zone {zone_key} zone=caller:1m rate=1r/m;"),
            location_extra: format!(
                "limit_req zone=caller; limit_req_status 429; tfgate_route on; tfgate_jwt on; \
                 tfgate_jwt_key_file {}; tfgate_jwt_issuer {ISSUER};",
                keys.display()
            ),
            ..NginxConfig::default()
        };
        let stack = Stack::start_with(DaemonConfig::default(), nginx);
        let answers: Vec<Response> = (0..3)
            .map(|_| stack.client().send("GET", "/v1/models/half_plus_two", &[("Authorization", &bearer)], None))
            .collect();
        answers
    };
    let by_subject = statuses("$tfgate_jwt_sub");
    assert!(by_subject.iter().all(|a| a.status == 200), "{by_subject:?}");
    let by_token = statuses("$http_authorization");
    assert_eq!(by_token[0].status, 200);
    by_token[1].assert_json_error(429);
    assert_eq!(by_token[1].header("retry-after"), Some("1"));
}
