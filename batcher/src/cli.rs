//! The command line (clap): `--config FILE` runs the daemon; `check-config` and `oidc-config`
//! are tools for operators.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Where `oidc-config` puts the JWKS location unless told otherwise.
pub const DEFAULT_JWKS_LOCATION: &str = "/_jwks";

const AFTER_HELP: &str = "\
Signals: SIGHUP reloads the config file (batching, backends, quotas, logs), SIGTERM drains and exits.
Under systemd: Type=notify readiness and socket activation (fd 3) are supported.
Logs go to stderr; set the level with RUST_LOG (default: info).";

/// TF Serving REST and gRPC from nginx in, batched gRPC to TensorFlow Serving out.
#[derive(Debug, Parser)]
#[command(name = "tfgate-batcher", version, after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
#[command(subcommand_negates_reqs = true)]
struct Cli {
    /// Run the daemon with this configuration file
    #[arg(short, long, value_name = "FILE", required = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    tool: Option<Tool>,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Check a config file, print a summary, exit 0 if it is valid
    CheckConfig {
        #[arg(value_name = "FILE", required_unless_present = "config", conflicts_with = "config")]
        file: Option<PathBuf>,
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the nginx settings for an OpenID Connect issuer, from its
    /// .well-known/openid-configuration
    OidcConfig {
        #[arg(value_name = "ISSUER_URL", value_parser = issuer_url)]
        issuer: String,
        /// The internal nginx location that will fetch the JWKS
        #[arg(long, value_name = "LOCATION", default_value = DEFAULT_JWKS_LOCATION, value_parser = location)]
        jwks_location: String,
    },
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        config: PathBuf,
    },
    CheckConfig {
        config: PathBuf,
    },
    /// Print the nginx snippet for an OpenID Connect issuer.
    OidcConfig {
        issuer: String,
        jwks_location: String,
    },
}

/// Parses the command line; on `--help`, `--version` or a mistake, prints what clap prints and
/// exits (0, or 2 for a mistake).
pub fn parse_or_exit() -> Command {
    match parse(std::env::args_os()) {
        Ok(command) => command,
        Err(e) => e.exit(),
    }
}

/// Parses the arguments, the program name first.
pub fn parse<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    Ok(match (cli.tool, cli.config) {
        (Some(Tool::CheckConfig { file, config }), _) => {
            // clap requires one of the two.
            Command::CheckConfig { config: file.or(config).unwrap_or_default() }
        }
        (Some(Tool::OidcConfig { issuer, jwks_location }), _) => Command::OidcConfig { issuer, jwks_location },
        // clap requires --config without a subcommand.
        (None, config) => Command::Run { config: config.unwrap_or_default() },
    })
}

fn issuer_url(value: &str) -> Result<String, String> {
    crate::oidc::check_issuer_url(value).map(|_| value.to_string())
}

fn location(value: &str) -> Result<String, String> {
    crate::oidc::check_location(value).map(|()| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, clap::error::ErrorKind> {
        parse(std::iter::once("tfgate-batcher").chain(args.iter().copied())).map_err(|e| e.kind())
    }

    #[test]
    fn every_form() {
        assert_eq!(parse_str(&["--config", "a.toml"]), Ok(Command::Run { config: "a.toml".into() }));
        assert_eq!(parse_str(&["-c", "a.toml"]), Ok(Command::Run { config: "a.toml".into() }));
        assert_eq!(parse_str(&["--config=a.toml"]), Ok(Command::Run { config: "a.toml".into() }));
        assert_eq!(parse_str(&["check-config", "b.toml"]), Ok(Command::CheckConfig { config: "b.toml".into() }));
        assert_eq!(
            parse_str(&["check-config", "--config", "b.toml"]),
            Ok(Command::CheckConfig { config: "b.toml".into() })
        );
        assert_eq!(parse_str(&["--help"]), Err(clap::error::ErrorKind::DisplayHelp));
        assert_eq!(parse_str(&["--version"]), Err(clap::error::ErrorKind::DisplayVersion));
    }

    #[test]
    fn mistakes_are_explained() {
        assert_eq!(parse_str(&[]), Err(clap::error::ErrorKind::MissingRequiredArgument));
        assert!(parse_str(&["--config"]).is_err());
        assert!(parse_str(&["check-config"]).is_err());
        assert!(parse_str(&["--config", "a", "b"]).is_err());
        assert!(parse_str(&["run"]).is_err());
        let message = parse(["tfgate-batcher", "--bogus"]).unwrap_err().to_string();
        assert!(message.contains("--bogus"), "{message}");
    }

    #[test]
    fn oidc_config_forms() {
        let expect = |issuer: &str, location: &str| {
            Ok(Command::OidcConfig { issuer: issuer.into(), jwks_location: location.into() })
        };
        assert_eq!(
            parse_str(&["oidc-config", "https://idp.example.com/"]),
            expect("https://idp.example.com/", "/_jwks")
        );
        assert_eq!(
            parse_str(&["oidc-config", "--jwks-location", "/_keys", "http://127.0.0.1:9/r"]),
            expect("http://127.0.0.1:9/r", "/_keys")
        );
        assert_eq!(
            parse_str(&["oidc-config", "https://a.example", "--jwks-location=/k"]),
            expect("https://a.example", "/k")
        );
        for wrong in [
            &["oidc-config"][..],
            &["oidc-config", "ftp://a.example"],
            &["oidc-config", "https://a.example", "https://b.example"],
            &["oidc-config", "https://a.example", "--jwks-location"],
            &["oidc-config", "https://a.example", "--jwks-location", "no-slash"],
            &["oidc-config", "https://a.example", "--jwks-location", "/a;b"],
            &["oidc-config", "https://a.example", "--verbose"],
        ] {
            assert!(parse_str(wrong).is_err(), "{wrong:?}");
        }
    }
}
