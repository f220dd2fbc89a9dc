//! Debian's Prometheus server and nginx exporter (packages `prometheus` and
//! `prometheus-nginx-exporter`), each on a free loopback port with its own files: never the
//! system services the packages may have started.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::HttpClient;
use crate::process::{free_port, tcp_accepts, Process};

/// `prometheus-nginx-exporter` reading an nginx `stub_status` page.
pub struct NginxExporter {
    pub port: u16,
    pub process: Process,
}

impl NginxExporter {
    /// `stub_status_url`: e.g. `http://127.0.0.1:PORT/stub_status`.
    pub fn start(dir: &Path, stub_status_url: &str) -> NginxExporter {
        let port = free_port();
        let mut command = Command::new("prometheus-nginx-exporter");
        command
            .arg(format!("-nginx.scrape-uri={stub_status_url}"))
            .arg(format!("-web.listen-address=127.0.0.1:{port}"));
        let mut process = Process::spawn("prometheus-nginx-exporter", command, &dir.join("nginx-exporter.log"));
        process.wait_until("its port accepts", || tcp_accepts(port));
        NginxExporter { port, process }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A Prometheus server scraping `targets` and evaluating `rule_files`, every `interval`.
pub struct Prometheus {
    pub api: HttpClient,
    pub process: Process,
}

impl Prometheus {
    /// `targets`: (job name, `HOST:PORT`) pairs.
    pub fn start(dir: &Path, targets: &[(&str, String)], rule_files: &[&Path], interval: &str) -> Prometheus {
        let port = free_port();
        let home = dir.join("prometheus");
        std::fs::create_dir_all(home.join("data")).expect("prometheus dir");
        let mut config = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\nrule_files:\n"
        );
        for file in rule_files {
            config.push_str(&format!("  - {}\n", file.display()));
        }
        config.push_str("scrape_configs:\n");
        for (job, address) in targets {
            config.push_str(&format!("  - job_name: {job}\n    static_configs:\n      - targets: [\"{address}\"]\n"));
        }
        let config_path = home.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus.yml");
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", home.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut process = Process::spawn("prometheus", command, &home.join("prometheus.log"));
        let api = HttpClient::new(format!("http://127.0.0.1:{port}"));
        process.wait_until("it is ready", || tcp_accepts(port) && api.get("/-/ready").status == 200);
        Prometheus { api, process }
    }

    /// `GET /api/v1/PATH`'s `data`, failing the test on anything but success.
    pub fn get(&self, path: &str) -> Value {
        let response = self.api.get(&format!("/api/v1/{path}"));
        assert_eq!(response.status, 200, "GET /api/v1/{path}: {}", response.body);
        let body = response.json();
        assert_eq!(body["status"], "success", "GET /api/v1/{path}: {body}");
        body["data"].clone()
    }

    /// The instant vector `expr` evaluates to now (the samples of its `result`).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let response = self.api.send(
            "POST",
            "/api/v1/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(&format!("query={}", form_encode(expr))),
        );
        assert_eq!(response.status, 200, "query {expr}: {}", response.body);
        let body = response.json();
        assert_eq!(body["status"], "success", "query {expr}: {body}");
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `ready` holds for what [`Prometheus::get`] answers at `path`, up to `timeout`;
    /// returns the last answer either way (the caller asserts on it, with it in the message).
    pub fn wait_for(&self, path: &str, timeout: Duration, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let data = self.get(path);
            if ready(&data) || Instant::now() > deadline {
                return data;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// `application/x-www-form-urlencoded` of one value: PromQL has quotes, braces, `=~`, `+`.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
