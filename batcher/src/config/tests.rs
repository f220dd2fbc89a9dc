use super::*;

const MINIMAL: &str = r#"
listen = "/tmp/b.sock"
[backend]
grpc = ["http://127.0.0.1:8500"]
"#;

fn parse_err(text: &str) -> String {
    Config::parse(text).expect_err(text).0
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(config.listen, PathBuf::from("/tmp/b.sock"));
    assert_eq!(config.socket_mode, 0o660);
    assert_eq!(config.metrics_listen, None);
    assert_eq!(config.backend.rest, None);
    assert_eq!(config.batching, BatchSettings::default());
    assert_eq!(config.batching.max_batch_size, 64);
    assert_eq!(config.batching.timeout, Duration::from_secs(10));
    assert_eq!(config.worker_threads, 1);
    assert_eq!(config.batching_for("anything"), &BatchSettings::default());
}

#[test]
fn full_config_with_per_model_overrides() {
    let config = Config::parse(
        r#"
listen = "/run/tfgate/batcher.sock"
socket_mode = "0600"
metrics_listen = "127.0.0.1:9464"
[backend]
grpc = ["http://127.0.0.1:8500", "http://10.0.0.2:8500/"]
rest = "http://127.0.0.1:8501"
[batching]
max_batch_size = 32
max_delay_us = 500
max_inflight_batches = 4
max_queue = 100
timeout_ms = 2000
[models.big]
max_batch_size = 128
dispatch = "fixed"
latency_budget_us = 800
[models."with space"]
timeout_ms = 50
"#,
    )
    .unwrap();
    assert_eq!(config.socket_mode, 0o600);
    assert_eq!(config.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(config.backend.grpc.len(), 2);
    assert!(config.backend.rest.is_some());
    let big = config.batching_for("big");
    assert_eq!((big.max_batch_size, big.max_queue, big.max_delay), (128, 100, Some(Duration::from_micros(500))));
    assert_eq!((big.dispatch, big.latency_budget), (Dispatch::Fixed, Duration::from_micros(800)));
    let other = config.batching_for("other");
    assert_eq!((other.dispatch, other.latency_budget), (Dispatch::Adaptive, DEFAULT_LATENCY_BUDGET));
    assert_eq!(config.batching_for("with space").timeout, Duration::from_millis(50));
    assert_eq!(config.batching_for("with space").max_batch_size, 32);
    assert_eq!(config.batching_for("other").max_batch_size, 32);
    assert!(config.summary().contains("models=[big, with space]"), "{}", config.summary());
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let e = parse_err(&format!("{MINIMAL}\n[batching]\nmax_batch = 3\n"));
    assert!(e.contains("max_batch"), "{e}");
    let e = parse_err(&format!("{MINIMAL}\n[models.m]\nmax_delay_ms = 3\n"));
    assert!(e.contains("max_delay_ms"), "{e}");
    let e = parse_err(&format!("lisen = \"x\"\n{MINIMAL}"));
    assert!(e.contains("lisen"), "{e}");
}

#[test]
fn out_of_range_numbers_name_the_key() {
    for (table, key, value) in [
        ("batching", "max_batch_size", "0"),
        ("batching", "max_queue", "-1"),
        ("batching", "max_inflight_batches", "0"),
        ("batching", "max_delay_us", "-5"),
        ("batching", "latency_budget_us", "99999999999"),
        ("batching", "dispatch", "\"eager\""),
        ("batching", "timeout_ms", "0"),
        ("models.m", "max_batch_size", "99999999999"),
    ] {
        let e = parse_err(&format!("{MINIMAL}\n[{table}]\n{key} = {value}\n"));
        assert!(e.contains(&format!("{table}.{key}")), "{e}");
    }
}

#[test]
fn worker_threads_is_checked() {
    assert_eq!(Config::parse(&format!("worker_threads = 4\n{MINIMAL}")).unwrap().worker_threads, 4);
    for bad in ["0", "5000"] {
        let e = parse_err(&format!("worker_threads = {bad}\n{MINIMAL}"));
        assert!(e.starts_with("worker_threads:"), "{e}");
    }
}

#[test]
fn wrong_types_are_errors() {
    let e = parse_err(&format!("{MINIMAL}\n[batching]\nmax_batch_size = \"64\"\n"));
    assert!(e.contains("max_batch_size"), "{e}");
}

#[test]
fn socket_modes() {
    assert_eq!(parse_socket_mode("0660"), Ok(0o660));
    assert_eq!(parse_socket_mode("600"), Ok(0o600));
    assert_eq!(parse_socket_mode("0o666"), Ok(0o666));
    for bad in ["", "0990", "rw-rw----", "01777", "7777", "-1"] {
        assert!(parse_socket_mode(bad).unwrap_err().0.starts_with("socket_mode:"), "{bad}");
    }
}

#[test]
fn backend_urls_are_checked() {
    let with = |grpc: &str| format!("listen = \"/tmp/s\"\n[backend]\ngrpc = [{grpc}]\n");
    assert!(parse_err(&with("")).contains("backend.grpc: at least one"));
    for bad in ["\"127.0.0.1:8500\"", "\"ftp://h:1\"", "\"https://h:1/path\"", "\"not a url\"", "\"http://\""] {
        let e = parse_err(&with(bad));
        assert!(e.starts_with("backend.grpc:"), "{bad}: {e}");
    }
    let e = parse_err("listen = \"/tmp/s\"\n[backend]\ngrpc = [\"http://h:1\"]\nrest = \"ftp://x\"\n");
    assert!(e.starts_with("backend.rest:"), "{e}");
    assert!(parse_err("listen = \"/tmp/s\"\n").contains("[backend]"));
    let e = parse_err("listen = \"/tmp/s\"\n[backend]\ngrpc = [\"http://h:1\"]\nrest = \"https://x\"\n");
    assert!(e.starts_with("backend.rest:"), "{e}");
}

/// `[backend.tls]`: every file is read and checked when the configuration is, each problem
/// named by its key; with the table, a plaintext target is refused, not silently left so.
#[test]
fn backend_tls_files_are_checked_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").current_dir(dir.path()).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    for name in ["a", "b"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3",
            "-subj",
            "/CN=t",
        ]);
    }
    let path = |f: &str| dir.path().join(f).display().to_string();
    let with =
        |grpc: &str, tls: &str| format!("listen = \"/tmp/s\"\n[backend]\ngrpc = [\"{grpc}\"]\n[backend.tls]\n{tls}\n");
    let config = Config::parse(&with(
        "https://tfs:8500",
        &format!(
            "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nserver_name = \"tfs.internal\"",
            path("a.pem"),
            path("a.pem"),
            path("a.key")
        ),
    ))
    .unwrap();
    let tls = config.backend.tls.as_ref().unwrap();
    assert!(tls.cert_not_after.is_some() && tls.ca_not_after.is_some());
    assert!(!format!("{tls:?}").contains("PRIVATE"), "the key is never printed");
    assert_eq!(config.backend.tls_server_name.as_deref(), Some("tfs.internal"));
    assert!(config.backend.dns_over_tls);
    let soon = tls.expiry_warnings("backend.tls", std::time::SystemTime::now());
    assert_eq!(soon.len(), 2, "both expire within a week: {soon:?}");

    let e = parse_err(&with("http://tfs:8500", &format!("ca_file = \"{}\"", path("a.pem"))));
    assert!(e.contains("is plaintext, but [backend.tls]") && e.contains("https://tfs:8500"), "{e}");
    let e = parse_err(&with("https://tfs:8500", "ca_file = \"/nonexistent/ca.pem\""));
    assert!(e.starts_with("backend.tls.ca_file: cannot read /nonexistent/ca.pem"), "{e}");
    let e = parse_err(&with("https://tfs:8500", &format!("ca_file = \"{}\"", path("a.key"))));
    assert!(e.starts_with("backend.tls.ca_file:") && e.contains("no certificate"), "{e}");
    let e = parse_err(&with("https://tfs:8500", &format!("cert_file = \"{}\"", path("a.pem"))));
    assert!(e.contains("cert_file and key_file go together"), "{e}");
    let e = parse_err(&with(
        "https://tfs:8500",
        &format!("cert_file = \"{}\"\nkey_file = \"{}\"", path("a.pem"), path("b.key")),
    ));
    assert!(e.starts_with("backend.tls.key_file:") && e.contains("does not go with"), "{e}");
    assert!(!e.contains("PRIVATE"), "{e}");
    let e = parse_err(&with(
        "https://tfs:8500",
        &format!("cert_file = \"{}\"\nkey_file = \"{}\"", path("a.pem"), path("a.pem")),
    ));
    assert!(e.starts_with("backend.tls.key_file:") && e.contains("no PEM private key"), "{e}");
    let e = parse_err(&with("https://tfs:8500", "server_name = \"bad name\""));
    assert!(e.starts_with("backend.tls.server_name:"), "{e}");
    let e = parse_err(&with("https://tfs:8500", "sni = \"x\""));
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn listen_and_metrics_are_checked() {
    let e = parse_err(&MINIMAL.replace("/tmp/b.sock", ""));
    assert!(e.starts_with("listen:"), "{e}");
    let e = parse_err(&MINIMAL.replace("/tmp/b.sock", &"x".repeat(200)));
    assert!(e.starts_with("listen:"), "{e}");
    let e = parse_err(&format!("metrics_listen = \"localhost\"\n{MINIMAL}"));
    assert!(e.starts_with("metrics_listen:"), "{e}");
    let e = parse_err("[backend]\ngrpc = [\"http://h:1\"]\n");
    assert!(e.contains("listen"), "{e}");
}

