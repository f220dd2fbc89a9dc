//! Command line, parsed by hand (few options, no dependency).

use std::time::Duration;

pub const USAGE: &str = "\
usage: tfgate-load http --url URL [--body JSON] [options]
       tfgate-load grpc --target http://HOST:PORT [--model NAME] [--version N] [options]

options:
  -c, --concurrency N   concurrent clients, each with its own connection (http) (default 1)
  -d, --duration SECS   measured time, e.g. 3 or 2.5 (default 3)
  --warmup SECS         time before measuring (default 0.5)
  --threads N           runtime threads (default 1: leave the cores to what is measured)

http sends POST --body (default {\"instances\": [1.0]}); grpc sends Predict with one float row
x = [1.0] to --model (default half_plus_two), --version (default: latest).
Prints one JSON line: requests, errors, rps, p50_us, p90_us, p99_us, max_us.
";

pub enum Mode {
    Http { url: String, body: String },
    Grpc { target: String, model: String, version: Option<i64> },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Http { .. } => "http",
            Mode::Grpc { .. } => "grpc",
        }
    }
}

pub struct Options {
    pub mode: Mode,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub threads: usize,
}

/// `Ok(None)` for --help.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut args = args.into_iter();
    let mode = match args.next().as_deref() {
        Some("-h" | "--help") | None => return Ok(None),
        Some(mode @ ("http" | "grpc")) => mode.to_string(),
        Some(other) => return Err(format!("unknown mode {other:?} (http or grpc)")),
    };
    let (mut url, mut body, mut target) = (None, None, None);
    let (mut model, mut version) = ("half_plus_two".to_string(), None);
    let mut concurrency = 1;
    let mut duration = Duration::from_secs(3);
    let mut warmup = Duration::from_millis(500);
    let mut threads = 1;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--body" => body = Some(value()?),
            "--target" => target = Some(value()?),
            "--model" => model = value()?,
            "--version" => version = Some(number(&flag, &value()?)?),
            "-c" | "--concurrency" => concurrency = number(&flag, &value()?)?,
            "-d" | "--duration" => duration = seconds(&flag, &value()?)?,
            "--warmup" => warmup = seconds(&flag, &value()?)?,
            "--threads" => threads = number(&flag, &value()?)?,
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    if concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let mode = match mode.as_str() {
        "http" => Mode::Http {
            url: url.ok_or("http needs --url")?,
            body: body.unwrap_or_else(|| r#"{"instances": [1.0]}"#.to_string()),
        },
        _ => Mode::Grpc { target: target.ok_or("grpc needs --target")?, model, version },
    };
    Ok(Some(Options { mode, concurrency, duration, warmup, threads }))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag}: expected a number, got {value:?}"))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let secs: f64 = number(flag, value)?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag}: expected seconds, got {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Options>, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_both_modes() {
        let o = p(&["http", "--url", "http://h:1/x", "-c", "8", "-d", "1.5"]).unwrap().unwrap();
        assert_eq!((o.concurrency, o.duration), (8, Duration::from_millis(1500)));
        assert!(matches!(o.mode, Mode::Http { ref body, .. } if body.contains("instances")));
        let o = p(&["grpc", "--target", "http://h:1", "--version", "2"]).unwrap().unwrap();
        assert!(matches!(o.mode, Mode::Grpc { version: Some(2), ref model, .. } if model == "half_plus_two"));
        assert!(p(&["--help"]).unwrap().is_none());
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
