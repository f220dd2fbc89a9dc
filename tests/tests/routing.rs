//! Model routing in the module, through real nginx, the daemon and tfs-sim (half_plus_two v1
//! answers 0.5x+2, v2 answers 0.5x+3, so every answer tells which version served it).

use serde_json::json;
use tfgate_jwt_testkit::{hs_jwk, hs_secret, jwks, sign_token, Signer};
use tfgate_tests::{load_module_line, nginx_test_config, requests_counted, DaemonConfig, NginxConfig, Response, Stack};

const ONE: &str = r#"{"instances": [2.0]}"#;

fn stack(server_extra: &str, location_extra: &str) -> Stack {
    stack_with(DaemonConfig::default(), server_extra, location_extra)
}

/// The stack, with the daemon's metrics served at the returned address (`requests_counted`).
fn counting_stack(server_extra: &str) -> (Stack, String) {
    let (daemon, metrics) = DaemonConfig::with_metrics();
    (stack_with(daemon, server_extra, ""), metrics)
}

fn stack_with(daemon: DaemonConfig, server_extra: &str, location_extra: &str) -> Stack {
    let nginx = NginxConfig {
        http_extra: "log_format route '$tfgate_model|$tfgate_model_version|$tfgate_model_label|$tfgate_model_method|$tfgate_upstream|$status';".into(),
        server_extra: server_extra.into(),
        location_extra: format!("tfgate_route on; access_log logs/route.log route; {location_extra}"),
        ..NginxConfig::default()
    };
    Stack::start_with(daemon, nginx)
}

/// Which half_plus_two version answered a prediction of x = 2.
fn version_of(response: &Response) -> u8 {
    assert_eq!(response.status, 200, "{}", response.body);
    match response.json()["predictions"][0].as_f64() {
        Some(3.0) => 1,
        Some(4.0) => 2,
        _ => panic!("unexpected answer {}", response.body),
    }
}

fn route_log_with(stack: &Stack, expected: &[&str]) -> String {
    stack.nginx.log_when("route.log", |log| expected.iter().all(|line| log.contains(line)))
}

const CATALOG: &str = "tfgate_model half_plus_two versions=1,2 default=stable; \
                       tfgate_model_label half_plus_two stable 1; \
                       tfgate_model_label half_plus_two canary 2;";

