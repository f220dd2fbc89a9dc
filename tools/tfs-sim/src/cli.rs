//! Command-line parsing (by hand, to keep the simulator's dependencies small).

use std::net::SocketAddr;

use crate::executor::Cost;

pub const USAGE: &str = "\
usage: tfs-sim --listen ADDR [--cost-us FIXED,PER_ITEM] [--executors N] [--stats-listen ADDR]
               [--tensor-content]

A TensorFlow Serving simulator speaking the real gRPC API (PredictionService.Predict,
PredictionService.GetModelMetadata, ModelService.GetModelStatus).

Models:
  half_plus_two  versions 1 (y = 0.5x + 2) and 2 (y = 0.5x + 3); labels stable -> 1, canary -> 2;
                 signature serving_default: input x, output y, DT_FLOAT, any shape
  echo_types     version 1; inputs f32 f64 i32 i64 b s echoed as <name>_out (and s as s_bytes)
  all_types      version 1; one input per dtype (bool int8 int16 int32 int64 uint8 uint16 uint32
                 uint64 half bfloat16 float double string), echoed as <name>_out (string also as
                 string_bytes); inputs are optional
  evolving       version 1: input x DT_FLOAT echoed as y; POST /load?model=evolving&version=2
                 adds version 2, whose x and y are DT_INT64

Options:
  --listen ADDR              gRPC address, e.g. 127.0.0.1:8500 (port 0 picks a free port);
                             prints 'tfs-sim listening on ADDR' once bound
  --cost-us FIXED,PER_ITEM   each Predict occupies an executor for FIXED + PER_ITEM x batch
                             microseconds (batch = dim 0 of the first input); default: no cost
  --executors N              executors for the cost model (default 1); extra calls wait (FIFO)
  --stats-listen ADDR        HTTP endpoint: GET /stats (Predict counters as JSON), POST /reset,
                             POST /fail?code=N&count=K (next K Predicts fail with gRPC code N),
                             POST /delay?us=N (every Predict takes N us longer),
                             POST /load?model=M&version=V (version V becomes available)
  --tensor-content           write answers with tensor_content instead of typed *_val fields
  -h, --help                 show this help
";

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub cost: Option<Cost>,
    pub executors: usize,
    pub stats_listen: Option<SocketAddr>,
    pub tensor_content: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    Help,
}

/// Parses the arguments (without the program name). Accepts `--flag VALUE` and `--flag=VALUE`.
/// `-h`/`--help` anywhere wins over everything else.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    let mut listen = None;
    let mut cost = None;
    let mut executors = None;
    let mut stats_listen = None;
    let mut tensor_content = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--tensor-content" {
            tensor_content = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(parse_addr(&flag, &value()?)?),
            "--stats-listen" => stats_listen = Some(parse_addr(&flag, &value()?)?),
            "--cost-us" => cost = Some(parse_cost(&value()?)?),
            "--executors" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => executors = Some(n),
                    _ => return Err(format!("--executors: expected a number from 1 to 1024, got '{v}'")),
                }
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    let listen = listen.ok_or("--listen ADDR is required")?;
    Ok(Command::Run(Config { listen, cost, executors: executors.unwrap_or(1), stats_listen, tensor_content }))
}

fn parse_addr(flag: &str, v: &str) -> Result<SocketAddr, String> {
    v.parse().map_err(|_| format!("{flag}: expected IP:PORT (e.g. 127.0.0.1:8500), got '{v}'"))
}

fn parse_cost(v: &str) -> Result<Cost, String> {
    let err = || format!("--cost-us: expected FIXED,PER_ITEM in microseconds (e.g. 2000,50), got '{v}'");
    let (fixed, per_item) = v.split_once(',').ok_or_else(err)?;
    Ok(Cost {
        fixed_us: fixed.trim().parse().map_err(|_| err())?,
        per_item_us: per_item.trim().parse().map_err(|_| err())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_all_options() {
        let cmd =
            p(&["--listen", "127.0.0.1:8500", "--cost-us", "2000,50", "--executors=2", "--stats-listen=127.0.0.1:0"]);
        assert_eq!(
            cmd.unwrap(),
            Command::Run(Config {
                listen: "127.0.0.1:8500".parse().unwrap(),
                cost: Some(Cost { fixed_us: 2000, per_item_us: 50 }),
                executors: 2,
                stats_listen: Some("127.0.0.1:0".parse().unwrap()),
                tensor_content: false,
            })
        );
        let Command::Run(c) = p(&["--listen=[::1]:0"]).unwrap() else { panic!() };
        assert_eq!((c.cost, c.executors, c.stats_listen), (None, 1, None));
        assert_eq!(p(&["--listen", "x", "--help"]), Ok(Command::Help));
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
        ] {
            assert!(p(args).is_err(), "{args:?} should fail");
        }
    }
}
