//! Test harness: starts the real components on loopback for one test and always stops them.
//!
//! - [`Sim`]: `tfs-sim` on a free TCP port (real gRPC).
//! - [`Daemon`]: `tfgate-batcher` on a Unix socket, pointed at the simulator.
//! - [`Dnsmasq`]: a DNS server on loopback answering from a hosts file the test rewrites.
//! - [`Nginx`]: the installed `nginx` binary with `load_module` of the freshly built module,
//!   its own prefix, temp paths and a loopback port, proxying to the daemon.
//! - [`Redis`]: `redis-server` on a free port (shared quotas), which a test may kill and restart.
//! - [`grpc_wire`]: raw HTTP/2 calls to the daemon's gRPC socket.
//! - [`Prometheus`], [`NginxExporter`]: Debian's Prometheus server scraping the daemon, and its
//!   nginx exporter reading the test nginx's `stub_status`.
//!
//! The binaries come from `target/release` (`scripts/build.sh` builds them).

pub mod batching_stack;
mod client;
mod daemon;
pub mod daemon_ops;
mod dnsmasq;
pub mod golden;
pub mod grpc_wire;
mod idp;
pub mod mlserver;
mod nginx;
mod paths;
mod process;
mod prometheus;
pub mod python;
mod redis;
mod sim;
pub mod tensors;
pub mod tls;

pub use client::{HttpClient, Response};
pub use daemon::{requests_counted, Daemon, DaemonConfig};
pub use dnsmasq::Dnsmasq;
pub use idp::Idp;
pub use nginx::{load_module_line, nginx_test_config, Nginx, NginxConfig};
pub use paths::{release_binary, repo_root};
pub use process::free_port;
pub use prometheus::{NginxExporter, Prometheus};
pub use redis::{Redis, Secure as SecureRedis};
pub use sim::Sim;

/// The three components wired together the usual way.
pub struct Stack {
    pub nginx: Nginx,
    pub daemon: Option<Daemon>,
    pub sim: Option<Sim>,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// Simulator, daemon and nginx, each waited on until it answers.
    pub fn start() -> Stack {
        Self::start_with(DaemonConfig::default(), NginxConfig::default())
    }

    pub fn start_with(daemon_config: DaemonConfig, nginx_config: NginxConfig) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = Sim::start(&[]);
        let daemon = Daemon::start(dir.path(), &sim.grpc_url(), &daemon_config);
        let nginx = Nginx::start(dir.path(), &daemon.socket, &nginx_config);
        Stack { nginx, daemon: Some(daemon), sim: Some(sim), dir }
    }

    pub fn client(&self) -> HttpClient {
        self.nginx.client()
    }
}
