//! The `tfgate-batcher` executable: arguments, logging, runtime; the daemon itself is the
//! library (see `lib.rs` for the layout).

use std::io::IsTerminal;
use std::process::ExitCode;

use tfgate_batcher::cli::{self, Command};
use tikv_jemallocator::Jemalloc;

/// jemalloc, not glibc's malloc: after a burst of large requests the memory goes back to the
/// system (background purging, `.cargo/config.toml`; measured by `scripts/bench-memory.sh`).
#[global_allocator]
static ALLOCATOR: Jemalloc = Jemalloc;
use tfgate_batcher::config::Config;
use tfgate_batcher::server;

fn main() -> ExitCode {
    match cli::parse_or_exit() {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(config) => {
                println!("{}", config.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tfgate-batcher: invalid config: {e}");
                ExitCode::from(1)
            }
        },
        Command::OidcConfig { issuer, jwks_location } => tfgate_batcher::oidc::run(&issuer, &jwks_location),
        Command::Run { config } => run(&config),
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    init_logging();
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("invalid config: {e}");
            return ExitCode::from(1);
        }
    };
    // One thread by default: a request then crosses no thread, and an idle worker is never
    // woken to look for work (see docs/benchmarks.md, "The c=1 path").
    let mut builder = match config.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(server::run(config, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr at the level of RUST_LOG (default info); colours only on a terminal.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("RUST_LOG={spec:?} ignored: {e}"))),
        },
        _ => (EnvFilter::new("info"), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(warning) = bad_filter {
        tracing::warn!("{warning}");
    }
}
