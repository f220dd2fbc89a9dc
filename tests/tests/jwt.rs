//! Bearer-token checks in the real nginx with the module: every algorithm, every claim rule,
//! malformed tokens, the answers (RFC 6750), key rotation through a JWKS subrequest, cache
//! isolation between locations, `satisfy any`, reloads, and `nginx -t` errors.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tfgate_jwt_testkit::{ec256, ec384, ed, hs_jwk, hs_secret, jwks, new_rsa_key, sign_token, Signer};
use tfgate_tests::{load_module_line, nginx_test_config, DaemonConfig, Idp, NginxConfig, Response, Stack};

const STATUS_PATH: &str = "/v1/models/half_plus_two";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "tfgate";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() + 600, "iat": now(), "scope": "predict read"})
}

fn header(alg: &str, kid: &str) -> String {
    json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string()
}

/// Keys of every kind, written as a JWKS file.
struct Keys {
    rsa: tfgate_jwt_testkit::Rsa,
    ec256: tfgate_jwt_testkit::Ec,
    ec384: tfgate_jwt_testkit::Ec,
    ed: tfgate_jwt_testkit::Ed,
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let keys =
            Keys { rsa: new_rsa_key(), ec256: ec256(), ec384: ec384(), ed: ed(), dir: tempfile::tempdir().unwrap() };
        let document =
            jwks(&[keys.rsa.jwk("r"), keys.ec256.jwk("e2"), keys.ec384.jwk("e3"), keys.ed.jwk("d"), hs_jwk("h", 64)]);
        std::fs::write(keys.file(), document).unwrap();
        keys
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    fn token(&self, alg: &str, claims: &Value) -> String {
        let secret = hs_secret(64);
        let (kid, signer) = match alg {
            a if a.starts_with("RS") || a.starts_with("PS") => ("r", Signer::Rsa(&self.rsa)),
            "ES256" => ("e2", Signer::Ec(&self.ec256)),
            "ES384" => ("e3", Signer::Ec(&self.ec384)),
            "EdDSA" => ("d", Signer::Ed(&self.ed)),
            _ => ("h", Signer::Hmac(&secret)),
        };
        sign_token(&header(alg, kid), &claims.to_string(), alg, &signer)
    }
}

/// nginx + daemon + simulator with the JWT directives in the model location.
fn stack(location_jwt: &str, server_extra: &str) -> Stack {
    let nginx = NginxConfig {
        // The last field is the X-Tfgate-Subject header as it goes upstream.
        http_extra: "log_format tfgate '$tfgate_jwt_result|$tfgate_jwt_sub|$tfgate_jwt_claim_scope|$tfgate_model|$status|$http_x_tfgate_subject';".into(),
        server_extra: server_extra.into(),
        location_extra: format!("tfgate_route on; access_log logs/tfgate.log tfgate; {location_jwt}"),
        ..NginxConfig::default()
    };
    Stack::start_with(DaemonConfig::default(), nginx)
}

fn file_policy(keys: &Keys) -> String {
    format!(
        "tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_issuer {ISSUER}; tfgate_jwt_audience {AUDIENCE}; \
         tfgate_jwt_algorithms RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA HS256 HS384 HS512;",
        keys.file().display()
    )
}

fn get(stack: &Stack, path: &str, token: Option<&str>) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    stack.client().send("GET", path, &headers, None)
}

/// A request with a valid token that also sends its own `X-Tfgate-Subject: root`.
fn get_claiming_to_be_root(stack: &Stack, token: &str) -> Response {
    let bearer = format!("Bearer {token}");
    stack.client().send("GET", STATUS_PATH, &[("Authorization", &bearer), ("X-Tfgate-Subject", "root")], None)
}

fn assert_invalid_token(response: &Response, description: &str) {
    response.assert_json_error(401);
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer realm=\"tfgate\", error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains(description), "{challenge} should mention {description}");
}

fn access_log_when(stack: &Stack, done: impl Fn(&str) -> bool) -> String {
    stack.nginx.log_when("tfgate.log", done)
}

