//! The nginx configuration `oidc-config` prints, rendered from a checked [`Discovery`]: the
//! internal location the module fetches the keys through (server block), then the directives
//! for the model location. Pure: the same document always gives the same text.

use std::fmt::Write;

use super::discovery::{is_plain_token, split_algorithms, Discovery};

/// The `keys_zone` name the commented `proxy_cache` lines use (documented in docs/batcher.md).
pub const CACHE_ZONE: &str = "tfgate_jwks";
/// Where Debian and Ubuntu keep the system CA bundle (package ca-certificates).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Marks the start of the part for the model location (so it can be cut out mechanically).
pub const MODEL_LOCATION_MARK: &str = "# == 2. In the model location";

pub fn render(found: &Discovery, jwks_location: &str, discovery_url: &str) -> String {
    let mut out = String::new();
    let jwks = &found.jwks_uri_text;
    let _ = writeln!(out, "# tfgate: OpenID Connect settings for the issuer {}", found.issuer);
    let _ = writeln!(out, "# Made by `tfgate-batcher oidc-config` from {discovery_url}");
    let _ = writeln!(out, "# (jwks_uri {jwks}); run it again if the IdP moves its keys.");
    out.push_str(
        "#\n\
         # Optional, at http level (proxy_cache_path is not allowed in a server block): a cache\n\
         # shared by the workers, so that they and restarts fetch the keys once, then uncomment\n\
         # the proxy_cache lines below.\n",
    );
    let _ = writeln!(
        out,
        "#   proxy_cache_path /var/cache/nginx/{CACHE_ZONE} levels=1 keys_zone={CACHE_ZONE}:1m max_size=10m inactive=1d;\n"
    );
    out.push_str(
        "# == 1. In the server block: the location the module fetches the keys through\n\
         # (an nginx subrequest; nginx resolves the IdP's host name when it loads this).\n",
    );
    let _ = writeln!(out, "location = {jwks_location} {{");
    out.push_str("    internal;\n");
    out.push_str("    # The module's subrequest carries none of the client's headers; nor does this location.\n");
    out.push_str("    proxy_pass_request_headers off;\n");
    out.push_str("    proxy_set_header Accept application/json;\n");
    let _ = writeln!(out, "    proxy_pass {jwks};");
    if found.jwks_uri.https {
        out.push_str("    proxy_ssl_server_name on;\n");
        out.push_str("    proxy_ssl_verify on;\n");
        out.push_str("    proxy_ssl_verify_depth 4;\n");
        let _ =
            writeln!(out, "    proxy_ssl_trusted_certificate {CA_BUNDLE};   # RHEL: /etc/pki/tls/certs/ca-bundle.crt");
    } else {
        out.push_str("    # Plain http: for a test IdP only; real IdPs serve their keys over https.\n");
    }
    out.push_str("    # The JWKS is read in memory; nginx's default (4k/8k) is too small for many IdPs.\n");
    out.push_str("    subrequest_output_buffer_size 64k;\n");
    let _ = writeln!(out, "    # proxy_cache {CACHE_ZONE};");
    out.push_str("    # proxy_cache_valid 200 10m;\n");
    out.push_str("    # proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;\n");
    out.push_str("}\n\n");

    let _ = writeln!(out, "{MODEL_LOCATION_MARK} (e.g. location ~* ^/v1/models, next to tfgate_route on;)");
    out.push_str("tfgate_jwt on;\n");
    let _ = writeln!(out, "tfgate_jwt_key_request {jwks_location};");
    let _ = writeln!(out, "tfgate_jwt_issuer {};", found.issuer);
    out.push_str(&algorithms_line(found.advertised_algorithms.as_deref()));
    out.push_str("# tfgate_jwt_audience YOUR-API;   # recommended: the audience your tokens are issued for\n");
    out
}

/// `tfgate_jwt_algorithms` narrowed to what the IdP says it signs with, or a comment saying why
/// the module's default list stays.
fn algorithms_line(advertised: Option<&[String]>) -> String {
    let Some(advertised) = advertised else {
        return "# (the document lists no signing algorithms: the module's default list applies)\n".to_string();
    };
    let (usable, other) = split_algorithms(advertised);
    // The names come from the IdP's document and end up in nginx configuration: one holding a
    // newline or a brace would turn this comment into live directives, so only plain tokens
    // are printed and the rest are only counted.
    let other = printable_names(&other);
    let not_used = if other.is_empty() { String::new() } else { format!("   # not verified by tfgate: {other}") };
    if usable.is_empty() {
        return format!(
            "# The IdP's signing algorithms ({}) are not among those tfgate verifies: tokens will be refused.\n",
            printable_names(advertised)
        );
    }
    format!("tfgate_jwt_algorithms {};{not_used}\n", usable.join(" "))
}

