//! Dynamic batching over the real components: nginx with the module, tfgate-batcher, tfs-sim
//! with a cost model (so the backend is busy and requests have to gather). The simulator's
//! counters show how the daemon called it; the daemon's /metrics show why.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::HttpClient;

const V1: &str = "/v1/models/half_plus_two/versions/1:predict";

/// `rows` distinct values for client `i`.
fn rows_of(i: usize, rows: usize) -> Vec<f64> {
    (0..rows).map(|r| (i * 1000 + r) as f64 + 0.25).collect()
}

/// Asserts version 1's answer (y = 0.5 x + 2) for exactly these rows.
fn assert_own_rows(answer: &tfgate_tests::Response, xs: &[f64]) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let expected: Vec<Value> = xs.iter().map(|x| json!(0.5 * x + 2.0)).collect();
    assert_eq!(answer.json(), json!({ "predictions": expected }), "inputs {xs:?}");
}

/// Runs `clients` threads that start together; returns their results in order.
fn together<T: Send + 'static>(clients: usize, work: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(clients));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (barrier, work) = (barrier.clone(), work.clone());
            thread::spawn(move || {
                barrier.wait();
                work(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("client thread")).collect()
}

fn stat(stack: &BatchStack, key: &str) -> u64 {
    stack.sim().stats()[key].as_u64().unwrap_or(0)
}

#[test]
fn two_hundred_concurrent_clients_each_get_their_own_rows() {
    let stack = BatchStack::start(&["--cost-us", "2000,20"], "[batching]\nmax_batch_size = 32\n");
    let port = stack.nginx.port;
    let results = together(200, move |i| {
        let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
        let xs = rows_of(i, 1 + i % 3);
        let body = json!({ "instances": xs }).to_string();
        (xs, client.post(V1, &body))
    });
    let mut rows = 0;
    for (xs, answer) in &results {
        assert_own_rows(answer, xs);
        rows += xs.len() as u64;
    }
    // Correctness only: how well requests are batched is the policy's unit tests' business
    // (a simulated clock) and the benchmark's, not a timing-dependent assertion here.
    let calls = stat(&stack, "predict_calls");
    assert_eq!(stat(&stack, "predict_items"), rows, "every row sent exactly once");
    assert!(stat(&stack, "max_batch") <= 32);
    // Every batch the simulator saw is counted, with why it was sent.
    let batches: f64 = stack
        .daemon
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("tfgate_batches_total{model=\"half_plus_two\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(batches, calls as f64);
}

#[test]
fn a_lone_request_goes_alone_and_concurrent_ones_keep_their_rows() {
    let stack =
        BatchStack::start(&["--cost-us", "2000,20"], "[batching]\nmax_batch_size = 16\nmax_inflight_batches = 1\n");
    let client = stack.client();
    assert_own_rows(&client.post(V1, r#"{"instances": [1.0]}"#), &[1.0]);
    assert_eq!(stack.sim().stats()["batch_sizes"], json!({"1": 1}));
    stack.sim().reset();

    let port = stack.nginx.port;
    let results = together(64, move |i| {
        let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
        let xs = rows_of(i, 1);
        (xs.clone(), client.post(V1, &json!({ "instances": xs }).to_string()))
    });
    for (xs, answer) in &results {
        assert_own_rows(answer, xs);
    }
    assert!(stat(&stack, "max_batch") <= 16);
    assert_eq!(stat(&stack, "predict_items"), 64);
}

#[test]
fn padding_and_splitting_keep_every_request_apart() {
    let stack = BatchStack::start(
        &["--cost-us", "1000,10"],
        "[batching]\nmax_batch_size = 8\nallowed_batch_sizes = [2, 4, 8]\n",
    );
    let port = stack.nginx.port;
    // 200 clients, 1 to 20 rows each: the larger ones are split across batches.
    let results = together(200, move |i| {
        let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
        let xs = rows_of(i, 1 + i % 20);
        (xs.clone(), client.post(V1, &json!({ "instances": xs }).to_string()))
    });
    for (xs, answer) in &results {
        assert_own_rows(answer, xs);
    }
    let stats = stack.sim().stats();
    for size in stats["batch_sizes"].as_object().unwrap().keys() {
        assert!(["2", "4", "8"].contains(&size.as_str()), "batch of {size}: {stats}");
    }
    let padding = stack.daemon.metric("tfgate_batch_padding_rows_total{model=\"half_plus_two\"}");
    let rows: u64 = (0..200).map(|i| 1 + i % 20).sum();
    assert_eq!(stats["predict_items"].as_u64().unwrap(), rows + padding as u64, "{stats}");
}

#[test]
fn requests_of_different_shapes_are_batched_separately() {
    let stack = BatchStack::start(&["--cost-us", "2000,10"], "");
    let port = stack.nginx.port;
    let results = together(60, move |i| {
        let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
        let width = i % 3; // rows of shape [], [1, 2]... as scalars, pairs or triples
        let instance = |r: usize| -> Value {
            let x = (i * 10 + r) as f64;
            match width {
                0 => json!(x),
                1 => json!([x, x + 0.5]),
                _ => json!([x, x + 0.5, x + 0.75]),
            }
        };
        let instances: Vec<Value> = (0..2).map(instance).collect();
        let answer = client.post(V1, &json!({ "instances": instances }).to_string());
        (instances, answer)
    });
    for (instances, answer) in &results {
        assert_eq!(answer.status, 200, "{}", answer.body);
        let half_plus_two = |v: &Value| -> Value {
            match v {
                Value::Array(items) => {
                    Value::Array(items.iter().map(|x| json!(0.5 * x.as_f64().unwrap() + 2.0)).collect())
                }
                x => json!(0.5 * x.as_f64().unwrap() + 2.0),
            }
        };
        let expected: Vec<Value> = instances.iter().map(half_plus_two).collect();
        assert_eq!(answer.json(), json!({ "predictions": expected }));
    }
    assert_eq!(stat(&stack, "predict_errors"), 0);
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let stack = BatchStack::start(
        &["--cost-us", "400000,0"],
        // One caller (every request comes from 127.0.0.1): its share is half the queue.
        "[batching]\nmax_queue = 4\nmax_inflight_batches = 1\nmax_batch_size = 1\n",
    );
    let port = stack.nginx.port;
    let results = together(6, move |i| {
        thread::sleep(Duration::from_millis(40 * i as u64));
        let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
        client.post(V1, r#"{"instances": [1.0]}"#)
    });
    let refused: Vec<_> = results.iter().filter(|r| r.status == 429).collect();
    assert!(!refused.is_empty(), "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in &refused {
        let error = r.assert_json_error(429);
        assert!(error.contains("max_queue"), "{error}");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(results.iter().filter(|r| r.status == 200).count() >= 3);
    let refusals = |reason: &str| {
        stack.daemon.metric(&format!("tfgate_rejected_requests_total{{model=\"half_plus_two\",reason=\"{reason}\"}}"))
    };
    assert_eq!(refusals("queue_full") + refusals("caller_share"), refused.len() as f64);
}

#[test]
fn a_request_that_expires_in_the_queue_is_504_and_never_sent() {
    // Fixed dispatch with a long max_delay keeps the lone request waiting for company; its
    // timeout comes first.
    let stack = BatchStack::start(&[], "[batching]\ndispatch = \"fixed\"\ntimeout_ms = 300\nmax_delay_us = 5000000\n");
    let started = Instant::now();
    let answer = stack.client().post(V1, r#"{"instances": [1.0]}"#);
    let error = answer.assert_json_error(504);
    assert!(error.contains("timed out") && error.contains("not sent"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(stat(&stack, "predict_calls"), 0, "an expired request reached the model");
    assert_eq!(stack.daemon.metric("tfgate_rejected_requests_total{model=\"half_plus_two\",reason=\"timeout\"}"), 1.0);
}

#[test]
fn a_slow_backend_is_a_504_within_the_timeout() {
    let stack = BatchStack::start(&[], "[batching]\ntimeout_ms = 300\n");
    stack.sim().control("/delay?us=1500000");
    let started = Instant::now();
    let error = stack.client().post(V1, r#"{"instances": [1.0]}"#).assert_json_error(504);
    assert!(error.contains("did not answer within 300 ms"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    stack.sim().control("/delay?us=0");
    // The call itself is awaited to its end (TF Serving computes it anyway, so it keeps its
    // slot), then the daemon serves on.
    thread::sleep(Duration::from_millis(1600).saturating_sub(started.elapsed()));
    assert_own_rows(&stack.client().post(V1, r#"{"instances": [1.0]}"#), &[1.0]);
    assert_eq!(stat(&stack, "predict_calls"), 2, "{}", stack.sim().stats());
}

#[test]
fn a_client_that_disconnects_is_removed_before_its_rows_are_sent() {
    use std::io::Write;
    let stack = BatchStack::start(&["--cost-us", "500000,0"], "[batching]\nmax_inflight_batches = 1\n");
    let port = stack.nginx.port;
    // The first request occupies the only slot for 500 ms.
    let busy =
        thread::spawn(move || HttpClient::new(format!("http://127.0.0.1:{port}")).post(V1, r#"{"instances": [1.0]}"#));
    thread::sleep(Duration::from_millis(100));
    // The second waits in the queue; its client gives up.
    let body = r#"{"instances": [7.0, 8.0, 9.0]}"#;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "POST {V1} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    thread::sleep(Duration::from_millis(100));
    drop(stream);
    assert_own_rows(&busy.join().unwrap(), &[1.0]);
    thread::sleep(Duration::from_millis(700));
    assert_eq!(stat(&stack, "predict_items"), 1, "the abandoned rows were sent: {}", stack.sim().stats());
    assert_eq!(
        stack.daemon.metric("tfgate_rejected_requests_total{model=\"half_plus_two\",reason=\"cancelled\"}"),
        1.0
    );
    // And the daemon serves on.
    assert_own_rows(&stack.client().post(V1, r#"{"instances": [2.0]}"#), &[2.0]);
}

#[test]
fn a_model_without_a_batch_dimension_gets_every_request_alone() {
    // fixed3 takes exactly [3] values: joined, two requests would be a [6] it refuses.
    let stack = BatchStack::start(&["--cost-us", "2000,20"], "[batching]\nmax_batch_size = 16\n");
    let port = stack.nginx.port;
    let results = together(16, move |i| {
        let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
        let xs: Vec<f64> = (0..3).map(|r| (i * 10 + r) as f64 + 0.5).collect();
        let body = json!({ "instances": xs }).to_string();
        (xs, client.post("/v1/models/fixed3:predict", &body))
    });
    for (xs, answer) in &results {
        assert_eq!(answer.status, 200, "{}", answer.body);
        let expected: Vec<Value> = xs.iter().map(|x| json!(2.0 * x)).collect();
        assert_eq!(answer.json(), json!({ "predictions": expected }), "inputs {xs:?}");
    }
    assert_eq!(stat(&stack, "predict_calls"), 16, "one call each, none refused");
    let metrics = stack.daemon.metrics_text();
    assert!(metrics.contains("tfgate_batches_total{model=\"fixed3\",reason=\"alone\"} 16"), "{metrics}");
}
