//! Overload against the real stack: calls that cannot be answered before their deadline are
//! refused at once (REST 503 with Retry-After, gRPC UNAVAILABLE with retry-after), the others
//! answered; the accelerator time of each call is metered (audit `cost_us`,
//! `tfgate_compute_seconds_total`) and a compute quota refuses a caller past it. How much of the
//! accelerator overload turns into answers is measured by `scripts/bench-overload.sh`, and
//! asserted deterministically by the batching simulation.

use std::thread;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest};
use tfgate_proto::tensorflow::tensor_shape_proto::Dim;
use tfgate_proto::tensorflow::{DataType, TensorProto, TensorShapeProto};
use tfgate_tests::batching_stack::{metric_value, BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::grpc_wire::{call, frame};

const PREDICT: &str = "/v1/models/half_plus_two/versions/1:predict";
const ONE_ROW: &str = r#"{"instances": [1.0]}"#;

/// A daemon before a simulator whose every batch takes 200 ms; one row per batch.
fn start(tables: &str) -> (ControlledSim, BatchDaemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sim = ControlledSim::start(&["--cost-us", "200000,0"]);
    let top = format!("grpc_listen = \"{}\"", dir.path().join("grpc.sock").display());
    let tables = format!(
        "[batching]\nmax_batch_size = 1\nmax_inflight_batches = 1\n[audit]\npath = \"{}\"\n{tables}",
        dir.path().join("audit.jsonl").display()
    );
    let daemon = BatchDaemon::start_with_top(dir.path(), &[sim.grpc_url()], &top, "", &tables);
    (sim, daemon, dir)
}

fn headers<'a>(subject: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    // Lower case: HTTP/2 (gRPC) requires it, HTTP/1.1 does not mind.
    let mut headers =
        vec![("x-tfgate-subject", subject), ("x-tfgate-model", "half_plus_two"), ("x-tfgate-version", "1")];
    headers.extend_from_slice(extra);
    headers
}

/// Enough lone batches for the daemon to know the model's cost.
fn teach(daemon: &BatchDaemon) {
    for _ in 0..5 {
        assert_eq!(daemon.client().post(PREDICT, &headers("teacher", &[]), ONE_ROW).status, 200);
    }
}

fn audit(dir: &tempfile::TempDir) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn calls_that_cannot_be_answered_in_time_are_refused_at_once() {
    let (_sim, daemon, dir) = start("");
    teach(&daemon);
    // Ten callers at once, each allowing 0.5 s, before a model that answers one per 200 ms:
    // two or three fit, the rest are refused now rather than left to time out.
    let socket = daemon.socket.clone();
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let socket = socket.clone();
            thread::spawn(move || {
                let subject = format!("caller-{i}");
                let started = Instant::now();
                let answer =
                    UnixClient::new(&socket).post(PREDICT, &headers(&subject, &[("Request-Timeout", "0.5")]), ONE_ROW);
                (answer, started.elapsed())
            })
        })
        .collect();
    let answers: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    let refused: Vec<_> = answers.iter().filter(|(a, _)| a.status == 503).collect();
    let answered = answers.iter().filter(|(a, _)| a.status == 200).count();
    assert!(answered >= 1 && !refused.is_empty(), "{:?}", answers.iter().map(|(a, _)| a.status).collect::<Vec<_>>());
    for (answer, took) in &refused {
        assert!(answer.header("retry-after").is_some(), "{answer:?}");
        assert!(answer.body.contains("cannot answer this request within its deadline"), "{}", answer.body);
        assert!(*took < Duration::from_millis(150), "a refusal took {took:?}");
    }
    // Nobody waited past its deadline for nothing: every call got an answer or a refusal.
    assert_eq!(answered + refused.len() + answers.iter().filter(|(a, _)| a.status == 504).count(), 10);
    assert!(daemon.metric("tfgate_rejected_requests_total{model=\"half_plus_two\",reason=\"deadline\"}") >= 1.0);
    thread::sleep(Duration::from_millis(300));
    let lines = audit(&dir);
    let line = lines.iter().find(|l| l["status"] == 503).expect("the refusal's audit line");
    assert_eq!((line["code"].as_str(), line["reason"].as_str()), (Some("UNAVAILABLE"), Some("deadline")), "{line}");
}

