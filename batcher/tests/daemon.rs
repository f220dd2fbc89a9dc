//! The real binary: `check-config`, start-up on a Unix socket, keep-alive, the health listener,
//! and a graceful SIGTERM that still answers the request in flight.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tfgate-batcher");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tfgate-batcher-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One HTTP/1.1 exchange on an open connection: (status, body).
fn exchange(stream: &mut impl ReadWrite, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default().parse().unwrap_or(0);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn write_config(dir: &Path, extra: &str, grpc_port: u16) -> PathBuf {
    let path = dir.join("batcher.toml");
    let text = format!(
        "listen = \"{}\"\nsocket_mode = \"0600\"\n{extra}\n[backend]\ngrpc = [\"http://127.0.0.1:{grpc_port}\"]\n[batching]\ntimeout_ms = 1500\n",
        dir.join("b.sock").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_accepts_good_files_and_names_the_bad_key() {
    let dir = temp_dir("check");
    let good = write_config(&dir, "", 8500);
    let out = Command::new(BIN).args(["check-config", good.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.starts_with("config ok: listen="), "{summary}");
    assert!(summary.contains("\n  [batching] max_batch_size=64 ") && summary.contains("timeout_ms=1500"), "{summary}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, std::fs::read_to_string(&good).unwrap().replace("timeout_ms = 1500", "timeout_ms = -1"))
        .unwrap();
    let out = Command::new(BIN).args(["check-config", bad.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("batching.timeout_ms"));

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/batcher.toml");
    assert!(Command::new(BIN).args(["check-config", example]).output().unwrap().status.success());
    assert!(!Command::new(BIN).arg("--nonsense").output().unwrap().status.success());
}

#[test]
fn serves_on_the_socket_and_drains_on_sigterm() {
    let dir = temp_dir("run");
    // A gRPC backend that accepts connections and never answers: requests wait for timeout_ms.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let health_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write_config(
        &dir,
        &format!("metrics_listen = \"127.0.0.1:{health_port}\""),
        black_hole.local_addr().unwrap().port(),
    );
    let socket = dir.join("b.sock");
    // A stale socket file from an earlier crash must not stop the daemon.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());

    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        let line =
            lines.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for(&format!("listening on {}", socket.display()));
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    let mut health = std::net::TcpStream::connect(("127.0.0.1", health_port)).unwrap();
    assert_eq!(exchange(&mut health, "GET", "/healthz", ""), (200, "ok".to_string()));

    // Two requests on one keep-alive connection.
    let mut conn = UnixStream::connect(&socket).unwrap();
    let (status, body) = exchange(&mut conn, "POST", "/v1/models/m:predict", "not json");
    assert_eq!(status, 400);
    assert!(body.starts_with(r#"{"error":"JSON Parse error"#), "{body}");
    assert_eq!(exchange(&mut conn, "GET", "/v1/models/m:predict", "").0, 405);

    // A request in flight when SIGTERM arrives still gets its answer.
    let in_flight_socket = socket.clone();
    let in_flight = std::thread::spawn(move || {
        let mut conn = UnixStream::connect(&in_flight_socket).unwrap();
        exchange(&mut conn, "POST", "/v1/models/m:predict", r#"{"instances": [1.0]}"#)
    });
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    wait_for("SIGTERM received");
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(child.wait().unwrap().success());
    assert!(!socket.exists(), "the socket file is removed on shutdown");
    drop(black_hole);
}