#[test]
fn allowed_batch_sizes_follow_tf_servings_rule() {
    let config = Config::parse(&format!(
        "{MINIMAL}\n[batching]\nmax_batch_size = 32\nallowed_batch_sizes = [4, 8, 32]\n[models.m]\nmax_batch_size = 8\nallowed_batch_sizes = [2, 8]\n[models.n]\nallowed_batch_sizes = []\n"
    ))
    .unwrap();
    assert_eq!(config.batching.allowed_batch_sizes, vec![4, 8, 32]);
    assert_eq!(config.batching_for("m").allowed_batch_sizes, vec![2, 8]);
    assert!(config.batching_for("n").allowed_batch_sizes.is_empty());
    for (body, needle) in [
        ("[batching]\nallowed_batch_sizes = [8, 32]\n", "must equal max_batch_size (64)"),
        ("[batching]\nallowed_batch_sizes = [8, 8, 64]\n", "strictly increasing"),
        ("[batching]\nallowed_batch_sizes = [0, 64]\n", "batching.allowed_batch_sizes"),
        (
            "[batching]\nallowed_batch_sizes = [8, 64]\n[models.m]\nmax_batch_size = 128\n",
            "models.m.allowed_batch_sizes: the last size (64) must equal max_batch_size (128)",
        ),
    ] {
        let e = parse_err(&format!("{MINIMAL}\n{body}"));
        assert!(e.contains(needle), "{body}: {e}");
    }
}