fn access_log_with(stack: &Stack, line: &str) -> String {
    access_log_when(stack, |log| log.contains(line))
}

#[test]
fn every_algorithm_is_accepted_with_its_key() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    for alg in
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256", "HS384", "HS512"]
    {
        let response = get(&stack, STATUS_PATH, Some(&keys.token(alg, &claims())));
        assert_eq!(response.status, 200, "{alg}: {}", response.body);
    }
    let line = "ok|alice|predict read|half_plus_two|200|alice";
    let log = access_log_when(&stack, |log| log.lines().filter(|l| *l == line).count() >= 12);
    assert_eq!(log.lines().filter(|l| *l == line).count(), 12, "{log}");
}

#[test]
fn missing_token_gets_a_challenge_without_error() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let response = get(&stack, STATUS_PATH, None);
    response.assert_json_error(401);
    assert_eq!(response.header("www-authenticate"), Some("Bearer realm=\"tfgate\""));
    let log = access_log_with(&stack, "missing|-|-|half_plus_two|401|-");
    assert!(log.contains("missing|-|-|half_plus_two|401|-"), "{log}");
}

#[test]
fn each_claim_check_passes_and_fails() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let with = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        get(&stack, STATUS_PATH, Some(&keys.token("ES256", &c)))
    };
    assert_eq!(with(json!({})).status, 200);
    assert_invalid_token(&with(json!({"exp": now() - 3600})), "expired");
    assert_invalid_token(&with(json!({"exp": null})), "exp");
    assert_eq!(with(json!({"exp": now() - 30})).status, 200, "within the 60 s leeway");
    assert_invalid_token(&with(json!({"nbf": now() + 3600})), "not yet valid");
    assert_invalid_token(&with(json!({"iat": now() + 3600})), "");
    assert_invalid_token(&with(json!({"iss": "https://evil.test"})), "");
    assert_invalid_token(&with(json!({"aud": "someone-else"})), "");
    assert_eq!(with(json!({"aud": ["x", AUDIENCE]})).status, 200, "aud as an array");
}

#[test]
fn scopes_and_claim_rules_are_403_insufficient_scope() {
    let keys = Keys::new();
    let policy =
        format!("{} tfgate_jwt_scope predict; tfgate_jwt_require groups contains ml-team;", file_policy(&keys));
    let stack = stack(&policy, "");
    let token = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        keys.token("RS256", &c)
    };
    assert_eq!(get(&stack, STATUS_PATH, Some(&token(json!({"groups": ["ml-team", "x"]})))).status, 200);
    assert_eq!(
        get(&stack, STATUS_PATH, Some(&token(json!({"groups": ["x"], "scp": ["predict"], "scope": "other"})))).status,
        403
    );
    assert_eq!(
        get(&stack, STATUS_PATH, Some(&token(json!({"groups": ["ml-team"], "scope": null, "scp": ["predict"]}))))
            .status,
        200,
        "scp array"
    );

    let forbidden = get(&stack, STATUS_PATH, Some(&token(json!({"groups": ["ml-team"], "scope": "read"}))));
    forbidden.assert_json_error(403);
    let challenge = forbidden.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(access_log_with(&stack, "forbidden|").contains("forbidden|"));
}

