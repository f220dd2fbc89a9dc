//! `redis-server` (Debian's package) on a free loopback port, without persistence, for the
//! shared-quota tests: it can be killed as in a crash and started again, empty, on its port.

use std::process::Command;
use std::time::Duration;

use crate::process::{free_port, Process};

pub struct Redis {
    pub port: u16,
    process: Option<Process>,
    dir: tempfile::TempDir,
    starts: u32,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis =
            Redis { port: free_port(), process: None, dir: tempfile::tempdir().expect("temp dir"), starts: 0 };
        redis.restart();
        redis
    }

    /// The `store` value of a daemon's `[quotas]`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash: no goodbye to the clients connected.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal("KILL");
            process.wait_exit(Duration::from_secs(5));
        }
    }

    /// Starts the server (again) on its port; it holds no key.
    pub fn restart(&mut self) {
        self.kill();
        self.starts += 1;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        let log = self.dir.path().join(format!("redis-{}.log", self.starts));
        let mut process = Process::spawn("redis-server", command, &log);
        process.wait_until("it answers PING", || self.cli(&["PING"]) == "PONG");
        self.process = Some(process);
    }

    /// `redis-cli ARGS` against this server: its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (Debian package redis-tools, a dependency of redis-server)");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}
