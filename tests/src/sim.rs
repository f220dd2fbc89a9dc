use std::process::Command;

use crate::paths::release_binary;
use crate::process::{free_port, tcp_accepts, Process};

/// `tfs-sim`, the TF Serving simulator, on a loopback port.
pub struct Sim {
    pub port: u16,
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts the simulator with extra arguments (e.g. `["--cost-us", "2000,20"]`).
    pub fn start(args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut command = Command::new(release_binary("tfs-sim"));
        command.arg("--listen").arg(format!("127.0.0.1:{port}")).args(args);
        let mut process = Process::spawn("tfs-sim", command, &dir.path().join("tfs-sim.log"));
        process.wait_until("its gRPC port accepts", || tcp_accepts(port));
        Sim { port, process, _dir: dir }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