#[test]
fn malformed_and_forged_tokens_are_401() {
    let keys = Keys::new();
    // Room for a header over tfgate's 8 KiB token limit, so that the module (not nginx) refuses it.
    let stack = stack(&file_policy(&keys), "large_client_header_buffers 4 32k;");
    let good = keys.token("RS256", &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &str| tfgate_jwt_testkit::b64(v);

    let none = format!("{}.{}.", b64(r#"{"alg":"none","kid":"r"}"#), parts[1]);
    let none_upper = format!("{}.{}.", b64(r#"{"alg":"NONE"}"#), parts[1]);
    // HS256 "signed" with the RSA public key as the HMAC secret: the classic confusion attack.
    let public_der = keys.rsa.public_der();
    let confused = sign_token(&header("HS256", "r"), &claims().to_string(), "HS256", &Signer::Hmac(&public_der));
    let mut tampered_payload = claims();
    tampered_payload["sub"] = json!("mallory");
    let tampered_payload = format!("{}.{}.{}", parts[0], b64(&tampered_payload.to_string()), parts[2]);
    let mut sig = parts[2].to_owned();
    sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    let tampered_signature = format!("{}.{}.{}", parts[0], parts[1], sig);
    let unknown_kid = sign_token(&header("RS256", "nope"), &claims().to_string(), "RS256", &Signer::Rsa(&keys.rsa));
    let es_with_rsa_kid = sign_token(&header("ES256", "r"), &claims().to_string(), "ES256", &Signer::Ec(&keys.ec256));
    let cases = [
        ("alg none", none),
        ("alg NONE", none_upper),
        ("HS256 with the RSA public key", confused),
        ("tampered payload", tampered_payload),
        ("tampered signature", tampered_signature),
        ("unknown kid", unknown_kid),
        ("ES256 on an RSA key", es_with_rsa_kid),
        ("two segments", format!("{}.{}", parts[0], parts[1])),
        ("four segments", format!("{good}.x")),
        ("bad base64", format!("{}.{}!.{}", parts[0], parts[1], parts[2])),
        ("non-JSON header", format!("{}.{}.{}", b64("not json"), parts[1], parts[2])),
        ("payload not an object", sign_token(&header("RS256", "r"), "[1,2]", "RS256", &Signer::Rsa(&keys.rsa))),
        ("oversized", format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2])),
    ];
    for (what, token) in cases {
        let response = get(&stack, STATUS_PATH, Some(&token));
        assert_eq!(response.status, 401, "{what}: {}", response.body);
        assert!(response.header("www-authenticate").unwrap_or_default().contains("invalid_token"), "{what}");
        assert!(!response.body.contains(&token[..20.min(token.len())]), "{what}: the token is echoed");
    }
    let empty = stack.client().send("GET", STATUS_PATH, &[("Authorization", "Bearer ")], None);
    assert_eq!(empty.status, 401);
    let lowercase_scheme =
        stack.client().send("GET", STATUS_PATH, &[("Authorization", &format!("bearer {good}"))], None);
    assert_eq!(lowercase_scheme.status, 200, "the scheme is case-insensitive");
    let errors = stack.nginx.error_log();
    assert!(!errors.contains(parts[2]), "a signature reached the error log");
    // Workers survived all of it.
    assert_eq!(get(&stack, STATUS_PATH, Some(&good)).status, 200);
    assert!(!errors.contains("exited on signal"), "{errors}");
}

#[test]
fn spoofed_subject_is_replaced_by_the_token_subject() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let token = keys.token("RS256", &claims());
    let response = get_claiming_to_be_root(&stack, &token);
    assert_eq!(response.status, 200);
    let line = "ok|alice|predict read|half_plus_two|200|alice";
    assert!(access_log_with(&stack, line).contains(line), "the client's X-Tfgate-Subject went upstream");
}

#[test]
fn cache_is_isolated_between_locations_with_different_policies() {
    let keys = Keys::new();
    let other = format!(
        "location /strict/ {{ tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_audience another-api; \
         root {}; try_files /ok =404; }}",
        keys.file().display(),
        keys.dir.path().display()
    );
    std::fs::write(keys.dir.path().join("ok"), "ok").unwrap();
    let stack = stack(&file_policy(&keys), &other);
    let token = keys.token("RS256", &claims());
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 200);
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 200, "cached");
    assert_eq!(get(&stack, "/strict/x", Some(&token)).status, 401, "accepted elsewhere, refused here");
}

#[test]
fn satisfy_any_lets_another_access_module_grant() {
    let keys = Keys::new();
    let stack = stack(&format!("{} satisfy any; allow 127.0.0.1; deny all;", file_policy(&keys)), "");
    assert_eq!(get(&stack, STATUS_PATH, None).status, 200, "allowed by address without a token");
}

