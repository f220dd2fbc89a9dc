//! Harness pieces for the batching and conversion tests: simulators with their control
//! endpoint, a daemon with a config written in full (metrics listener, several backends,
//! per-model tables), a plain HTTP/1.1 client over the daemon's Unix socket (for requests that
//! carry trusted headers, as nginx would send them), and Prometheus text parsing.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::client::{HttpClient, Response};
use crate::nginx::{Nginx, NginxConfig};
use crate::paths::release_binary;
use crate::process::{free_port, tcp_accepts, unix_accepts, Process};
use crate::sim::Sim;

/// A simulator and a client for its control endpoint (`--stats-listen`).
pub struct ControlledSim {
    pub sim: Sim,
    pub control: HttpClient,
}

impl ControlledSim {
    pub fn start(args: &[&str]) -> ControlledSim {
        Self::start_at(Ipv4Addr::LOCALHOST, free_port(), args)
    }

    /// Serving gRPC on `ip:grpc_port`; the control endpoint stays on 127.0.0.1.
    pub fn start_at(ip: Ipv4Addr, grpc_port: u16, args: &[&str]) -> ControlledSim {
        let port = free_port();
        let stats = format!("127.0.0.1:{port}");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--stats-listen", &stats]);
        let sim = Sim::start_at(ip, grpc_port, &all);
        let mut waited = 0;
        while !tcp_accepts(port) && waited < 200 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        ControlledSim { sim, control: HttpClient::new(format!("http://{stats}")) }
    }

    pub fn grpc_url(&self) -> String {
        self.sim.grpc_url()
    }

    /// `GET /stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        self.control.get("/stats").json()
    }

    pub fn reset(&self) {
        assert_eq!(self.control.post("/reset", "").status, 200);
    }

    /// `POST /fail`, `/delay`, `/load` with a query.
    pub fn control(&self, path_and_query: &str) {
        let r = self.control.post(path_and_query, "");
        assert_eq!(r.status, 200, "{path_and_query}: {}", r.body);
    }
}

/// `tfgate-batcher` with a config written by the test.
pub struct BatchDaemon {
    pub socket: PathBuf,
    pub metrics: HttpClient,
    pub process: Process,
    metrics_port: u16,
}

impl BatchDaemon {
    /// `backend_extra` goes into `[backend]` (after `grpc`), `tables` after it
    /// (`[batching]`, `[models.NAME]`).
    pub fn start(dir: &Path, grpc_urls: &[String], backend_extra: &str, tables: &str) -> BatchDaemon {
        Self::start_with_top(dir, grpc_urls, "", backend_extra, tables)
    }

    /// As [`BatchDaemon::start`], with `top` at the top level of the file (before `[backend]`).
    pub fn start_with_top(
        dir: &Path,
        grpc_urls: &[String],
        top: &str,
        backend_extra: &str,
        tables: &str,
    ) -> BatchDaemon {
        let socket = dir.join("batcher.sock");
        let metrics_port = free_port();
        let grpc: Vec<String> = grpc_urls.iter().map(|u| format!("\"{u}\"")).collect();
        let toml = format!(
            "listen = \"{}\"\nsocket_mode = \"0666\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n{top}\n\n[backend]\ngrpc = [{}]\n{backend_extra}\n\n{tables}\n",
            socket.display(),
            grpc.join(", ")
        );
        let config = dir.join("batcher.toml");
        std::fs::write(&config, toml).expect("daemon config");
        let mut command = Command::new(release_binary("tfgate-batcher"));
        command.arg("--config").arg(&config).env("RUST_LOG", "info");
        let mut process = Process::spawn("tfgate-batcher", command, &dir.join("batcher.log"));
        process.wait_until("its socket accepts", || unix_accepts(&socket));
        BatchDaemon {
            socket,
            metrics: HttpClient::new(format!("http://127.0.0.1:{metrics_port}")),
            process,
            metrics_port,
        }
    }

    /// `HOST:PORT` of `metrics_listen`.
    pub fn metrics_address(&self) -> String {
        format!("127.0.0.1:{}", self.metrics_port)
    }

    pub fn client(&self) -> UnixClient {
        UnixClient { socket: self.socket.clone() }
    }

    /// `GET /metrics` text.
    pub fn metrics_text(&self) -> String {
        let r = self.metrics.get("/metrics");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// The value of one series (e.g. `tfgate_batches_total{model="m",reason="full"}`), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics_text(), series).unwrap_or(0.0)
    }
}

