//! The daemon under a service manager and an operator: systemd readiness notifications, socket
//! activation through the real `systemd-socket-activate`, SIGHUP reloads under load (batching
//! settings and backends change, no request is dropped, a bad file is refused), and
//! `oidc-config`, whose snippet the real nginx with the module must accept.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tfgate_tests::batching_stack::ControlledSim;
use tfgate_tests::daemon_ops::{
    daemon_toml, path_in, post_unix, run_batcher, run_batcher_with, start_daemon, start_socket_activated, wait_for_log,
    DiscoveryServer, NotifyReceiver, SocketHolder, TlsDiscoveryServer,
};
use tfgate_tests::{load_module_line, nginx_test_config, HttpClient, Nginx, NginxConfig, Sim};

const V1: &str = "/v1/models/half_plus_two/versions/1:predict";

/// Posts `rows` instances starting at `base` and checks every row of the answer (version 1:
/// y = 0.5x + 2); the error says what went wrong.
fn predict_and_check(socket: &std::path::Path, base: u32, rows: u32) -> Result<(), String> {
    let xs: Vec<String> = (0..rows).map(|i| (base + i).to_string()).collect();
    let body = format!("{{\"instances\": [{}]}}", xs.join(", "));
    let answer = post_unix(socket, V1, &body)?;
    if answer.status != 200 {
        return Err(format!("status {} for {body}: {}", answer.status, answer.body));
    }
    let expected: Vec<f64> = (0..rows).map(|i| 0.5 * f64::from(base + i) + 2.0).collect();
    let got: Vec<f64> = answer.json()["predictions"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    if got != expected {
        return Err(format!("wrong rows for {body}: {}", answer.body));
    }
    Ok(())
}

#[test]
fn systemd_is_told_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(&[]);
    let notify = NotifyReceiver::at_path(&path_in(dir.path(), "notify.sock"));
    let socket = path_in(dir.path(), "batcher.sock");
    let config = dir.path().join("batcher.toml");
    std::fs::write(&config, daemon_toml(&socket, &[&sim.grpc_url()], "")).unwrap();
    let mut daemon = start_daemon(dir.path(), &config, &socket, &[("NOTIFY_SOCKET", &notify.address)]);

    let ready = notify.wait_for("READY=1");
    assert!(ready.contains("STATUS=serving on"), "{ready}");
    // Ready means the socket accepts and answers.
    predict_and_check(&socket, 1, 2).unwrap();

    daemon.signal("HUP");
    let reloading = notify.wait_for("RELOADING=1");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading}");
    notify.wait_for("READY=1");

    daemon.signal("TERM");
    let stopping = notify.wait_for("STOPPING=1");
    assert!(stopping.contains("SIGTERM"), "{stopping}");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(true));
}

#[test]
fn an_abstract_notify_socket_works_too() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(&[]);
    let name = format!("tfgate-test-notify-{}-{}", std::process::id(), sim.port);
    let notify = NotifyReceiver::abstract_named(&name);
    let socket = path_in(dir.path(), "batcher.sock");
    let config = dir.path().join("batcher.toml");
    std::fs::write(&config, daemon_toml(&socket, &[&sim.grpc_url()], "")).unwrap();
    let _daemon = start_daemon(dir.path(), &config, &socket, &[("NOTIFY_SOCKET", &notify.address)]);
    notify.wait_for("READY=1");
}

