//! The module in the installed nginx binary: it loads, its directives are checked by `nginx -t`
//! with file and line, and a module built for another nginx is refused cleanly.

use tfgate_tests::{load_module_line, nginx_test_config};

fn nginx_t(http_body: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = nginx_test_config(dir.path(), &load_module_line(), http_body);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn module_loads_and_passes_nginx_t() {
    let (ok, stderr) = nginx_t("server { listen 127.0.0.1:1; location /v1/models { tfgate_route on; return 204; } }");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("test is successful"), "{stderr}");
}

#[test]
fn bad_directive_values_are_reported_with_file_and_line() {
    let (ok, stderr) = nginx_t("server {\n listen 127.0.0.1:1;\n location / { tfgate_route maybe; }\n}");
    assert!(!ok);
    assert!(stderr.contains("\"tfgate_route\"") && stderr.contains("nginx-t.conf:"), "{stderr}");

    let (ok, stderr) = nginx_t("tfgate_route on;");
    assert!(!ok);
    assert!(stderr.contains("\"tfgate_route\" directive is not allowed here"), "{stderr}");
}

#[test]
fn a_module_built_for_another_nginx_is_refused_cleanly() {
    // Built by scripts/test.sh against nginx 1.28 (the nginx-src crate), not the installed one.
    let other = tfgate_tests::repo_root().join("target/other-nginx/release/libngx_http_tfgate_module.so");
    assert!(other.exists(), "{} is missing: scripts/test.sh builds it", other.display());
    let other_load = format!("load_module {};", other.display());

    let dir = tempfile::tempdir().unwrap();
    let out = nginx_test_config(dir.path(), &other_load, "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("libngx_http_tfgate_module.so\" version") && stderr.contains("instead of"), "{stderr}");

    // Starting nginx with it: a clean exit with that message, not a crash.
    let conf = dir.path().join("nginx-t.conf");
    let started = std::process::Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("start-error.log"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(1), "nginx did not exit cleanly: {:?} {stderr}", started.status);
    assert!(stderr.contains("instead of"), "{stderr}");
}

#[test]
fn the_module_built_by_nginx_build_system_loads_and_routes() {
    // scripts/test.sh runs scripts/build-addon.sh (./configure --add-dynamic-module; make modules).
    let version = String::from_utf8(std::process::Command::new("nginx").arg("-v").output().unwrap().stderr).unwrap();
    let version = version.trim().rsplit('/').next().unwrap().to_owned();
    let so = tfgate_tests::repo_root().join(format!("build/addon-{version}/objs/ngx_http_tfgate_module.so"));
    assert!(so.exists(), "{} is missing: scripts/test.sh builds it", so.display());
    let stack = tfgate_tests::Stack::start_with(
        tfgate_tests::DaemonConfig::default(),
        tfgate_tests::NginxConfig { load_module: Some(format!("load_module {};", so.display())), ..Default::default() },
    );
    let answer = stack.client().post("/v1/models/half_plus_two/versions/2:predict", r#"{"instances": [1.0]}"#);
    assert_eq!(answer.json(), serde_json::json!({"predictions": [3.5]}), "{}", answer.body);
    stack.client().post("/v1/models/a%2Fb:predict", "{}").assert_json_error(400);
}

#[test]
fn the_shipped_example_servers_pass_nginx_t() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cache")).unwrap();
    let conf_dir = tfgate_tests::repo_root().join("nginx-conf");
    for example in ["example.conf", "minimal.conf"] {
        // As installed, but with this checkout's snippets, writable paths, and an IdP address
        // that needs no DNS at `nginx -t` time.
        let text = std::fs::read_to_string(conf_dir.join(example))
            .unwrap()
            .replace("/etc/tfgate/nginx/", &format!("{}/", conf_dir.display()))
            .replace("/var/cache/nginx/", &format!("{}/cache/", dir.path().display()))
            .replace("/var/log/nginx/", &format!("{}/", dir.path().display()))
            .replace("idp.example.com", "127.0.0.1");
        let upstream = std::fs::read_to_string(conf_dir.join("tfgate-upstream.conf")).unwrap();
        let out = nginx_test_config(dir.path(), &load_module_line(), &format!("{upstream}\n{text}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{example}: {stderr}");
    }
}