/// The value of `series` (its name and labels exactly as written) in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Simulator(s), daemon and nginx for one test, stopped on drop (nginx first).
pub struct BatchStack {
    pub nginx: Nginx,
    pub daemon: BatchDaemon,
    pub sims: Vec<ControlledSim>,
    pub dir: tempfile::TempDir,
}

impl BatchStack {
    /// One simulator started with `sim_args`; nginx without a model catalog (every model
    /// passes through to the daemon, as with TF Serving).
    pub fn start(sim_args: &[&str], tables: &str) -> BatchStack {
        Self::start_with(&[sim_args], "", tables)
    }

    pub fn start_with(sims: &[&[&str]], backend_extra: &str, tables: &str) -> BatchStack {
        Self::start_configured(sims, "", backend_extra, tables)
    }

    /// `top`: top-level daemon keys (connection limits, memory budget...).
    pub fn start_configured(sims: &[&[&str]], top: &str, backend_extra: &str, tables: &str) -> BatchStack {
        let dir = tempfile::tempdir().expect("temp dir");
        let sims: Vec<ControlledSim> = sims.iter().map(|args| ControlledSim::start(args)).collect();
        let urls: Vec<String> = sims.iter().map(ControlledSim::grpc_url).collect();
        let daemon = BatchDaemon::start_with_top(dir.path(), &urls, top, backend_extra, tables);
        let nginx_config = NginxConfig { server_extra: String::new(), ..NginxConfig::default() };
        let nginx = Nginx::start(dir.path(), &daemon.socket, &nginx_config);
        BatchStack { nginx, daemon, sims, dir }
    }

    /// With the gRPC API: the daemon on `grpc_listen`, and nginx's gRPC server in front of it
    /// (`server_extra`: the catalog, shared with the REST server).
    pub fn start_grpc(sim_args: &[&str], server_extra: &str, grpc_location_extra: &str, tables: &str) -> BatchStack {
        let dir = tempfile::tempdir().expect("temp dir");
        let sims = vec![ControlledSim::start(sim_args)];
        let urls: Vec<String> = sims.iter().map(ControlledSim::grpc_url).collect();
        let grpc_socket = dir.path().join("grpc.sock");
        let top = format!("grpc_listen = \"{}\"", grpc_socket.display());
        let daemon = BatchDaemon::start_with_top(dir.path(), &urls, &top, "", tables);
        let nginx_config = NginxConfig {
            server_extra: server_extra.to_string(),
            grpc_socket: Some(grpc_socket),
            grpc_location_extra: grpc_location_extra.to_string(),
            ..NginxConfig::default()
        };
        let nginx = Nginx::start(dir.path(), &daemon.socket, &nginx_config);
        BatchStack { nginx, daemon, sims, dir }
    }

    /// `http://127.0.0.1:PORT` of nginx's gRPC server.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx.grpc_port)
    }

    /// A client through nginx.
    pub fn client(&self) -> HttpClient {
        self.nginx.client()
    }

    pub fn sim(&self) -> &ControlledSim {
        &self.sims[0]
    }
}

/// A blocking HTTP/1.1 client over the daemon's Unix socket (one connection per request).
#[derive(Clone)]
pub struct UnixClient {
    socket: PathBuf,
}

impl UnixClient {
    pub fn new(socket: &Path) -> UnixClient {
        UnixClient { socket: socket.to_path_buf() }
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.send("POST", path, headers, body)
    }

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let mut stream = UnixStream::connect(&self.socket).expect("connect to the daemon");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: tfgate\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).expect("send");
        read_response(&mut BufReader::new(stream))
    }
}

/// Reads one HTTP/1.1 answer, its body sized by `Content-Length` or sent in chunks (a large
/// answer is written while its later batches still run).
pub fn read_response(reader: &mut impl BufRead) -> Response {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    let mut length = 0;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            }
            if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
            headers.push((name.to_string(), value));
        }
    }
    let body = if chunked { read_chunks(reader) } else { read_exactly(reader, length) };
    Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn read_exactly(reader: &mut impl BufRead, length: usize) -> Vec<u8> {
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    body
}

fn read_chunks(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).expect("chunk size");
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).expect("chunk size");
        body.extend(read_exactly(reader, size));
        let mut end = String::new();
        reader.read_line(&mut end).expect("chunk end");
        if size == 0 {
            return body;
        }
    }
}
