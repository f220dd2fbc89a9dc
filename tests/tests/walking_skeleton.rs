//! One prediction end to end: client -> nginx (module) -> tfgate-batcher -> tfs-sim over gRPC,
//! and the clean errors on that path.

use serde_json::json;
use tfgate_tests::{requests_counted, DaemonConfig, NginxConfig, Stack};

const INSTANCES: &str = r#"{"instances": [1.0, 2.0, 5.0]}"#;

#[test]
fn predict_through_nginx_answers_like_tf_serving() {
    let stack = Stack::start();
    let client = stack.client();

    // The catalog (`tfgate_model half_plus_two versions=1,2 default=1`) picks version 1.
    let default = client.post("/v1/models/half_plus_two:predict", INSTANCES);
    assert_eq!(default.status, 200, "{}", default.body);
    assert_eq!(default.header("content-type"), Some("application/json"));
    assert_eq!(default.json(), json!({"predictions": [2.5, 3.0, 4.5]}));

    let v1 = client.post("/v1/models/half_plus_two/versions/1:predict", INSTANCES);
    assert_eq!(v1.json(), json!({"predictions": [2.5, 3.0, 4.5]}));

    let v2 = client.post("/v1/models/half_plus_two/versions/2:predict", INSTANCES);
    assert_eq!(v2.json(), json!({"predictions": [3.5, 4.0, 5.5]}));
}

#[test]
fn without_a_catalog_unversioned_requests_get_the_latest_version_like_tf_serving() {
    let stack = Stack::start_with(
        DaemonConfig::default(),
        NginxConfig { server_extra: String::new(), ..NginxConfig::default() },
    );
    let latest = stack.client().post("/v1/models/half_plus_two:predict", INSTANCES);
    assert_eq!(latest.json(), json!({"predictions": [3.5, 4.0, 5.5]}), "{}", latest.body);
}

#[test]
fn columnar_inputs_answer_outputs() {
    let stack = Stack::start();
    let r = stack.client().post("/v1/models/half_plus_two/versions/1:predict", r#"{"inputs": {"x": [1.0, 2.0, 5.0]}}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"outputs": [2.5, 3.0, 4.5]}));
}

#[test]
fn status_and_metadata_through_nginx() {
    let stack = Stack::start();
    let client = stack.client();

    let status = client.get("/v1/models/half_plus_two/versions/1");
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(
        status.json(),
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    );

    let metadata = client.get("/v1/models/half_plus_two/metadata");
    assert_eq!(metadata.status, 200, "{}", metadata.body);
    let body = metadata.json();
    assert_eq!(body["model_spec"]["name"], "half_plus_two");
    let inputs = &body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"];
    assert_eq!(inputs["x"]["dtype"], "DT_FLOAT", "{body}");
}

#[test]
fn non_json_body_is_a_clean_400() {
    let stack = Stack::start();
    let client = stack.client();
    client.post("/v1/models/half_plus_two:predict", "this is not json").assert_json_error(400);
    client.post("/v1/models/half_plus_two:predict", r#"{"instances": [1.0,"#).assert_json_error(400);
    let missing = client.post("/v1/models/half_plus_two:predict", r#"{"foo": 1}"#).assert_json_error(400);
    assert!(missing.contains("Missing 'inputs' or 'instances' key"), "{missing}");
    // The daemon is unharmed: the next request is answered normally.
    assert_eq!(client.post("/v1/models/half_plus_two:predict", INSTANCES).status, 200);
}

#[test]
fn unknown_model_is_404() {
    // Refused by the module's catalog...
    let stack = Stack::start();
    let error = stack.client().post("/v1/models/no_such_model:predict", INSTANCES).assert_json_error(404);
    assert!(error.contains("no_such_model"), "{error}");
    stack.client().post("/v1/models/half_plus_two/versions/3:predict", INSTANCES).assert_json_error(404);

    // ...and, without a catalog, by TF Serving (NOT_FOUND through the daemon).
    let open = Stack::start_with(
        DaemonConfig::default(),
        NginxConfig { server_extra: String::new(), ..NginxConfig::default() },
    );
    let error = open.client().post("/v1/models/no_such_model:predict", INSTANCES).assert_json_error(404);
    assert!(error.contains("no_such_model"), "{error}");
}

#[test]
fn malformed_paths_are_refused_by_the_module() {
    let (daemon, metrics) = DaemonConfig::with_metrics();
    let stack = Stack::start_with(daemon, NginxConfig::default());
    let client = stack.client();
    client.post("/v1/models/a%2Fb:predict", INSTANCES).assert_json_error(400);
    client.post("/v1/models/half_plus_two/versions/x:predict", INSTANCES).assert_json_error(400);
    client.post("/v1/models/half_plus_two/versions/1/labels/a:predict", INSTANCES).assert_json_error(400);
    client.post("/v1/models/half_plus_two:explain", INSTANCES).assert_json_error(404);
    let wrong_method = client.get("/v1/models/half_plus_two:predict");
    wrong_method.assert_json_error(405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    // The daemon counts every request it answers, whatever its status.
    assert_eq!(requests_counted(&metrics), Vec::<String>::new(), "refused requests reached the daemon");
    client.post("/v1/models/half_plus_two:predict", INSTANCES);
    assert_eq!(requests_counted(&metrics).len(), 1, "a good request is counted");
}

#[test]
fn spoofed_trusted_headers_are_replaced_by_the_module() {
    let stack = Stack::start();
    // The daemon trusts X-Tfgate-Version; a client's own is dropped before it gets there.
    let spoofed = stack.client().send(
        "POST",
        "/v1/models/half_plus_two/versions/2:predict",
        &[("X-Tfgate-Version", "1"), ("x-tfgate-VERSION", "1"), ("X-Tfgate-Label", "stable")],
        Some(INSTANCES),
    );
    assert_eq!(spoofed.json(), json!({"predictions": [3.5, 4.0, 5.5]}), "answered by version 1: spoof got through");
}

#[test]
fn daemon_not_running_gives_a_json_502() {
    let mut stack = Stack::start();
    drop(stack.daemon.take());
    let error = stack.client().post("/v1/models/half_plus_two:predict", INSTANCES).assert_json_error(502);
    assert!(error.contains("tfgate-batcher"), "{error}");
}

#[test]
fn simulator_down_gives_a_json_503() {
    let mut stack = Stack::start();
    drop(stack.sim.take());
    stack.client().post("/v1/models/half_plus_two:predict", INSTANCES).assert_json_error(503);
    stack.client().get("/v1/models/half_plus_two").assert_json_error(503);
}
