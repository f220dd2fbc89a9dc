//! The core's one error: a gRPC code (the vocabulary TF Serving itself answers in), a message,
//! and the hints some answers carry. Each ingress writes it in its own terms (`status`).

use std::borrow::Cow;

use tfgate_common::echo;

use super::status::{http_status, Code};
use crate::convert::{Blame, ConvertError};

/// A call that ends in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError {
    pub code: Code,
    /// May quote request values (`tfgate_common::echo::quote`): answers and logs read it
    /// through [`CoreError::client_message`] and [`CoreError::log_message`].
    pub message: String,
    /// For RESOURCE_EXHAUSTED and UNAVAILABLE: seconds after which a retry is worth it.
    pub retry_after: Option<u32>,
    /// The HTTP status when it is not the code's (TF Serving's REST mapping): 405, 408, 413.
    pub http: Option<u16>,
    /// For 405: the HTTP method the path is served under.
    pub allow: Option<&'static str>,
    /// Why a call was refused or dropped, for the audit line (`quota`, `memory`, `queue_full`,
    /// `caller_share`, `deadline`, `late`, `timeout`).
    pub reason: Option<&'static str>,
}

impl CoreError {
    pub fn new(code: Code, message: impl Into<String>) -> CoreError {
        CoreError { code, message: message.into(), retry_after: None, http: None, allow: None, reason: None }
    }

    pub fn with_retry_after(mut self, seconds: u32) -> CoreError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_reason(mut self, reason: &'static str) -> CoreError {
        self.reason = Some(reason);
        self
    }

    /// Answered over HTTP with `status` rather than the code's usual one.
    pub fn with_http_status(mut self, status: u16) -> CoreError {
        self.http = Some(status);
        self
    }

    /// A path served under another HTTP method (405, with `Allow`).
    pub fn wrong_method(message: impl Into<String>, allow: &'static str) -> CoreError {
        let mut error = CoreError::new(Code::InvalidArgument, message).with_http_status(405);
        error.allow = Some(allow);
        error
    }

    /// The client asked for something malformed or impossible.
    pub fn invalid(message: impl Into<String>) -> CoreError {
        CoreError::new(Code::InvalidArgument, message)
    }

    /// Refused for now, for lack of room (queue, memory, quota).
    pub fn exhausted(message: impl Into<String>, retry_after: u32) -> CoreError {
        CoreError::new(Code::ResourceExhausted, message).with_retry_after(retry_after)
    }

    /// More than a single call may ever take: retrying cannot help (HTTP 413).
    pub fn too_large(message: impl Into<String>) -> CoreError {
        CoreError::new(Code::ResourceExhausted, message).with_http_status(413)
    }

    /// Something on our side or the backend's failed.
    pub fn internal(message: impl Into<String>) -> CoreError {
        CoreError::new(Code::Internal, message)
    }

    /// The daemon is going away or the backend cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> CoreError {
        CoreError::new(Code::Unavailable, message)
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        self.http.unwrap_or_else(|| http_status(self.code))
    }

    /// The message for the caller: request values it quotes are short prefixes.
    pub fn client_message(&self) -> Cow<'_, str> {
        echo::for_client(&self.message)
    }

    /// The message for logs: no request value in it.
    pub fn log_message(&self) -> Cow<'_, str> {
        echo::for_log(&self.message)
    }
}

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.log_message())
    }
}

impl From<ConvertError> for CoreError {
    fn from(e: ConvertError) -> CoreError {
        let code = match e.blame {
            Blame::Request => Code::InvalidArgument,
            Blame::Backend => Code::Internal,
        };
        CoreError::new(code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_errors_blame_the_right_side() {
        assert_eq!(CoreError::from(ConvertError::request("bad")).code, Code::InvalidArgument);
        assert_eq!(CoreError::from(ConvertError::backend("odd")).code, Code::Internal);
    }

    #[test]
    fn request_values_reach_the_client_clipped_and_the_log_not_at_all() {
        let e = CoreError::invalid(format!("JSON Value: {} is not a float", echo::quote("\"SSN-123-45-6789\"")));
        assert_eq!(e.client_message(), "JSON Value: \"SSN-123-45-6789\" is not a float");
        assert!(!e.log_message().contains("SSN"));
        assert!(!e.to_string().contains("SSN"));
    }

    #[test]
    fn too_large_is_413_and_exhausted() {
        let e = CoreError::too_large("big");
        assert_eq!((e.code, e.http_status()), (Code::ResourceExhausted, 413));
        assert_eq!(CoreError::exhausted("busy", 1).http_status(), 429);
    }
}