#[test]
fn key_files_are_reread_when_they_change() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let newcomer = new_rsa_key();
    let token = sign_token(&header("RS256", "new"), &claims().to_string(), "RS256", &Signer::Rsa(&newcomer));
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 401);
    std::fs::write(keys.file(), jwks(&[keys.rsa.jwk("r"), newcomer.jwk("new")])).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 200, "{}", stack.nginx.error_log());
}

fn remote_policy(server_extra: &mut String, idp: &Idp) -> String {
    server_extra.push_str(&format!(
        "location = /_jwks {{ internal; proxy_pass {}; subrequest_output_buffer_size 64k; }}",
        idp.jwks_url()
    ));
    format!("tfgate_jwt on; tfgate_jwt_key_request /_jwks; tfgate_jwt_issuer {ISSUER};")
}

#[test]
fn rotation_through_the_jwks_subrequest() {
    let old = new_rsa_key();
    let new = new_rsa_key();
    let idp = Idp::start(jwks(&[old.jwk("old")]));
    let mut server = String::new();
    let stack = stack(&remote_policy(&mut server, &idp), &server);
    let token = |key: &tfgate_jwt_testkit::Rsa, kid: &str| {
        sign_token(&header("RS256", kid), &claims().to_string(), "RS256", &Signer::Rsa(key))
    };

    // Concurrent first requests: one fetch, everyone waits for it.
    let old_token = token(&old, "old");
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| get(&stack, STATUS_PATH, Some(&old_token)).status)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}\n{}", stack.nginx.error_log());
    assert_eq!(idp.fetches(), 1);

    // The IdP rotates: both keys published; a token with the new kid works at once.
    idp.set_jwks(jwks(&[old.jwk("old"), new.jwk("new")]));
    assert_eq!(get(&stack, STATUS_PATH, Some(&token(&new, "new"))).status, 200);
    assert_eq!(get(&stack, STATUS_PATH, Some(&old_token)).status, 200, "old kid during the overlap");
    assert_eq!(idp.fetches(), 2);

    // A flood of random kids: at most one more fetch within the cooldown (here: none, the
    // rotation refetch just happened).
    for i in 0..200 {
        let forged =
            sign_token(&header("RS256", &format!("random-{i}")), &claims().to_string(), "RS256", &Signer::Rsa(&new));
        assert_eq!(get(&stack, STATUS_PATH, Some(&forged)).status, 401);
    }
    assert!(idp.fetches() <= 3, "{} fetches", idp.fetches());
}

#[test]
fn keys_survive_the_idp_going_down() {
    let key = new_rsa_key();
    let mut idp = Idp::start(jwks(&[key.jwk("k")]));
    let mut server = String::new();
    let stack = stack(&remote_policy(&mut server, &idp), &server);
    let good = sign_token(&header("RS256", "k"), &claims().to_string(), "RS256", &Signer::Rsa(&key));
    assert_eq!(get(&stack, STATUS_PATH, Some(&good)).status, 200);
    idp.stop();
    // An unknown kid makes the module refetch; the fetch fails; the known keys stay.
    let unknown = sign_token(&header("RS256", "other"), &claims().to_string(), "RS256", &Signer::Rsa(&key));
    assert_eq!(get(&stack, STATUS_PATH, Some(&unknown)).status, 401);
    assert_eq!(get(&stack, STATUS_PATH, Some(&good)).status, 200, "{}", stack.nginx.error_log());
    assert!(stack.nginx.error_log().contains("keeping the last good keys"));
}

#[test]
fn keys_unavailable_is_a_503_not_the_clients_fault() {
    let key = new_rsa_key();
    let mut idp = Idp::start(jwks(&[key.jwk("k")]));
    idp.stop();
    let mut server = String::new();
    let stack = stack(&remote_policy(&mut server, &idp), &server);
    let token = sign_token(&header("RS256", "k"), &claims().to_string(), "RS256", &Signer::Rsa(&key));
    let response = get(&stack, STATUS_PATH, Some(&token));
    response.assert_json_error(503);
    assert!(response.header("www-authenticate").is_none());
}