#[test]
fn backend_timeouts() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(config.backend.timeout, DEFAULT_BACKEND_TIMEOUT);
    assert_eq!(config.backend.health_interval, Some(DEFAULT_HEALTH_INTERVAL));
    let config = Config::parse(&format!("{MINIMAL}timeout_ms = 250\nhealth_interval_ms = 0\n")).unwrap();
    assert_eq!(config.backend.timeout, Duration::from_millis(250));
    assert_eq!(config.backend.health_interval, None);
    let e = parse_err(&format!("{MINIMAL}health_interval_ms = 5\n"));
    assert!(e.starts_with("backend.health_interval_ms:"), "{e}");
    let e = parse_err(&format!("{MINIMAL}timeout_ms = 0\n"));
    assert!(e.starts_with("backend.timeout_ms:"), "{e}");
}

fn backend_with(lines: &str) -> Result<BackendConfig, ConfigError> {
    Config::parse(&format!("listen = \"/tmp/s\"\n[backend]\n{lines}\n")).map(|c| c.backend)
}

#[test]
fn dns_targets_sit_beside_urls() {
    let backend = backend_with(
        "grpc = [\"http://10.0.0.1:8500\", \"dns://TF-Serving.ns.svc.cluster.local.:8500\", \"DNS://tfs_a:1\"]",
    )
    .unwrap();
    assert_eq!(backend.grpc.len(), 3);
    assert!(matches!(&backend.grpc[0], GrpcTarget::Url(uri) if uri.host() == Some("10.0.0.1")));
    let name = DnsName { host: "tf-serving.ns.svc.cluster.local.".to_string(), port: 8500 };
    assert_eq!(backend.grpc[1], GrpcTarget::Dns(name.clone()));
    assert_eq!(name.to_string(), "dns://tf-serving.ns.svc.cluster.local.:8500");
    assert_eq!(backend.grpc[2], GrpcTarget::Dns(DnsName { host: "tfs_a".to_string(), port: 1 }));
    assert_eq!(backend.resolver, None);
    assert_eq!(backend.resolve_interval, DEFAULT_RESOLVE_INTERVAL);
    assert_eq!(DEFAULT_RESOLVE_INTERVAL, Duration::from_secs(5));
}

