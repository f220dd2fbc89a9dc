//! OpenID Connect Discovery 1.0, the parts `oidc-config` needs, as pure functions: the issuer
//! URL and where its document is, and the checks on the document (`issuer` identical to the
//! URL asked, `jwks_uri`, the signing algorithms). Every string that ends up in the nginx
//! snippet is checked here to be a plain token nginx reads back unchanged.

use hyper::Uri;
use serde_json::Value;

/// Signature algorithms the module verifies (its default `tfgate_jwt_algorithms`). `none` and
/// HS* never come from a discovery document: HS* needs a shared secret, not a JWKS.
pub const SUPPORTED_ALGORITHMS: [&str; 9] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// A checked `http(s)://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub https: bool,
    /// As in the URL (IPv6 in brackets), for the Host header.
    pub authority: String,
    /// The bare host name or address, for connecting and for TLS.
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path_and_query: String,
}

impl HttpUrl {
    /// `what` names the URL in messages.
    pub fn parse(text: &str, what: &str) -> Result<HttpUrl, String> {
        if !is_plain_token(text) {
            return Err(format!(
                "{what} {text:?} has characters that do not belong in a URL here (spaces, quotes, ; {{ }} $ \\ # or non-ASCII)"
            ));
        }
        let uri: Uri = text.parse().map_err(|e| format!("{what} {text:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{what} {text:?} must start with https:// (or http://)")),
        };
        let Some(authority) = uri.authority() else {
            return Err(format!("{what} {text:?} has no host"));
        };
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(format!("{what} {text:?} must be scheme://HOST[:PORT][/PATH]"));
        }
        let host = authority.host();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let path_and_query = match uri.path_and_query() {
            Some(p) if p.as_str().starts_with('/') => p.as_str().to_string(),
            _ => "/".to_string(),
        };
        Ok(HttpUrl {
            https,
            authority: authority.as_str().to_string(),
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            path_and_query,
        })
    }
}

/// Checks the issuer URL as the user typed it: http(s), a host, no query (the issuer is an
/// identifier compared byte for byte, so it is never rewritten).
pub fn check_issuer_url(issuer: &str) -> Result<HttpUrl, String> {
    let url = HttpUrl::parse(issuer, "the issuer URL")?;
    if url.path_and_query.contains('?') {
        return Err(format!("the issuer URL {issuer:?} must not have a query"));
    }
    Ok(url)
}

/// Where the issuer publishes its configuration: a trailing `/` of the issuer is dropped before
/// appending the well-known path (OpenID Connect Discovery 1.0, section 4).
pub fn discovery_url(issuer: &str) -> String {
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    format!("{base}/.well-known/openid-configuration")
}

/// What the snippet is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: HttpUrl,
    pub jwks_uri_text: String,
    /// `id_token_signing_alg_values_supported`, when the document has it.
    pub advertised_algorithms: Option<Vec<String>>,
}

/// Reads the discovery document fetched for `issuer` (the URL exactly as given).
pub fn parse_document(body: &[u8], issuer: &str) -> Result<Discovery, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| format!("the discovery document is not JSON: {e}"))?;
    let Some(fields) = document.as_object() else {
        return Err("the discovery document is not a JSON object".to_string());
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let Some(found_issuer) = text("issuer") else {
        return Err("the discovery document has no \"issuer\"".to_string());
    };
    if found_issuer != issuer {
        return Err(format!(
            "issuer mismatch: the document says \"issuer\": {found_issuer:?}, but it was fetched for {issuer:?}; \
             OpenID Connect requires them to be identical (tokens carry the document's value: if that \
             IdP is the one you mean, run again with {found_issuer:?})"
        ));
    }
    let Some(jwks_uri_text) = text("jwks_uri") else {
        return Err("the discovery document has no \"jwks_uri\" (where the signing keys are)".to_string());
    };
    let jwks_uri = HttpUrl::parse(jwks_uri_text, "jwks_uri")?;
    let issuer_url = check_issuer_url(issuer)?;
    if issuer_url.https && !jwks_uri.https {
        return Err(format!(
            "jwks_uri {jwks_uri_text:?} is not https: keys fetched in clear text could be replaced on the way"
        ));
    }
    let advertised_algorithms = match fields.get("id_token_signing_alg_values_supported") {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => Some(values.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        Some(_) => {
            return Err("id_token_signing_alg_values_supported in the discovery document is not an array".to_string())
        }
    };
    Ok(Discovery {
        issuer: found_issuer.to_string(),
        jwks_uri,
        jwks_uri_text: jwks_uri_text.to_string(),
        advertised_algorithms,
    })
}

/// The IdP's algorithms split into those the module verifies (in the IdP's order, for
/// `tfgate_jwt_algorithms`) and the others (never `none` or HS* in the first list).
pub fn split_algorithms(advertised: &[String]) -> (Vec<&'static str>, Vec<String>) {
    let mut usable: Vec<&'static str> = Vec::new();
    let mut other = Vec::new();
    for name in advertised {
        match SUPPORTED_ALGORITHMS.iter().find(|s| **s == name.as_str()) {
            Some(known) if !usable.contains(known) => usable.push(known),
            Some(_) => {}
            None if !other.contains(name) => other.push(name.clone()),
            None => {}
        }
    }
    (usable, other)
}

/// A string nginx reads back as one unquoted token, unchanged and without variables.
pub fn is_plain_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b';' | b'{' | b'}' | b'$' | b'\\' | b'#'))
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
