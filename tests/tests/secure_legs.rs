//! Secure legs over real peers: the daemon reaches TF Serving (tfs-sim) through Debian's nginx
//! terminating TLS with `ssl_verify_client on`, so the certificates are checked by a TLS stack
//! nobody here wrote, and tfs-sim terminating TLS itself, as TF Serving's `--ssl_config_file`
//! does, found by DNS. Each misconfiguration an operator meets (a wrong CA, an expired server
//! certificate, a name mismatch, no client certificate) is refused with its own message, in the
//! answer, in `/healthz` and in metrics; rotated client certificates are picked up under load
//! without a failed request.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tfgate_tests::batching_stack::{BatchDaemon, ControlledSim};
use tfgate_tests::python::TfTlsServer;
use tfgate_tests::tls::{Pair, Pki, TlsTerminator};
use tfgate_tests::Dnsmasq;

const PREDICT: &str = "/v1/models/half_plus_two:predict";
const ONE: &str = r#"{"instances": [1.0]}"#;

fn sim_port(sim: &ControlledSim) -> u16 {
    sim.grpc_url().rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("sim port")
}

fn tls_table(ca: &Path, client: Option<&Pair>, server_name: &str) -> String {
    let mut table = format!("\n[backend.tls]\nca_file = \"{}\"\nserver_name = \"{server_name}\"\n", ca.display());
    if let Some(client) = client {
        table.push_str(&format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n",
            client.cert.display(),
            client.key.display()
        ));
    }
    table
}

fn start_daemon(dir: &Path, port: u16, tls: &str) -> BatchDaemon {
    std::fs::create_dir_all(dir).unwrap();
    BatchDaemon::start(dir, &[format!("https://127.0.0.1:{port}")], &format!("health_interval_ms = 0\n{tls}"), "")
}

struct World {
    dir: tempfile::TempDir,
    pki: Pki,
    sim: ControlledSim,
    server: Pair,
    client: Pair,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(&dir.path().join("pki"));
    let server = pki.issue("server", "ca", &["tfs.test"], 30, false);
    let client = pki.issue("client", "ca", &[], 30, true);
    let sim = ControlledSim::start(&[]);
    World { dir, pki, sim, server, client }
}

#[test]
fn predict_over_mtls_checked_by_nginx() {
    let w = world();
    let tls = TlsTerminator::start(&w.dir.path().join("tls"), &w.server, Some(&w.pki.ca()), sim_port(&w.sim));
    let daemon = start_daemon(&w.dir.path().join("d"), tls.port, &tls_table(&w.pki.ca(), Some(&w.client), "tfs.test"));
    let r = daemon.client().post(PREDICT, &[], ONE);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.replace(' ', "").contains("[3.5]"), "{}", r.body);
    let target = format!("https://127.0.0.1:{}", tls.port);
    let metrics = daemon.metrics_text();
    assert!(metrics.contains(&format!("tfgate_backend_tls_state{{target=\"{target}\",state=\"ok\"}} 1")), "{metrics}");
    let expiry = daemon.metric("tfgate_certificate_expiry_timestamp_seconds{key=\"backend.tls.cert_file\"}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(expiry > now + 29.0 * 86_400.0 && expiry < now + 31.0 * 86_400.0, "{expiry}");
    assert_eq!(daemon.metrics.get("/healthz").body, "ok");
    // The peer that checked the client certificate saw the gRPC calls.
    assert!(w.sim.stats()["predict_calls"].as_u64().unwrap_or(0) >= 1, "{}", w.sim.stats());

    // Without the client certificate, nginx refuses the calls.
    let plain = start_daemon(&w.dir.path().join("no-client"), tls.port, &tls_table(&w.pki.ca(), None, "tfs.test"));
    let r = plain.client().post(PREDICT, &[], ONE);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(tls.error_log().contains("client sent no required SSL certificate"), "{}", tls.error_log());
}