#[test]
fn the_same_name_twice_is_resolved_once() {
    let backend = backend_with("grpc = [\"dns://tfs:8500\", \"dns://tfs:8500\", \"dns://tfs:8501\"]").unwrap();
    let names: Vec<String> = backend.dns_names().iter().map(|n| n.to_string()).collect();
    assert_eq!(names, ["dns://tfs:8500", "dns://tfs:8501"]);
}

#[test]
fn malformed_dns_targets_are_errors_naming_the_key() {
    for (entry, needle) in [
        ("dns:tfs:8500", "expected dns://NAME:PORT"),
        ("dns://tfs", "has no port"),
        ("dns://tfs:", "the port must be 1 to 65535"),
        ("dns://tfs:0", "the port must be 1 to 65535"),
        ("dns://tfs:70000", "the port must be 1 to 65535"),
        ("dns://tfs:+85", "the port must be 1 to 65535"),
        ("dns://:8500", "the name is empty"),
        ("dns://.:8500", "the name is empty"),
        ("dns://a..b:8500", "empty label"),
        ("dns://-a.b:8500", "starts or ends with '-'"),
        ("dns://a b:8500", "cannot appear in a DNS name"),
        ("dns://user@tfs:8500", "cannot appear in a DNS name"),
        ("dns://tfs:8500?x=1", "the port must be 1 to 65535"),
        ("dns:///tfs:8500", "backend.resolver"),
        ("dns://8.8.8.8/tfs:8500", "backend.resolver"),
        ("dns://10.0.0.1:8500", "names an IP address"),
        ("dns://[fd00::1]:8500", "names an IP address"),
    ] {
        let e = backend_with(&format!("grpc = [\"{entry}\"]")).unwrap_err().0;
        assert!(e.starts_with("backend.grpc:") && e.contains(needle), "{entry}: {e}");
    }
    let long_label = format!("dns://{}.b:1", "a".repeat(64));
    let e = backend_with(&format!("grpc = [\"{long_label}\"]")).unwrap_err().0;
    assert!(e.contains("longer than 63"), "{e}");
    let long_name = format!("dns://{}a:1", "abcdefgh.".repeat(29));
    let e = backend_with(&format!("grpc = [\"{long_name}\"]")).unwrap_err().0;
    assert!(e.contains("longer than 253"), "{e}");
}

