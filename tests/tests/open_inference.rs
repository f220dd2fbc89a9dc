//! The Open Inference Protocol ("KServe v2") at both ends, with real software nobody here wrote:
//! NVIDIA's `tritonclient` (http and grpc, unchanged: `tests/python/v2_client.py`) through nginx
//! with the module and the daemon, to tfs-sim (TF Serving's API) and to Seldon's MLServer (a real
//! v2 server, `[backend] protocol = "v2"`, running `tests/python/mlserver/`), and TF Serving REST
//! clients in the same batches. Both come from the tests' cached venv (`scripts/python-env.sh`).
//!
//! One MLServer (adaptive batching off) serves every test that does not count its batching;
//! each test keeps to its own model or version there, so their predict calls never mix.

use std::sync::OnceLock;

use serde_json::{json, Value};
use tfgate_jwt_testkit::{hs_jwk, hs_secret, jwks, sign_token, Signer};
use tfgate_tests::batching_stack::{BatchDaemon, ControlledSim};
use tfgate_tests::mlserver::{AdaptiveBatching, MlServer};
use tfgate_tests::python::{json_lines, run_python, v2_client};
use tfgate_tests::{repo_root, HttpClient, Nginx, NginxConfig};

/// The protocol's locations, in both of nginx's servers (server level, beside the catalog).
/// Regex locations, so that a prefix location for the same paths in the harness's own
/// configuration cannot clash with them.
fn v2_locations() -> String {
    let conf = repo_root().join("nginx-conf");
    let conf = conf.display();
    format!(
        "location ~ ^/v2(/|$) {{ tfgate_route on; proxy_pass http://tfgate_batcher; include {conf}/tfgate-proxy.conf; }}\n\
         location ~ ^/inference\\.GRPCInferenceService/ {{ tfgate_route on; grpc_pass grpc://tfgate_batcher_grpc; \
         include {conf}/tfgate-grpc.conf; }}\n"
    )
}

const CATALOG: &str = "tfgate_model half_plus_two versions=1,2 default=1;\n\
                       tfgate_model_label half_plus_two canary 2;\n\
                       tfgate_model all_types versions=1 default=1;\n";

/// What stands behind the daemon.
enum Backend<'a> {
    /// tfs-sim, TF Serving's gRPC API.
    Sim,
    /// MLServer's gRPC server, `[backend] protocol = "v2"`.
    MlServer(&'a MlServer),
}

/// nginx (REST and gRPC servers, the v2 locations), the daemon (REST socket and `grpc_listen`)
/// and a backend.
struct V2Stack {
    nginx: Nginx,
    daemon: BatchDaemon,
    sim: Option<ControlledSim>,
    _dir: tempfile::TempDir,
}

impl V2Stack {
    /// `server_extra`: more directives at server level (tokens); `tables`: the daemon's tables.
    fn start(backend: Backend<'_>, server_extra: &str, tables: &str) -> V2Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let (sim, url, protocol) = match backend {
            Backend::Sim => {
                let sim = ControlledSim::start(&[]);
                let url = sim.grpc_url();
                (Some(sim), url, "")
            }
            Backend::MlServer(server) => (None, server.grpc_url(), "protocol = \"v2\""),
        };
        let grpc_socket = dir.path().join("grpc.sock");
        let top = format!("grpc_listen = \"{}\"", grpc_socket.display());
        let daemon = BatchDaemon::start_with_top(dir.path(), &[url], &top, protocol, tables);
        let nginx_config = NginxConfig {
            server_extra: format!("{CATALOG}{server_extra}\n{}", v2_locations()),
            grpc_socket: Some(grpc_socket),
            ..NginxConfig::default()
        };
        let nginx = Nginx::start(dir.path(), &daemon.socket, &nginx_config);
        V2Stack { nginx, daemon, sim, _dir: dir }
    }

    /// nginx's `HOST:PORT` for tritonclient over `protocol`.
    fn address(&self, protocol: &str) -> String {
        let port = if protocol == "grpc" { self.nginx.grpc_port } else { self.nginx.port };
        format!("127.0.0.1:{port}")
    }

    /// tritonclient over `protocol` through nginx: one answer per operation.
    fn v2(&self, protocol: &str, ops: Value) -> Vec<Value> {
        v2_client(protocol, &self.address(protocol), &ops)
    }

    fn rest(&self) -> HttpClient {
        self.nginx.client()
    }

    fn sim(&self) -> &ControlledSim {
        self.sim.as_ref().expect("a tfs-sim backend")
    }
}