#[test]
fn socket_activation_serves_on_the_passed_socket_and_leaves_it_to_the_manager() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(&[]);
    let activated = path_in(dir.path(), "activated.sock");
    let configured = path_in(dir.path(), "configured.sock");
    let config = dir.path().join("batcher.toml");
    std::fs::write(&config, daemon_toml(&configured, &[&sim.grpc_url()], "")).unwrap();
    let mut daemon = start_socket_activated(dir.path(), &config, &activated);

    // The first connection makes systemd-socket-activate exec the daemon, which answers it.
    for base in 0..5 {
        predict_and_check(&activated, base * 10, 3).unwrap();
    }
    wait_for_log(&daemon, "socket activation", 1);
    assert!(!configured.exists(), "listen was bound although a socket was passed");

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(true), "{}", daemon.log_text());
    assert!(activated.exists(), "the passed socket's file belongs to the manager");
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn sighup_applies_batching_and_backends_under_load_without_dropping_requests() {
    let dir = tempfile::tempdir().unwrap();
    // Calls take a few ms on one executor, so batches form and reloads meet calls in flight.
    let sims = [ControlledSim::start(&["--cost-us", "2000,100"]), ControlledSim::start(&["--cost-us", "2000,100"])];
    let (a, b) = (sims[0].grpc_url(), sims[1].grpc_url());
    let socket = path_in(dir.path(), "batcher.sock");
    let config = dir.path().join("batcher.toml");
    let tables = |max_batch: u32| format!("[batching]\nmax_batch_size = {max_batch}\nmax_inflight_batches = 2\n");
    std::fs::write(&config, daemon_toml(&socket, &[&a], &tables(4))).unwrap();
    let daemon = start_daemon(dir.path(), &config, &socket, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    // The clients stop with the test, even when an assertion below fails first.
    let _stop_clients = StopOnDrop(stop.clone());
    let answered = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..8u32)
        .map(|client| {
            let (stop, answered, failures, socket) = (stop.clone(), answered.clone(), failures.clone(), socket.clone());
            thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    // 1 to 6 rows: with max_batch_size 2 the larger ones are split across batches.
                    match predict_and_check(&socket, client * 100_000 + i * 10, 1 + (i + client) % 6) {
                        Ok(()) => answered.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            failures.lock().unwrap().push(e);
                            0
                        }
                    };
                    i += 1;
                }
            })
        })
        .collect();

    let reload = |text: String, applied: usize| {
        std::fs::write(&config, text).unwrap();
        daemon.signal("HUP");
        wait_for_log(&daemon, "reload applied", applied);
    };
    thread::sleep(Duration::from_millis(400));
    // A second backend, smaller batches.
    reload(daemon_toml(&socket, &[&a, &b], &tables(2)), 1);
    thread::sleep(Duration::from_millis(100));
    sims.iter().for_each(ControlledSim::reset);
    thread::sleep(Duration::from_millis(500));
    for sim in &sims {
        let stats = sim.stats();
        assert!(stats["max_batch"].as_u64().unwrap() <= 2, "max_batch_size 2 not applied: {stats}");
        assert!(stats["predict_calls"].as_u64().unwrap() > 0, "both targets should be used: {stats}");
    }
    // The first backend leaves while calls run on it; larger batches.
    reload(daemon_toml(&socket, &[&b], &tables(8)), 2);
    thread::sleep(Duration::from_millis(100));
    sims.iter().for_each(ControlledSim::reset);
    thread::sleep(Duration::from_millis(400));
    // A broken file is refused: the daemon keeps the last good configuration and serves on.
    std::fs::write(&config, daemon_toml(&socket, &[&a], "[batching]\nmax_batch_size = 0\n")).unwrap();
    daemon.signal("HUP");
    wait_for_log(&daemon, "reload refused", 1);
    thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }

    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{} request(s) failed, first: {:?}", failures.len(), failures.first());
    let answered = answered.load(Ordering::SeqCst);
    assert!(answered > 200, "too little load to mean anything: {answered} answers");
    let (old, new) = (sims[0].stats(), sims[1].stats());
    eprintln!("{answered} requests answered through 3 reloads; last phase: removed target {old}, kept target {new}");
    assert_eq!(old["predict_calls"], 0, "the removed backend still got calls: {old}");
    let max_batch = new["max_batch"].as_u64().unwrap();
    assert!((3..=8).contains(&max_batch), "max_batch_size 8 not applied: {new}");
    assert!(daemon.log_text().contains("max_batch_size: must be between 1"), "{}", daemon.log_text());
}

