//! Operations end to end (issue 22, parts 1 and 2): Debian's Prometheus scrapes the real stack
//! (nginx with the module through Debian's nginx exporter and its `stub_status`, the daemon's
//! `metrics_listen`, tfs-sim behind it) and evaluates deploy/prometheus/tfgate.rules.yml; the
//! test asserts that every target is up, every rule evaluates and every recording rule has
//! series, and that every query of deploy/grafana/tfgate.json has data. `promtool check
//! metrics` judges the daemon's exposition. (The rules' logic is unit-tested by promtool:
//! deploy/prometheus/tfgate.test.yml, run by scripts/lint.sh.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tfgate_tests::batching_stack::{metric_value, BatchDaemon, ControlledSim};
use tfgate_tests::{repo_root, Nginx, NginxConfig, NginxExporter, Prometheus};

const PREDICT: &str = "/v1/models/half_plus_two/versions/1:predict";

/// Quotas: `default` never refuses in this test; `tiny` allows one request a day, and since
/// counters belong to the caller (all test requests come from 127.0.0.1), a request under it
/// is refused once the caller has sent any.
fn tables(dir: &Path) -> String {
    format!(
        "[batching]\nmax_batch_size = 16\n\
         [audit]\npath = \"{dir}/audit.jsonl\"\n\
         [prediction_log]\ndir = \"{dir}/predictions\"\nsampling_rate = 1.0\n\
         [quotas.plans.default]\nrequests = \"1000000/day\"\n\
         [quotas.plans.tiny]\nrequests = \"1/day\"\n",
        dir = dir.display()
    )
}

/// `--query` values of the dashboard's template variables and Grafana's own variables.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$__interval", "5s").replace("$model", ".*")
}

/// The names after `- record:` or `- alert:` in the rules file.
fn rule_names(rules: &str, kind: &str) -> Vec<String> {
    let prefix = format!("- {kind}: ");
    rules.lines().filter_map(|l| l.trim().strip_prefix(&prefix)).map(str::to_string).collect()
}