/// The MLServer shared by the tests that do not count its batching (adaptive batching off).
fn shared_mlserver() -> &'static MlServer {
    static SERVER: OnceLock<MlServer> = OnceLock::new();
    SERVER.get_or_init(|| MlServer::start(AdaptiveBatching::Off))
}

const PROTOCOLS: [&str; 2] = ["http", "grpc"];

/// An infer operation on `model` (version "" for the catalog's choice).
fn infer(model: &str, version: &str, inputs: Value) -> Value {
    json!({"op": "infer", "model": model, "version": version, "inputs": inputs})
}

/// half_plus_two's input `x`, in binary data or JSON.
fn x(values: &[f32], binary: bool) -> Value {
    json!([{"name": "x", "datatype": "FP32", "shape": [values.len()], "data": values, "binary": binary}])
}

/// The answer, which must have succeeded.
fn ok<'a>(answer: &'a Value, what: &str) -> &'a Value {
    assert_eq!(answer["ok"], true, "{what}: {answer}");
    answer
}

/// The failed answer's status: "404" over HTTP, "NOT_FOUND" over gRPC.
fn refused(answer: &Value, what: &str) -> String {
    assert_eq!(answer["ok"], false, "{what} succeeded: {answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: a refusal says why: {answer}");
    answer["status"].as_str().unwrap_or_default().to_string()
}

/// The output `name` of an infer answer.
fn output<'a>(answer: &'a Value, name: &str) -> &'a Value {
    let outputs = answer["outputs"].as_array().unwrap_or_else(|| panic!("no outputs: {answer}"));
    outputs.iter().find(|o| o["name"] == name).unwrap_or_else(|| panic!("no output {name}: {answer}"))
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// half_plus_two's answer: `y` as `0.5 x + offset` (2 at version 1, 3 at version 2), in x's shape.
fn assert_half_plus_two(answer: &Value, xs: &[f32], offset: f64, what: &str) {
    ok(answer, what);
    let y = output(answer, "y");
    assert_eq!(y["datatype"], "FP32", "{what}: {answer}");
    let expected: Vec<f64> = xs.iter().map(|&x| 0.5 * f64::from(x) + offset).collect();
    assert_eq!(floats(&y["data"]), expected, "{what}: {answer}");
}

/// The HTTP status or gRPC code a protocol's client reports for one refusal.
fn code(protocol: &str, http: &str, grpc: &str) -> String {
    if protocol == "grpc" { grpc } else { http }.to_string()
}

