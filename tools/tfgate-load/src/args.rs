//! The command line (clap).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load for tfgate's benchmarks. Closed loop (default): N clients, each sending one request
/// after another. Open loop (--rate): Poisson arrivals at R requests/s whatever the answers,
/// with latency measured from each request's scheduled send time (no coordinated omission).
/// Prints one JSON line: requests (answered), errors, refused (503/429, UNAVAILABLE/
/// RESOURCE_EXHAUSTED), gave_up, rps (answered per second), p50_us, p90_us, p99_us, max_us
/// (of the answered), refused_p90_us, refused_p99_us.
#[derive(Debug, Parser)]
#[command(name = "tfgate-load", version)]
pub struct Options {
    #[command(subcommand)]
    pub mode: Mode,
    #[command(flatten)]
    pub load: Load,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// POST a body to a URL over keep-alive HTTP/1.1 connections (one per client)
    Http {
        #[arg(long)]
        url: String,
        /// The request body
        #[arg(long, default_value = r#"{"instances": [1.0]}"#, conflicts_with = "body_file")]
        body: String,
        /// Read the request body from this file instead
        #[arg(long, value_name = "FILE")]
        body_file: Option<std::path::PathBuf>,
        /// Instead of a body: one row per request, `{"instances": [K.0]}`, K drawn from a
        /// Zipf(1.0) law over 0..N (K = 0 the most frequent), from --seed
        #[arg(long, value_name = "N", conflicts_with_all = ["body", "body_file", "distinct"], value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        zipf: Option<u32>,
        /// Instead of a body: one row per request, a value never sent before: --seed x 1,000,000,
        /// then the next (exact as float32 for seeds up to 15)
        #[arg(long, conflicts_with_all = ["body", "body_file"])]
        distinct: bool,
        /// An extra request header, `Name: value` (repeatable)
        #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
        headers: Vec<String>,
    },
    /// Predict calls (input `x`, DT_FLOAT, one row of --row-floats values) over one HTTP/2
    /// connection: straight to TF Serving, or to a gRPC gateway
    Grpc {
        /// http://HOST:PORT
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "half_plus_two")]
        model: String,
        /// Default: the latest
        #[arg(long)]
        version: Option<i64>,
        /// Values in the one row sent (e.g. 784, or 150528 for a 224x224x3 image)
        #[arg(long, default_value_t = 1)]
        row_floats: usize,
        /// Send the row in tensor_content (bytes) rather than float_val
        #[arg(long)]
        tensor_content: bool,
        /// Extra request metadata, `name: value` (repeatable), e.g. `authorization: Bearer ...`
        #[arg(long = "metadata", short = 'M', value_name = "NAME: VALUE")]
        metadata: Vec<String>,
    },
    /// The Open Inference Protocol's ModelInfer (input `x`, FP32, one row of --row-floats values
    /// in raw_input_contents, as tritonclient sends it) over one HTTP/2 connection: straight to a
    /// v2 server (Triton, MLServer), or through tfgate
    V2Grpc {
        /// http://HOST:PORT
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "half_plus_two")]
        model: String,
        /// Default: the server's choice
        #[arg(long)]
        version: Option<i64>,
        /// Values in the one row sent
        #[arg(long, default_value_t = 1)]
        row_floats: usize,
        /// Extra request metadata, `name: value` (repeatable)
        #[arg(long = "metadata", short = 'M', value_name = "NAME: VALUE")]
        metadata: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct Load {
    /// Closed loop: concurrent clients. Open loop: the most requests in flight at once (for
    /// http, connections)
    #[arg(short, long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Open loop: Poisson arrivals at this many requests per second
    #[arg(long, global = true, value_name = "R")]
    pub rate: Option<f64>,
    /// Stop after this many requests in all (with -c N and --requests N: a burst of N at once)
    #[arg(long, global = true, value_name = "N")]
    pub requests: Option<u64>,
    /// Measured time in seconds, e.g. 3 or 2.5
    #[arg(short, long, global = true, default_value = "3", value_parser = seconds)]
    pub duration: Duration,
    /// Time before measuring, in seconds
    #[arg(long, global = true, default_value = "0.5", value_parser = seconds)]
    pub warmup: Duration,
    /// Runtime threads (1 leaves the cores to what is measured)
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// A caller's patience in seconds: with no answer by then it hangs up (closes its HTTP/1.1
    /// connection, resets its HTTP/2 stream) and counts as gave_up. In the open loop it counts
    /// from the scheduled send time
    #[arg(long, global = true, value_name = "SECONDS", value_parser = seconds)]
    pub give_up: Option<Duration>,
    /// Seed of the open-loop arrival times (the same seed, the same schedule)
    #[arg(long, global = true, default_value_t = 1)]
    pub seed: u64,
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Http { .. } => "http",
            Mode::Grpc { .. } => "grpc",
            Mode::V2Grpc { .. } => "v2-grpc",
        }
    }
}

/// `Name: value`.
pub fn header_pair(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw.split_once(':').ok_or_else(|| format!("expected NAME: VALUE, got {raw:?}"))?;
    Ok((name.trim().to_string(), value.trim().to_string()))
}

fn seconds(value: &str) -> Result<Duration, String> {
    let secs: f64 = value.parse().map_err(|_| format!("expected seconds, got {value:?}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("expected seconds, got {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("tfgate-load").chain(args.iter().copied()))
    }

    #[test]
    fn parses_both_modes() {
        let o = p(&["http", "--url", "http://h:1/x", "-c", "8", "-d", "1.5", "-H", "Authorization: Bearer t"]).unwrap();
        assert_eq!((o.load.concurrency, o.load.duration), (8, Duration::from_millis(1500)));
        assert!(matches!(o.mode, Mode::Http { ref body, ref headers, .. }
            if body.contains("instances") && headers == &["Authorization: Bearer t"]));
        let o =
            p(&["grpc", "--target", "http://h:1", "--version", "2", "--rate", "500", "--row-floats", "784"]).unwrap();
        assert!(
            matches!(o.mode, Mode::Grpc { version: Some(2), row_floats: 784, ref model, .. } if model == "half_plus_two")
        );
        assert_eq!(o.load.rate, Some(500.0));
        let o = p(&["v2-grpc", "--target", "http://h:1", "--row-floats", "4"]).unwrap();
        assert!(matches!(o.mode, Mode::V2Grpc { version: None, row_floats: 4, .. }));
        assert_eq!(o.load.give_up, None);
        let o = p(&["http", "--url", "u", "--give-up", "0.25"]).unwrap();
        assert_eq!(o.load.give_up, Some(Duration::from_millis(250)));
        assert_eq!(p(&["--help"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(header_pair("a: b c").unwrap(), ("a".to_string(), "b c".to_string()));
    }

    #[test]
    fn refuses_mistakes() {
        for args in [
            &["ftp"][..],
            &["http"],
            &["grpc"],
            &["http", "--url", "u", "-c", "0"],
            &["http", "--url", "u", "-d", "x"],
            &["http", "--bogus"],
        ] {
            assert!(p(args).is_err(), "{args:?}");
        }
    }
}
