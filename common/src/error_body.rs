//! The one error format of tfgate, the same as TF Serving's REST API: `{"error": "..."}`.

/// Content type of every error body produced by tfgate.
pub const ERROR_CONTENT_TYPE: &str = "application/json";

/// Serialises `message` as `{"error": "<message>"}`, escaping it as JSON requires.
pub fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_and_control_characters() {
        let body = error_body("bad \"name\"\n\u{1}");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["error"], "bad \"name\"\n\u{1}");
        assert!(!body.contains('\n'));
    }
}