#[test]
fn tritonclient_infers_reads_metadata_and_readiness_of_tf_serving_models_through_tfgate() {
    let stack = V2Stack::start(Backend::Sim, "", "");
    for protocol in PROTOCOLS {
        let ops = json!([
            {"op": "server_live"},
            {"op": "server_ready"},
            {"op": "server_metadata"},
            {"op": "model_ready", "model": "half_plus_two"},
            {"op": "model_ready", "model": "half_plus_two", "version": "2"},
            {"op": "model_metadata", "model": "half_plus_two"},
            {"op": "model_metadata", "model": "half_plus_two", "version": "2"},
            // JSON in and out, with an id and the output asked for.
            {"op": "infer", "model": "half_plus_two", "id": "call-1",
             "inputs": x(&[1.0, 2.0, 3.0], false), "outputs": [{"name": "y", "binary": false}]},
            // Binary data in and out (tritonclient's default over HTTP).
            {"op": "infer", "model": "half_plus_two", "inputs": x(&[4.0, -6.0], true),
             "outputs": [{"name": "y", "binary": true}]},
            // Binary in, JSON out; and JSON in, binary out.
            {"op": "infer", "model": "half_plus_two", "inputs": x(&[10.0], true), "outputs": [{"name": "y", "binary": false}]},
            {"op": "infer", "model": "half_plus_two", "inputs": x(&[12.0], false), "outputs": [{"name": "y", "binary": true}]},
            // No outputs named: tritonclient.http asks for all in binary (`binary_data_output`).
            {"op": "infer", "model": "half_plus_two", "inputs": x(&[14.0], false)},
            // Version 2, by number; and by the catalog's label.
            infer("half_plus_two", "2", x(&[1.0, 2.0], true)),
            infer("half_plus_two", "canary", x(&[3.0], true)),
        ]);
        let answers = stack.v2(protocol, ops);
        let what = |i: usize| format!("{protocol} operation {i}");
        assert_eq!(ok(&answers[0], &what(0))["value"], true);
        assert_eq!(ok(&answers[1], &what(1))["value"], true);
        let server = &ok(&answers[2], &what(2))["metadata"];
        assert!(server["name"].as_str().is_some_and(|n| !n.is_empty()), "server metadata: {server}");
        assert_eq!(ok(&answers[3], &what(3))["value"], true);
        assert_eq!(ok(&answers[4], &what(4))["value"], true);
        for (i, version) in [(5, "1"), (6, "2")] {
            let metadata = &ok(&answers[i], &what(i))["metadata"];
            assert_eq!(metadata["name"], "half_plus_two", "{metadata}");
            assert_eq!(metadata["platform"], "tensorflow_savedmodel", "{metadata}");
            let versions = metadata["versions"].as_array().cloned().unwrap_or_default();
            assert!(versions.contains(&json!(version)), "{protocol}: version {version} in {metadata}");
            assert_eq!(metadata["inputs"], json!([{"name": "x", "datatype": "FP32", "shape": [-1]}]), "{metadata}");
            assert_eq!(metadata["outputs"], json!([{"name": "y", "datatype": "FP32", "shape": [-1]}]), "{metadata}");
        }
        assert_half_plus_two(&answers[7], &[1.0, 2.0, 3.0], 2.0, &what(7));
        assert_eq!(answers[7]["model_name"], "half_plus_two");
        assert_eq!(answers[7]["model_version"], "1", "the catalog's default: {}", answers[7]);
        assert_eq!(answers[7]["id"], "call-1", "the request's id echoed: {}", answers[7]);
        assert_eq!(output(&answers[7], "y")["shape"], json!([3]));
        assert_half_plus_two(&answers[8], &[4.0, -6.0], 2.0, &what(8));
        assert_half_plus_two(&answers[9], &[10.0], 2.0, &what(9));
        assert_half_plus_two(&answers[10], &[12.0], 2.0, &what(10));
        assert_half_plus_two(&answers[11], &[14.0], 2.0, &what(11));
        if protocol == "http" {
            // Each output in the form asked for (gRPC always answers in raw contents).
            for (i, binary) in [(7, false), (8, true), (9, false), (10, true), (11, true)] {
                assert_eq!(output(&answers[i], "y")["binary"], binary, "{}: {}", what(i), answers[i]);
            }
        }
        assert_half_plus_two(&answers[12], &[1.0, 2.0], 3.0, &what(12));
        assert_eq!(answers[12]["model_version"], "2");
        assert_half_plus_two(&answers[13], &[3.0], 3.0, &what(13));
        assert_eq!(answers[13]["model_version"], "2", "the label's version: {}", answers[13]);
    }
}

/// One input per datatype of tfs-sim's and MLServer's `all_types` (every input: a v2 call names
/// all of a model's inputs), with each type's extremes; `bf16`: the backend has BF16.
/// `utf8_bytes`: BYTES elements JSON can carry.
fn all_types_inputs(bf16: bool, utf8_bytes: bool) -> Vec<Value> {
    let odd = if utf8_bytes { json!("") } else { json!({"b64": "AP8="}) };
    let mut inputs = vec![
        ("bool", "BOOL", json!([true, false, true])),
        ("int8", "INT8", json!([i8::MIN, 0, i8::MAX])),
        ("int16", "INT16", json!([i16::MIN, 1, i16::MAX])),
        ("int32", "INT32", json!([i32::MIN, 2, i32::MAX])),
        ("int64", "INT64", json!([i64::MIN, 3, i64::MAX])),
        ("uint8", "UINT8", json!([0, 1, u8::MAX])),
        ("uint16", "UINT16", json!([0, 1, u16::MAX])),
        ("uint32", "UINT32", json!([0, 1, u32::MAX])),
        ("uint64", "UINT64", json!([0, 1, u64::MAX])),
        ("half", "FP16", json!([1.5, -2.0, 65504.0])),
        ("float", "FP32", json!([1.5, -0.25, 3.0e38])),
        ("double", "FP64", json!([1e300, 0.25, -5.5])),
        ("string", "BYTES", json!(["abc", odd, "ünï"])),
    ];
    if bf16 {
        inputs.push(("bfloat16", "BF16", json!([1.5, -2.0, 256.0])));
    }
    inputs
        .into_iter()
        .map(|(name, datatype, data)| json!({"name": name, "datatype": datatype, "shape": [3], "data": data}))
        .collect()
}

/// FP16 and BF16 have no JSON form: they travel as binary data whatever the call's choice.
fn json_less(input: &Value) -> bool {
    matches!(input["datatype"].as_str(), Some("FP16" | "BF16"))
}