/// TF Serving terminating mTLS itself (tfs-sim with `--tls-cert`, `--tls-key` and
/// `--tls-client-ca`), reached as `dns://`: the name checked in its certificate is the DNS name,
/// with no `server_name`. A daemon without a client certificate is refused by the server.
#[test]
fn predict_over_mtls_to_tf_serving_found_by_dns() {
    predict_over_mtls_found_by_dns(false);
}

/// The same with the backend speaking the Open Inference Protocol (`protocol = "v2"`, tfs-sim's
/// `inference.GRPCInferenceService`): TLS and discovery work per target, whatever the API.
#[test]
fn predict_over_mtls_to_a_v2_server_found_by_dns() {
    predict_over_mtls_found_by_dns(true);
}

fn predict_over_mtls_found_by_dns(v2: bool) {
    let w = world();
    let (cert, key, ca) = (w.server.cert.display().to_string(), w.server.key.display().to_string(), w.pki.ca());
    let ca_arg = ca.display().to_string();
    let sim = ControlledSim::start(&["--tls-cert", &cert, "--tls-key", &key, "--tls-client-ca", &ca_arg]);
    let port = sim_port(&sim);
    // The harness's readiness probe (a TCP connect and close) counts as a failed handshake.
    let failures = || sim.stats()["tls_failures"].as_u64().unwrap_or(0);
    let probes = failures();
    let dns = Dnsmasq::start("tfs.test", &[std::net::Ipv4Addr::LOCALHOST], 1);
    let client = &w.client;
    let tls = format!(
        "{}resolver = \"{}\"\nhealth_interval_ms = 0\n[backend.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        if v2 { "protocol = \"v2\"\n" } else { "" },
        dns.address(),
        ca.display(),
        client.cert.display(),
        client.key.display()
    );
    let dir = w.dir.path().join(if v2 { "dns-v2" } else { "dns" });
    std::fs::create_dir_all(&dir).unwrap();
    let daemon = BatchDaemon::start(&dir, &[format!("dns://tfs.test:{port}")], &tls, "");
    let r = daemon.client().post(PREDICT, &[], ONE);
    assert_eq!(r.status, 200, "{}\n{}", r.body, daemon.process.log_text());
    assert!(r.body.replace(' ', "").contains("[3.5]"), "{}", r.body);
    let stats = sim.stats();
    assert!(stats["tls_handshakes"].as_u64().unwrap_or(0) >= 1, "{stats}");
    assert_eq!(failures(), probes, "{stats}");
    assert!(daemon.metrics_text().contains("state=\"ok\"} 1"), "{}", daemon.metrics_text());
    assert_eq!(daemon.metrics.get("/healthz").body, "ok");

    // The same server without a client certificate: the server refuses the handshake.
    let plain = start_daemon(
        &w.dir.path().join(if v2 { "no-client-v2" } else { "no-client" }),
        port,
        &tls_table(&ca, None, "tfs.test"),
    );
    let r = plain.client().post(PREDICT, &[], ONE);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(failures() > probes, "{}", sim.stats());
    assert_eq!(sim.stats()["predict_calls"], 1, "only the call with a certificate reached the model");
    // The call reached the model through the API the backend was said to speak.
    let infer_calls = sim.stats()["infer_calls"].as_u64();
    assert_eq!(infer_calls, v2.then_some(1), "{}", sim.stats());
}