#[test]
fn resolver_and_interval_keys() {
    let backend =
        backend_with("grpc = [\"dns://tfs:8500\"]\nresolver = \"127.0.0.1:5353\"\nresolve_interval_ms = 1000").unwrap();
    assert_eq!(backend.resolver, Some("127.0.0.1:5353".parse().unwrap()));
    assert_eq!(backend.resolve_interval, Duration::from_secs(1));
    let backend = backend_with("grpc = [\"dns://tfs:8500\"]\nresolver = \"fd00::10\"").unwrap();
    assert_eq!(backend.resolver, Some("[fd00::10]:53".parse().unwrap()));
    for (line, key) in [
        ("resolver = \"kube-dns.kube-system:53\"", "backend.resolver:"),
        ("resolver = \"10.0.0.1:0\"", "backend.resolver:"),
        ("resolver = \"\"", "backend.resolver:"),
        ("resolver = 53", "resolver"),
        ("resolve_interval_ms = 99", "backend.resolve_interval_ms:"),
        ("resolve_interval_ms = 3600001", "backend.resolve_interval_ms:"),
        ("resolve_interval_ms = -1", "backend.resolve_interval_ms:"),
    ] {
        let e = backend_with(&format!("grpc = [\"dns://tfs:8500\"]\n{line}")).unwrap_err().0;
        assert!(e.contains(key), "{line}: {e}");
    }
}

#[test]
fn the_summary_shows_dns_targets_and_their_resolver() {
    let config = Config::parse(&format!("{MINIMAL}resolver = \"10.96.0.10:53\"\n")).unwrap();
    assert!(!config.summary().contains("resolver="), "{}", config.summary());
    let config = Config::parse(
        "listen = \"/tmp/s\"\n[backend]\ngrpc = [\"http://h:1\", \"dns://tfs.ns:8500\"]\nresolver = \"10.96.0.10:53\"\n",
    )
    .unwrap();
    let summary = config.summary();
    assert!(summary.contains("backend.grpc=[http://h:1, dns://tfs.ns:8500]"), "{summary}");
    assert!(summary.contains("resolver=10.96.0.10:53 resolve_interval_ms=5000"), "{summary}");
}

#[test]
fn backend_protocol_defaults_to_tf_serving_and_v2_applies_to_every_target() {
    assert_eq!(Config::parse(MINIMAL).unwrap().backend.protocol, Protocol::TfServing);
    let backend = backend_with("grpc = [\"http://h:1\"]\nprotocol = \"tfserving\"").unwrap();
    assert_eq!(backend.protocol, Protocol::TfServing);
    let backend = backend_with("grpc = [\"http://h:1\", \"dns://triton:8001\"]\nprotocol = \"v2\"").unwrap();
    assert_eq!(backend.protocol, Protocol::V2);
    assert_eq!(backend.grpc.len(), 2, "every target, fixed or discovered");
    for bad in ["V2", "kserve", "", "tfserving "] {
        let e = backend_with(&format!("grpc = [\"http://h:1\"]\nprotocol = \"{bad}\"")).unwrap_err().0;
        assert_eq!(e, format!("backend.protocol: must be \"tfserving\" or \"v2\", got {bad:?}"));
    }
    let e = backend_with("grpc = [\"http://h:1\"]\nprotocol = 2").unwrap_err().0;
    assert!(e.contains("protocol"), "{e}");
    let e = backend_with("grpc = [\"http://h:1\"]\nprotocol = \"v2\"\nrest = \"http://h:2\"").unwrap_err().0;
    assert!(e.starts_with("backend.rest:") && e.contains("v2"), "{e}");
}

#[test]
fn the_summary_names_a_v2_backend() {
    assert!(!Config::parse(MINIMAL).unwrap().summary().contains("protocol"));
    let config = Config::parse(&format!("{MINIMAL}protocol = \"v2\"\n")).unwrap();
    assert!(config.summary().contains("\n  [backend] protocol=v2"), "{}", config.summary());
}

