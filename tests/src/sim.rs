use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;

use crate::paths::release_binary;
use crate::process::{free_port, Process};

/// `tfs-sim`, the TF Serving simulator, on a loopback port.
pub struct Sim {
    pub port: u16,
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts the simulator with extra arguments (e.g. `["--cost-us", "2000,20"]`).
    pub fn start(args: &[&str]) -> Sim {
        Self::start_at(Ipv4Addr::LOCALHOST, free_port(), args)
    }

    /// Starts the simulator on `ip:port` (any 127.x.y.z address is the loopback interface, so
    /// several replicas can share one port as they would on different hosts).
    pub fn start_at(ip: Ipv4Addr, port: u16, args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(release_binary("tfs-sim"));
        command.arg("--listen").arg(format!("{ip}:{port}")).args(args);
        let mut process = Process::spawn("tfs-sim", command, &dir.path().join("tfs-sim.log"));
        process.wait_until("its gRPC port accepts", || TcpStream::connect((ip, port)).is_ok());
        Sim { port, process, _dir: dir }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