/// A real TensorFlow model behind grpcio's `ssl_server_credentials` (BoringSSL, requiring a
/// client certificate): concurrent callers, batched by the daemon, are each answered with their
/// own rows as TensorFlow computed them; a daemon without a client certificate gets nothing
/// through.
#[test]
fn real_tensorflow_behind_grpcio_with_mutual_tls() {
    let w = world();
    let server = TfTlsServer::start(&w.dir.path().join("tf"), &w.server, &w.pki.ca());
    let daemon =
        start_daemon(&w.dir.path().join("d"), server.port, &tls_table(&w.pki.ca(), Some(&w.client), "tfs.test"));
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let client = daemon.client();
            thread::spawn(move || {
                let x = i as f32;
                let r = client.post(PREDICT, &[], &format!(r#"{{"instances": [{x}, {}]}}"#, x + 0.5));
                (x, r)
            })
        })
        .collect();
    for caller in callers {
        let (x, r) = caller.join().unwrap();
        assert_eq!(r.status, 200, "{}\n{}", r.body, server.process.log_text());
        let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let expected = serde_json::json!({"predictions": [0.5 * x + 2.0, 0.5 * (x + 0.5) + 2.0]});
        assert_eq!(answer, expected, "{x}");
    }
    let batches = server.batches();
    assert_eq!(batches.iter().sum::<u64>(), 16, "every row reached TensorFlow once: {batches:?}");

    let plain = start_daemon(&w.dir.path().join("no-client"), server.port, &tls_table(&w.pki.ca(), None, "tfs.test"));
    let r = plain.client().post(PREDICT, &[], ONE);
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert_eq!(server.batches().iter().sum::<u64>(), 16, "the call without a certificate ran nothing");
}

/// Each refusal: the caller's 503 says what is wrong, `/healthz` lists it, the metrics count it.
#[test]
fn each_misconfiguration_is_refused_with_its_own_message() {
    let w = world();
    let expired = w.pki.issue("expired", "ca", &["tfs.test"], -1, false);
    let good = TlsTerminator::start(&w.dir.path().join("tls-good"), &w.server, None, sim_port(&w.sim));
    let stale = TlsTerminator::start(&w.dir.path().join("tls-expired"), &expired, None, sim_port(&w.sim));
    let cases = [
        (
            "wrong-ca",
            good.port,
            tls_table(&w.pki.rogue_ca(), None, "tfs.test"),
            "unknown_ca",
            "not signed by a CA in backend.tls.ca_file",
        ),
        ("expired", stale.port, tls_table(&w.pki.ca(), None, "tfs.test"), "expired", "certificate has expired"),
        ("name", good.port, tls_table(&w.pki.ca(), None, "other.test"), "name_mismatch", "is not valid for"),
    ];
    for (name, port, table, reason, message) in cases {
        let daemon = start_daemon(&w.dir.path().join(name), port, &table);
        let r = daemon.client().post(PREDICT, &[], ONE);
        assert_eq!(r.status, 503, "{name}: {}", r.body);
        assert!(r.body.contains(message), "{name}: {}", r.body);
        let health = daemon.metrics.get("/healthz");
        assert_eq!(health.status, 200);
        assert!(
            health.body.starts_with("ok\nbackend https://127.0.0.1:") && health.body.contains(message),
            "{name}: {}",
            health.body
        );
        let target = format!("https://127.0.0.1:{port}");
        assert!(
            daemon.metric(&format!("tfgate_backend_tls_failures_total{{target=\"{target}\",reason=\"{reason}\"}}"))
                >= 1.0,
            "{name}"
        );
        assert_eq!(
            daemon.metric(&format!("tfgate_backend_tls_state{{target=\"{target}\",state=\"{reason}\"}}")),
            1.0,
            "{name}"
        );
        assert!(daemon.process.log_text().contains(message), "{name}: the log says why");
    }
    assert_eq!(w.sim.stats()["predict_calls"].as_u64().unwrap_or(0), 0, "no call got through");
}

