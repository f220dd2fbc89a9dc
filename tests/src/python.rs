//! The Python test environment (real TensorFlow, TF Serving's Python API, grpcio), made once
//! by `scripts/python-env.sh` and reused, and scripts under `tests/python/` run with it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::paths::repo_root;

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
