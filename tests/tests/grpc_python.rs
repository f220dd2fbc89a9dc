//! TF Serving's official Python client (`tensorflow-serving-api` on `grpcio`, TensorFlow's own
//! `make_tensor_proto`) against nginx with the module and the daemon's gRPC server: what users
//! run, not a client generated here. Each check is a function of `tests/python/grpc_client.py`
//! that asserts in Python; the environment is the cached venv of `scripts/python-env.sh`.

use tfgate_jwt_testkit::{hs_jwk, hs_secret, jwks, sign_token, Signer};
use tfgate_tests::batching_stack::BatchStack;
use tfgate_tests::python::run_python;

const CATALOG: &str = "tfgate_model half_plus_two versions=1,2 default=1;\n\
                       tfgate_model_label half_plus_two canary 2;\n\
                       tfgate_model echo_types versions=1 default=1;";

/// Runs one check of grpc_client.py against `stack`; its report.
fn check(stack: &BatchStack, name: &str, args: &[&str]) -> String {
    let target = stack.grpc_url();
    let mut all = vec![name, target.as_str()];
    all.extend_from_slice(args);
    run_python("grpc_client.py", &all, "")
}

#[test]
fn every_dtype_version_and_method_through_the_official_client() {
    let stack = BatchStack::start_grpc(&[], CATALOG, "", "");
    assert!(check(&stack, "dtypes", &[]).contains("typed: every dtype came back as sent"));
    assert!(check(&stack, "versions", &[]).contains("label canary"));
    assert!(check(&stack, "metadata", &[]).contains("version nginx resolved"));
    assert!(check(&stack, "malformed", &[]).contains("INVALID_ARGUMENT"));
    assert!(check(&stack, "compressed", &[]).contains("UNIMPLEMENTED"));
    let rest = format!("http://127.0.0.1:{}/v1/models/half_plus_two:predict", stack.nginx.port);
    assert!(check(&stack, "concurrent", &[&rest]).contains("each got its own rows"));
}

#[test]
fn methods_tfgate_does_not_serve_reach_the_official_client_as_unimplemented() {
    // A gRPC location for every path, as a server that routes more than TF Serving's services.
    let every_path = "location / { tfgate_route on; grpc_pass grpc://tfgate_batcher_grpc; }";
    let stack = BatchStack::start_grpc(&[], &format!("{CATALOG}\n{every_path}"), "", "");
    assert!(check(&stack, "unknown_methods", &[]).contains("UNIMPLEMENTED"));
}

fn hs_token(sub: &str, scope: &str) -> String {
    let claims = serde_json::json!({"sub": sub, "scope": scope, "exp": 4_000_000_000u64});
    sign_token(r#"{"alg":"HS256","kid":"h","typ":"JWT"}"#, &claims.to_string(), "HS256", &Signer::Hmac(&hs_secret(64)))
}

#[test]
fn token_refusals_reach_the_official_client_as_grpc_statuses() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("jwks.json");
    std::fs::write(&file, jwks(&[hs_jwk("h", 64)])).unwrap();
    let jwt = format!("tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_algorithms HS256;", file.display());
    let stack = BatchStack::start_grpc(&[], "tfgate_model half_plus_two versions=1 default=1 scope=predict;", &jwt, "");
    let read_only = hs_token("bob", "read");
    for (token, code) in
        [("-", "UNAUTHENTICATED"), ("not.a.token", "UNAUTHENTICATED"), (&read_only, "PERMISSION_DENIED")]
    {
        assert!(check(&stack, "status", &[token, code]).starts_with(code));
    }
    assert!(check(&stack, "status", &["-", "NOT_FOUND", "other"]).starts_with("NOT_FOUND"));
    assert!(check(&stack, "ok_with_token", &[&hs_token("alice", "predict")]).contains("accepted"));
}

#[test]
fn deadlines_cancellation_and_quotas_as_the_official_client_sees_them() {
    let tables = "[batching]\ndispatch = \"fixed\"\nmax_delay_us = 5000000\ntimeout_ms = 3000\n";
    let stack = BatchStack::start_grpc(&[], CATALOG, "", tables);
    assert!(check(&stack, "deadline", &[]).contains("DEADLINE_EXCEEDED"));
    assert_eq!(stack.sim().stats()["predict_calls"], 0, "an expired call reached the model");

    let slow =
        BatchStack::start_grpc(&["--cost-us", "500000,0"], CATALOG, "", "[batching]\nmax_inflight_batches = 1\n");
    assert!(check(&slow, "cancel", &[]).contains("cancelled while queued"));
    assert_eq!(slow.sim().stats()["predict_items"], 1, "only the first call's row reached the model");

    let limited = BatchStack::start_grpc(&[], CATALOG, "", "[quotas.plans.default]\nrequests = \"2/day\"\n");
    assert!(check(&limited, "quota", &[]).contains("RESOURCE_EXHAUSTED"));
    assert_eq!(limited.sim().stats()["predict_calls"], 2);
}
