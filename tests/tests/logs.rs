//! The audit log and the prediction log over the real components (nginx with the module,
//! tfgate-batcher, tfs-sim), read back the way their users read them: the prediction log with
//! real TensorFlow (`tf.data.TFRecordDataset`) and TF Serving's own `prediction_log_pb2`, in the
//! Python environment `scripts/python-env.sh` makes; the audit log as JSON lines, joined with
//! nginx's access log on the request id.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tfgate_tests::batching_stack::{BatchDaemon, ControlledSim};
use tfgate_tests::python::{json_lines, run_python};
use tfgate_tests::{HttpClient, Nginx, NginxConfig};

const V1: &str = "/v1/models/half_plus_two/versions/1:predict";
const KEY: &str = "0123456789abcdef0123456789abcdef";

/// The nginx access log recipe of docs/operations.md, so both logs join on the request id.
const ACCESS_LOG_FORMAT: &str = "log_format tfgate_join '$request_id $status \"$tfgate_jwt_sub\" \
     $tfgate_model \"$tfgate_model_version\" $request_time';";

struct LogStack {
    nginx: Nginx,
    daemon: BatchDaemon,
    _sim: ControlledSim,
    dir: tempfile::TempDir,
}

impl LogStack {
    /// `tables(dir)`: the daemon's tables, given the directory the logs go to.
    fn start(sim_args: &[&str], tables: impl Fn(&Path) -> String) -> LogStack {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = ControlledSim::start(sim_args);
        let daemon = BatchDaemon::start(dir.path(), &[sim.grpc_url()], "", &tables(dir.path()));
        let access = dir.path().join("access.log");
        let nginx_config = NginxConfig {
            http_extra: format!("{ACCESS_LOG_FORMAT}\n    access_log {} tfgate_join;", access.display()),
            location_extra: "tfgate_route on;".to_string(),
            // No catalog: every model passes to the daemon, as with TF Serving.
            server_extra: String::new(),
            ..NginxConfig::default()
        };
        let nginx = Nginx::start(dir.path(), &daemon.socket, &nginx_config);
        LogStack { nginx, daemon, _sim: sim, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn client(&self) -> HttpClient {
        self.nginx.client()
    }

    /// SIGTERM: the daemon writes what its logs hold and closes their files.
    fn stop_daemon(&mut self) {
        self.daemon.process.signal("TERM");
        assert_eq!(self.daemon.process.wait_exit(Duration::from_secs(20)), Some(true), "clean exit");
    }
}

fn audit_lines(paths: &[PathBuf]) -> Vec<Value> {
    paths.iter().filter(|p| p.exists()).flat_map(|p| json_lines(&std::fs::read_to_string(p).unwrap())).collect()
}

/// The prediction log's records as TensorFlow reads them, and how many files there were.
fn prediction_records(dir: &Path) -> (Vec<Value>, u64) {
    let mut lines = json_lines(&run_python("tflog.py", &["records", dir.to_str().unwrap()], ""));
    let files = lines.pop().and_then(|v| v["files"].as_u64()).expect("file count");
    (lines, files)
}

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

#[test]
fn each_sampled_request_is_logged_with_its_own_tensors_and_tensorflow_reads_it() {
    let mut stack = LogStack::start(&["--cost-us", "2000,20"], |dir| {
        format!(
            "[batching]\nmax_batch_size = 8\n\
             [audit]\npath = \"{}/audit.jsonl\"\n\
             [prediction_log]\ndir = \"{}/predictions\"\nsampling_rate = 1.0\n\
             redact_drop = [\"s\"]\nredact_hash = [\"s_out\", \"i64\"]\nhash_key = \"{KEY}\"\n",
            dir.display(),
            dir.display()
        )
    });
    let port = stack.nginx.port;
    // 24 concurrent requests of 1 to 3 rows (batched together), one of 20 rows (split across
    // batches of 8, its answer streamed), one for another model with inputs to redact.
    let sent: Vec<Vec<f64>> = (0..25)
        .map(|i| {
            let rows = if i == 24 { 20 } else { 1 + i % 3 };
            (0..rows).map(|r| (i * 100 + r) as f64 + 0.5).collect()
        })
        .collect();
    let handles: Vec<_> = sent
        .iter()
        .cloned()
        .map(|xs| {
            thread::spawn(move || {
                let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
                client.post(V1, &json!({ "instances": xs }).to_string())
            })
        })
        .collect();
    for handle in handles {
        let answer = handle.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let echo = stack.client().post(
        "/v1/models/echo_types:predict",
        &json!({"instances": [{"f32": 1.5, "f64": 2.5, "i32": 3, "i64": 7, "b": true, "s": "secret"}]}).to_string(),
    );
    assert_eq!(echo.status, 200, "{}", echo.body);
    stack.stop_daemon();

    let (records, files) = prediction_records(&stack.path("predictions"));
    assert!(files >= 1);
    assert_eq!(records.len(), 26, "every request, once");
    let by_first_x: HashMap<u64, &Vec<f64>> = sent.iter().map(|xs| (xs[0].to_bits(), xs)).collect();
    let mut seen = BTreeSet::new();
    for record in records.iter().filter(|r| r["model_spec"]["name"] == "half_plus_two") {
        let x = floats(&record["inputs"]["x"]["values"]);
        let expected = by_first_x[&x[0].to_bits()];
        assert_eq!(&x, expected, "the request's own inputs");
        let y = floats(&record["outputs"]["y"]["values"]);
        let own: Vec<f64> = expected.iter().map(|x| 0.5 * x + 2.0).collect();
        assert_eq!(y, own, "the request's own rows of its batches' outputs, no others");
        assert_eq!(record["outputs"]["y"]["shape"][0], expected.len());
        assert_eq!(record["model_spec"]["version"], 1);
        assert_eq!(record["request_spec"]["version"], 1);
        assert_eq!(record["sampling_rate"], 1.0);
        assert!(record["timestamp_secs"].as_i64().unwrap() > 1_600_000_000);
        seen.insert(expected[0].to_bits());
    }
    assert_eq!(seen.len(), 25);

    // Redaction: `s` dropped, `s_out` and `i64` replaced by keyed hashes, the rest kept.
    let echo = records.iter().find(|r| r["model_spec"]["name"] == "echo_types").expect("the echo_types record");
    let inputs = echo["inputs"].as_object().unwrap();
    assert!(!inputs.contains_key("s"), "dropped: {echo}");
    assert_eq!(inputs["f32"]["values"], json!([1.5]));
    assert_eq!(inputs["i64"]["dtype"], "string");
    assert_eq!(inputs["i64"]["values"][0].as_str().unwrap().len(), 64);
    let expected_hash = run_python("tflog.py", &["hmac", KEY, "secret"], "");
    assert_eq!(echo["outputs"]["s_out"]["values"][0].as_str().unwrap(), expected_hash.trim());
    assert_eq!(echo["outputs"]["s_bytes"]["values"], json!(["secret"]), "only the names listed are redacted");

    // The audit log: one line per request, joined to the prediction log and nginx's access log.
    let audit = audit_lines(&[stack.path("audit.jsonl")]);
    assert_eq!(audit.len(), 26);
    let logged: BTreeSet<&str> = records.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    let access = std::fs::read_to_string(stack.path("access.log")).unwrap();
    for line in &audit {
        let id = line["request_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "nginx's $request_id: {line}");
        assert!(logged.contains(id), "{id} in the prediction log");
        let access_line = access.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{id} in {access}"));
        let model = line["model"].as_str().unwrap();
        assert!(access_line.contains(&format!(" {model} ")), "{access_line}");
        assert_eq!(line["status"], 200);
        assert_eq!(line["code"], "OK");
        assert_eq!(line["method"], "predict");
        assert_eq!(line["ingress"], "rest");
        assert!(line["batch_id"].as_u64().is_some() && line["batch_size"].as_u64().is_some(), "{line}");
        assert!(line["queue_us"].as_u64().is_some() && line["backend_us"].as_u64().unwrap() > 0, "{line}");
        assert!(line["target"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{line}");
        assert!(line["bytes_in"].as_u64().unwrap() > 0 && line["bytes_out"].as_u64().unwrap() > 0, "{line}");
        assert!(line["total_us"].as_u64().unwrap() >= line["queue_us"].as_u64().unwrap());
    }
    let large = audit.iter().find(|l| l["rows"] == 20).expect("the split request");
    assert!(large["batches"].as_u64().unwrap() >= 3, "{large}");
    assert_eq!(large["version"], 1);
    assert_eq!(large["requested"], "1");
}

#[test]
fn the_sampled_share_follows_the_documented_hash_of_the_request_id() {
    const REQUESTS: usize = 10_000;
    const RATE: f64 = 0.1;
    let mut stack = LogStack::start(&[], |dir| {
        format!(
            "[audit]\npath = \"{}/audit.jsonl\"\n\
             [prediction_log]\ndir = \"{}/predictions\"\nsampling_rate = {RATE}\n\
             [models.echo_types]\nprediction_log_sampling_rate = 0\n",
            dir.display(),
            dir.display()
        )
    });
    let port = stack.nginx.port;
    let handles: Vec<_> = (0..16)
        .map(|t| {
            thread::spawn(move || {
                let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
                for i in 0..REQUESTS / 16 {
                    let answer = client.post(V1, &format!("{{\"instances\": [{}]}}", t * 10_000 + i));
                    assert_eq!(answer.status, 200, "{}", answer.body);
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    // A model whose rate is 0 is never logged.
    for i in 0..50 {
        let body = json!({"instances": [{"f32": i, "f64": 0, "i32": 0, "i64": 0, "b": false, "s": "x"}]});
        let r = stack.client().post("/v1/models/echo_types:predict", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
    }
    stack.stop_daemon();

    let audit = audit_lines(&[stack.path("audit.jsonl")]);
    assert_eq!(audit.len(), REQUESTS + 50);
    let ids: Vec<&str> =
        audit.iter().filter(|l| l["model"] == "half_plus_two").map(|l| l["request_id"].as_str().unwrap()).collect();
    let points = json_lines(&run_python("tflog.py", &["points"], &ids.join("\n")));
    let expected: BTreeSet<String> = points
        .iter()
        .filter(|p| p["point"].as_f64().unwrap() < RATE)
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let (records, _) = prediction_records(&stack.path("predictions"));
    assert!(records.iter().all(|r| r["model_spec"]["name"] == "half_plus_two"));
    let kept: BTreeSet<String> = records.iter().map(|r| r["request_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(kept.len(), records.len(), "each request at most once");
    // Binomial(10000, 0.1): standard deviation 30. Five of them either way: a sound sampler
    // fails this about once in 1.7 million runs.
    let share = kept.len();
    assert!((850..=1150).contains(&share), "{share} of {REQUESTS} kept at rate {RATE}");
    // And exactly the requests the documented hash picks: any daemon decides alike.
    assert_eq!(kept, expected);
}

#[test]
fn rotation_and_reopening_under_load_lose_nothing() {
    let mut stack = LogStack::start(&[], |dir| {
        format!(
            "[audit]\npath = \"{}/audit.jsonl\"\n\
             [prediction_log]\ndir = \"{}/predictions\"\nsampling_rate = 1.0\nmax_file_bytes = 4096\nmax_files = 0\n",
            dir.display(),
            dir.display()
        )
    });
    let port = stack.nginx.port;
    let answered = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let answered = answered.clone();
            thread::spawn(move || {
                let client = HttpClient::new(format!("http://127.0.0.1:{port}"));
                for i in 0..300 {
                    let answer = client.post(V1, &format!("{{\"instances\": [{}, {}]}}", t * 1000 + i, i));
                    if answer.status == 200 {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Meanwhile logrotate's way, twice: move the audit file, then SIGHUP (which also closes the
    // prediction log's file for a new one).
    let mut moved = Vec::new();
    for n in 1..=2 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while answered.load(Ordering::Relaxed) < n * 700 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let to = stack.path(&format!("audit.jsonl.{n}"));
        std::fs::rename(stack.path("audit.jsonl"), &to).unwrap();
        stack.daemon.process.signal("HUP");
        moved.push(to);
    }
    handles.into_iter().for_each(|h| h.join().unwrap());
    let answered = answered.load(Ordering::Relaxed);
    assert_eq!(answered, 2400);
    stack.stop_daemon();

    let mut paths = moved.clone();
    paths.push(stack.path("audit.jsonl"));
    let audit = audit_lines(&paths);
    assert_eq!(audit.len(), answered, "one audit line per request answered, across the moves");
    assert!(moved.iter().all(|p| std::fs::metadata(p).unwrap().len() > 0));
    let ids: BTreeSet<&str> = audit.iter().map(|l| l["request_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), answered);
    let (records, files) = prediction_records(&stack.path("predictions"));
    assert_eq!(records.len(), answered, "every record whole (CRCs checked by TensorFlow), none lost");
    assert!(files > 10, "{files} files: rotated by size");
    let metrics = stack.daemon.process.log_text();
    assert!(!metrics.contains("lost"), "{metrics}");
}

/// A tmpfs mounted for the test, unmounted however it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Tmpfs(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `path` to the last byte; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    while file.write_all(&[0]).is_ok() {}
    filler
}

#[test]
fn a_full_disk_costs_log_records_never_predictions_and_writing_resumes() {
    // CI runs as root; elsewhere a tmpfs cannot be mounted without privileges.
    if not_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let disk = base.path().join("disk");
    let _tmpfs = Tmpfs::mount(disk.clone(), "512k");
    let mut stack = LogStack::start(&[], |_| {
        format!(
            "[audit]\npath = \"{}/audit.jsonl\"\n\
             [prediction_log]\ndir = \"{}/predictions\"\nsampling_rate = 1.0\n",
            disk.display(),
            disk.display()
        )
    });
    let client = stack.client();
    let filler = fill(&disk);
    for i in 0..100 {
        let answer = client.post(V1, &format!("{{\"instances\": [{i}]}}"));
        assert_eq!(answer.status, 200, "predictions are served while the disk is full");
    }
    let dropped = |name: &str| stack.daemon.metric(&format!("{name}{{reason=\"write_error\"}}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while (dropped("tfgate_audit_dropped_total") == 0.0 || dropped("tfgate_prediction_log_dropped_total") == 0.0)
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(dropped("tfgate_audit_dropped_total") > 0.0);
    assert!(dropped("tfgate_prediction_log_dropped_total") > 0.0);

    // Space comes back: the next records are written, and the daemon says so.
    std::fs::remove_file(filler).unwrap();
    let written = stack.daemon.metric("tfgate_audit_records_total");
    for i in 0..20 {
        assert_eq!(client.post(V1, &format!("{{\"instances\": [{i}]}}")).status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.daemon.metric("tfgate_audit_records_total") < written + 20.0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(stack.daemon.metric("tfgate_audit_records_total") >= written + 20.0);
    let log = stack.daemon.process.log_text();
    assert!(log.contains("audit log: writing to") && log.contains("again after"), "{log}");
    stack.stop_daemon();
    // Whatever was cut short by the full disk was cut back: every line is whole JSON.
    let audit = audit_lines(&[disk.join("audit.jsonl")]);
    assert!(audit.len() >= 20);
    let (records, _) = prediction_records(&disk.join("predictions"));
    assert!(records.len() >= 20);
}

/// logrotate's `copytruncate` (unsupported: docs/operations.md) cuts the audit file under the
/// daemon; a full disk afterwards must not make the daemon "cut back" to the old, longer length,
/// which filled the file with zero bytes up to it.
#[test]
fn a_file_truncated_under_the_daemon_then_a_full_disk_leave_only_whole_lines() {
    if not_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let disk = base.path().join("disk");
    let _tmpfs = Tmpfs::mount(disk.clone(), "512k");
    let mut stack = LogStack::start(&[], |_| format!("[audit]\npath = \"{}/audit.jsonl\"\n", disk.display()));
    let client = stack.client();
    let audit = disk.join("audit.jsonl");
    let records = |stack: &LogStack| stack.daemon.metric("tfgate_audit_records_total");
    let wait_for = |what: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !what() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(what());
    };
    for i in 0..50 {
        assert_eq!(client.post(V1, &format!("{{\"instances\": [{i}]}}")).status, 200);
    }
    wait_for(&|| records(&stack) >= 50.0);
    // copytruncate: a copy elsewhere, then the file cut to nothing, the daemon not told.
    std::fs::copy(&audit, base.path().join("audit.jsonl.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&audit).unwrap().set_len(0).unwrap();
    let filler = fill(&disk);
    for i in 0..20 {
        assert_eq!(client.post(V1, &format!("{{\"instances\": [{i}]}}")).status, 200);
    }
    wait_for(&|| stack.daemon.metric("tfgate_audit_dropped_total{reason=\"write_error\"}") > 0.0);
    std::fs::remove_file(filler).unwrap();
    let written = records(&stack);
    for i in 0..5 {
        assert_eq!(client.post(V1, &format!("{{\"instances\": [{i}]}}")).status, 200);
    }
    wait_for(&|| records(&stack) >= written + 5.0);
    stack.stop_daemon();
    let bytes = std::fs::read(&audit).unwrap();
    let zeros = bytes.iter().filter(|&&b| b == 0).count();
    assert_eq!(zeros, 0, "{zeros} zero bytes in a file of {}", bytes.len());
    assert!(audit_lines(&[audit]).len() >= 5);
}

fn not_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
}

#[test]
fn a_request_whose_client_goes_away_is_audited_too() {
    use std::io::Write;
    // Each batch takes 300 ms: the second request waits in the queue when its client leaves.
    let mut stack = LogStack::start(&["--cost-us", "300000,0"], |dir| {
        format!("[batching]\nmax_inflight_batches = 1\n[audit]\npath = \"{}/audit.jsonl\"\n", dir.display())
    });
    let port = stack.nginx.port;
    let first = thread::spawn(move || {
        HttpClient::new(format!("http://127.0.0.1:{port}")).post(V1, "{\"instances\": [1.0]}").status
    });
    thread::sleep(Duration::from_millis(100));
    // Straight to the daemon (as nginx would send it), then gone.
    let body = "{\"instances\": [2.0]}";
    let mut stream = std::os::unix::net::UnixStream::connect(&stack.daemon.socket).unwrap();
    write!(
        stream,
        "POST {V1} HTTP/1.1\r\nHost: t\r\nX-Request-Id: gone-client\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    thread::sleep(Duration::from_millis(50));
    drop(stream);
    assert_eq!(first.join().unwrap(), 200);
    thread::sleep(Duration::from_millis(100));
    stack.stop_daemon();
    let audit = audit_lines(&[stack.path("audit.jsonl")]);
    let gone = audit.iter().find(|l| l["request_id"] == "gone-client").expect("the cancelled request's line");
    assert_eq!(gone["status"], 499, "{gone}");
    assert_eq!(gone["code"], "CANCELLED");
    assert_eq!(gone["rows"], 1);
}

/// A model with a row cache: the prediction log records each answer as it was served, rows
/// from the cache and rows computed alike, with the version that computed them.
#[test]
fn answers_from_the_row_cache_are_logged_as_served() {
    let mut stack = LogStack::start(&[], |dir| {
        format!(
            "[models.half_plus_two]\nrow_cache = \"1MiB\"\n\
             [prediction_log]\ndir = \"{}/predictions\"\nsampling_rate = 1.0\n",
            dir.display()
        )
    });
    let client = stack.client();
    assert_eq!(client.post(V1, r#"{"instances": [1.5, 2.5]}"#).status, 200);
    let mixed = client.post(V1, r#"{"instances": [2.5, 1.5, 3.5]}"#);
    assert_eq!(mixed.body.replace(' ', ""), r#"{"predictions":[3.25,2.75,3.75]}"#);
    let cached = client.post(V1, r#"{"instances": [3.5]}"#);
    assert_eq!(cached.body.replace(' ', ""), r#"{"predictions":[3.75]}"#);
    stack.stop_daemon();

    let (records, _) = prediction_records(&stack.path("predictions"));
    let served: Vec<(Vec<f64>, Vec<f64>, Value)> = records
        .iter()
        .map(|r| {
            (
                floats(&r["inputs"]["x"]["values"]),
                floats(&r["outputs"]["y"]["values"]),
                r["model_spec"]["version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        served,
        vec![
            (vec![1.5, 2.5], vec![2.75, 3.25], json!(1)),
            (vec![2.5, 1.5, 3.5], vec![3.25, 2.75, 3.75], json!(1)),
            (vec![3.5], vec![3.75], json!(1)),
        ]
    );
}