/// The client certificate is replaced on disk under load (a new key, as cert-manager renews):
/// the daemon picks it up within seconds, without a SIGHUP, and no request fails.
#[test]
fn rotated_client_certificates_are_used_under_load_without_a_failed_request() {
    let w = world();
    let tls = TlsTerminator::start(&w.dir.path().join("tls"), &w.server, Some(&w.pki.ca()), sim_port(&w.sim));
    // The daemon reads its own copies, which the test replaces.
    let live = Pair { cert: w.dir.path().join("live.pem"), key: w.dir.path().join("live.key") };
    std::fs::copy(&w.client.cert, &live.cert).unwrap();
    std::fs::copy(&w.client.key, &live.key).unwrap();
    let daemon = start_daemon(&w.dir.path().join("d"), tls.port, &tls_table(&w.pki.ca(), Some(&live), "tfs.test"));
    let key = "tfgate_certificate_expiry_timestamp_seconds{key=\"backend.tls.cert_file\"}";
    let before = daemon.metric(key);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop, ok, failed) = (daemon.client(), stop.clone(), ok.clone(), failed.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = client.post(PREDICT, &[], ONE);
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.lock().unwrap().push(format!("{} {}", r.status, r.body));
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let renewed = w.pki.issue("renewed", "ca", &[], 60, true);
    // As a renewal writes them: each file replaced whole (rename), one after the other.
    for (from, to) in [(&renewed.cert, &live.cert), (&renewed.key, &live.key)] {
        let staged = to.with_extension("new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
        thread::sleep(Duration::from_millis(300));
    }
    let started = Instant::now();
    while daemon.metric(key) == before && started.elapsed() < Duration::from_secs(15) {
        thread::sleep(Duration::from_millis(200));
    }
    let after = daemon.metric(key);
    assert!(after > before + 20.0 * 86_400.0, "the renewed certificate (60 days) is in force: {before} -> {after}");
    thread::sleep(Duration::from_millis(1000));
    // SIGHUP reloads the files too (nothing changed: the connections are kept).
    daemon.process.signal("HUP");
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.lock().unwrap().clone());
    eprintln!("{ok} answered, {} failed during the rotation", failed.len());
    assert!(ok > 20, "{ok}");
    assert!(failed.is_empty(), "{failed:?}\n{}\n{}", daemon.process.log_text(), tls.error_log());
    assert!(daemon.process.log_text().contains("backend.tls: a file changed on disk; new connections use it"));
    // New connections present the renewed certificate: nginx accepts them.
    let fresh = start_daemon(&w.dir.path().join("fresh"), tls.port, &tls_table(&w.pki.ca(), Some(&live), "tfs.test"));
    assert_eq!(fresh.client().post(PREDICT, &[], ONE).status, 200);
}

/// `allowed_peers`: the kernel's SO_PEERCRED says who connected; a process of another user is
/// refused even though the socket's mode lets it connect, and a reload that lists it lets it in.
#[test]
fn only_allowed_peers_are_served() {
    if !is_root() {
        eprintln!("skipped: connecting as another user needs root (CI runs as root)");
        return;
    }
    let sim = ControlledSim::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let uid = current_uid();
    // Traversable by `nobody`, so that only the daemon's check stands in its way.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = BatchDaemon::start_with_top(
        dir.path(),
        &[sim.grpc_url()],
        &format!("allowed_peers = [\"{uid}\"]"),
        "health_interval_ms = 0",
        "",
    );
    assert_eq!(daemon.client().post(PREDICT, &[], ONE).status, 200, "the daemon's own user is allowed");
    let as_nobody = || {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--unix-socket")
            .arg(&daemon.socket)
            .args(["-H", "X-Tfgate-Subject: admin", "-d", ONE, &format!("http://tfgate{PREDICT}")])
            .output()
            .expect("setpriv and curl")
    };
    let refused = as_nobody();
    assert!(!refused.status.success(), "curl as nobody: {}", String::from_utf8_lossy(&refused.stdout));
    assert_eq!(daemon.metric("tfgate_peer_refusals_total{socket=\"api\"}"), 1.0);
    assert!(daemon.process.log_text().contains("refused a connection on the api socket from uid 65534"));
    assert_eq!(w_calls(&sim), 1, "nothing of the refused connection reached TF Serving");

    // A reload that lists nobody lets it in (new connections).
    let config = dir.path().join("batcher.toml");
    let text =
        std::fs::read_to_string(&config).unwrap().replace(&format!("[\"{uid}\"]"), &format!("[\"{uid}\", \"nobody\"]"));
    std::fs::write(&config, text).unwrap();
    daemon.process.signal("HUP");
    let started = Instant::now();
    loop {
        let out = as_nobody();
        if out.status.success() && out.stdout == b"200" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "nobody is still refused after the reload");
        thread::sleep(Duration::from_millis(100));
    }
}

