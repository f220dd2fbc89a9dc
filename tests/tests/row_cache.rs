//! The row cache (`[models.NAME] row_cache`) over the real components: nginx with the module,
//! the daemon and tfs-sim, called over REST and over gRPC with the client generated from TF
//! Serving's protos. A row seen before is answered without the model, whichever API asked; rows
//! being computed are shared; versions and labels never answer each other's rows; the audit
//! line counts the rows not computed for the call; quotas count the caller's rows; the store
//! stays within its bytes.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest};
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::python::json_lines;
use tfgate_tests::tensors::{float_values, floats};

const CATALOG: &str = "tfgate_model half_plus_two versions=1,2 default=1;\n\
                       tfgate_model_label half_plus_two canary 2;";

fn tables(row_cache: &str, audit: &Path) -> String {
    format!("[models.half_plus_two]\nrow_cache = \"{row_cache}\"\n[audit]\npath = \"{}\"\n", audit.display())
}

fn request(version: Option<VersionChoice>, x: &[f32]) -> PredictRequest {
    PredictRequest {
        model_spec: Some(ModelSpec {
            name: "half_plus_two".into(),
            version_choice: version,
            signature_name: String::new(),
        }),
        inputs: HashMap::from([("x".to_string(), floats(x))]),
        ..Default::default()
    }
}

