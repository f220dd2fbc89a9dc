//! The backend side of batching: several TF Serving targets, failures (refused, dying mid-batch,
//! slow, dead among live ones), model versions that change their signature, fairness between
//! subjects, metrics and trace context. Over the real components (nginx + module,
//! tfgate-batcher, tfs-sim).

use std::net::Ipv4Addr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tfgate_tests::batching_stack::{metric_value, BatchDaemon, BatchStack, ControlledSim};
use tfgate_tests::{free_port, HttpClient};

const V1: &str = "/v1/models/half_plus_two/versions/1:predict";
const ONE: &str = r#"{"instances": [1.0]}"#;

fn ok_one(answer: &tfgate_tests::Response) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json(), json!({"predictions": [2.5]}));
}

#[test]
fn calls_are_spread_over_every_target() {
    let slow: &[&str] = &["--cost-us", "20000,0"];
    let stack = BatchStack::start_with(&[slow, slow], "", "[batching]\nmax_inflight_batches = 4\nmax_batch_size = 4\n");
    let port = stack.nginx.port;
    let barrier = Arc::new(Barrier::new(16));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
                barrier.wait();
                for _ in 0..5 {
                    ok_one(&client.post(V1, ONE));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let calls: Vec<u64> = stack.sims.iter().map(|s| s.stats()["predict_calls"].as_u64().unwrap()).collect();
    assert!(calls.iter().all(|&c| c >= 3), "unbalanced: {calls:?}");
}

#[test]
fn a_refused_call_is_retried_once_on_another_target() {
    let stack = BatchStack::start_with(&[&[], &[]], "", "");
    // The first target refuses every call (UNAVAILABLE before running it), as TF Serving does
    // when it cannot queue one: each call it gets is retried on the other.
    stack.sims[0].control("/fail?code=14&count=1000");
    for _ in 0..10 {
        ok_one(&stack.client().post(V1, ONE));
    }
    assert_eq!(stack.sims[1].stats()["predict_calls"], 10);
    let refused = stack.sims[0].stats()["predict_errors"].as_u64().unwrap();
    assert!(refused >= 1);
    let retries: f64 = stack
        .daemon
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("tfgate_backend_retries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(retries, refused as f64);
}

#[test]
fn failures_map_to_tf_servings_statuses_with_one_target() {
    let stack = BatchStack::start(&[], "");
    let client = stack.client();
    stack.sim().control("/fail?code=14&count=1");
    client.post(V1, ONE).assert_json_error(503);
    stack.sim().control("/fail?code=3&count=1");
    let error = client.post(V1, ONE).assert_json_error(400);
    assert!(error.contains("injected failure"), "{error}");
    stack.sim().control("/fail?code=8&count=1");
    client.post(V1, ONE).assert_json_error(429);
    ok_one(&client.post(V1, ONE));
}

#[test]
fn a_backend_that_dies_mid_batch_fails_that_batch_cleanly_and_the_other_target_takes_over() {
    let slow: &[&str] = &["--cost-us", "400000,0"];
    let mut stack = BatchStack::start_with(&[slow, &[]], "health_interval_ms = 200", "");
    let port = stack.nginx.port;
    // Keep sending until a call lands on the slow target, then kill it mid-call.
    let in_flight = thread::spawn(move || {
        let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
        (0..8).map(|_| client.post(V1, ONE)).collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.sims[0].stats()["predict_calls"].as_u64() == Some(0) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let dead_url = stack.sims[0].grpc_url();
    // SIGKILL: no graceful drain, the connection drops with the call in it.
    stack.sims[0].sim.process.signal("KILL");
    stack.sims[0].sim.process.stop();
    let answers = in_flight.join().unwrap();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    eprintln!("statuses around the kill: {statuses:?}");
    for a in answers.iter().filter(|a| a.status != 200) {
        eprintln!("{}", a.body);
    }
    assert!(statuses.iter().any(|&s| s != 200), "no call was in flight on the killed target: {statuses:?}");
    for answer in answers {
        if answer.status != 200 {
            let error = answer.assert_json_error(answer.status);
            assert!(answer.status >= 500, "{} {error}", answer.status);
        }
    }
    // From now on every request succeeds on the surviving target.
    let client = stack.client();
    for _ in 0..20 {
        ok_one(&client.post(V1, ONE));
    }
    thread::sleep(Duration::from_millis(400));
    let up = stack.daemon.metric(&format!("tfgate_backend_up{{target=\"{dead_url}\"}}"));
    assert_eq!(up, 0.0, "{}", stack.daemon.metrics_text());
    stack.sims.remove(0);
}

#[test]
fn a_new_model_version_with_another_signature_is_picked_up() {
    let stack = BatchStack::start(&[], "");
    let client = stack.client();
    let path = "/v1/models/evolving:predict";
    let r = client.post(path, r#"{"instances": [1.5, 2]}"#);
    assert_eq!((r.status, r.json()), (200, json!({"predictions": [1.5, 2.0]})), "{}", r.body);
    stack.sim().control("/load?model=evolving&version=2");
    // Version 2 takes int64: the request that meets the change is converted again.
    let r = client.post(path, r#"{"instances": [7, 8]}"#);
    assert_eq!((r.status, r.json()), (200, json!({"predictions": [7, 8]})), "{}", r.body);
    let error = client.post(path, r#"{"instances": [1.5]}"#).assert_json_error(400);
    assert!(error.contains("int64"), "{error}");
    let metadata = client.get("/v1/models/evolving/metadata").json();
    let x = &metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"];
    assert_eq!(x["dtype"], "DT_INT64");
}

#[test]
fn a_heavy_subject_and_a_light_one_both_get_their_answers() {
    // 20 ms per batch whatever its size, 4 rows per batch, one batch at a time: 40 heavy
    // clients keep 10 batches queued. That the light subject is served ahead of them is the
    // policy's unit test (a_heavy_subject_does_not_starve_a_light_one); here, correctness.
    let stack =
        BatchStack::start(&["--cost-us", "20000,0"], "[batching]\nmax_batch_size = 4\nmax_inflight_batches = 1\n");
    let daemon = stack.daemon.client();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heavy: Vec<_> = (0..40)
        .map(|_| {
            let (daemon, stop) = (daemon.clone(), stop.clone());
            thread::spawn(move || {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = daemon.post(V1, &[("X-Tfgate-Subject", "heavy")], ONE);
                    assert_eq!(r.status, 200, "{}", r.body);
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(400));
    for _ in 0..10 {
        ok_one(&daemon.post(V1, &[("X-Tfgate-Subject", "light")], ONE));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let heavy: u32 = heavy.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(heavy > 0);
}

#[test]
fn metrics_and_trace_context() {
    let stack = BatchStack::start(&["--cost-us", "1000,0"], "");
    let client = stack.client();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = client.send("POST", V1, &[("traceparent", traceparent)], Some(ONE));
    ok_one(&r);
    assert_eq!(stack.sim().stats()["last_traceparent"], traceparent);
    for _ in 0..4 {
        ok_one(&client.post(V1, ONE));
    }
    client.post(V1, "{").assert_json_error(400);
    let text = stack.daemon.metrics_text();
    let value = |series: &str| metric_value(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    assert_eq!(
        value("tfgate_requests_total{model=\"half_plus_two\",version=\"1\",method=\"predict\",code=\"200\"}"),
        5.0
    );
    assert_eq!(
        value("tfgate_requests_total{model=\"half_plus_two\",version=\"1\",method=\"predict\",code=\"400\"}"),
        1.0
    );
    assert_eq!(value("tfgate_batch_rows_count{model=\"half_plus_two\"}"), 5.0);
    assert_eq!(value("tfgate_queue_delay_seconds_count{model=\"half_plus_two\"}"), 5.0);
    assert_eq!(value("tfgate_batches_total{model=\"half_plus_two\",reason=\"slot_free\"}"), 5.0);
    assert_eq!(value("tfgate_queue_requests{model=\"half_plus_two\"}"), 0.0);
    let target = stack.sim().grpc_url();
    assert_eq!(
        value(&format!("tfgate_backend_calls_total{{target=\"{target}\",method=\"Predict\",code=\"OK\"}}")),
        5.0
    );
    assert_eq!(value(&format!("tfgate_backend_up{{target=\"{target}\"}}")), 1.0);
    assert_eq!(value("tfgate_signature_fetches_total{model=\"half_plus_two\"}"), 1.0);
    assert!(text.contains("# TYPE tfgate_backend_latency_seconds histogram"));
    assert_eq!(stack.daemon.metrics.get("/healthz").body, "ok");
}

/// 3 live targets listed before 10 dead ones (loopback ports nothing listens on), health checks
/// off so that only calls find the dead ones: no request fails (a call that cannot connect goes
/// on to another target), a dead target gets no Predict call once it has failed, the live ones
/// share the load, and a dead one that comes to life gets calls again (probed, not tried with a
/// client's request).
#[test]
fn dead_targets_cost_no_request_and_live_ones_share_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let live: Vec<ControlledSim> = (0..3).map(|_| ControlledSim::start(&[])).collect();
    let dead: Vec<u16> = (0..10).map(|_| free_port()).collect();
    let dead_urls: Vec<String> = dead.iter().map(|port| format!("http://127.0.0.1:{port}")).collect();
    let urls: Vec<String> = live.iter().map(ControlledSim::grpc_url).chain(dead_urls.iter().cloned()).collect();
    let daemon = BatchDaemon::start(dir.path(), &urls, "health_interval_ms = 0", "");
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let daemon = daemon.client();
            thread::spawn(move || {
                let mut failed = Vec::new();
                for _ in 0..150 {
                    let answer = daemon.post(V1, &[], ONE);
                    if answer.status != 200 {
                        failed.push(format!("{} {}", answer.status, answer.body));
                    }
                    // Paced, so that the dead targets' backoffs run out during the test.
                    thread::sleep(Duration::from_millis(5));
                }
                failed
            })
        })
        .collect();
    let failed: Vec<String> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let rows: Vec<f64> = live.iter().map(|s| s.stats()["predict_items"].as_f64().unwrap()).collect();
    eprintln!("{} of 600 requests failed; rows per live target: {rows:?}", failed.len());
    assert!(failed.is_empty(), "{} of 600 failed: {failed:?}", failed.len());
    let total: f64 = rows.iter().sum();
    assert_eq!(total, 600.0);
    for share in rows.iter().map(|r| r / total) {
        assert!((0.2..=0.47).contains(&share), "uneven shares of 600 rows: {rows:?}");
    }
    let text = daemon.metrics_text();
    for url in &dead_urls {
        // At most one call per client thread can have chosen it before its first failure.
        let predict = metric_value(
            &text,
            &format!("tfgate_backend_calls_total{{target=\"{url}\",method=\"Predict\",code=\"UNAVAILABLE\"}}"),
        );
        assert!(predict.unwrap_or(0.0) <= 4.0, "{url}: {predict:?} Predict calls");
        assert_eq!(metric_value(&text, &format!("tfgate_backend_up{{target=\"{url}\"}}")), Some(0.0), "{url}");
    }

    // One of them comes to life: probes find it, and it takes its share again.
    let revived = ControlledSim::start_at(Ipv4Addr::LOCALHOST, dead[0], &[]);
    let client = daemon.client();
    let started = Instant::now();
    while revived.stats()["predict_calls"].as_u64() == Some(0) {
        assert!(started.elapsed() < Duration::from_secs(20), "the revived target never got a call");
        ok_one(&client.post(V1, &[], ONE));
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(daemon.metric(&format!("tfgate_backend_up{{target=\"{}\"}}", dead_urls[0])), 1.0);
}