/// `inputs`, the i-th in binary data where `binary(i)` (or where JSON cannot carry it), and the
/// request for their `NAME_out` outputs, the i-th in binary where `binary_out(i)` (likewise).
fn in_forms(inputs: &[Value], binary: impl Fn(usize) -> bool, binary_out: impl Fn(usize) -> bool) -> (Value, Value) {
    let mut sent = Vec::new();
    let mut asked = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let mut input = input.clone();
        input["binary"] = json!(binary(i) || json_less(&input));
        let name = format!("{}_out", input["name"].as_str().expect("name"));
        asked.push(json!({"name": name, "binary": binary_out(i) || json_less(&input)}));
        sent.push(input);
    }
    (Value::Array(sent), Value::Array(asked))
}

/// Each input came back as `NAME_out`, with its datatype, shape and values (floats compared at
/// the datatype's precision); over HTTP, in the form `asked` (when given).
fn assert_echoed(answer: &Value, inputs: &[Value], asked: Option<&Value>, what: &str) {
    ok(answer, what);
    for (i, input) in inputs.iter().enumerate() {
        let name = input["name"].as_str().expect("name");
        let out = output(answer, &format!("{name}_out"));
        assert_eq!(out["datatype"], input["datatype"], "{what} {name}: {out}");
        assert_eq!(out["shape"], input["shape"], "{what} {name}: {out}");
        match input["datatype"].as_str() {
            Some("FP32") => {
                let single = |v: &Value| floats(v).into_iter().map(|f| f as f32).collect::<Vec<_>>();
                assert_eq!(single(&out["data"]), single(&input["data"]), "{what} {name}");
            }
            Some("FP16" | "BF16" | "FP64") => assert_eq!(floats(&out["data"]), floats(&input["data"]), "{what} {name}"),
            _ => assert_eq!(out["data"], input["data"], "{what} {name}"),
        }
        if let Some(asked) = asked {
            assert_eq!(out["binary"], asked[i]["binary"], "{what} {name} in the form asked: {out}");
        }
    }
}

/// Every datatype through tfgate to `all_types` behind `stack`: over HTTP in binary data, in
/// JSON, and binary for some inputs and outputs only; over gRPC in raw contents.
fn check_every_datatype(stack: &V2Stack, bf16: bool) {
    let binary = all_types_inputs(bf16, false);
    let utf8 = all_types_inputs(bf16, true);
    let (all_binary, all_binary_asked) = in_forms(&binary, |_| true, |_| true);
    let (as_json, as_json_asked) = in_forms(&utf8, |_| false, |_| false);
    // Every other input in binary, and every other output asked in binary, the other way round.
    let (mixed, mixed_asked) = in_forms(&utf8, |i| i % 2 == 0, |i| i % 2 == 1);
    let http = stack.v2(
        "http",
        json!([
            {"op": "infer", "model": "all_types", "inputs": all_binary, "outputs": all_binary_asked},
            {"op": "infer", "model": "all_types", "inputs": as_json, "outputs": as_json_asked},
            {"op": "infer", "model": "all_types", "inputs": mixed, "outputs": mixed_asked},
            // No outputs named: every output, in binary (tritonclient.http's binary_data_output).
            infer("all_types", "", all_binary.clone()),
        ]),
    );
    assert_echoed(&http[0], &binary, Some(&all_binary_asked), "http, binary data");
    assert_echoed(&http[1], &utf8, Some(&as_json_asked), "http, JSON");
    assert_echoed(&http[2], &utf8, Some(&mixed_asked), "http, binary for some inputs and outputs");
    assert_echoed(&http[3], &binary, Some(&all_binary_asked), "http, every output");
    let grpc = stack.v2("grpc", json!([infer("all_types", "", all_binary)]));
    assert_echoed(&grpc[0], &binary, None, "grpc");
}

#[test]
fn every_datatype_round_trips_through_tfgate_to_tf_serving() {
    let stack = V2Stack::start(Backend::Sim, "", "");
    check_every_datatype(&stack, true);
}

#[test]
fn every_datatype_mlserver_carries_round_trips_through_tfgate_to_mlserver() {
    // MLServer's datatypes lack BF16.
    let stack = V2Stack::start(Backend::MlServer(shared_mlserver()), "", "");
    check_every_datatype(&stack, false);
    assert!(!shared_mlserver().rows_per_call("all_types").is_empty(), "MLServer computed them");
}

