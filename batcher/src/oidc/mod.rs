//! `tfgate-batcher oidc-config ISSUER_URL`: the nginx settings that make the module accept an
//! OpenID Connect provider's tokens, from the provider's discovery document. The checks and the
//! text are pure ([`discovery`], [`snippet`]); fetching the document is the only I/O.

pub mod discovery;
mod fetch;
pub mod snippet;

use std::io::Write;

pub use discovery::check_issuer_url;

/// Checks a location name for the JWKS subrequest: an absolute URI path nginx reads back as is.
pub fn check_location(location: &str) -> Result<(), String> {
    if location.starts_with('/') && discovery::is_plain_token(location) && !location.contains('?') {
        Ok(())
    } else {
        Err(format!("--jwks-location {location:?} must be a path such as /_jwks (no spaces, quotes, ; {{ }} $ # or ?)"))
    }
}

/// Fetches and checks the discovery document of `issuer`, and renders the snippet.
pub async fn snippet_for(issuer: &str, jwks_location: &str) -> Result<String, String> {
    check_issuer_url(issuer)?;
    check_location(jwks_location)?;
    let url_text = discovery::discovery_url(issuer);
    let url = discovery::HttpUrl::parse(&url_text, "the discovery URL")?;
    let body = fetch::get(&url, &url_text).await?;
    let found = discovery::parse_document(&body, issuer).map_err(|e| format!("{url_text}: {e}"))?;
    Ok(snippet::render(&found, jwks_location, &url_text))
}

/// The command: prints the snippet; exit code 1 with the reason on stderr when it cannot.
pub fn run(issuer: &str, jwks_location: &str) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tfgate-batcher: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(snippet_for(issuer, jwks_location)) {
        Ok(text) => {
            // Not print!: a closed stdout (`| head`) is an error to report, not a panic.
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tfgate-batcher oidc-config: cannot write the snippet: {e}");
                    std::process::ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("tfgate-batcher oidc-config: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_locations() {
        assert!(check_location("/_jwks").is_ok());
        assert!(check_location("/internal/keys").is_ok());
        for bad in ["", "_jwks", "/a b", "/a;b", "/a{", "/$x", "/a?b"] {
            assert!(check_location(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_explained() {
        // Port 1 on loopback: nothing listens there.
        let e = snippet_for("http://127.0.0.1:1", "/_jwks").await.unwrap_err();
        assert!(e.contains("cannot connect to 127.0.0.1:1"), "{e}");
    }
}