#[tokio::test]
async fn grpc_calls_that_cannot_be_answered_in_time_are_unavailable_with_retry_after() {
    let (_sim, daemon, dir) = tokio::task::spawn_blocking(|| {
        let started = start("");
        teach(&started.1);
        started
    })
    .await
    .unwrap();
    let socket = dir.path().join("grpc.sock");
    let message = PredictRequest {
        model_spec: Some(ModelSpec { name: "half_plus_two".into(), ..Default::default() }),
        inputs: [(
            "x".to_string(),
            TensorProto {
                dtype: DataType::DtFloat as i32,
                tensor_shape: Some(TensorShapeProto {
                    dim: vec![Dim { size: 1, name: String::new() }],
                    unknown_rank: false,
                }),
                float_val: vec![1.0],
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    }
    .encode_to_vec();
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let (socket, message) = (socket.clone(), message.clone());
            tokio::spawn(async move {
                let subject = format!("caller-{i}");
                let trusted = headers(&subject, &[("grpc-timeout", "500m")]);
                call(&socket, "/tensorflow.serving.PredictionService/Predict", &trusted, frame(&message), &[]).await
            })
        })
        .collect();
    let mut unavailable = 0;
    for answer in calls {
        let answer = answer.await.unwrap();
        if answer.grpc_status() == Some(14) {
            unavailable += 1;
            assert!(answer.headers.contains_key("retry-after"), "{answer:?}");
        }
    }
    assert!(unavailable >= 1, "no call was refused");
    drop(daemon);
}

#[test]
fn accelerator_time_is_metered_and_a_compute_quota_refuses_past_it() {
    let quotas = "[quotas]\nstore = \"memory\"\n[quotas.plans.default]\ncompute = \"1s/hour\"\n";
    let (_sim, daemon, dir) = start(quotas);
    // 200 ms a call: the fifth fills the hour's second, the sixth is refused.
    let statuses: Vec<u16> =
        (0..7).map(|_| daemon.client().post(PREDICT, &headers("metered", &[]), ONE_ROW).status).collect();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    let lines = audit(&dir);
    let answered: Vec<&Value> = lines.iter().filter(|l| l["status"] == 200).collect();
    for line in &answered {
        let cost = line["cost_us"].as_u64().expect("cost_us");
        assert!((150_000..=260_000).contains(&cost), "{line}");
    }
    let refused = lines.iter().find(|l| l["status"] == 429).unwrap();
    assert_eq!(refused["reason"], "quota", "{refused}");
    let text = daemon.metrics_text();
    let seconds =
        metric_value(&text, "tfgate_compute_seconds_total{model=\"half_plus_two\",plan=\"default\"}").unwrap();
    assert!((0.75..=1.6).contains(&seconds), "{seconds}");
}

#[test]
fn a_batch_whose_callers_timed_out_keeps_the_accelerator_until_it_answers() {
    // One slot, 200 ms a batch. A caller allowing 50 ms is answered 504 at its deadline, but
    // TF Serving computes its batch anyway: the next call must not be sent beside it.
    let (sim, daemon, dir) = start("");
    let socket = daemon.socket.clone();
    let started = Instant::now();
    let hurried = thread::spawn(move || {
        UnixClient::new(&socket).post(PREDICT, &headers("hurried", &[("Request-Timeout", "0.05")]), ONE_ROW)
    });
    thread::sleep(Duration::from_millis(20));
    let patient = daemon.client().post(PREDICT, &headers("patient", &[("Request-Timeout", "5")]), ONE_ROW);
    let hurried = hurried.join().unwrap();
    assert_eq!(hurried.status, 504, "{hurried:?}");
    assert!(hurried.body.contains("did not answer within 50 ms"), "{}", hurried.body);
    assert_eq!(patient.status, 200, "{patient:?}");
    // The patient call went once the first batch was done: two batches of 200 ms, one after
    // the other on the one slot.
    assert!(started.elapsed() >= Duration::from_millis(390), "{:?}", started.elapsed());
    assert_eq!(sim.stats()["predict_calls"], 2);
    // Audit lines reach the file within about 10 ms of their answer.
    thread::sleep(Duration::from_millis(200));
    let lines = audit(&dir);
    let timed_out = lines.iter().find(|l| l["subject"] == "hurried").unwrap();
    assert_eq!(
        (timed_out["status"].as_u64(), timed_out["reason"].as_str()),
        (Some(504), Some("timeout")),
        "{timed_out}"
    );
    // It waited in the daemon's queue for the slot, not at the backend behind a call the daemon
    // had stopped counting.
    let waited = lines.iter().find(|l| l["subject"] == "patient").unwrap();
    assert!(waited["queue_us"].as_u64().unwrap() >= 150_000, "{waited}");
}
