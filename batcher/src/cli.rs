//! Command line: hand-parsed, there are only four forms.

use std::path::PathBuf;

pub const USAGE: &str = "\
tfgate-batcher: TF Serving REST from nginx in, gRPC to TensorFlow Serving out

Usage:
  tfgate-batcher --config FILE        run the daemon
  tfgate-batcher check-config FILE    check a config file, print a summary, exit 0 if valid
  tfgate-batcher --help | --version

Logs go to stderr; set the level with RUST_LOG (default: info).";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run { config: PathBuf },
    CheckConfig { config: PathBuf },
    Help,
    Version,
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["-h" | "--help" | "help"] => Ok(Command::Help),
        ["-V" | "--version"] => Ok(Command::Version),
        ["--config" | "-c", file] => Ok(Command::Run {
            config: PathBuf::from(file),
        }),
        [arg] if arg.starts_with("--config=") => Ok(Command::Run {
            config: PathBuf::from(&arg["--config=".len()..]),
        }),
        ["check-config", file] | ["check-config", "--config" | "-c", file] => {
            Ok(Command::CheckConfig {
                config: PathBuf::from(file),
            })
        }
        [] => Err("missing --config FILE".to_string()),
        ["--config" | "-c"] | ["check-config"] => Err("missing the config FILE".to_string()),
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn every_form() {
        assert_eq!(
            parse_str(&["--config", "a.toml"]),
            Ok(Command::Run {
                config: "a.toml".into()
            })
        );
        assert_eq!(
            parse_str(&["--config=a.toml"]),
            Ok(Command::Run {
                config: "a.toml".into()
            })
        );
        assert_eq!(
            parse_str(&["check-config", "b.toml"]),
            Ok(Command::CheckConfig {
                config: "b.toml".into()
            })
        );
        assert_eq!(
            parse_str(&["check-config", "--config", "b.toml"]),
            Ok(Command::CheckConfig {
                config: "b.toml".into()
            })
        );
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["--version"]), Ok(Command::Version));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse_str(&[]).unwrap_err().contains("--config"));
        assert!(parse_str(&["--config"]).is_err());
        assert!(parse_str(&["check-config"]).is_err());
        assert!(parse_str(&["--config", "a", "b"])
            .unwrap_err()
            .contains("unexpected"));
        assert!(parse_str(&["run"]).is_err());
    }
}