fn w_calls(sim: &ControlledSim) -> u64 {
    sim.stats()["predict_calls"].as_u64().unwrap_or(0)
}

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(u32::MAX)
}

fn is_root() -> bool {
    current_uid() == 0
}

/// Quotas in Debian's redis-server reached over TLS only (`--tls-port`, client certificates
/// required) as an ACL user whose password comes from a file; then a wrong password and a
/// wrong CA, each refused with its own message while `on_store_failure` decides.
#[test]
fn quotas_in_redis_over_tls_with_an_acl_user() {
    let w = world();
    let redis_cert = w.pki.issue("redis", "ca", &["localhost"], 30, false);
    let redis = tfgate_tests::Redis::start_secure(tfgate_tests::SecureRedis {
        cert: redis_cert.cert.clone(),
        key: redis_cert.key.clone(),
        ca: w.pki.ca(),
        user: "tfgate".to_string(),
        password: "s3cret-Quota".to_string(),
        client_certificates: true,
    });
    assert_eq!(redis.cli(&["PING"]), "PONG");
    let password_file = w.dir.path().join("redis-password");
    std::fs::write(&password_file, "s3cret-Quota\n").unwrap();
    let wrong_file = w.dir.path().join("wrong-password");
    std::fs::write(&wrong_file, "not-it\n").unwrap();
    let quotas = |ca: &Path, password: &Path| {
        format!(
            "[quotas]\nstore = \"{}\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nusername = \"tfgate\"\npassword_file = \"{}\"\non_store_failure = \"deny\"\n[quotas.plans.default]\nrequests = \"3/minute\"\n",
            redis.url(),
            ca.display(),
            w.client.cert.display(),
            w.client.key.display(),
            password.display()
        )
    };
    let start = |name: &str, tables: &str| {
        let dir = w.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        BatchDaemon::start(&dir, &[w.sim.grpc_url()], "health_interval_ms = 0", tables)
    };
    let alice = [("X-Tfgate-Subject", "alice")];

    let daemon = start("daemon-good", &quotas(&w.pki.ca(), &password_file));
    let statuses: Vec<u16> = (0..4).map(|_| daemon.client().post(PREDICT, &alice, ONE).status).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "three requests a minute, counted in Redis");
    assert!(redis.cli(&["DBSIZE"]).parse::<u64>().unwrap() >= 1, "the counters are in Redis");
    assert_eq!(daemon.metric("tfgate_quota_store_up"), 1.0);
    let expiry = daemon.metric("tfgate_certificate_expiry_timestamp_seconds{key=\"quotas.ca_file\"}");
    assert!(expiry > 0.0, "the Redis CA's expiry is published");
    let log = daemon.process.log_text();
    assert!(!log.contains("s3cret-Quota"), "the password is never logged");

    // A wrong password: refused at once (no request waits for it), said once, and in /healthz.
    let refused = start("daemon-wrong-password", &quotas(&w.pki.ca(), &wrong_file));
    for _ in 0..5 {
        let r = refused.client().post(PREDICT, &alice, ONE);
        assert_eq!(r.status, 503, "on_store_failure = deny: {}", r.body);
    }
    let log = refused.process.log_text();
    assert_eq!(log.matches("Redis refused the credentials").count(), 1, "{log}");
    assert!(!log.contains("not-it"), "the password is never logged");
    let health = refused.metrics.get("/healthz").body;
    assert!(
        health.starts_with("ok\nquota store rediss://localhost:") && health.contains("refused the credentials"),
        "{health}"
    );

    // A CA that did not sign Redis's certificate.
    let wrong_ca = start("daemon-wrong-ca", &quotas(&w.pki.rogue_ca(), &password_file));
    assert_eq!(wrong_ca.client().post(PREDICT, &alice, ONE).status, 503);
    let log = wrong_ca.process.log_text();
    assert!(log.contains("UnknownIssuer") || log.contains("invalid peer certificate"), "{log}");
}