/// Concurrent predictions of 1 to 8 rows through nginx for `for_how_long`; returns how many
/// were answered 200.
fn load(nginx: &Nginx, threads: usize, for_how_long: Duration) -> usize {
    let end = Instant::now() + for_how_long;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let client = nginx.client();
                scope.spawn(move || {
                    let mut ok = 0;
                    let mut i = t;
                    while Instant::now() < end {
                        let rows: Vec<String> = (0..1 + i % 8).map(|r| format!("{r}.5")).collect();
                        let answer = client.post(PREDICT, &format!("{{\"instances\": [{}]}}", rows.join(",")));
                        assert_eq!(answer.status, 200, "{}", answer.body);
                        ok += 1;
                        i += 1;
                    }
                    ok
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

#[test]
fn prometheus_scrapes_the_stack_and_every_rule_and_dashboard_query_has_data() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let sim = ControlledSim::start(&["--cost-us", "2000,20"]);
    // A small memory budget, so that one large request is refused for memory (413).
    let daemon = BatchDaemon::start_with_top(
        dir.path(),
        &[sim.grpc_url()],
        "max_body_bytes_in_flight = 65536",
        "",
        &tables(dir.path()),
    );
    let nginx = Nginx::start(
        dir.path(),
        &daemon.socket,
        &NginxConfig {
            server_extra: format!(
                "{}\n        location = /stub_status {{ stub_status; access_log off; }}",
                NginxConfig::default().server_extra
            ),
            // The plan from a request header, standing in for a token claim (quotas.rs has the
            // claim itself); an empty value sends no header: the default plan.
            location_extra: "tfgate_route on; proxy_set_header X-Tfgate-Plan $http_x_test_plan;".to_string(),
            ..NginxConfig::default()
        },
    );
    let exporter = NginxExporter::start(dir.path(), &format!("http://127.0.0.1:{}/stub_status", nginx.port));
    let rules_path = repo_root().join("deploy/prometheus/tfgate.rules.yml");
    let prometheus = Prometheus::start(
        dir.path(),
        &[("tfgate", daemon.metrics_address()), ("nginx", exporter.address())],
        &[&rules_path],
        "1s",
    );

    // Traffic for a few scrapes: two levels of concurrency, so that batches differ in size.
    let answered = load(&nginx, 2, Duration::from_secs(3)) + load(&nginx, 12, Duration::from_secs(3));
    assert!(answered > 100, "only {answered} predictions answered");
    let client = nginx.client();
    // Refusals of each kind the daemon decides: quota (429), memory (413), deadline (503); and
    // a backend error (INTERNAL), for the error ratio. Twice, a few scrapes apart: a counter
    // series is born with its first count, and rate() sees only increases between samples.
    // 40 kB of body (within the budget, so nginx delivers it whole) whose 20,000 floats take
    // more than the budget once parsed.
    let large = format!("{{\"instances\": [{}]}}", vec!["1"; 20_000].join(","));
    for round in 0..2 {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(2500));
        }
        let refused = client.send("POST", PREDICT, &[("X-Test-Plan", "tiny")], Some(r#"{"instances": [1.0]}"#));
        assert_eq!(refused.status, 429, "{}", refused.body);
        let refused = client.post(PREDICT, &large);
        assert_eq!(refused.status, 413, "{}", refused.body);
        let late = client.send("POST", PREDICT, &[("Request-Timeout", "0.000001")], Some(r#"{"instances": [1.0]}"#));
        assert_eq!(late.status, 503, "{}", late.body);
        sim.control("/fail?code=13&count=1");
        let failed = client.post(PREDICT, r#"{"instances": [1.0]}"#);
        assert_eq!(failed.status, 500, "{}", failed.body);
    }

    // promtool's judgement of the exposition, histograms with samples included: no error and
    // no lint warning.
    let exposition = daemon.metrics_text();
    for series in [
        r#"tfgate_request_duration_seconds_count{model="half_plus_two",method="predict"}"#,
        r#"tfgate_batch_rows_count{model="half_plus_two"}"#,
        r#"tfgate_queue_delay_seconds_count{model="half_plus_two"}"#,
    ] {
        assert!(metric_value(&exposition, series).unwrap_or(0.0) > 0.0, "{series} in {exposition}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), exposition.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");

    // Both targets up.
    let targets = prometheus.wait_for("targets", Duration::from_secs(10), |data| {
        let active = data["activeTargets"].as_array().cloned().unwrap_or_default();
        active.len() == 2 && active.iter().all(|t| t["health"] == "up")
    });
    let jobs: Vec<&str> = targets["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["health"] == "up")
        .map(|t| t["labels"]["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs.len(), 2, "{targets:#}");
    assert!(jobs.contains(&"tfgate") && jobs.contains(&"nginx"), "{jobs:?}");

    // Every rule of the file loaded and evaluated without error; no alert fires on a healthy
    // stack.
    let rules_text = std::fs::read_to_string(&rules_path).unwrap();
    let (records, alerts) = (rule_names(&rules_text, "record"), rule_names(&rules_text, "alert"));
    assert!(records.len() >= 10 && alerts.len() >= 7, "{records:?} {alerts:?}");
    let all_rules = |data: &Value| -> Vec<Value> {
        data["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap().clone()).collect()
    };
    let loaded = prometheus.wait_for("rules", Duration::from_secs(10), |data| {
        all_rules(data).iter().all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
    });
    let loaded = all_rules(&loaded);
    let names = |kind: &str| -> Vec<String> {
        loaded.iter().filter(|r| r["type"] == kind).map(|r| r["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names("recording"), records);
    assert_eq!(names("alerting"), alerts);
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule:#}");
        if rule["type"] == "alerting" {
            assert_eq!(rule["state"], "inactive", "{rule:#}");
        }
    }

    // Every recording rule has series (a rate needs two scrapes of a counter, so allow a few
    // evaluations after the last refusal).
    let deadline = Instant::now() + Duration::from_secs(10);
    for record in &records {
        let mut result = prometheus.query(record);
        while result.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            result = prometheus.query(record);
        }
        assert!(!result.is_empty(), "recording rule {record} has no series");
    }
    // The values say what the traffic was, once the last requests were scraped and the rules
    // evaluated again.
    let value = |sample: &Value| sample["value"][1].as_str().unwrap().parse::<f64>().unwrap();
    let eventually = |expr: &str, holds: &dyn Fn(&[Value]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result = prometheus.query(expr);
            if holds(&result) {
                return;
            }
            assert!(Instant::now() < deadline, "{expr}: {result:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let one_value = |holds: fn(f64) -> bool| move |r: &[Value]| r.len() == 1 && holds(value(&r[0]));
    eventually(r#"model:tfgate_batch_fill:ratio5m{model="half_plus_two"}"#, &one_value(|v| v > 0.0 && v <= 1.0));
    eventually(r#"max(tfgate_max_batch_size{model="half_plus_two"})"#, &one_value(|v| v == 16.0));
    eventually(r#"model:tfgate_rows:rate5m{model="half_plus_two"}"#, &one_value(|v| v > 0.0));
    // The INTERNAL calls.
    eventually("target:tfgate_backend_errors:ratio5m", &one_value(|v| v > 0.0 && v < 0.5));
    let reasons = |r: &[Value]| -> Vec<String> {
        r.iter().map(|s| s["metric"]["reason"].as_str().unwrap_or_default().to_string()).collect()
    };
    eventually("reason:tfgate_refusals:rate5m > 0", &|r| {
        ["quota", "memory", "deadline"].iter().all(|want| reasons(r).iter().any(|got| got == want))
    });
    // nginx's stub_status counted the traffic too.
    eventually("sum(rate(nginx_http_requests_total[1m]))", &one_value(|v| v > 0.0));

    // Every query of every dashboard panel has data.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("deploy/grafana/tfgate.json")).unwrap())
            .unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("panel {title} has no queries"));
        assert!(!targets.is_empty(), "panel {title} has no queries");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        for target in targets {
            let expr = substitute(target["expr"].as_str().unwrap());
            assert!(!expr.contains('$'), "panel {title}: an unknown variable in {expr}");
            let result = prometheus.query(&expr);
            assert!(!result.is_empty(), "panel {title}: {expr} has no data");
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries} dashboard queries");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}
