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
    /// For a TLS server with an ACL user: its `redis-server` and `redis-cli` arguments.
    secure: Option<Secure>,
}

/// A server on `--tls-port` only, with its own certificate and an ACL user (the default user
/// off), as managed Redis services are.
#[derive(Clone)]
pub struct Secure {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub ca: std::path::PathBuf,
    pub user: String,
    pub password: String,
    /// `--tls-auth-clients yes`: a client certificate signed by `ca` is required.
    pub client_certificates: bool,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            process: None,
            dir: tempfile::tempdir().expect("temp dir"),
            starts: 0,
            secure: None,
        };
        redis.restart();
        redis
    }

    /// A TLS-only server with an ACL user.
    pub fn start_secure(secure: Secure) -> Redis {
        let mut redis = Redis {
            port: free_port(),
            process: None,
            dir: tempfile::tempdir().expect("temp dir"),
            starts: 0,
            secure: Some(secure),
        };
        redis.restart();
        redis
    }

    /// The `store` value of a daemon's `[quotas]`.
    pub fn url(&self) -> String {
        match self.secure {
            Some(_) => format!("rediss://localhost:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
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
        match &self.secure {
            None => command.args(["--port", &self.port.to_string()]),
            Some(secure) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&secure.cert)
                .arg("--tls-key-file")
                .arg(&secure.key)
                .arg("--tls-ca-cert-file")
                .arg(&secure.ca)
                .args(["--tls-auth-clients", if secure.client_certificates { "yes" } else { "no" }])
                .args(["--user", "default", "off"])
                .args(["--user", &secure.user, "on", &format!(">{}", secure.password), "~*", "&*", "+@all"]),
        };
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]).arg("--dir").arg(self.dir.path());
        let log = self.dir.path().join(format!("redis-{}.log", self.starts));
        let mut process = Process::spawn("redis-server", command, &log);
        process.wait_until("it answers PING", || self.cli(&["PING"]) == "PONG");
        self.process = Some(process);
    }

    /// `redis-cli ARGS` against this server: its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(self.secure.as_ref().map(cli_secure).unwrap_or_default())
            .args(args)
            .output()
            .expect("redis-cli (Debian package redis-tools, a dependency of redis-server)");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

/// `redis-cli`'s arguments for a secure server: TLS against its CA (with the server's own
/// certificate as the client's where client certificates are required) and the ACL user.
fn cli_secure(secure: &Secure) -> Vec<String> {
    let mut args = vec!["--tls".to_string(), "--cacert".to_string(), secure.ca.display().to_string()];
    if secure.client_certificates {
        args.extend(["--cert".to_string(), secure.cert.display().to_string()]);
        args.extend(["--key".to_string(), secure.key.display().to_string()]);
    }
    args.extend(["--user".to_string(), secure.user.clone(), "--pass".to_string(), secure.password.clone()]);
    args.push("--no-auth-warning".to_string());
    args
}
