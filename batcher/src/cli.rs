//! Command line: hand-parsed, there are only a few forms.

use std::path::PathBuf;

pub const USAGE: &str = "\
tfgate-batcher: TF Serving REST from nginx in, gRPC to TensorFlow Serving out

Usage:
  tfgate-batcher --config FILE        run the daemon
  tfgate-batcher check-config FILE    check a config file, print a summary, exit 0 if valid
  tfgate-batcher oidc-config ISSUER_URL [--jwks-location /_jwks]
                                      print the nginx settings for an OpenID Connect issuer,
                                      from its .well-known/openid-configuration
  tfgate-batcher --help | --version

Signals: SIGHUP reloads the config file (batching, backends), SIGTERM drains and exits.
Under systemd: Type=notify readiness and socket activation (fd 3) are supported.
Logs go to stderr; set the level with RUST_LOG (default: info).";

/// Where `oidc-config` puts the JWKS location unless told otherwise.
pub const DEFAULT_JWKS_LOCATION: &str = "/_jwks";

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
        ["--config" | "-c", file] => Ok(Command::Run { config: PathBuf::from(file) }),
        [arg] if arg.starts_with("--config=") => Ok(Command::Run { config: PathBuf::from(&arg["--config=".len()..]) }),
        ["check-config", file] | ["check-config", "--config" | "-c", file] => {
            Ok(Command::CheckConfig { config: PathBuf::from(file) })
        }
        ["oidc-config", ref rest @ ..] => parse_oidc_config(rest),
        [] => Err("missing --config FILE".to_string()),
        ["--config" | "-c"] | ["check-config"] => Err("missing the config FILE".to_string()),
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

/// `ISSUER_URL [--jwks-location LOCATION]`, in either order.
fn parse_oidc_config(args: &[&str]) -> Result<Command, String> {
    let mut issuer = None;
    let mut jwks_location = None;
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        let location = match arg {
            "--jwks-location" => Some(*rest.next().ok_or("--jwks-location needs a location, e.g. /_jwks")?),
            _ => arg.strip_prefix("--jwks-location="),
        };
        match location {
            Some(location) if jwks_location.is_none() => jwks_location = Some(location),
            Some(_) => return Err("--jwks-location given twice".to_string()),
            None if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            None if issuer.is_none() => issuer = Some(arg),
            None => return Err(format!("unexpected argument {arg}")),
        }
    }
    let issuer = issuer.ok_or("oidc-config needs the issuer URL, e.g. https://idp.example.com")?;
    crate::oidc::check_issuer_url(issuer)?;
    let jwks_location = jwks_location.unwrap_or(DEFAULT_JWKS_LOCATION);
    crate::oidc::check_location(jwks_location)?;
    Ok(Command::OidcConfig { issuer: issuer.to_string(), jwks_location: jwks_location.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn every_form() {
        assert_eq!(parse_str(&["--config", "a.toml"]), Ok(Command::Run { config: "a.toml".into() }));
        assert_eq!(parse_str(&["--config=a.toml"]), Ok(Command::Run { config: "a.toml".into() }));
        assert_eq!(parse_str(&["check-config", "b.toml"]), Ok(Command::CheckConfig { config: "b.toml".into() }));
        assert_eq!(
            parse_str(&["check-config", "--config", "b.toml"]),
            Ok(Command::CheckConfig { config: "b.toml".into() })
        );
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["--version"]), Ok(Command::Version));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse_str(&[]).unwrap_err().contains("--config"));
        assert!(parse_str(&["--config"]).is_err());
        assert!(parse_str(&["check-config"]).is_err());
        assert!(parse_str(&["--config", "a", "b"]).unwrap_err().contains("unexpected"));
        assert!(parse_str(&["run"]).is_err());
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
