//! Token verification: signature with pinned keys, then the location's policy.

use serde_json::{Map, Value};
use tfgate_common::headers::MAX_SUBJECT_BYTES;

use super::claims::{claim_text, has_scopes, lookup, numeric_date};
use super::error::JwtError;
use super::keys::KeySet;
use super::policy::{Alg, Policy};
use super::token::{self, TokenError};

/// An accepted token.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// `sub`, a non-empty string; `None` only where the policy allows tokens without one.
    pub sub: Option<String>,
    /// `exp` as whole seconds (fractions dropped).
    pub exp: i64,
    /// Every claim of the payload.
    pub claims: Map<String, Value>,
}

impl Verified {
    /// A claim as text for `$tfgate_jwt_claim_NAME`: strings as they are, numbers and booleans
    /// as text, arrays joined with `,`, objects as JSON; the name is looked up literally, then as
    /// a dotted path. `None` when missing or `null`. The value is raw (see the module doc).
    pub fn claim_as_string(&self, name: &str) -> Option<String> {
        lookup(&self.claims, name).and_then(claim_text)
    }
}

/// Verifies `token` against `keys` and `policy` at `now_unix` (seconds).
///
/// Order: size; split and decode; `alg` (`none` in any case refused, then the allowlist); key
/// lookup by `kid` ([`JwtError::UnknownKey`] when no key has it and no kid-less key may stand
/// in); signature; payload JSON; `typ`; `exp` (required) / `nbf` / `iat` with leeway; `iss`;
/// `aud`; scopes (403); claim rules (403).
pub fn verify(token: &str, keys: &KeySet, policy: &Policy, now_unix: i64) -> Result<Verified, JwtError> {
    if token.len() > policy.max_token_len {
        return Err(TokenError::TooLarge.into());
    }
    let parts = token::split(token)?;
    if parts.header.alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::Invalid("unsigned tokens are not accepted"));
    }
    let alg = Alg::from_jose(&parts.header.alg).ok_or(JwtError::Invalid("unsupported token algorithm"))?;
    if !policy.allows(alg) {
        return Err(JwtError::Invalid("token algorithm not allowed"));
    }
    let kid = parts.header.kid.as_deref();
    let candidates = keys.candidates(kid, alg);
    if candidates.is_empty() {
        return Err(match kid {
            Some(kid) if !keys.has_kid(kid) => JwtError::UnknownKey { kid: kid.to_owned() },
            None if keys.keys().iter().any(|k| k.allows(alg)) => JwtError::Invalid("token has no kid"),
            _ => JwtError::Invalid("no key for the token algorithm"),
        });
    }
    if !candidates.iter().any(|key| key.verify(alg, parts.signing_input, &parts.signature)) {
        return Err(JwtError::Invalid("invalid token signature"));
    }
    let claims = token::parse_claims(&parts.payload)?;
    if let Some(wanted) = &policy.typ {
        if !parts.header.typ.as_deref().is_some_and(|typ| same_media_type(typ, wanted)) {
            return Err(JwtError::Invalid("wrong token type"));
        }
    }
    let exp = check_times(&claims, policy.leeway_secs, now_unix)?;
    if !policy.issuers.is_empty() {
        let iss = claims.get("iss").and_then(Value::as_str);
        if !iss.is_some_and(|iss| policy.issuers.iter().any(|i| i == iss)) {
            return Err(JwtError::Invalid("token issuer not accepted"));
        }
    }
    if !policy.audiences.is_empty() {
        let accepted = |aud: &str| policy.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str().is_some_and(accepted)),
            _ => false,
        };
        if !ok {
            return Err(JwtError::Invalid("token audience not accepted"));
        }
    }
    if !has_scopes(&claims, &policy.scopes) {
        return Err(JwtError::Forbidden {
            description: "token lacks a required scope",
            scope: Some(policy.scopes.join(" ")),
        });
    }
    if !policy.rules.iter().all(|rule| rule.check(&claims)) {
        return Err(JwtError::Forbidden { description: "token does not meet a claim requirement", scope: None });
    }
    let sub = subject(&claims, policy.require_subject)?;
    Ok(Verified { sub, exp, claims })
}

/// The caller: `sub`, a string (RFC 7519: StringOrURI) without control characters, since it
/// becomes a request header. Missing or empty: refused, unless the policy lets such tokens
/// through as anonymous callers. Longer than [`MAX_SUBJECT_BYTES`]: refused, since the daemon
/// keys quotas, fair queues and the audit trail on the subject whole and would not take a
/// longer one.
fn subject(claims: &Map<String, Value>, required: bool) -> Result<Option<String>, JwtError> {
    match claims.get("sub") {
        Some(Value::String(sub)) if sub.chars().any(char::is_control) => {
            Err(JwtError::Invalid("subject contains control characters"))
        }
        Some(Value::String(sub)) if sub.len() > MAX_SUBJECT_BYTES => Err(JwtError::Invalid(SUBJECT_TOO_LONG)),
        Some(Value::String(sub)) if !sub.is_empty() => Ok(Some(sub.clone())),
        Some(Value::String(_)) | None if required => Err(JwtError::Invalid("token has no subject")),
        Some(Value::String(_)) | None => Ok(None),
        Some(_) => Err(JwtError::Invalid("token subject is not a string")),
    }
}

/// Says [`MAX_SUBJECT_BYTES`] in words (a `&'static str`, as every description is).
const SUBJECT_TOO_LONG: &str = "the token's subject is longer than 256 bytes";

/// `exp` required; `nbf` and `iat` optional; all must be numbers. Returns `exp`.
fn check_times(claims: &Map<String, Value>, leeway_secs: u64, now: i64) -> Result<i64, JwtError> {
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    let date = |name: &str, bad: &'static str| match claims.get(name) {
        None => Ok(None),
        Some(value) => numeric_date(value).map(Some).ok_or(JwtError::Invalid(bad)),
    };
    let exp = date("exp", "token exp claim is not a number")?.ok_or(JwtError::Invalid("token has no exp claim"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = date("nbf", "token nbf claim is not a number")? {
        if now.saturating_add(leeway) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(iat) = date("iat", "token iat claim is not a number")? {
        if iat > now.saturating_add(leeway) {
            return Err(JwtError::Invalid("token issued in the future"));
        }
    }
    Ok(exp)
}

/// `typ` values are media types: case-insensitive, `application/` may be left out (RFC 7515
/// 4.1.9), so `JWT` matches `jwt` and `application/jwt`, `at+jwt` matches `application/at+JWT`.
fn same_media_type(a: &str, b: &str) -> bool {
    fn short(s: &str) -> &str {
        match s.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => s.get(12..).unwrap_or(""),
            _ => s,
        }
    }
    short(a).eq_ignore_ascii_case(short(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_limit_is_the_shared_one() {
        assert!(SUBJECT_TOO_LONG.contains(&format!(" {MAX_SUBJECT_BYTES} bytes")), "{SUBJECT_TOO_LONG}");
    }

    #[test]
    fn media_types() {
        assert!(same_media_type("JWT", "jwt"));
        assert!(same_media_type("application/at+JWT", "at+jwt"));
        assert!(same_media_type("at+jwt", "Application/AT+JWT"));
        assert!(!same_media_type("JWT", "at+jwt"));
        assert!(!same_media_type("", "jwt"));
        assert!(same_media_type("é", "é"));
    }
}
