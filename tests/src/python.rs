//! The Python test environment (real TensorFlow, TF Serving's Python API, grpcio), made once
//! by `scripts/python-env.sh` and reused, and scripts under `tests/python/` run with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::paths::repo_root;
use crate::process::Process;
use crate::tls::Pair;

/// The venv's `python`, created on first use (a few minutes the first time on a machine).
pub fn python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = repo_root().join("scripts/python-env.sh");
        let output = Command::new(&script).stderr(Stdio::inherit()).output().expect("run scripts/python-env.sh");
        assert!(output.status.success(), "scripts/python-env.sh failed");
        let venv = String::from_utf8(output.stdout).expect("venv path").trim().to_string();
        PathBuf::from(venv).join("bin/python")
    })
    .clone()
}

/// Runs `tests/python/SCRIPT ARGS` with `stdin`; its stdout (panics with its stderr on failure).
pub fn run_python(script: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/python").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    // Written from a thread of its own: a script that answers as it reads would otherwise fill
    // its stdout pipe while this side is still writing.
    let writer = child.stdin.take().map(|mut input| {
        let text = stdin.to_string();
        std::thread::spawn(move || input.write_all(text.as_bytes()))
    });
    let output = child.wait_with_output().expect("python");
    if let Some(writer) = writer {
        writer.join().expect("stdin writer").expect("python stdin");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python {script} {args:?} failed:\n{stderr}");
    String::from_utf8(output.stdout).expect("python output")
}

/// Each line of `text` as JSON.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// `tests/python/tf_tls_server.py`: a real TensorFlow SavedModel (half_plus_two) served by
/// grpcio with TF Serving's services, over mutual TLS.
pub struct TfTlsServer {
    pub port: u16,
    dir: PathBuf,
    pub process: Process,
}

impl TfTlsServer {
    /// Serves with `server`'s certificate, requiring client certificates signed by `client_ca`.
    pub fn start(dir: &Path, server: &Pair, client_ca: &Path) -> TfTlsServer {
        std::fs::create_dir_all(dir).expect("server dir");
        let mut command = Command::new(python());
        command.arg(repo_root().join("tests/python/tf_tls_server.py")).arg(dir).arg(&server.cert).arg(&server.key);
        command.arg(client_ca);
        let log = dir.join("server.log");
        let mut process = Process::spawn("tf_tls_server.py", command, &log);
        // Importing TensorFlow and saving the model take seconds, more on a loaded machine.
        let port = listening_port(&mut process, &log, 120);
        TfTlsServer { port, dir: dir.to_path_buf(), process }
    }

    /// The batch sizes (dim 0) of the Predict calls served, in order.
    pub fn batches(&self) -> Vec<u64> {
        let text = std::fs::read_to_string(self.dir.join("batches")).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

/// The port a script says it listens on (`listening on PORT` in its log), once it does.
fn listening_port(process: &mut Process, log: &Path, within_seconds: u64) -> u16 {
    let port = |log: &Path| -> Option<u16> {
        let text = std::fs::read_to_string(log).ok()?;
        text.lines().find_map(|l| l.strip_prefix("listening on ")).and_then(|p| p.trim().parse().ok())
    };
    process.wait_until_within("it listens", std::time::Duration::from_secs(within_seconds), || port(log).is_some());
    port(log).expect("port")
}

/// `tests/python/otlp_receiver.py`: an OTLP/gRPC trace receiver on OpenTelemetry's own
/// service definitions (opentelemetry-proto, grpcio), keeping every span it gets.
pub struct OtlpReceiver {
    pub port: u16,
    spans: PathBuf,
    pub process: Process,
}

impl OtlpReceiver {
    pub fn start(dir: &Path) -> OtlpReceiver {
        std::fs::create_dir_all(dir).expect("receiver dir");
        let spans = dir.join("spans.jsonl");
        let mut command = Command::new(python());
        command.arg(repo_root().join("tests/python/otlp_receiver.py")).arg(&spans);
        let log = dir.join("otlp_receiver.log");
        let mut process = Process::spawn("otlp_receiver.py", command, &log);
        let port = listening_port(&mut process, &log, 60);
        OtlpReceiver { port, spans, process }
    }

    /// `http://127.0.0.1:PORT`, as `[tracing] otlp_endpoint` names it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far, one JSON object each.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        json_lines(&std::fs::read_to_string(&self.spans).unwrap_or_default())
    }
}

/// `tests/python/v2_client.py`: NVIDIA's `tritonclient`, unchanged, against `address`
/// (`HOST:PORT`) over `protocol` (`"http"` or `"grpc"`); one JSON answer per operation of `ops`
/// (a JSON list, as the script's docstring describes), in order.
pub fn v2_client(protocol: &str, address: &str, ops: &serde_json::Value) -> Vec<serde_json::Value> {
    let args = ["--url", address, "--protocol", protocol];
    let answers = json_lines(&run_python("v2_client.py", &args, &ops.to_string()));
    let asked = ops.as_array().map_or(0, Vec::len);
    assert_eq!(answers.len(), asked, "one answer per operation: {answers:?}");
    answers
}
