//! The daemon against the attacks of the audits (issue 10): slow and oversized uploads, many
//! headers, huge requests, a flooding caller, unknown models, a busy metrics port. Each test
//! asserts the answer a well-behaved client still gets, never a timing.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::HttpClient;

const V1: &str = "/v1/models/half_plus_two/versions/1:predict";

/// A raw connection to the daemon's socket that sends `head` and then nothing.
fn stalled_connection(stack: &BatchStack, head: &str) -> UnixStream {
    let mut stream = UnixStream::connect(&stack.daemon.socket).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

fn read_all(mut stream: UnixStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn connections_announcing_huge_bodies_hold_no_budget_and_are_timed_out() {
    // Two clients announce 900 kB each against a 1 MB budget and send nothing more: they used to
    // reserve it all, and every request through nginx got 429 until they closed.
    let stack = BatchStack::start_configured(
        &[&[]],
        "max_body_bytes_in_flight = 1000000\nbody_timeout_ms = 1000\nidle_timeout_ms = 2000",
        "",
        "",
    );
    let head = format!("POST {V1} HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\n");
    let stalled: Vec<UnixStream> = (0..2).map(|_| stalled_connection(&stack, &head)).collect();
    thread::sleep(Duration::from_millis(200));
    let r = stack.client().post(V1, r#"{"instances": [1.0]}"#);
    assert_eq!((r.status, r.json()), (200, json!({"predictions": [2.5]})), "{}", r.body);
    // The stalled bodies are answered 408 and their connections closed.
    for stream in stalled {
        let answer = read_all(stream);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
}

#[test]
fn half_sent_headers_and_idle_connections_are_closed() {
    let stack = BatchStack::start_configured(&[&[]], "idle_timeout_ms = 500", "", "");
    let half = stalled_connection(&stack, "POST /v1/mod");
    let idle = stalled_connection(&stack, "");
    assert_eq!(read_all(half), "", "no answer to half a request, just closed");
    assert_eq!(read_all(idle), "");
    let r = stack.client().post(V1, r#"{"instances": [1.0]}"#);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_body_over_the_limit_is_refused_before_100_continue() {
    let stack = BatchStack::start(&[], "");
    let head = format!(
        "POST {V1} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        100 << 20
    );
    let answer = read_all(stalled_connection(&stack, &head));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
}

#[test]
fn many_headers_get_a_real_answer() {
    let stack = BatchStack::start(&[], "");
    let names: Vec<String> = (0..300).map(|i| format!("X-Extra-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = stack.client().send("POST", V1, &headers, Some(r#"{"instances": [1.0]}"#));
    assert_eq!((r.status, r.json()), (200, json!({"predictions": [2.5]})), "{}", r.body);
}

#[test]
fn rows_of_one_value_are_split_at_max_batch_size() {
    // [[1.0], [2.0], ...] under a [-1] signature used to go as one call of every row.
    let stack = BatchStack::start(&[], "[batching]\nmax_batch_size = 64\n");
    let rows: Vec<Value> = (0..1000).map(|i| json!([i as f64])).collect();
    let r = stack.client().post(V1, &json!({ "instances": rows }).to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let expected: Vec<Value> = (0..1000).map(|i| json!([0.5 * i as f64 + 2.0])).collect();
    assert_eq!(r.json(), json!({ "predictions": expected }));
    let stats = stack.sim().stats();
    assert!(stats["max_batch"].as_u64().unwrap() <= 64, "{stats}");
    assert_eq!(stats["predict_items"], 1000);
}

#[test]
fn a_flooding_subject_hits_its_share_before_others_are_refused() {
    // One row a second: whatever is queued stays queued while the test looks. No request may
    // time out (whatever order the queue serves them in, on however slow a machine): what is
    // asserted is who is admitted, not when they are served.
    let stack = BatchStack::start(
        &["--cost-us", "1000000,0"],
        "[batching]\nmax_queue = 20\nmax_batch_size = 1\nmax_inflight_batches = 1\ntimeout_ms = 60000\n",
    );
    let daemon = stack.daemon.client();
    let flood: Vec<_> = (0..30)
        .map(|_| {
            let daemon = daemon.clone();
            thread::spawn(move || daemon.post(V1, &[("X-Tfgate-Subject", "flood")], r#"{"instances": [1.0]}"#).status)
        })
        .collect();
    // Wait until every flood request is settled (refused, queued, in flight or answered), however
    // the machine schedules them: only then is the flood's hold on the queue what it will be.
    let metric = |series: &str| stack.daemon.metric(series);
    let model = "model=\"half_plus_two\"";
    let (mut refused, mut held) = (0.0, 0.0);
    for _ in 0..500 {
        refused = metric(&format!("tfgate_rejected_requests_total{{{model},reason=\"caller_share\"}}"));
        held = metric(&format!("tfgate_queue_requests{{{model}}}"))
            + metric(&format!("tfgate_inflight_batches{{{model}}}"));
        let answered =
            metric(&format!("tfgate_requests_total{{{model},version=\"1\",method=\"predict\",code=\"200\"}}"));
        if refused + held + answered >= 30.0 {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(refused >= 1.0, "the flood was never held to its share");
    // Its share is 10 of the 20 places (one more may have been taken while the first was sent).
    assert!(held <= 12.0, "the flood holds {held} places");
    // Another subject still gets in (before: 429, the flood held every place).
    let other = thread::spawn(move || daemon.post(V1, &[("X-Tfgate-Subject", "light")], r#"{"instances": [1.0]}"#));
    let answer = other.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let statuses: Vec<u16> = flood.into_iter().map(|f| f.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
}

#[test]
fn requests_for_an_unknown_model_cost_few_metadata_calls() {
    let stack = BatchStack::start(&[], "");
    let client = stack.client();
    for _ in 0..300 {
        client.post("/v1/models/nope:predict", r#"{"instances": [1.0]}"#).assert_json_error(404);
    }
    let fetches = stack.daemon.metric("tfgate_signature_fetches_total{model=\"nope\"}");
    assert!(fetches < 30.0, "{fetches} GetModelMetadata calls for 300 requests");
}

#[test]
fn health_probes_are_answered_while_a_client_holds_connections() {
    let stack = BatchStack::start(&[], "");
    let address = stack.daemon.metrics_address();
    let held: Vec<std::net::TcpStream> = (0..100).filter_map(|_| std::net::TcpStream::connect(&address).ok()).collect();
    assert!(held.len() >= 64);
    for _ in 0..5 {
        let probe = HttpClient::new(format!("http://{address}")).get("/healthz");
        assert_eq!((probe.status, probe.body.as_str()), (200, "ok"));
    }
}
