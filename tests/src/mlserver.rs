//! Seldon's MLServer (PyPI `mlserver`, from the tests' venv) as a real Open Inference Protocol
//! server: `mlserver start DIR` with the custom runtime of `tests/python/mlserver/`
//! (`tfgate_runtime.py`: `half_plus_two` versions 1 and 2 as tfs-sim computes them, and
//! `all_types`, an echo of every datatype MLServer carries).
//!
//! DIR is a copy of that folder's `settings.json` (with free loopback HTTP and gRPC ports; the
//! metrics server off) and `model-settings.json` files (with the adaptive batching asked for).
//! The runtime writes one line per predict call it serves, so a test sees how calls were batched
//! before they reached the model. The server is stopped on drop, and exits by itself when the
//! test process is gone (it watches its stdin), so a server shared by a test binary's tests
//! through a `static` does not outlive the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::client::HttpClient;
use crate::paths::repo_root;
use crate::process::{free_port, tcp_accepts, Process};

/// MLServer's adaptive batching, set on every model (`max_batch_size` / `max_batch_time` in each
/// model-settings.json, as MLServer's "Adaptive Batching" guide configures it: off by default,
/// with values "found through experimentation").
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdaptiveBatching {
    /// `max_batch_size` 1 and `max_batch_time` 0: every request is its own predict call.
    Off,
    /// Up to `max_batch_size` requests (more than 1), or those that came within
    /// `max_batch_time_s` seconds (more than 0) of the first, joined into one predict call.
    On { max_batch_size: u32, max_batch_time_s: f64 },
}

/// One predict call the runtime served.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub model: String,
    pub version: String,
    /// Dim 0 of its first input.
    pub rows: u64,
}

pub struct MlServer {
    pub http_port: u16,
    pub grpc_port: u16,
    calls: PathBuf,
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl MlServer {
    /// Starts MLServer with every model of `tests/python/mlserver/` and waits until it says it
    /// is ready (`GET /v2/health/ready`).
    pub fn start(batching: AdaptiveBatching) -> MlServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = repo_root().join("tests/python/mlserver");
        let repository = dir.path().join("repository");
        let (http_port, grpc_port) = (free_port(), free_port());

        let mut settings = read_json(&source.join("settings.json"));
        settings["http_port"] = http_port.into();
        settings["grpc_port"] = grpc_port.into();
        write_json(&repository.join("settings.json"), &settings);
        for path in model_settings(&source) {
            let mut model = read_json(&path);
            let (size, time) = match batching {
                AdaptiveBatching::Off => (1, 0.0),
                AdaptiveBatching::On { max_batch_size, max_batch_time_s } => (max_batch_size, max_batch_time_s),
            };
            model["max_batch_size"] = size.into();
            model["max_batch_time"] = time.into();
            let relative = path.strip_prefix(&source).expect("under the source folder");
            write_json(&repository.join(relative), &model);
        }

        let calls = dir.path().join("calls.jsonl");
        let python = crate::python::python();
        let mut command = Command::new(python.with_file_name("mlserver"));
        command
            .arg("start")
            .arg(&repository)
            // MLServer keeps its .envs and .metrics folders in the working directory.
            .current_dir(dir.path())
            .env("PYTHONPATH", &source)
            // No __pycache__ left in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("TFGATE_MLSERVER_CALLS", &calls)
            .env("TFGATE_MLSERVER_WATCH_STDIN", "1")
            .stdin(Stdio::piped());
        let mut process = Process::spawn_with_stdin("mlserver", command, &dir.path().join("mlserver.log"));
        let http = HttpClient::new(format!("http://127.0.0.1:{http_port}"));
        // A second or two when idle; importing MLServer's stack takes longer on a loaded machine.
        process.wait_until_within("it is ready", Duration::from_secs(90), || {
            tcp_accepts(http_port) && tcp_accepts(grpc_port) && http.get("/v2/health/ready").status == 200
        });
        MlServer { http_port, grpc_port, calls, process, _dir: dir }
    }

    /// `http://127.0.0.1:PORT` of its gRPC server, as the daemon's `[backend] grpc` names it.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// `127.0.0.1:PORT` of its gRPC server, as tritonclient takes it.
    pub fn grpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// `127.0.0.1:PORT` of its HTTP server.
    pub fn http_address(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// Every predict call served so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let text = std::fs::read_to_string(&self.calls).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("a call line");
                Call {
                    model: v["model"].as_str().unwrap_or_default().to_string(),
                    version: v["version"].as_str().unwrap_or_default().to_string(),
                    rows: v["rows"].as_u64().unwrap_or(0),
                }
            })
            .collect()
    }

    /// The rows of each predict call to `model` so far, in order.
    pub fn rows_per_call(&self, model: &str) -> Vec<u64> {
        self.calls().into_iter().filter(|c| c.model == model).map(|c| c.rows).collect()
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("model folder");
    std::fs::write(path, serde_json::to_string_pretty(value).expect("JSON")).expect("write settings");
}

/// Every `model-settings.json` under `dir`.
fn model_settings(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the MLServer folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(model_settings(&path));
        } else if path.file_name().is_some_and(|n| n == "model-settings.json") {
            found.push(path);
        }
    }
    found.sort();
    found
}
