//! The token from `Authorization: Bearer TOKEN` (RFC 6750 2.1).

use super::token::TokenError;

/// Extracts the bearer token from the `Authorization` header value.
///
/// * `None` (no header) → `Ok(None)`: "missing", answered without an `error` attribute.
/// * A header with another scheme (`Basic ...`) → also `Ok(None)`: RFC 6750 3.1 treats an
///   unsupported authentication method like no credentials.
/// * The scheme `Bearer` is case-insensitive; one or more spaces/tabs may follow it, and
///   surrounding whitespace is ignored.
/// * `Bearer` with nothing after it → [`TokenError::Empty`]; a token longer than `max_len`
///   bytes → [`TokenError::TooLarge`] (checked before anything else looks at the token);
///   anything but visible ASCII in the token (non-ASCII, controls, inner spaces) →
///   [`TokenError::BadCharacters`].
pub fn extract_bearer(authorization_header: Option<&[u8]>, max_len: usize) -> Result<Option<&str>, TokenError> {
    let Some(value) = authorization_header else {
        return Ok(None);
    };
    let value = trim(value);
    let scheme_end = value.iter().position(|b| is_space(*b)).unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let token = trim(rest);
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > max_len {
        return Err(TokenError::TooLarge);
    }
    // Branch-free so that it vectorises: this runs on every request, cached or not.
    let outside_visible_ascii = token.iter().fold(0u8, |acc, b| acc | u8::from(!b.is_ascii_graphic()));
    if outside_visible_ascii != 0 {
        return Err(TokenError::BadCharacters);
    }
    std::str::from_utf8(token).map(Some).map_err(|_| TokenError::BadCharacters)
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(h: &str) -> Result<Option<&str>, TokenError> {
        extract_bearer(Some(h.as_bytes()), 16)
    }

    #[test]
    fn accepts_the_usual_forms() {
        assert_eq!(extract_bearer(None, 16), Ok(None));
        assert_eq!(get("Bearer abc.def.ghi"), Ok(Some("abc.def.ghi")));
        assert_eq!(get("bearer abc"), Ok(Some("abc")));
        assert_eq!(get("BEARER   abc  "), Ok(Some("abc")));
        assert_eq!(get(" Bearer\tabc"), Ok(Some("abc")));
        assert_eq!(get("Bearer a-_~+/="), Ok(Some("a-_~+/=")));
    }

    #[test]
    fn other_schemes_are_missing_credentials() {
        assert_eq!(get("Basic dXNlcjpwYXNz"), Ok(None));
        assert_eq!(get("Bearerabc"), Ok(None));
        assert_eq!(get(""), Ok(None));
        assert_eq!(get("   "), Ok(None));
    }

    #[test]
    fn rejects_bad_tokens() {
        assert_eq!(get("Bearer"), Err(TokenError::Empty));
        assert_eq!(get("Bearer    "), Err(TokenError::Empty));
        assert_eq!(get("Bearer a b"), Err(TokenError::BadCharacters));
        assert_eq!(get("Bearer a\u{e9}"), Err(TokenError::BadCharacters));
        assert_eq!(extract_bearer(Some(b"Bearer a\xff"), 16), Err(TokenError::BadCharacters));
        assert_eq!(extract_bearer(Some(b"Bearer a\x00b"), 16), Err(TokenError::BadCharacters));
        assert_eq!(get("Bearer 0123456789abcdef"), Ok(Some("0123456789abcdef")));
        assert_eq!(get("Bearer 0123456789abcdefg"), Err(TokenError::TooLarge));
        assert_eq!(extract_bearer(Some(b"Bearer x"), 0), Err(TokenError::TooLarge));
    }
}