#[test]
fn oidc_config_prints_a_snippet_nginx_accepts() {
    let idp = DiscoveryServer::start(|port| {
        let issuer = format!("http://127.0.0.1:{port}");
        let document = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks"),
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "HS256", "none"],
            "response_types_supported": ["code"],
        });
        vec![
            ("/.well-known/openid-configuration".to_string(), document.to_string()),
            ("/jwks".to_string(), "{\"keys\": []}".to_string()),
        ]
    });
    let issuer = idp.url();
    let (code, snippet, stderr) = run_batcher(&["oidc-config", &issuer, "--jwks-location", "/_idp_keys"]);
    assert_eq!(code, Some(0), "{stderr}");
    for line in [
        "location = /_idp_keys {".to_string(),
        format!("    proxy_pass {issuer}/jwks;"),
        "    subrequest_output_buffer_size 64k;".to_string(),
        "tfgate_jwt on;".to_string(),
        "tfgate_jwt_key_request /_idp_keys;".to_string(),
        format!("tfgate_jwt_issuer {issuer};"),
        "tfgate_jwt_algorithms RS256 ES256;   # not verified by tfgate: HS256 none".to_string(),
    ] {
        assert!(snippet.lines().any(|l| l == line), "{line:?} missing from:\n{snippet}");
    }

    nginx_accepts(&snippet);
}

/// The snippet's two parts placed where they belong, checked by `nginx -t` with the module.
fn nginx_accepts(snippet: &str) {
    let (server_part, model_part) = snippet.split_once("# == 2. In the model location").unwrap();
    let model_part = model_part.split_once('\n').unwrap().1;
    let dir = tempfile::tempdir().unwrap();
    let http = format!(
        "server {{\n listen 127.0.0.1:{};\n{server_part}\n location ~* ^/v1/models {{\n  tfgate_route on;\n{model_part}\n  proxy_pass http://127.0.0.1:1;\n }}\n}}",
        tfgate_tests::free_port()
    );
    let output = nginx_test_config(dir.path(), &load_module_line(), &http);
    assert!(
        output.status.success(),
        "nginx -t refused the snippet:\n{}\n{http}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn oidc_config_fetches_over_https_with_the_trusted_cas() {
    // The certificates and the TLS server come from the openssl tool (Debian: openssl, which
    // ca-certificates depends on).
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: no openssl tool to make a test CA and serve https");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let idp = TlsDiscoveryServer::start(dir.path(), |issuer| {
        serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys"),
                           "id_token_signing_alg_values_supported": ["PS256", "ES512"]})
        .to_string()
    });
    let issuer = idp.url();
    let (code, snippet, stderr) = run_batcher_with(&["oidc-config", &issuer], &[("SSL_CERT_FILE", &idp.ca)]);
    assert_eq!(code, Some(0), "{stderr}");
    for line in [
        format!("    proxy_pass {issuer}/keys;"),
        "    proxy_ssl_verify on;".to_string(),
        "    proxy_ssl_server_name on;".to_string(),
        "tfgate_jwt_algorithms PS256;   # not verified by tfgate: ES512".to_string(),
    ] {
        assert!(snippet.lines().any(|l| l == line), "{line:?} missing from:\n{snippet}");
    }
    assert!(snippet.contains("    proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;"), "{snippet}");
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        nginx_accepts(&snippet);
    }
    // A certificate the CA store does not vouch for is refused.
    let (code, _, stderr) = run_batcher(&["oidc-config", &issuer]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("TLS with 127.0.0.1"), "{stderr}");
}