#[test]
fn logs_are_off_unless_configured_and_get_the_documented_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(config.logs, LogsConfig::default());
    let config = Config::parse(&format!(
        "{MINIMAL}\n[audit]\npath = \"-\"\n[prediction_log]\ndir = \"/var/log/tfgate/predictions\"\n"
    ))
    .unwrap();
    let audit = config.logs.audit.unwrap();
    assert_eq!(audit.destination, crate::observe::log_file::Destination::Stdout);
    assert_eq!(audit.queue_size, 8192);
    let p = config.logs.prediction_log.unwrap();
    assert_eq!(p.dir, PathBuf::from("/var/log/tfgate/predictions"));
    assert_eq!(p.format, crate::observe::prediction_log::Format::TfRecord);
    assert_eq!(p.rates.default, 0.01);
    assert_eq!(p.rotation.max_file_bytes, 128 << 20);
    assert_eq!(p.rotation.max_file_age, Some(Duration::from_secs(3600)));
    assert_eq!(p.rotation.max_files, 100);
    assert_eq!((p.queue_size, p.queue_bytes), (1024, 64 << 20));
    assert!(p.redact.drop.is_empty() && p.redact.hash.is_empty() && p.redact.key.is_none());
}

#[test]
fn prediction_log_settings_and_per_model_rates() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    let config = Config::parse(&format!(
        r#"{MINIMAL}
[audit]
path = "/var/log/tfgate/audit.jsonl"
queue_size = 100
[prediction_log]
dir = "/tmp/p"
format = "jsonl"
sampling_rate = 0
max_file_bytes = 4096
max_file_age_s = 0
max_files = 0
queue_size = 10
queue_bytes = 1048576
redact_drop = ["ssn"]
redact_hash = ["email", "name"]
hash_key_file = "{}"
[models.m]
prediction_log_sampling_rate = 1
max_batch_size = 8
[models.n]
prediction_log_sampling_rate = 0.25
"#,
        key.display()
    ))
    .unwrap();
    let p = config.logs.prediction_log.as_ref().unwrap();
    assert_eq!(p.format, crate::observe::prediction_log::Format::Jsonl);
    assert_eq!((p.rates.for_model("m"), p.rates.for_model("n"), p.rates.for_model("x")), (1.0, 0.25, 0.0));
    assert_eq!(p.rotation.max_file_age, None);
    assert_eq!(p.redact.hash.len(), 2);
    assert_eq!(p.redact.key.as_ref().unwrap().0, b"0123456789abcdef0123456789abcdef", "the newline is not the key's");
    assert_eq!(config.batching_for("m").max_batch_size, 8);
    assert_eq!(config.batching_for("n"), &config.batching, "a rate alone changes no batching setting");
    let summary = config.summary();
    assert!(summary.contains("[prediction_log] /tmp/p format=jsonl sampling_rate=0 models=[m=1, n=0.25]"), "{summary}");
    assert!(!summary.contains("0123456789abcdef"), "the key is never shown");
}