/// The audit log's lines once there are `count` of them (written by a thread of their own).
fn audit(path: &Path, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = json_lines(&std::fs::read_to_string(path).unwrap_or_default());
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn items(stack: &BatchStack) -> u64 {
    stack.sim().stats()["predict_items"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn rest_and_grpc_share_the_cache_and_each_version_has_its_own_rows() {
    let logs = tempfile::tempdir().unwrap();
    let audit_path = logs.path().join("audit.jsonl");
    let stack = BatchStack::start_grpc(&[], CATALOG, "", &tables("1MiB", &audit_path));
    let rest = stack.client();
    let r = rest.post("/v1/models/half_plus_two/versions/1:predict", r#"{"instances": [1.0, 2.0]}"#);
    assert_eq!((r.status, r.body.replace(' ', "")), (200, r#"{"predictions":[2.5,3.0]}"#.to_string()));
    assert_eq!(items(&stack), 2);

    // Over gRPC: two rows REST brought, one new.
    let mut grpc = PredictionServiceClient::connect(stack.grpc_url()).await.unwrap();
    let v1 = Some(VersionChoice::Version(1));
    let answer = grpc.predict(request(v1.clone(), &[2.0, 1.0, 7.0])).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![3.0, 2.5, 5.5]);
    assert_eq!(answer.model_spec.unwrap().version_choice, Some(VersionChoice::Version(1)));
    assert_eq!(items(&stack), 3, "only 7.0 reached the model");

    // Wholly from the cache, over gRPC, with the version that computed the rows.
    let answer = grpc.predict(request(v1, &[7.0, 1.0])).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![5.5, 2.5]);
    assert_eq!(answer.model_spec.unwrap().version_choice, Some(VersionChoice::Version(1)));
    assert_eq!(items(&stack), 3);

    // New rows around a cached one: one backend call, its rows in two pieces of the answer.
    let answer = grpc.predict(request(Some(VersionChoice::Version(1)), &[9.0, 1.0, 11.0])).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![6.5, 2.5, 7.5]);
    assert_eq!(items(&stack), 5);

    // Version 2 (the canary label, as nginx resolves it) computes its own.
    let canary = Some(VersionChoice::VersionLabel("canary".into()));
    let answer = grpc.predict(request(canary, &[1.0])).await.unwrap().into_inner();
    assert_eq!(float_values(&answer.outputs["y"]), vec![3.5]);
    assert_eq!(items(&stack), 6);

    let lines = audit(&audit_path, 5);
    let summary: Vec<(String, u64, u64, i64)> = lines
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_u64().unwrap_or(u64::MAX);
            (
                l["ingress"].as_str().unwrap().to_string(),
                s("rows"),
                s("cached_rows"),
                l["version"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("rest".to_string(), 2, 0, 1),
            ("grpc".to_string(), 3, 2, 1),
            ("grpc".to_string(), 2, 2, 1),
            ("grpc".to_string(), 3, 1, 1),
            ("grpc".to_string(), 1, 0, 2)
        ]
    );
    // A call answered wholly from the cache used no backend time.
    assert!(lines[2]["cost_us"].is_null() && lines[2]["batch_id"].is_null(), "{}", lines[2]);
    // Two pieces of one backend call: one batch, both rows' cost.
    assert_eq!(lines[3]["batches"], 1, "{}", lines[3]);
    assert!(lines[3]["cost_us"].as_u64().is_some(), "{}", lines[3]);
    let metric = |name: &str| stack.daemon.metric(&format!("{name}{{model=\"half_plus_two\"}}"));
    assert_eq!(metric("tfgate_row_cache_hits_total"), 5.0);
    assert_eq!(metric("tfgate_row_cache_misses_total"), 6.0);
    assert!(metric("tfgate_row_cache_bytes") > 0.0);
}

#[tokio::test]
async fn identical_rows_in_flight_are_computed_once() {
    let logs = tempfile::tempdir().unwrap();
    let audit_path = logs.path().join("audit.jsonl");
    // 300 ms per call: the second call arrives while the first is computing.
    let stack = BatchStack::start_grpc(&["--cost-us", "300000,0"], CATALOG, "", &tables("0", &audit_path));
    let url = stack.grpc_url();
    let first = tokio::spawn(async move {
        let mut grpc = PredictionServiceClient::connect(url).await.unwrap();
        grpc.predict(request(Some(VersionChoice::Version(1)), &[5.0])).await.unwrap().into_inner()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut grpc = PredictionServiceClient::connect(stack.grpc_url()).await.unwrap();
    let second = grpc.predict(request(Some(VersionChoice::Version(1)), &[5.0, 5.0, 6.0])).await.unwrap().into_inner();
    assert_eq!(float_values(&second.outputs["y"]), vec![4.5, 4.5, 5.0]);
    assert_eq!(float_values(&first.await.unwrap().outputs["y"]), vec![4.5]);
    assert_eq!(items(&stack), 2, "5.0 was computed once for both calls, 6.0 once");
    assert_eq!(stack.daemon.metric("tfgate_rows_deduplicated_total{model=\"half_plus_two\"}"), 2.0);
    // row_cache = "0": nothing is kept once computed.
    grpc.predict(request(Some(VersionChoice::Version(1)), &[5.0])).await.unwrap();
    assert_eq!(items(&stack), 3);
    let lines = audit(&audit_path, 3);
    assert_eq!(lines.iter().map(|l| l["cached_rows"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 2, 0]);
}

#[test]
fn a_model_without_row_cache_is_untouched_and_quotas_count_cached_rows() {
    let logs = tempfile::tempdir().unwrap();
    let audit_path = logs.path().join("audit.jsonl");
    let quota = "[quotas.plans.default]\nrows = \"5/day\"\n";
    let tables = format!(
        "[models.echo_types]\nrow_cache = \"1MiB\"\n[models.half_plus_two]\nrow_cache = \"1MiB\"\n\
         [audit]\npath = \"{}\"\n{quota}",
        audit_path.display()
    );
    let stack = BatchStack::start(&[], &tables);
    let client = stack.client();
    let path = "/v1/models/half_plus_two/versions/1:predict";
    assert_eq!(client.post(path, r#"{"instances": [1.0, 2.0]}"#).status, 200);
    assert_eq!(client.post(path, r#"{"instances": [1.0, 2.0]}"#).status, 200);
    assert_eq!(items(&stack), 2);
    // The caller asked for 4 rows: only one more is left, cached or not.
    let refused = client.post(path, r#"{"instances": [1.0, 2.0]}"#);
    assert_eq!(refused.status, 429, "{}", refused.body);

    // Another model has a row cache, this one not: every call reaches the model.
    let plain = BatchStack::start(&[], "[models.echo_types]\nrow_cache = \"1MiB\"\n");
    for _ in 0..3 {
        assert_eq!(plain.client().post(path, r#"{"instances": [1.0]}"#).status, 200);
    }
    assert_eq!(plain.sim().stats()["predict_items"], 3);
    assert!(!plain.daemon.metrics_text().contains("tfgate_row_cache_hits_total{model=\"half_plus_two\""));
}

/// Versions and labels under concurrent load, with the label moved by an nginx reload
/// midway: every answer is the formula of the version that says it answered.
#[tokio::test]
async fn versions_and_labels_switching_under_load_never_mix_answers() {
    let logs = tempfile::tempdir().unwrap();
    let stack = BatchStack::start_grpc(&[], CATALOG, "", &tables("1MiB", &logs.path().join("audit.jsonl")));
    let url = stack.grpc_url();
    let workers: Vec<_> = (0..4u32)
        .map(|w| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut grpc = PredictionServiceClient::connect(url).await.unwrap();
                let mut checked = 0;
                for i in 0..150u32 {
                    let choice = match (w + i) % 4 {
                        0 => None,
                        1 => Some(VersionChoice::Version(1)),
                        2 => Some(VersionChoice::Version(2)),
                        _ => Some(VersionChoice::VersionLabel("canary".into())),
                    };
                    let x = [(i % 3) as f32, ((i + w) % 5) as f32];
                    let answer = grpc.predict(request(choice, &x)).await.unwrap().into_inner();
                    let Some(VersionChoice::Version(version)) = answer.model_spec.and_then(|s| s.version_choice) else {
                        panic!("no version in the answer");
                    };
                    let offset = if version == 1 { 2.0 } else { 3.0 };
                    assert_eq!(float_values(&answer.outputs["y"]), vec![0.5 * x[0] + offset, 0.5 * x[1] + offset]);
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let conf = std::fs::read_to_string(&stack.nginx.conf).unwrap();
    std::fs::write(&stack.nginx.conf, conf.replace("canary 2;", "canary 1;")).unwrap();
    assert!(stack.nginx.reload().status.success());
    let mut checked = 0;
    for worker in workers {
        checked += worker.await.unwrap();
    }
    assert_eq!(checked, 600);
    assert!(stack.daemon.metric("tfgate_row_cache_hits_total{model=\"half_plus_two\"}") > 100.0);
}

#[test]
fn the_cache_stays_within_its_bytes_under_a_flood_of_distinct_rows() {
    let logs = tempfile::tempdir().unwrap();
    let stack = BatchStack::start(&[], &tables("32KiB", &logs.path().join("audit.jsonl")));
    let client = stack.client();
    for i in 0..400 {
        let body =
            format!(r#"{{"instances": [{}, {}, {}, {}, {}]}}"#, i * 5, i * 5 + 1, i * 5 + 2, i * 5 + 3, i * 5 + 4);
        assert_eq!(client.post("/v1/models/half_plus_two/versions/1:predict", &body).status, 200);
    }
    let bytes = stack.daemon.metric("tfgate_row_cache_bytes{model=\"half_plus_two\"}");
    assert!(bytes > 0.0 && bytes <= 32.0 * 1024.0, "{bytes}");
    assert!(stack.daemon.metric("tfgate_row_cache_evictions_total{model=\"half_plus_two\",reason=\"size\"}") > 1000.0);
}