#[test]
fn errors_reach_tritonclient_with_the_protocols_statuses() {
    let stack = V2Stack::start(Backend::Sim, "", "");
    for protocol in PROTOCOLS {
        let int_x = json!([{"name": "x", "datatype": "INT32", "shape": [2], "data": [1, 2]}]);
        let wrong_shape =
            json!([{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0], "send_shape": [3]}]);
        let unknown_input = json!([{"name": "z", "datatype": "FP32", "shape": [1], "data": [1.0]}]);
        // The metadata says [-1]: v2 checks the rank, as Triton does (TF Serving's API is lenient).
        let other_rank = json!([{"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [8.0, 9.0]}]);
        let answers = stack.v2(
            protocol,
            json!([
                infer("nope", "", x(&[1.0], true)),
                infer("half_plus_two", "7", x(&[1.0], true)),
                {"op": "model_metadata", "model": "nope"},
                infer("half_plus_two", "", int_x),
                infer("half_plus_two", "", wrong_shape),
                infer("half_plus_two", "", unknown_input),
                infer("half_plus_two", "", other_rank),
                {"op": "model_ready", "model": "nope"},
                // Served on after all of them.
                infer("half_plus_two", "", x(&[2.0], true)),
            ]),
        );
        let not_found = code(protocol, "404", "NOT_FOUND");
        let invalid = code(protocol, "400", "INVALID_ARGUMENT");
        assert_eq!(refused(&answers[0], "unknown model"), not_found, "{protocol}");
        assert_eq!(refused(&answers[1], "unknown version"), not_found, "{protocol}");
        assert_eq!(refused(&answers[2], "metadata of an unknown model"), not_found, "{protocol}");
        assert_eq!(refused(&answers[3], "INT32 for an FP32 input"), invalid, "{protocol}");
        assert_eq!(refused(&answers[4], "a shape the data does not fill"), invalid, "{protocol}");
        assert_eq!(refused(&answers[5], "an input the model lacks"), invalid, "{protocol}");
        assert_eq!(refused(&answers[6], "a shape of another rank"), invalid, "{protocol}");
        if protocol == "http" {
            // tritonclient.http's is_model_ready is the status: false, not an error.
            assert_eq!(ok(&answers[7], "readiness of an unknown model")["value"], false);
        } else {
            assert_eq!(refused(&answers[7], "readiness of an unknown model"), not_found);
        }
        assert_half_plus_two(&answers[8], &[2.0], 2.0, "after the errors");
    }

    // What tritonclient cannot send: the protocol's error body for each.
    let rest = stack.rest();
    let post = |path: &str, body: &str| rest.send("POST", path, &[("Content-Type", "application/json")], Some(body));
    let unknown_datatype = r#"{"inputs":[{"name":"x","datatype":"FP8","shape":[1],"data":[1]}]}"#;
    let error = post("/v2/models/half_plus_two/infer", unknown_datatype).assert_json_error(400);
    assert!(error.contains("FP8"), "names the datatype: {error}");
    post("/v2/models/half_plus_two/infer", r#"{"inputs":[{"name":"x""#).assert_json_error(400);
    let short_data = r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1]}]}"#;
    post("/v2/models/half_plus_two/infer", short_data).assert_json_error(400);
    post("/v2/models/nope/infer", r#"{"inputs":[]}"#).assert_json_error(404);
}

fn hs_token(sub: &str, scope: &str) -> String {
    let claims = json!({"sub": sub, "scope": scope, "exp": 4_000_000_000u64});
    sign_token(r#"{"alg":"HS256","kid":"h","typ":"JWT"}"#, &claims.to_string(), "HS256", &Signer::Hmac(&hs_secret(64)))
}

#[test]
fn token_refusals_reach_tritonclient_as_the_protocols_statuses() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("jwks.json");
    std::fs::write(&file, jwks(&[hs_jwk("h", 64)])).unwrap();
    let jwt = format!(
        "tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_algorithms HS256;\n\
         tfgate_model scoped versions=1 default=1 scope=predict;",
        file.display()
    );
    let stack = V2Stack::start(Backend::Sim, &jwt, "");
    let bearer = |token: &str| json!({"authorization": format!("Bearer {token}")});
    let call = |headers: Value| {
        let mut op = infer("half_plus_two", "", x(&[4.0], true));
        op["headers"] = headers;
        op
    };
    let read_only = hs_token("bob", "read");
    let predict = hs_token("alice", "predict");
    for protocol in PROTOCOLS {
        let mut scoped_read = infer("scoped", "", x(&[1.0], true));
        scoped_read["headers"] = bearer(&read_only);
        let answers = stack.v2(
            protocol,
            json!([
                call(json!({})),
                call(bearer("not.a.token")),
                scoped_read,
                call(bearer(&predict)),
                {"op": "server_ready"},
                {"op": "server_ready", "headers": bearer(&predict)},
                {"op": "model_metadata", "model": "half_plus_two"},
            ]),
        );
        let unauthenticated = code(protocol, "401", "UNAUTHENTICATED");
        assert_eq!(refused(&answers[0], "no token"), unauthenticated, "{protocol}");
        assert_eq!(refused(&answers[1], "a malformed token"), unauthenticated, "{protocol}");
        assert_eq!(refused(&answers[2], "a token without the scope"), code(protocol, "403", "PERMISSION_DENIED"));
        assert_half_plus_two(&answers[3], &[4.0], 2.0, &format!("{protocol} with its token"));
        if protocol == "http" {
            // tritonclient.http's is_server_ready is the status: false, not an error.
            assert_eq!(ok(&answers[4], "ready without a token")["value"], false);
        } else {
            assert_eq!(refused(&answers[4], "ready without a token"), unauthenticated);
        }
        assert_eq!(ok(&answers[5], "ready with a token")["value"], true);
        assert_eq!(refused(&answers[6], "metadata without a token"), unauthenticated, "{protocol}");
    }
    // The refused calls never reached the model.
    assert_eq!(stack.sim().stats()["predict_items"], 2, "{}", stack.sim().stats());
}

