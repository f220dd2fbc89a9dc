//! Why a request was refused, and how to say so (RFC 6750 3).

use super::token::TokenError;

/// A refused bearer token. No variant carries token content except [`JwtError::UnknownKey`]'s
/// `kid` (needed for the refetch decision: log it escaped, if at all; it never goes into the
/// answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// No bearer token (no `Authorization` header, or another scheme).
    Missing,
    /// Malformed, badly signed or not acceptable; the text is the `error_description`.
    Invalid(&'static str),
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) is still ahead.
    NotYetValid,
    /// No key has the token's `kid`: a key source may refetch its keys
    /// ([`super::KeySource::on_unknown_kid`]).
    UnknownKey { kid: String },
    /// Valid token without the rights asked for: `scope` holds the required scopes
    /// (space-separated) when scopes were the reason.
    Forbidden { description: &'static str, scope: Option<String> },
    /// The keys could not be loaded (never fetched successfully): 503.
    KeysUnavailable,
}

impl From<TokenError> for JwtError {
    fn from(e: TokenError) -> Self {
        JwtError::Invalid(e.description())
    }
}

impl JwtError {
    /// The value of `$tfgate_jwt_result`.
    pub fn result(&self) -> &'static str {
        match self {
            JwtError::Missing => "missing",
            JwtError::Invalid(_) => "invalid",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::UnknownKey { .. } => "unknown_key",
            JwtError::Forbidden { .. } => "forbidden",
            JwtError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// The HTTP status: 401, 403 (scopes/claim rules) or 503 (no keys).
    pub fn status(&self) -> u16 {
        match self {
            JwtError::Forbidden { .. } => 403,
            JwtError::KeysUnavailable => 503,
            _ => 401,
        }
    }

    /// The short, client-safe `error_description` (also the JSON body's `error`).
    pub fn description(&self) -> &'static str {
        match self {
            JwtError::Missing => "bearer token required",
            JwtError::Invalid(description) => description,
            JwtError::Expired => "token expired",
            JwtError::NotYetValid => "token not yet valid",
            JwtError::UnknownKey { .. } => "token signed with an unknown key",
            JwtError::Forbidden { description, .. } => description,
            JwtError::KeysUnavailable => "token signing keys unavailable",
        }
    }

    /// The `WWW-Authenticate` value, `None` for 503 (not an authentication problem):
    /// * missing: `Bearer realm="tfgate"` (no `error`, RFC 6750 3.1);
    /// * 401: `Bearer realm="tfgate", error="invalid_token", error_description="token expired"`;
    /// * 403: `Bearer realm="tfgate", error="insufficient_scope", error_description="...",
    ///   scope="read write"` (`scope` only when scopes were missing).
    ///
    /// `realm` (and scope) are escaped for a quoted-string; control characters are dropped.
    pub fn www_authenticate(&self, realm: &str) -> Option<String> {
        let mut out = String::with_capacity(128);
        out.push_str("Bearer realm=\"");
        push_escaped(&mut out, realm);
        out.push('"');
        let error = match self {
            JwtError::Missing => return Some(out),
            JwtError::KeysUnavailable => return None,
            JwtError::Forbidden { .. } => "insufficient_scope",
            _ => "invalid_token",
        };
        out.push_str(", error=\"");
        out.push_str(error);
        out.push_str("\", error_description=\"");
        push_escaped(&mut out, self.description());
        out.push('"');
        if let JwtError::Forbidden { scope: Some(scope), .. } = self {
            out.push_str(", scope=\"");
            push_escaped(&mut out, scope);
            out.push('"');
        }
        Some(out)
    }

    /// The response body: `{"error":"<description>"}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({ "error": self.description() }).to_string()
    }
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let e = JwtError::Expired;
        assert_eq!((e.status(), e.result()), (401, "expired"));
        assert_eq!(
            e.www_authenticate("tfgate").unwrap(),
            r#"Bearer realm="tfgate", error="invalid_token", error_description="token expired""#
        );
        assert_eq!(JwtError::Missing.www_authenticate("a \"q\" \\ b\r\n").unwrap(), r#"Bearer realm="a \"q\" \\ b""#);
        assert_eq!(JwtError::Missing.status(), 401);
        let e = JwtError::Forbidden { description: "token lacks a required scope", scope: Some("read write".into()) };
        assert_eq!((e.status(), e.result()), (403, "forbidden"));
        assert_eq!(
            e.www_authenticate("r").unwrap(),
            r#"Bearer realm="r", error="insufficient_scope", error_description="token lacks a required scope", scope="read write""#
        );
        let e = JwtError::Forbidden { description: "x", scope: None };
        assert!(!e.www_authenticate("r").unwrap().contains("scope="));
        let e = JwtError::KeysUnavailable;
        assert_eq!((e.status(), e.result(), e.www_authenticate("r")), (503, "keys_unavailable", None));
        let e = JwtError::UnknownKey { kid: "secret\"kid".into() };
        assert_eq!((e.status(), e.result()), (401, "unknown_key"));
        assert!(!e.www_authenticate("r").unwrap().contains("kid"));
        assert_eq!(JwtError::from(TokenError::TooLarge).json_body(), r#"{"error":"token too large"}"#);
        assert_eq!(JwtError::NotYetValid.result(), "not_yet_valid");
        assert_eq!(JwtError::Invalid("x").result(), "invalid");
        assert_eq!(JwtError::Missing.result(), "missing");
    }
}
