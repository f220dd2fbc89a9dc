//! A failed backend call, translated into the core's error: TF Serving's own status as it is,
//! failures of the connection as UNAVAILABLE naming the target, our deadline as
//! DEADLINE_EXCEEDED.

use std::error::Error;
use std::time::Duration;

use tonic::{Code, Status};

use crate::request::CoreError;

/// Translates a gRPC status. Errors raised by the client itself (no connection, the deadline
/// passed, a reset stream) carry a source error and no backend wording; they are told apart
/// here so that a deadline is DEADLINE_EXCEEDED and an unreachable backend UNAVAILABLE.
pub fn from_status(status: &Status, target: &str, timeout: Duration) -> CoreError {
    if source_chain_has::<tonic::TimeoutExpired>(status) {
        return deadline(target, timeout);
    }
    let code = status.code();
    let detail = if status.message().is_empty() { code.description() } else { status.message() };
    if source_chain_has::<tonic::ConnectError>(status) {
        CoreError::unavailable(format!("TF Serving at {target} is unreachable: {detail}"))
    } else if std::error::Error::source(status).is_some() {
        // The connection failed under the call: the backend is (for now) unavailable,
        // whatever code the transport error was given.
        CoreError::unavailable(format!("TF Serving at {target} failed during the call: {detail}"))
    } else {
        CoreError::new(code, detail)
    }
}

/// The call did not finish within its time limit.
pub fn deadline(target: &str, timeout: Duration) -> CoreError {
    CoreError::new(
        Code::DeadlineExceeded,
        format!("TF Serving at {target} did not answer within {} ms", timeout.as_millis()),
    )
}

/// The backend answered, but not in a form the daemon can use.
pub fn malformed(message: impl Into<String>) -> CoreError {
    CoreError::internal(message)
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

/// No connection could be made for the call, so not a byte of it was sent: any other target may
/// take it.
pub fn never_sent(status: &Status) -> bool {
    source_chain_has::<tonic::ConnectError>(status)
}

/// The server refused the call before processing it, on a connection it was closing: a GOAWAY
/// whose last stream is below the call's (nginx sends one after `keepalive_requests`, servers
/// do at their maximum connection age), a REFUSED_STREAM reset, or a call the connection dropped
/// before handing it to HTTP/2. RFC 9113 (6.8, 8.7) makes these safe to send again, on a new
/// connection to the same target too.
pub fn unprocessed(status: &Status) -> bool {
    let mut next = status.source();
    while let Some(error) = next {
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            if hyper.is_canceled() {
                return true;
            }
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.is_remote() && (h2.is_go_away() || h2.reason() == Some(h2::Reason::REFUSED_STREAM));
        }
        next = error.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_that_never_ran_are_retried() {
        assert!(not_executed(&Status::unavailable("queue full")));
        let refused = Status::from_error(Box::new(tonic::ConnectError(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))));
        assert!(is_transport_failure(&refused) && not_executed(&refused) && never_sent(&refused));
        assert!(!never_sent(&Status::unavailable("queue full")), "refused by TF Serving: sent");
        let lost = Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert!(!not_executed(&lost) && !never_sent(&lost) && is_transport_failure(&lost));
        assert!(!not_executed(&Status::invalid_argument("bad")));
        let ours = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert!(!is_transport_failure(&ours));
        let refused = Status::from_error(Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)));
        assert!(!unprocessed(&refused), "a reset we made ourselves is not the server's refusal");
        assert!(!unprocessed(&lost));
    }

    #[test]
    fn keeps_the_backend_message() {
        let e = from_status(
            &Status::not_found("Servable not found for request: Latest(nope)"),
            "http://b:1",
            Duration::from_secs(1),
        );
        assert_eq!((e.code, e.message.as_str()), (Code::NotFound, "Servable not found for request: Latest(nope)"));
        let e = from_status(&Status::unavailable(""), "http://b:1", Duration::from_secs(1));
        assert_eq!(e.code, Code::Unavailable);
        assert!(!e.message.is_empty());
        let lost = Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        let e = from_status(&lost, "http://b:1", Duration::from_secs(1));
        assert_eq!(e.code, Code::Unavailable, "a lost connection is the backend being unavailable");
        assert!(e.message.contains("http://b:1"));
    }
}