/// Fixed dispatch of exactly `rows` rows: one batch once they have all come (the delay is long
/// enough for every client process to start).
fn one_batch_of(rows: usize) -> String {
    format!("[batching]\ndispatch = \"fixed\"\nmax_batch_size = {rows}\nmax_delay_us = 8000000\ntimeout_ms = 30000\n")
}

/// `http` and `grpc` tritonclient processes with `per_client` one-row calls each, and
/// `rest_calls` TF Serving REST calls (one row each), all at once, to `half_plus_two` at
/// `version`; every answer checked against the model's math (`offset`).
fn mixed_clients(stack: &V2Stack, version: &str, offset: f64, per_client: usize, rest_calls: usize) {
    let calls = |base: f32| {
        let ops: Vec<Value> =
            (0..per_client).map(|i| infer("half_plus_two", version, x(&[base + i as f32], true))).collect();
        json!([{"op": "concurrent", "ops": ops}])
    };
    let rest_path = format!("/v1/models/half_plus_two/versions/{version}:predict");
    std::thread::scope(|scope| {
        let http = scope.spawn(|| stack.v2("http", calls(100.0)));
        let grpc = scope.spawn(|| stack.v2("grpc", calls(200.0)));
        let rest: Vec<_> = (0..rest_calls)
            .map(|i| {
                let path = rest_path.clone();
                scope.spawn(move || {
                    let xs = 300.0 + i as f64;
                    let r = stack.rest().post(&path, &json!({"instances": [xs]}).to_string());
                    assert_eq!(r.status, 200, "TF Serving REST: {}", r.body);
                    assert_eq!(r.json()["predictions"], json!([0.5 * xs + offset]), "TF Serving REST {i}");
                })
            })
            .collect();
        for (protocol, handle, base) in [("http", http, 100.0), ("grpc", grpc, 200.0)] {
            let answers = handle.join().expect("client thread");
            let results = answers[0]["results"].as_array().cloned().unwrap_or_else(|| panic!("{answers:?}"));
            assert_eq!(results.len(), per_client);
            for (i, answer) in results.iter().enumerate() {
                let what = format!("{protocol} client {i}");
                assert_half_plus_two(answer, &[base + i as f32], offset, &what);
                assert_eq!(answer["model_version"], version, "{what}: {answer}");
            }
        }
        for handle in rest {
            handle.join().expect("REST client");
        }
    });
}

#[test]
fn tritonclient_and_tf_serving_rest_clients_are_batched_into_one_tf_serving_predict() {
    let stack = V2Stack::start(Backend::Sim, "", &one_batch_of(8));
    mixed_clients(&stack, "1", 2.0, 3, 2);
    let stats = stack.sim().stats();
    assert_eq!(stats["predict_calls"], 1, "8 rows from 3 APIs in one Predict: {stats}");
    assert_eq!(stats["batch_sizes"], json!({"8": 1}), "{stats}");
}

#[test]
fn tf_serving_rest_and_tritonclient_in_one_batch_to_mlserver() {
    let mlserver = shared_mlserver();
    let stack = V2Stack::start(Backend::MlServer(mlserver), "", &one_batch_of(8));
    // Version 2 (y = 0.5 x + 3): no other test calls it on the shared server.
    mixed_clients(&stack, "2", 3.0, 3, 2);
    let calls: Vec<u64> = mlserver
        .calls()
        .into_iter()
        .filter(|c| c.model == "half_plus_two" && c.version == "2")
        .map(|c| c.rows)
        .collect();
    assert_eq!(calls, vec![8], "one ModelInfer of 8 rows reached MLServer's model");
}

