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
use tfgate_batcher::trace;

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
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            init_logging(None::<NoLayer>);
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
            init_logging(None::<NoLayer>);
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        // The OTLP exporter's connection lives on the runtime.
        let exporter = match trace::export::layer(&config.tracing) {
            Ok(Some((layer, exporter))) => {
                init_logging(Some(layer));
                Some(exporter)
            }
            Ok(None) => {
                init_logging(None::<NoLayer>);
                None
            }
            Err(e) => {
                init_logging(None::<NoLayer>);
                return Err(e);
            }
        };
        if let Some(endpoint) = &config.tracing.otlp_endpoint {
            tracing::info!(
                "traces: exporting request spans to {endpoint} (sampling_ratio {})",
                config.tracing.sampling_ratio
            );
        }
        let result = server::run(config, path).await.map_err(|e| e.to_string());
        if let Some(exporter) = exporter {
            // Its export thread blocks on the runtime: not from inside it.
            tokio::task::spawn_blocking(move || exporter.shutdown()).await.ok();
        }
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// No request-trace layer (tracing off).
type NoLayer = tracing_subscriber::layer::Identity;

/// Logs to stderr at the level of RUST_LOG (default info); colours only on a terminal. The
/// request spans go only to `traces` (the OTLP exporter), never to the log. Without traces the
/// log's filter is the subscriber's own, as it always was: per-layer filters are used only
/// when there are two layers to tell apart.
fn init_logging<L>(traces: Option<L>)
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let quiet_spans = format!("{}=off", trace::TARGET);
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(format!("{spec},{quiet_spans}")) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(format!("info,{quiet_spans}")), Some(format!("RUST_LOG={spec:?} ignored: {e}"))),
        },
        _ => (EnvFilter::new(format!("info,{quiet_spans}")), None),
    };
    let ansi = std::io::stderr().is_terminal();
    match traces {
        Some(traces) => {
            let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
            tracing_subscriber::registry().with(traces).with(log.with_filter(filter)).init()
        }
        None => tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init(),
    }
    if let Some(warning) = bad_filter {
        tracing::warn!("{warning}");
    }
}
