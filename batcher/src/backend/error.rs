//! A failed backend call, already translated to what the HTTP client will be told.

use std::error::Error;
use std::time::Duration;

use tonic::{Code, Status};

/// HTTP status and message for a failed backend call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    pub status: u16,
    pub message: String,
    /// The gRPC code, so callers can react (e.g. drop a cached signature on INVALID_ARGUMENT).
    pub code: Code,
}

impl BackendError {
    /// Translates a gRPC status. Errors raised by the client itself (no connection, the deadline
    /// passed, a reset stream) carry a source error and no backend wording; they are told apart
    /// here so that a deadline is a 504 and an unreachable backend a 503 naming the target.
    pub fn from_status(status: &Status, target: &str, timeout: Duration) -> BackendError {
        if source_chain_has::<tonic::TimeoutExpired>(status) {
            return BackendError::deadline(target, timeout);
        }
        let code = status.code();
        let detail = if status.message().is_empty() { code.description() } else { status.message() };
        let (http, message) = if source_chain_has::<tonic::ConnectError>(status) {
            (503, format!("TF Serving at {target} is unreachable: {detail}"))
        } else if std::error::Error::source(status).is_some() {
            // The connection failed under the call: the backend is (for now) unavailable,
            // whatever code the transport error was given.
            (503, format!("TF Serving at {target} failed during the call: {detail}"))
        } else {
            (http_status(code), detail.to_string())
        };
        BackendError { status: http, message, code }
    }

    /// The call did not finish within its time limit.
    pub fn deadline(target: &str, timeout: Duration) -> BackendError {
        BackendError {
            status: http_status(Code::DeadlineExceeded),
            message: format!("TF Serving at {target} did not answer within {} ms", timeout.as_millis()),
            code: Code::DeadlineExceeded,
        }
    }

    /// The backend answered, but not in a form the daemon can use.
    pub fn malformed(message: impl Into<String>) -> BackendError {
        BackendError { status: 500, message: message.into(), code: Code::Internal }
    }
}

/// The call failed in the client or the connection (no connection, reset, our own deadline),
/// as opposed to an answer from TF Serving: such a status carries a source error.
pub fn is_transport_failure(status: &Status) -> bool {
    status.source().is_some() && !source_chain_has::<tonic::TimeoutExpired>(status)
}

/// The backend certainly did not execute the call, so sending it elsewhere cannot run it
/// twice: UNAVAILABLE because no connection could be made, or UNAVAILABLE said by TF Serving
/// itself (it refuses calls it cannot queue). A connection lost mid-call is not such a case.
pub fn not_executed(status: &Status) -> bool {
    status.code() == Code::Unavailable && (status.source().is_none() || source_chain_has::<tonic::ConnectError>(status))
}

fn source_chain_has<T: Error + 'static>(status: &Status) -> bool {
    let mut next = status.source();
    while let Some(error) = next {
        if error.is::<T>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// TF Serving's own mapping of gRPC codes to HTTP statuses in its REST API.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::Unknown => 500,
        Code::InvalidArgument => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::FailedPrecondition => 400,
        Code::Aborted => 409,
        Code::OutOfRange => 400,
        Code::Unimplemented => 501,
        Code::Internal => 500,
        Code::Unavailable => 503,
        Code::DataLoss => 500,
        Code::Unauthenticated => 401,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_like_tf_serving() {
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::Unavailable), 503);
        assert_eq!(http_status(Code::Cancelled), 499);
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::FailedPrecondition), 400);
    }

    #[test]
    fn only_calls_that_never_ran_are_retried() {
        assert!(not_executed(&Status::unavailable("queue full")));
        let refused = Status::from_error(Box::new(tonic::ConnectError(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))));
        assert!(is_transport_failure(&refused) && not_executed(&refused));
        let lost = Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert!(!not_executed(&lost) && is_transport_failure(&lost));
        assert!(!not_executed(&Status::invalid_argument("bad")));
        let ours = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert!(!is_transport_failure(&ours));
    }

    #[test]
    fn keeps_the_backend_message() {
        let e = BackendError::from_status(
            &Status::not_found("Servable not found for request: Latest(nope)"),
            "http://b:1",
            Duration::from_secs(1),
        );
        assert_eq!((e.status, e.message.as_str()), (404, "Servable not found for request: Latest(nope)"));
        let e = BackendError::from_status(&Status::unavailable(""), "http://b:1", Duration::from_secs(1));
        assert_eq!(e.status, 503);
        assert!(!e.message.is_empty());
    }
}
