//! A child process that is always stopped, and whose log is shown when a test fails.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a component may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Process {
    pub name: &'static str,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    /// Spawns `command` with stdout and stderr going to `log` (and no stdin).
    pub fn spawn(name: &'static str, mut command: Command, log: &Path) -> Process {
        command.stdin(Stdio::null());
        Self::spawn_with_stdin(name, command, log)
    }

    /// As [`Process::spawn`], with the stdin `command` was given.
    pub fn spawn_with_stdin(name: &'static str, mut command: Command, log: &Path) -> Process {
        let out = File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        command.stdout(out).stderr(err);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process { name, child: Some(child), log: log.to_path_buf() }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits until `ready` holds, failing the test with the process log if it exits or times out.
    pub fn wait_until(&mut self, what: &str, ready: impl FnMut() -> bool) {
        self.wait_until_within(what, READY_TIMEOUT, ready)
    }

    /// As [`Process::wait_until`], for a process that takes longer to start (a Python server
    /// importing TensorFlow).
    pub fn wait_until_within(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("{} exited ({status}) before {what}:\n{}", self.name, self.log_text());
            }
            if start.elapsed() > timeout {
                panic!("{} not ready ({what}) after {timeout:?}:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (e.g. "TERM") to the process.
    pub fn signal(&self, signal: &str) {
        if self.pid() != 0 {
            let _ = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status();
        }
    }

    /// Waits for the process to exit, up to `timeout`; returns whether it exited successfully.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<bool> {
        let start = Instant::now();
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.success());
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process now (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal("TERM");
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- {} log ({}) ----\n{}", self.name, self.log.display(), tail(&self.log_text(), 60));
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback TCP port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

pub fn tcp_accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

pub fn unix_accepts(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}
