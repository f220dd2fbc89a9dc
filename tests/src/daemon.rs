use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::release_binary;
use crate::process::{unix_accepts, Process};

/// Extra TOML for the daemon's configuration.
#[derive(Default, Clone)]
pub struct DaemonConfig {
    /// Tables after `[backend]` (e.g. a `[batching]` table).
    pub extra_toml: String,
    /// Top-level keys (written before any table).
    pub top_level_toml: String,
}

/// `tfgate-batcher` listening on a Unix socket in the test's directory.
pub struct Daemon {
    pub socket: PathBuf,
    pub config_path: PathBuf,
    pub process: Process,
}

impl Daemon {
    pub fn start(dir: &Path, grpc_url: &str, config: &DaemonConfig) -> Daemon {
        Self::start_binary(&release_binary("tfgate-batcher"), dir, grpc_url, config)
    }

    /// Starts another build of the daemon (e.g. an installed copy).
    pub fn start_binary(binary: &Path, dir: &Path, grpc_url: &str, config: &DaemonConfig) -> Daemon {
        let socket = dir.join("batcher.sock");
        let config_path = dir.join("batcher.toml");
        let toml = format!(
            "listen = \"{}\"\nsocket_mode = \"0666\"\n{}\n\n[backend]\ngrpc = [\"{grpc_url}\"]\n\n{}\n",
            socket.display(),
            config.top_level_toml,
            config.extra_toml
        );
        std::fs::write(&config_path, toml).expect("daemon config");
        let mut command = Command::new(binary);
        command.arg("--config").arg(&config_path).env("RUST_LOG", "info");
        let mut process = Process::spawn("tfgate-batcher", command, &dir.join("batcher.log"));
        process.wait_until("its socket accepts", || unix_accepts(&socket));
        Daemon { socket, config_path, process }
    }
}

impl DaemonConfig {
    /// A daemon serving its metrics on a free loopback port, and that address: its
    /// `tfgate_requests_total` tells which requests reached it ([`requests_counted`]).
    pub fn with_metrics() -> (DaemonConfig, String) {
        let address = format!("127.0.0.1:{}", crate::free_port());
        let config =
            DaemonConfig { top_level_toml: format!("metrics_listen = \"{address}\""), ..DaemonConfig::default() };
        (config, address)
    }
}

/// The `tfgate_requests_total` series of the daemon whose metrics are at `address`: one per
/// model, version, method and status it answered.
pub fn requests_counted(address: &str) -> Vec<String> {
    let text = crate::HttpClient::new(format!("http://{address}")).get("/metrics").body;
    text.lines().filter(|l| l.starts_with("tfgate_requests_total{")).map(str::to_string).collect()
}