#[test]
fn log_mistakes_name_the_key() {
    let with = |tables: &str| parse_err(&format!("{MINIMAL}\n{tables}"));
    assert!(with("[audit]\npath = \"\"").contains("audit.path"));
    assert!(with("[audit]\npath = \"/a\"\nqueue_size = 0").contains("audit.queue_size"));
    assert!(with("[audit]\nfile = \"/a\"").contains("unknown field `file`"));
    let p = |keys: &str| with(&format!("[prediction_log]\ndir = \"/d\"\n{keys}"));
    assert!(p("sampling_rate = 1.5").contains("prediction_log.sampling_rate: must be between 0 and 1"));
    assert!(p("sampling_rate = -0.1").contains("prediction_log.sampling_rate"));
    assert!(p("format = \"csv\"").contains("prediction_log.format"));
    assert!(p("max_file_bytes = 10").contains("prediction_log.max_file_bytes"));
    assert!(p("max_file_age_s = -1").contains("prediction_log.max_file_age_s"));
    assert!(p("max_files = -1").contains("prediction_log.max_files"));
    assert!(p("queue_bytes = 5").contains("prediction_log.queue_bytes"));
    assert!(p("redact_hash = [\"a\"]").contains("needs a key"));
    assert!(p("redact_hash = [\"a\"]\nhash_key = \"short\"").contains("at least 16 bytes"));
    assert!(p("redact_drop = [\"a\"]\nredact_hash = [\"a\"]\nhash_key = \"0123456789abcdef\"")
        .contains("also in redact_drop"));
    assert!(p("redact_drop = [\"\"]").contains("prediction_log.redact_drop"));
    assert!(p("hash_key_file = \"/nonexistent/key\"").contains("prediction_log.hash_key_file: cannot read"));
    assert!(p("hash_key_file = \"/x\"\nhash_key = \"0123456789abcdef\"").contains("not both"));
    assert!(with("[prediction_log]\nformat = \"jsonl\"").contains("missing field `dir`"));
    assert!(with("[models.m]\nprediction_log_sampling_rate = 0.5")
        .contains("models.m.prediction_log_sampling_rate: there is no [prediction_log] table"));
    assert!(with("[prediction_log]\ndir = \"/d\"\n[models.m]\nprediction_log_sampling_rate = 2")
        .contains("models.m.prediction_log_sampling_rate: must be between 0 and 1"));
    assert!(with("[prediction_log]\ndir = \"/d\"\n[batching]\nprediction_log_sampling_rate = 0.5")
        .contains("batching.prediction_log_sampling_rate: set it per model"));
}

#[test]
fn a_log_change_is_a_reload_change() {
    let base = Config::parse(&format!("{MINIMAL}\n[prediction_log]\ndir = \"/d\"\n")).unwrap();
    let other = Config::parse(&format!("{MINIMAL}\n[prediction_log]\ndir = \"/d\"\nsampling_rate = 0.5\n")).unwrap();
    let plan = ReloadPlan::between(&base, &other);
    assert!(plan.logs && !plan.batching && plan.restart_needed.is_empty());
    assert!(!ReloadPlan::between(&base, &base).logs);
    assert_eq!(ReloadPlan::running_after(&base, other.clone()).logs, other.logs);
}

#[test]
fn row_caches_are_per_model_with_a_size_and_an_optional_ttl() {
    let with = |extra: &str| Config::parse(&format!("{MINIMAL}\n{extra}"));
    let config = with(
        "[models.a]\nrow_cache = \"256MiB\"\nrow_cache_ttl_s = 600\n[models.b]\nrow_cache = \"0\"\n[models.c]\nrow_cache = \"2GB\"\n[models.d]\nmax_queue = 8\n",
    )
    .unwrap();
    assert_eq!(config.row_caches["a"], RowCacheSettings { bytes: 256 << 20, ttl: Some(Duration::from_secs(600)) });
    assert_eq!(config.row_caches["b"], RowCacheSettings { bytes: 0, ttl: None });
    assert_eq!(config.row_caches["c"].bytes, 2_000_000_000);
    assert!(!config.row_caches.contains_key("d"));
    assert!(Config::parse(MINIMAL).unwrap().row_caches.is_empty());
    let err = |extra: &str| with(extra).expect_err(extra).0;
    assert!(err("[batching]\nrow_cache = \"1MiB\"").contains("batching.row_cache: set it per model"));
    assert!(err("[models.a]\nrow_cache = \"lots\"").contains("models.a.row_cache: expected a size"));
    assert!(err("[models.a]\nrow_cache = \"1.5MiB\"").contains("models.a.row_cache: expected a size"));
    assert!(err("[models.a]\nrow_cache = \"2TiB\"").contains("at most 1TiB"));
    assert!(err("[models.a]\nrow_cache = \"99999999999999999999\"").contains("expected a size"));
    assert!(err("[models.a]\nrow_cache_ttl_s = 5").contains("models.a.row_cache_ttl_s: needs models.a.row_cache"));
    assert!(err("[models.a]\nrow_cache = \"1MiB\"\nrow_cache_ttl_s = 0").contains("must be between 1 and"));
}