#[test]
fn every_path_form_and_method() {
    let stack = stack(CATALOG, "");
    let c = stack.client();
    assert_eq!(version_of(&c.post("/v1/models/half_plus_two:predict", ONE)), 1, "default label stable");
    assert_eq!(version_of(&c.post("/v1/models/half_plus_two/versions/2:predict", ONE)), 2);
    assert_eq!(version_of(&c.post("/v1/models/half_plus_two/labels/canary:predict", ONE)), 2);
    assert_eq!(version_of(&c.post("/V1/MODELS/half_plus_two/LABELS/stable:PREDICT", ONE)), 1, "case-insensitive");
    let status = c.get("/v1/models/half_plus_two/labels/canary");
    assert_eq!(status.json()["model_version_status"][0]["version"], "2", "{}", status.body);
    assert_eq!(c.get("/v1/models/half_plus_two/versions/1/metadata").status, 200);
    // classify/regress are recognised and passed on; the daemon has no REST backend for them.
    c.post("/v1/models/half_plus_two:classify", r#"{"examples": []}"#).assert_json_error(501);
    c.post("/v1/models/half_plus_two/versions/1:regress", r#"{"examples": []}"#).assert_json_error(501);
    let expected = ["half_plus_two|1|stable|predict|-|200", "half_plus_two|2|canary|status|-|200"];
    let log = route_log_with(&stack, &expected);
    assert!(expected.iter().all(|line| log.contains(line)), "{log}");
}

#[test]
fn unknown_models_versions_and_labels_are_404() {
    let (stack, metrics) = counting_stack(CATALOG);
    let c = stack.client();
    c.post("/v1/models/nope:predict", ONE).assert_json_error(404);
    c.post("/v1/models/half_plus_two/versions/3:predict", ONE).assert_json_error(404);
    c.post("/v1/models/half_plus_two/labels/beta:predict", ONE).assert_json_error(404);
    assert_eq!(requests_counted(&metrics), Vec::<String>::new(), "refused requests reached the daemon");
}

#[test]
fn hostile_paths_never_reach_the_daemon() {
    let (stack, metrics) = counting_stack(CATALOG);
    let c = stack.client();
    let long = format!("/v1/models/{}:predict", "a".repeat(300));
    for path in [
        "/v1/models/half_plus_two%2F..%2Fx:predict",
        "/v1/models/half_plus_two/../other:predict",
        "/v1/models/half_plus_two/./versions/1:predict",
        "/v1/models//half_plus_two:predict",
        "/v1/models/half_plus_two%00:predict",
        "/v1/models/half_plus_two%0d%0aX-Tfgate-Version:%201:predict",
        "/v1/models/half_plus_two/versions/1/labels/stable:predict",
        "/v1/models/half_plus_two/versions/one:predict",
        long.as_str(),
    ] {
        let response = c.post(path, ONE);
        assert!(matches!(response.status, 400 | 404), "{path}: {} {}", response.status, response.body);
        assert_eq!(response.header("content-type"), Some("application/json"), "{path}");
    }
    assert_eq!(requests_counted(&metrics), Vec::<String>::new(), "hostile paths reached the daemon");
    assert_eq!(version_of(&c.post("/v1/models/half_plus_two:predict", ONE)), 1, "and good ones still do");
    assert_eq!(requests_counted(&metrics).len(), 1);
}

#[test]
fn spoofed_routing_headers_are_ignored() {
    let stack = stack(CATALOG, "");
    let r = stack.client().send(
        "POST",
        "/v1/models/half_plus_two/labels/stable:predict",
        &[("X-Tfgate-Version", "2"), ("X-Tfgate-Label", "canary"), ("X-Tfgate-Model", "other")],
        Some(ONE),
    );
    assert_eq!(version_of(&r), 1);
}

fn hs_token(sub: &str, scope: &str) -> String {
    let claims = json!({"sub": sub, "scope": scope, "exp": 4_000_000_000u64});
    sign_token(r#"{"alg":"HS256","kid":"h","typ":"JWT"}"#, &claims.to_string(), "HS256", &Signer::Hmac(&hs_secret(64)))
}

fn jwt_location(dir: &std::path::Path) -> String {
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks(&[hs_jwk("h", 64)])).unwrap();
    format!("tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_algorithms HS256;", file.display())
}

#[test]
fn a_ten_percent_split_is_sticky_and_even_over_ten_thousand_subjects() {
    let keys = tempfile::tempdir().unwrap();
    let catalog =
        "tfgate_model half_plus_two versions=1,2 default=stable; tfgate_model_label half_plus_two stable 1 2:10;";
    let stack = stack(catalog, &jwt_location(keys.path()));
    let subjects = 10_000;
    let threads = 8;
    let to_two: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let stack = &stack;
                s.spawn(move || {
                    let client = stack.client();
                    (t..subjects)
                        .step_by(threads)
                        .filter(|i| {
                            let token = format!("Bearer {}", hs_token(&format!("user-{i}"), ""));
                            let r = client.send(
                                "POST",
                                "/v1/models/half_plus_two:predict",
                                &[("Authorization", &token)],
                                Some(ONE),
                            );
                            version_of(&r) == 2
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert!((800..=1200).contains(&to_two), "{to_two} of {subjects} went to version 2");

    // Sticky: the same subjects get the same version again.
    let client = stack.client();
    for i in 0..200 {
        let token = format!("Bearer {}", hs_token(&format!("user-{i}"), ""));
        let first = version_of(&client.send(
            "POST",
            "/v1/models/half_plus_two:predict",
            &[("Authorization", &token)],
            Some(ONE),
        ));
        let again = version_of(&client.send(
            "POST",
            "/v1/models/half_plus_two/labels/stable:predict",
            &[("Authorization", &token)],
            Some(ONE),
        ));
        assert_eq!(first, again, "user-{i}");
    }
}

#[test]
fn per_model_scopes_are_enforced() {
    let keys = tempfile::tempdir().unwrap();
    let stack = stack("tfgate_model half_plus_two versions=1,2 scope=predict;", &jwt_location(keys.path()));
    let c = stack.client();
    let call = |scope: &str| {
        let token = format!("Bearer {}", hs_token("alice", scope));
        c.send("POST", "/v1/models/half_plus_two/versions/1:predict", &[("Authorization", &token)], Some(ONE))
    };
    assert_eq!(version_of(&call("read predict")), 1);
    let denied = call("read");
    denied.assert_json_error(403);
    let challenge = denied.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("insufficient_scope") && challenge.contains("scope=\"predict\""), "{challenge}");
}

#[test]
fn upstream_per_model_through_a_map() {
    let server = "tfgate_model half_plus_two versions=1,2; tfgate_model echo_types upstream=dead;";
    let nginx = NginxConfig {
        http_extra: "upstream tfgate_dead { server unix:/nonexistent/tfgate.sock; } \
                     map $tfgate_upstream $tfgate_backend { default tfgate_batcher; dead tfgate_dead; }"
            .into(),
        server_extra: server.into(),
        location_extra: "tfgate_route on;".into(),
        proxy_pass: "http://$tfgate_backend".into(),
        ..NginxConfig::default()
    };
    let stack = Stack::start_with(DaemonConfig::default(), nginx);
    let c = stack.client();
    assert_eq!(version_of(&c.post("/v1/models/half_plus_two/versions/1:predict", ONE)), 1);
    c.post("/v1/models/echo_types:predict", r#"{"inputs": {"f32": [1.0]}}"#).assert_json_error(502);
}

fn nginx_t(server_body: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!("server {{\n listen 127.0.0.1:1;\n {server_body}\n}}");
    let out = nginx_test_config(dir.path(), &load_module_line(), &conf);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn nginx_t_rejects_bad_catalogs_with_file_and_line() {
    for (body, expected) in [
        ("tfgate_model_label m stable 1;", "unknown model"),
        ("tfgate_model m versions=1,2; tfgate_model_label m stable 3;", "version 3 is not declared"),
        ("tfgate_model m versions=1,2,3; tfgate_model_label m stable 1 2:60 3:50;", "more than 100%"),
        ("tfgate_model m; tfgate_model m;", "duplicate model"),
        ("tfgate_model m; tfgate_model_label m a 1; tfgate_model_label m a 2;", "duplicate label"),
        ("tfgate_model m versions=1 default=2;", "not among its versions"),
        ("tfgate_model m versions=x;", "invalid version"),
    ] {
        let (ok, stderr) = nginx_t(body);
        assert!(!ok, "{body} was accepted");
        assert!(stderr.contains(expected) && stderr.contains("nginx-t.conf:"), "{body}: {stderr}");
    }
    let (ok, stderr) = nginx_t("tfgate_model m default=beta;");
    assert!(!ok && stderr.contains("default label \"beta\""), "{stderr}");
    let (ok, stderr) = nginx_t(CATALOG);
    assert!(ok, "{stderr}");
}

#[test]
fn rewrites_and_internal_redirects_are_routed_by_the_new_path() {
    let server = format!(
        "{CATALOG} location /old/ {{ rewrite ^/old/(.*)$ /v1/models/$1 last; }} \
         location = /legacy-predict {{ try_files /.nonexistent /v1/models/half_plus_two/labels/canary:predict; }}"
    );
    let stack = stack(&server, "");
    let c = stack.client();
    assert_eq!(version_of(&c.post("/old/half_plus_two/versions/2:predict?x=1", ONE)), 2);
    assert_eq!(version_of(&c.post("/old/half_plus_two:predict", ONE)), 1, "default label after a rewrite");
    c.post("/old/nope:predict", ONE).assert_json_error(404);
    assert_eq!(version_of(&c.post("/legacy-predict", ONE)), 2, "internal redirect");
}

#[test]
fn versions_limit_what_unversioned_requests_get() {
    // TF Serving's latest is version 2, which `versions=1` does not expose.
    let stack = stack("tfgate_model half_plus_two versions=1;", "");
    let c = stack.client();
    assert_eq!(version_of(&c.post("/v1/models/half_plus_two:predict", ONE)), 1);
    let metadata = c.get("/v1/models/half_plus_two/metadata");
    assert_eq!(metadata.json()["model_spec"]["version"], "1", "{}", metadata.body);
    let status = c.get("/v1/models/half_plus_two");
    assert_eq!(listed_versions(&status), vec!["1"]);
    c.post("/v1/models/half_plus_two/versions/2:predict", ONE).assert_json_error(404);
}

#[test]
fn status_lists_every_exposed_version_whatever_the_default() {
    let stack = stack("tfgate_model half_plus_two versions=1,2 default=1;", "");
    let status = stack.client().get("/v1/models/half_plus_two");
    assert_eq!(listed_versions(&status), vec!["1", "2"]);
    let one = stack.client().get("/v1/models/half_plus_two/versions/2");
    assert_eq!(listed_versions(&one), vec!["2"]);
}

fn listed_versions(status: &Response) -> Vec<String> {
    assert_eq!(status.status, 200, "{}", status.body);
    let mut versions: Vec<String> = status.json()["model_version_status"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", status.body))
        .iter()
        .map(|v| v["version"].as_str().unwrap_or_default().to_owned())
        .collect();
    versions.sort();
    versions
}

#[test]
fn trusted_headers_are_dropped_even_where_the_module_does_nothing() {
    // A plain proxy location: neither tfgate_route nor tfgate_jwt.
    let nginx = NginxConfig { server_extra: String::new(), location_extra: String::new(), ..NginxConfig::default() };
    let stack = Stack::start_with(DaemonConfig::default(), nginx);
    let r = stack.client().send(
        "POST",
        "/v1/models/half_plus_two:predict",
        &[("X-Tfgate-Version", "1"), ("X-TFGATE-Subject", "admin")],
        Some(ONE),
    );
    assert_eq!(version_of(&r), 2, "the daemon obeyed a client's X-Tfgate-Version");
}

#[test]
fn split_shares_are_written_as_in_split_clients() {
    for shares in ["2:10%", "2:10", "2:2.5%"] {
        let (ok, stderr) = nginx_t(&format!("tfgate_model m versions=1,2; tfgate_model_label m stable 1 {shares};"));
        assert!(ok, "{shares}: {stderr}");
    }
    let (ok, stderr) = nginx_t("tfgate_model m versions=1,2; tfgate_model_label m stable 1 2:10%%;");
    assert!(!ok && stderr.contains("invalid percentage"), "{stderr}");
}

#[test]
fn an_undeclared_label_never_reaches_a_version_outside_versions() {
    // TF Serving's own label `canary` names version 2, which `versions=1` does not expose.
    let (limited, metrics) = counting_stack("tfgate_model half_plus_two versions=1;");
    let c = limited.client();
    for response in [
        c.post("/v1/models/half_plus_two/labels/canary:predict", ONE),
        c.get("/v1/models/half_plus_two/labels/canary"),
        c.get("/v1/models/half_plus_two/labels/canary/metadata"),
    ] {
        let error = response.assert_json_error(404);
        assert!(error.contains("tfgate_model_label"), "{error}");
    }
    assert_eq!(requests_counted(&metrics), Vec::<String>::new(), "an undeclared label reached the daemon");
    // A model open to every version still leaves labels to TF Serving.
    let open = stack("tfgate_model half_plus_two;", "");
    assert_eq!(version_of(&open.client().post("/v1/models/half_plus_two/labels/canary:predict", ONE)), 2);
}

/// A GET with the request target written as it is: no HTTP library sends a '#'.
fn raw_get(port: u16, target: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    write!(stream, "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{answer}"));
    (status, answer)
}

#[test]
fn a_fragment_in_the_path_is_refused_never_read_two_ways() {
    // No catalog: nginx forwards the path with its '#', which the module read as part of the
    // model or label while the daemon cut it off.
    let (stack, metrics) = counting_stack("");
    for target in [
        "/v1/models/half_plus_two#x",
        "/v1/models/half_plus_two/labels/canary#x",
        "/v1/models/half_plus_two#x/versions/1",
        "/v1/models/half_plus_two%23x",
        "/v1/models/half_plus_two/labels/canary%3Fx",
    ] {
        let (status, answer) = raw_get(stack.nginx.port, target);
        assert_eq!(status, 400, "{target}: {answer}");
        assert!(answer.contains("application/json") && answer.contains("'#'"), "{target}: {answer}");
    }
    assert_eq!(requests_counted(&metrics), Vec::<String>::new(), "a path with '#' reached the daemon");
    let (status, answer) = raw_get(stack.nginx.port, "/v1/models/half_plus_two/labels/canary");
    assert_eq!(status, 200, "{answer}");
}