/// The names that pass [`is_plain_token`], space separated, plus a count of the others.
fn printable_names(names: &[String]) -> String {
    let plain: Vec<&str> = names.iter().map(String::as_str).filter(|n| is_plain_token(n)).collect();
    let dropped = names.len() - plain.len();
    match (plain.is_empty(), dropped) {
        (_, 0) => plain.join(" "),
        (true, n) => format!("{n} unprintable name(s)"),
        (false, n) => format!("{} and {n} unprintable name(s)", plain.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::discovery::parse_document;

    fn found(fields: &str, issuer: &str) -> Discovery {
        parse_document(format!("{{{fields}}}").as_bytes(), issuer).unwrap()
    }

    #[test]
    fn an_https_idp() {
        let issuer = "https://idp.example.com/";
        let d = found(
            r#""issuer": "https://idp.example.com/", "jwks_uri": "https://idp.example.com/keys",
               "id_token_signing_alg_values_supported": ["RS256", "HS256", "none", "PS256"]"#,
            issuer,
        );
        let text = render(&d, "/_jwks", "https://idp.example.com/.well-known/openid-configuration");
        for line in [
            "location = /_jwks {\n    internal;\n",
            "    proxy_pass https://idp.example.com/keys;\n",
            "    proxy_ssl_server_name on;\n",
            "    proxy_ssl_verify on;\n",
            "    proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;",
            "    subrequest_output_buffer_size 64k;\n",
            "    # proxy_cache tfgate_jwks;\n",
            "#   proxy_cache_path /var/cache/nginx/tfgate_jwks ",
            "\ntfgate_jwt on;\ntfgate_jwt_key_request /_jwks;\ntfgate_jwt_issuer https://idp.example.com/;\n",
            "tfgate_jwt_algorithms RS256 PS256;   # not verified by tfgate: HS256 none\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        // Every line is a comment, a directive, or a brace: nothing else for nginx to trip on.
        let model_part = text.split(MODEL_LOCATION_MARK).nth(1).unwrap();
        assert!(!model_part.contains('{'));
    }

    #[test]
    fn a_plain_http_idp_and_other_algorithm_lists() {
        let issuer = "http://127.0.0.1:9000";
        let d = found(r#""issuer": "http://127.0.0.1:9000", "jwks_uri": "http://127.0.0.1:9000/jwks""#, issuer);
        let text = render(&d, "/_keys", "http://127.0.0.1:9000/.well-known/openid-configuration");
        assert!(!text.contains("proxy_ssl"), "{text}");
        assert!(text.contains("location = /_keys {"));
        assert!(text.contains("tfgate_jwt_key_request /_keys;"));
        assert!(text.contains("the module's default list applies"));
        assert!(!text.contains("tfgate_jwt_algorithms"));
        let only_hmac = algorithms_line(Some(&["HS256".to_string()]));
        assert!(only_hmac.starts_with("# The IdP's signing algorithms (HS256)"), "{only_hmac}");
    }

    #[test]
    fn algorithm_names_that_are_not_plain_tokens_are_not_printed() {
        let issuer = "https://idp.example.com/";
        let d = found(
            r#""issuer": "https://idp.example.com/", "jwks_uri": "https://idp.example.com/keys",
               "id_token_signing_alg_values_supported": ["RS256", "X\n}\nserver { listen 8081; }\n#"]"#,
            issuer,
        );
        let text = render(&d, "/_jwks", "https://idp.example.com/.well-known/openid-configuration");
        assert!(!text.contains("server {"), "{text}");
        assert!(!text.contains("listen 8081"), "{text}");
        assert!(
            text.contains("tfgate_jwt_algorithms RS256;   # not verified by tfgate: 1 unprintable name(s)\n"),
            "{text}"
        );
        // The "none usable" comment names the advertised list too.
        let evil = vec!["HS256".to_string(), "X\n}\nserver { listen 8081; }\n#".to_string()];
        let line = algorithms_line(Some(&evil));
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains("(HS256 and 1 unprintable name(s))"), "{line}");
        assert!(!line.contains("server"), "{line}");
    }
}