#[test]
fn tritonclient_and_tf_serving_clients_reach_an_mlserver_model_through_tfgate() {
    let mlserver = shared_mlserver();
    let stack = V2Stack::start(Backend::MlServer(mlserver), "", "");
    for protocol in PROTOCOLS {
        let answers = stack.v2(
            protocol,
            json!([
                {"op": "server_ready"},
                {"op": "model_ready", "model": "half_plus_two", "version": "1"},
                {"op": "model_metadata", "model": "half_plus_two", "version": "1"},
                {"op": "infer", "model": "half_plus_two", "id": "ml-1", "inputs": x(&[1.0, 2.0], false),
                 "outputs": [{"name": "y", "binary": false}]},
                infer("half_plus_two", "", x(&[6.0], true)),
                infer("nope", "", x(&[1.0], true)),
                infer("half_plus_two", "", json!([{"name": "x", "datatype": "INT32", "shape": [1], "data": [1]}])),
            ]),
        );
        let what = |i: usize| format!("{protocol} operation {i}");
        assert_eq!(ok(&answers[0], &what(0))["value"], true);
        assert_eq!(ok(&answers[1], &what(1))["value"], true);
        let metadata = &ok(&answers[2], &what(2))["metadata"];
        assert_eq!(metadata["name"], "half_plus_two", "{metadata}");
        assert_eq!(metadata["inputs"], json!([{"name": "x", "datatype": "FP32", "shape": [-1]}]), "{metadata}");
        assert_eq!(metadata["outputs"], json!([{"name": "y", "datatype": "FP32", "shape": [-1]}]), "{metadata}");
        assert_half_plus_two(&answers[3], &[1.0, 2.0], 2.0, &what(3));
        assert_eq!(answers[3]["id"], "ml-1", "{}", answers[3]);
        assert_eq!(answers[3]["model_version"], "1", "{}", answers[3]);
        assert_half_plus_two(&answers[4], &[6.0], 2.0, &what(4));
        assert_eq!(refused(&answers[5], "unknown model"), code(protocol, "404", "NOT_FOUND"));
        assert_eq!(refused(&answers[6], "INT32 for an FP32 input"), code(protocol, "400", "INVALID_ARGUMENT"));
    }
    // TF Serving's REST API to the same v2 model: predict, and metadata made from ModelMetadata.
    let rest = stack.rest();
    let r = rest.post("/v1/models/half_plus_two:predict", r#"{"instances": [1.0, 5.0]}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["predictions"], json!([2.5, 4.5]));
    let r = rest.get("/v1/models/half_plus_two/versions/1/metadata");
    assert_eq!(r.status, 200, "{}", r.body);
    let signature = &r.json()["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(signature["inputs"]["x"]["dtype"], "DT_FLOAT", "{}", r.body);
    assert_eq!(signature["outputs"]["y"]["dtype"], "DT_FLOAT", "{}", r.body);
}

#[test]
fn mlserver_with_its_adaptive_batching_off_then_on() {
    let (off, on) = std::thread::scope(|scope| {
        let off = scope.spawn(|| MlServer::start(AdaptiveBatching::Off));
        let on = scope.spawn(|| MlServer::start(AdaptiveBatching::On { max_batch_size: 16, max_batch_time_s: 0.1 }));
        (off.join().expect("MLServer off"), on.join().expect("MLServer on"))
    });
    let concurrent = |xs: std::ops::Range<usize>| {
        let ops: Vec<Value> = xs.map(|i| infer("half_plus_two", "1", x(&[i as f32], true))).collect();
        json!([{"op": "concurrent", "ops": ops}])
    };
    let check = |answers: &[Value], xs: std::ops::Range<usize>, what: &str| {
        let results = answers[0]["results"].as_array().cloned().unwrap_or_else(|| panic!("{what}: {answers:?}"));
        for (answer, i) in results.iter().zip(xs) {
            assert_half_plus_two(answer, &[i as f32], 2.0, what);
        }
    };
    // tfgate sends batches of 4 (two at a time): 8 one-row calls make two ModelInfers of 4 rows.
    let tables = "[batching]\ndispatch = \"fixed\"\nmax_batch_size = 4\nmax_inflight_batches = 2\n\
                  max_delay_us = 8000000\ntimeout_ms = 30000\n";
    for (server, adaptive) in [(&off, false), (&on, true)] {
        let what = if adaptive { "adaptive batching on" } else { "adaptive batching off" };
        // Straight to MLServer: eight one-row calls at once.
        check(&v2_client("grpc", &server.grpc_address(), &concurrent(0..8)), 0..8, what);
        let direct = server.rows_per_call("half_plus_two");
        assert_eq!(direct.iter().sum::<u64>(), 8, "{what}: {direct:?}");
        if adaptive {
            assert!(direct.len() < 8, "{what}: MLServer joined calls: {direct:?}");
        } else {
            assert_eq!(direct, vec![1; 8], "{what}: one predict per call");
        }
        // Through tfgate: its batches, as MLServer's batcher passes them on (joined or not).
        let stack = V2Stack::start(Backend::MlServer(server), "", tables);
        check(&stack.v2("grpc", concurrent(10..18)), 10..18, what);
        let through: Vec<u64> = server.rows_per_call("half_plus_two")[direct.len()..].to_vec();
        eprintln!("{what}: rows per predict call, direct {direct:?}, through tfgate {through:?}");
        assert_eq!(through.iter().sum::<u64>(), 8, "{what}: {through:?}");
        if adaptive {
            assert!(through.iter().all(|&rows| rows == 4 || rows == 8), "{what}: whole tfgate batches: {through:?}");
        } else {
            assert_eq!(through, vec![4, 4], "{what}: tfgate's two batches as they were");
        }
    }
}

#[test]
fn v2_calls_are_in_the_prediction_log_as_tensorflow_reads_it() {
    let logs = tempfile::tempdir().expect("log dir");
    let tables = format!("[prediction_log]\ndir = \"{}\"\nsampling_rate = 1.0\n", logs.path().display());
    let mut stack = V2Stack::start(Backend::Sim, "", &tables);
    let (all_types, _) = in_forms(&all_types_inputs(true, true), |_| true, |_| true);
    let http = stack.v2("http", json!([infer("half_plus_two", "", x(&[1.0, 2.0], true))]));
    assert_half_plus_two(&http[0], &[1.0, 2.0], 2.0, "http");
    let grpc =
        stack.v2("grpc", json!([infer("half_plus_two", "2", x(&[5.0], true)), infer("all_types", "", all_types)]));
    assert_half_plus_two(&grpc[0], &[5.0], 3.0, "grpc");
    ok(&grpc[1], "all_types");
    // SIGTERM: the daemon writes what its log holds and closes the file.
    stack.daemon.process.signal("TERM");
    assert_eq!(stack.daemon.process.wait_exit(std::time::Duration::from_secs(20)), Some(true), "clean exit");

    // TensorFlow's TFRecordDataset and TF Serving's PredictionLog, as tests/python/tflog.py reads.
    let mut records = json_lines(&run_python("tflog.py", &["records", logs.path().to_str().unwrap()], ""));
    assert!(records.pop().and_then(|v| v["files"].as_u64()).is_some_and(|files| files >= 1));
    assert_eq!(records.len(), 3, "one record per call: {records:?}");
    let find = |model: &str, version: u64| {
        records
            .iter()
            .find(|r| r["model_spec"]["name"] == model && r["model_spec"]["version"] == version)
            .unwrap_or_else(|| panic!("no record of {model} version {version}: {records:?}"))
    };
    for (version, xs, ys) in [(1, vec![1.0, 2.0], vec![2.5, 3.0]), (2, vec![5.0], vec![5.5])] {
        let record = find("half_plus_two", version);
        assert_eq!(record["inputs"]["x"], json!({"dtype": "float32", "shape": [xs.len()], "values": xs}), "{record}");
        assert_eq!(record["outputs"]["y"], json!({"dtype": "float32", "shape": [ys.len()], "values": ys}), "{record}");
    }
    // The v2 datatypes as the TF dtypes they map to, one to one.
    let record = find("all_types", 1);
    let dtypes = [
        ("bool", "bool"),
        ("int8", "int8"),
        ("uint64", "uint64"),
        ("half", "float16"),
        ("bfloat16", "bfloat16"),
        ("double", "float64"),
        ("string", "string"),
    ];
    for (name, dtype) in dtypes {
        assert_eq!(record["inputs"][name]["dtype"], dtype, "{name}: {record}");
        assert_eq!(record["outputs"][format!("{name}_out")]["dtype"], dtype, "{name}: {record}");
    }
    assert_eq!(record["inputs"]["uint64"]["values"], json!([0, 1, u64::MAX]), "{record}");
    assert_eq!(record["inputs"]["half"]["values"], json!([1.5, -2.0, 65504.0]), "{record}");
    assert_eq!(record["inputs"]["string"]["values"], json!(["abc", "", "ünï"]), "{record}");
}