#[test]
fn survives_many_reloads_with_keys_changing_between_them() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let token = keys.token("ES256", &claims());
    for round in 0..5 {
        if round % 2 == 1 {
            std::fs::write(keys.file(), jwks(&[keys.ec256.jwk("e2")])).unwrap();
        }
        stack.nginx.process.signal("HUP");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 200, "round {round}: {}", stack.nginx.error_log());
    }
    assert!(!stack.nginx.error_log().contains("exited on signal"));
}

fn nginx_t(http_body: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = nginx_test_config(dir.path(), &load_module_line(), http_body);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn location(body: &str) -> String {
    format!("server {{\n listen 127.0.0.1:1;\n location / {{\n {body}\n }}\n}}")
}

#[test]
fn nginx_t_reports_bad_jwt_configuration_with_file_and_line() {
    let keys = Keys::new();
    let key_file = keys.file();
    let cases: Vec<(String, &str)> = vec![
        ("tfgate_jwt on;".into(), "needs \"tfgate_jwt_key_file\" or \"tfgate_jwt_key_request\""),
        ("tfgate_jwt_key_file /nonexistent/jwks.json;".into(), "cannot read"),
        (format!("tfgate_jwt_key_file {}; tfgate_jwt_algorithms none;", key_file.display()), "none"),
        ("tfgate_jwt_require groups frobnicate x;".into(), "frobnicate"),
        ("tfgate_jwt_leeway soon;".into(), "invalid time"),
        ("tfgate_jwt_key_request https://idp/jwks;".into(), "local URI"),
        ("tfgate_jwt_cache lots;".into(), "invalid cache size"),
    ];
    for (body, expected) in cases {
        let (ok, stderr) = nginx_t(&location(&body));
        assert!(!ok, "{body} was accepted");
        assert!(stderr.contains(expected), "{body}: {stderr}");
        assert!(stderr.contains("nginx-t.conf:"), "{body}: no file and line: {stderr}");
    }
    let bad_file = keys.dir.path().join("bad.json");
    std::fs::write(&bad_file, "{not json").unwrap();
    let (ok, stderr) = nginx_t(&location(&format!("tfgate_jwt_key_file {};", bad_file.display())));
    assert!(!ok && stderr.contains("bad.json"), "{stderr}");
    let (ok, stderr) = nginx_t(&location(&format!("tfgate_jwt on; tfgate_jwt_key_file {};", key_file.display())));
    assert!(ok, "{stderr}");
}

#[test]
fn a_cache_is_never_shared_with_a_location_trusting_other_keys() {
    let keys = Keys::new();
    let other = Keys::new();
    std::fs::write(keys.dir.path().join("ok"), "ok").unwrap();
    let server = format!(
        "tfgate_jwt on; tfgate_jwt_key_file {}; \
         location /a/ {{ root {dir}; try_files /ok =404; }} \
         location /b/ {{ tfgate_jwt_key_file {}; root {dir}; try_files /ok =404; }}",
        keys.file().display(),
        other.file().display(),
        dir = keys.dir.path().display()
    );
    let stack = stack("", &server);
    let token = keys.token("RS256", &claims());
    assert_eq!(get(&stack, "/a/x", Some(&token)).status, 200);
    assert_eq!(get(&stack, "/b/x", Some(&token)).status, 401, "key a is not trusted at /b/");
}

#[test]
fn under_satisfy_any_a_refused_model_scope_still_strips_client_headers() {
    let keys = Keys::new();
    let policy = format!("{} satisfy any; allow 127.0.0.1; deny all;", file_policy(&keys));
    let stack = stack(&policy, "tfgate_model half_plus_two versions=1,2 scope=admin;");
    let token = keys.token("RS256", &claims());
    let response = get_claiming_to_be_root(&stack, &token);
    assert_eq!(response.status, 200, "granted by address");
    let log = access_log_with(&stack, "|200|");
    assert!(!log.contains("root"), "the client's X-Tfgate-Subject went upstream: {log}");
}

#[test]
fn claim_variables_never_carry_control_characters_and_find_camel_case_claims() {
    let keys = Keys::new();
    let nginx = NginxConfig {
        http_extra: "log_format claims '$tfgate_jwt_claim_note|$tfgate_jwt_claim_givenname|$status';".into(),
        location_extra: format!("tfgate_route on; access_log logs/claims.log claims; {}", file_policy(&keys)),
        ..NginxConfig::default()
    };
    let stack = Stack::start_with(DaemonConfig::default(), nginx);
    let mut c = claims();
    c["note"] = json!("v\r\nX-Injected: 1");
    c["givenName"] = json!("Alice");
    assert_eq!(get(&stack, STATUS_PATH, Some(&keys.token("RS256", &c))).status, 200);
    let log = stack.nginx.log_when("claims.log", |log| log.contains("|200"));
    assert_eq!(log.trim(), "-|Alice|200");
}

#[test]
fn the_jwks_fetch_carries_none_of_the_clients_headers() {
    let key = new_rsa_key();
    let idp = Idp::start(jwks(&[key.jwk("k")]));
    let mut server = String::new();
    let stack = stack(&remote_policy(&mut server, &idp), &server);
    let token = sign_token(&header("RS256", "k"), &claims().to_string(), "RS256", &Signer::Rsa(&key));
    let response = stack.client().send(
        "POST",
        "/v1/models/half_plus_two/versions/1:predict",
        &[("Authorization", &format!("Bearer {token}")), ("Cookie", "session=secret"), ("Range", "bytes=0-1")],
        Some(r#"{"instances": [1.0]}"#),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let fetch = idp.last_request().to_ascii_lowercase();
    assert!(fetch.starts_with("get /jwks"), "{fetch}");
    for leaked in ["authorization", "cookie", "range", "content-length: 2"] {
        assert!(!fetch.contains(leaked), "{leaked} reached the IdP: {fetch}");
    }
}

#[test]
fn tokens_are_checked_again_after_an_internal_redirect() {
    let keys = Keys::new();
    let server = "location = /legacy-status { try_files /.nonexistent /v1/models/half_plus_two; }";
    let stack = stack(&file_policy(&keys), server);
    // The redirect lands in the model location: its token check applies, and a cached token
    // passes the second run of the access phase.
    assert_eq!(get(&stack, "/legacy-status", None).status, 401);
    let token = keys.token("ES256", &claims());
    assert_eq!(get(&stack, "/legacy-status", Some(&token)).status, 200);
    assert_eq!(get(&stack, "/legacy-status", Some(&token)).status, 200);
    let line = "ok|alice|predict read|half_plus_two|200|alice";
    let log = access_log_when(&stack, |log| log.matches(line).count() >= 2);
    assert_eq!(log.matches(line).count(), 2, "{log}");
}

#[test]
fn a_small_order_ed25519_key_is_refused_when_the_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("evil.json");
    // The identity point: any token signed R = identity, S = 0 would verify under it.
    let identity = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "evil", "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]});
    std::fs::write(&file, identity.to_string()).unwrap();
    let (ok, stderr) = nginx_t(&location(&format!("tfgate_jwt on; tfgate_jwt_key_file {};", file.display())));
    assert!(!ok && stderr.contains("small order"), "{stderr}");
}

#[test]
fn tokens_without_a_subject_are_refused_unless_the_location_allows_them() {
    let keys = Keys::new();
    let mut anonymous = claims();
    anonymous.as_object_mut().unwrap().remove("sub");
    let no_sub = keys.token("RS256", &anonymous);
    let mut numeric = claims();
    numeric["sub"] = json!(42);
    let stack = stack(&file_policy(&keys), "");
    assert_invalid_token(&get(&stack, STATUS_PATH, Some(&no_sub)), "token has no subject");
    assert_invalid_token(&get(&stack, STATUS_PATH, Some(&keys.token("RS256", &numeric))), "subject is not a string");
    // With `tfgate_jwt_require_subject off` such a token passes, as an anonymous caller.
    let lenient = stack_with_location(&format!("{} tfgate_jwt_require_subject off;", file_policy(&keys)));
    let response = get(&lenient, STATUS_PATH, Some(&no_sub));
    assert_eq!(response.status, 200, "{}", response.body);
    let log = lenient.nginx.log_when("tfgate.log", |log| log.contains("|200|"));
    assert!(log.lines().any(|l| l.starts_with("ok|-|") && l.ends_with("|-")), "no subject went upstream: {log}");
}

#[test]
fn a_subject_longer_than_256_bytes_is_refused_never_cut() {
    // The daemon keys quotas, fair queues and the audit trail on the subject: cut, two callers
    // sharing their first 256 bytes would be one.
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let mut long = claims();
    long["sub"] = json!(format!("{}A", "x".repeat(256)));
    assert_invalid_token(
        &get(&stack, STATUS_PATH, Some(&keys.token("RS256", &long))),
        "the token's subject is longer than 256 bytes",
    );
    let log = access_log_with(&stack, "|401|");
    assert!(log.lines().any(|l| l.starts_with("invalid|-|") && l.ends_with("|401|-")), "{log}");
    // 256 bytes is a subject, and goes upstream whole.
    let mut longest = claims();
    longest["sub"] = json!("x".repeat(256));
    let response = get(&stack, STATUS_PATH, Some(&keys.token("RS256", &longest)));
    assert_eq!(response.status, 200, "{}", response.body);
    let whole = format!("|200|{}", "x".repeat(256));
    assert!(access_log_with(&stack, &whole).lines().any(|l| l.ends_with(&whole)), "the subject went upstream cut");
}

fn stack_with_location(location_jwt: &str) -> Stack {
    stack(location_jwt, "")
}

#[test]
fn duplicate_claims_are_refused() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let payload =
        format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"alice","sub":"admin","exp":{}}}"#, now() + 600);
    let token = sign_token(&header("RS256", "r"), &payload, "RS256", &Signer::Rsa(&keys.rsa));
    assert_invalid_token(&get(&stack, STATUS_PATH, Some(&token)), "duplicate member name");
}