#[test]
fn oidc_config_explains_what_is_wrong() {
    let idp = DiscoveryServer::start(|port| {
        let document =
            |issuer: String| serde_json::json!({"issuer": issuer, "jwks_uri": "http://127.0.0.1:1/k"}).to_string();
        vec![
            // Asked for without the trailing slash, the document names it with one.
            ("/.well-known/openid-configuration".to_string(), document(format!("http://127.0.0.1:{port}/"))),
            (
                "/nokeys/.well-known/openid-configuration".to_string(),
                format!("{{\"issuer\": \"http://127.0.0.1:{port}/nokeys\"}}"),
            ),
            ("/html/.well-known/openid-configuration".to_string(), "<html>".to_string()),
            ("/big/.well-known/openid-configuration".to_string(), " ".repeat(2 << 20)),
        ]
    });
    let issuer = idp.url();
    let (code, stdout, stderr) = run_batcher(&["oidc-config", &issuer]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("issuer mismatch"), "{stderr}");
    assert!(stderr.contains(&format!("\"{issuer}/\"")), "{stderr}");

    for (path, expected) in [
        ("/nokeys", "no \"jwks_uri\""),
        ("/html", "not JSON"),
        ("/big", "larger than 1048576 bytes"),
        ("/missing", "answered 404 Not Found"),
    ] {
        let (code, _, stderr) = run_batcher(&["oidc-config", &format!("{issuer}{path}")]);
        assert_eq!(code, Some(1), "{path}: {stderr}");
        assert!(stderr.contains(expected), "{path}: {stderr}");
    }
    let (code, _, stderr) = run_batcher(&["oidc-config", "http://127.0.0.1:1"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot connect"), "{stderr}");
    // Usage errors: exit 2 with the usage.
    let (code, _, stderr) = run_batcher(&["oidc-config"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("Usage"), "{stderr}");
    assert_eq!(run_batcher(&["oidc-config", "idp.example.com"]).0, Some(2));
    assert_eq!(run_batcher(&["oidc-config", &issuer, "--jwks-location", "x y"]).0, Some(2));
}

#[test]
fn restarts_on_a_held_socket_lose_no_request_through_nginx() {
    // 16 clients through nginx (with the shipped proxy snippet and upstream: one retry on a
    // connection the daemon closed) while the daemon is restarted 5 times on a socket held
    // across restarts, as systemd's socket unit holds it.
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(&[]);
    let socket = path_in(dir.path(), "batcher.sock");
    let config = dir.path().join("batcher.toml");
    std::fs::write(&config, daemon_toml(&socket, &[&sim.grpc_url()], "")).unwrap();
    let holder = SocketHolder::bind(&socket);
    let mut daemon = holder.start(dir.path(), &config, 0);
    let nginx = Nginx::start(dir.path(), &socket, &NginxConfig::default());
    let port = nginx.port;

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_clients = StopOnDrop(stop.clone());
    let answered = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16u32)
        .map(|client| {
            let (stop, answered, failures) = (stop.clone(), answered.clone(), failures.clone());
            thread::spawn(move || {
                let http = HttpClient::new(format!("http://127.0.0.1:{port}"));
                let mut i = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let x = client * 100_000 + i;
                    let r = http.post(V1, &format!("{{\"instances\": [{x}]}}"));
                    let expected = serde_json::json!({"predictions": [0.5 * f64::from(x) + 2.0]});
                    if r.status == 200 && r.json() == expected {
                        answered.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failures.lock().unwrap().push(format!("{} {}", r.status, r.body));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for generation in 1..=5 {
        thread::sleep(Duration::from_millis(300));
        daemon.signal("TERM");
        assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(true), "the daemon did not drain and exit");
        daemon = holder.start(dir.path(), &config, generation);
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    let answered = answered.load(Ordering::SeqCst);
    eprintln!("{answered} requests answered across 5 restarts");
    assert!(
        failures.is_empty(),
        "{} of {} failed, first: {:?}",
        failures.len(),
        answered + failures.len(),
        failures.first()
    );
    assert!(answered > 100, "too little load to mean anything: {answered}");
}
