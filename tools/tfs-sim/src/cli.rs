//! The command line (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::executor::Cost;
use crate::tls::TlsFiles;

const MODELS: &str = "\
Models:
  half_plus_two  versions 1 (y = 0.5x + 2) and 2 (y = 0.5x + 3); labels stable -> 1, canary -> 2;
                 signature serving_default: input x, output y, DT_FLOAT, any shape
  echo_types     version 1; inputs f32 f64 i32 i64 b s echoed as <name>_out (and s as s_bytes)
  all_types      version 1; one input per dtype (bool int8 int16 int32 int64 uint8 uint16 uint32
                 uint64 half bfloat16 float double string), echoed as <name>_out (string also as
                 string_bytes); inputs are optional
  evolving       version 1: input x DT_FLOAT echoed as y; POST /load?model=evolving&version=2
                 adds version 2, whose x and y are DT_INT64
  fixed3         version 1: y = 2x for x of shape [3] exactly (no batch dimension)
  echo_string    version 1: input s DT_STRING echoed as s_out";

/// A TensorFlow Serving simulator speaking the real gRPC API (PredictionService.Predict,
/// PredictionService.GetModelMetadata, ModelService.GetModelStatus), and the Open Inference
/// Protocol's (inference.GRPCInferenceService) on the same port over the same models.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "tfs-sim", version, after_help = MODELS)]
pub struct Config {
    /// gRPC address, e.g. 127.0.0.1:8500 (port 0 picks a free port); prints
    /// 'tfs-sim listening on ADDR' once bound
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Each Predict occupies an executor for FIXED + PER_ITEM x batch microseconds (batch = dim 0
    /// of the first input); default: no cost
    #[arg(long = "cost-us", value_name = "FIXED,PER_ITEM", value_parser = parse_cost)]
    pub cost: Option<Cost>,
    /// Executors for the cost model; extra calls wait (FIFO)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub executors: u16,
    /// HTTP endpoint: GET /stats (Predict counters as JSON), POST /reset, POST
    /// /fail?code=N&count=K (next K Predicts fail with gRPC code N), POST /delay?us=N (every
    /// Predict takes N us longer), POST /load?model=M&version=V (version V becomes available)
    #[arg(long, value_name = "ADDR")]
    pub stats_listen: Option<SocketAddr>,
    /// Write answers with tensor_content instead of typed *_val fields
    #[arg(long)]
    pub tensor_content: bool,
    /// Serve gRPC over TLS with this PEM certificate chain (with --tls-key), as TF Serving's
    /// --ssl_config_file does; HTTP/2 by ALPN
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates that chain to these PEM CA certificates (mutual TLS)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl Config {
    /// The TLS files, when the gRPC port speaks TLS.
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

fn parse_cost(v: &str) -> Result<Cost, String> {
    let err = || format!("expected FIXED,PER_ITEM in microseconds (e.g. 2000,50), got '{v}'");
    let (fixed, per_item) = v.split_once(',').ok_or_else(err)?;
    Ok(Cost {
        fixed_us: fixed.trim().parse().map_err(|_| err())?,
        per_item_us: per_item.trim().parse().map_err(|_| err())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("tfs-sim").chain(args.iter().copied()))
    }

    #[test]
    fn parses_all_options() {
        let config =
            p(&["--listen", "127.0.0.1:8500", "--cost-us", "2000,50", "--executors=2", "--stats-listen=127.0.0.1:0"]);
        assert_eq!(
            config.unwrap(),
            Config {
                listen: "127.0.0.1:8500".parse().unwrap(),
                cost: Some(Cost { fixed_us: 2000, per_item_us: 50 }),
                executors: 2,
                stats_listen: Some("127.0.0.1:0".parse().unwrap()),
                tensor_content: false,
                tls_cert: None,
                tls_key: None,
                tls_client_ca: None,
            }
        );
        let tls = p(&["--listen=127.0.0.1:0", "--tls-cert=c.pem", "--tls-key=k.pem", "--tls-client-ca=ca.pem"]);
        assert_eq!(
            tls.unwrap().tls(),
            Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into(), client_ca: Some("ca.pem".into()) })
        );
        let c = p(&["--listen=[::1]:0"]).unwrap();
        assert_eq!((c.cost, c.executors, c.stats_listen), (None, 1, None));
        assert_eq!(p(&["--help"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn rejects_bad_arguments() {
        for args in [
            &[][..],
            &["--listen"],
            &["--listen", "localhost"],
            &["--listen", "127.0.0.1:1", "--cost-us", "5"],
            &["--listen", "127.0.0.1:1", "--cost-us", "a,b"],
            &["--listen", "127.0.0.1:1", "--executors", "0"],
            &["--listen", "127.0.0.1:1", "--bogus"],
            &["--listen", "127.0.0.1:1", "--tls-cert", "c.pem"],
            &["--listen", "127.0.0.1:1", "--tls-key", "k.pem"],
            &["--listen", "127.0.0.1:1", "--tls-client-ca", "ca.pem"],
        ] {
            assert!(p(args).is_err(), "{args:?} should fail");
        }
    }
}