#[test]
fn emptying_the_key_file_revokes_its_keys_and_a_missing_file_keeps_them() {
    let keys = Keys::new();
    let stack = stack(&file_policy(&keys), "");
    let token = keys.token("RS256", &claims());
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 200);
    std::fs::write(keys.file(), r#"{"keys": []}"#).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 401, "an emptied key file did not revoke");
    // The file goes away (or cannot be read): the last good keys (none now) stay, and it is logged.
    std::fs::write(keys.file(), jwks(&[keys.rsa.jwk("r")])).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 200, "{}", stack.nginx.error_log());
    std::fs::remove_file(keys.file()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(get(&stack, STATUS_PATH, Some(&token)).status, 200, "a missing file dropped the keys");
    assert!(stack.nginx.error_log().contains("keeping the last good keys"), "{}", stack.nginx.error_log());
}

#[test]
fn with_the_idp_down_from_the_start_a_malformed_token_is_still_a_401() {
    let key = new_rsa_key();
    let mut idp = Idp::start(jwks(&[key.jwk("k")]));
    idp.stop();
    let mut server = String::new();
    let stack = stack(&remote_policy(&mut server, &idp), &server);
    for malformed in ["not-a-token", "a.b", "eyJhbGciOiJSUzI1NiJ9.e30.!!!"] {
        assert_invalid_token(&get(&stack, STATUS_PATH, Some(malformed)), "token");
    }
    // A well-formed token still waits for keys that cannot come: 503.
    let token = sign_token(&header("RS256", "k"), &claims().to_string(), "RS256", &Signer::Rsa(&key));
    get(&stack, STATUS_PATH, Some(&token)).assert_json_error(503);
}
