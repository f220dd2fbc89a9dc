//! Quotas in gRPC answers: the fields of draft-ietf-httpapi-ratelimit-headers-11 as metadata
//! (`ratelimit-policy` and `ratelimit`, as the REST ingress's headers; in the initial metadata
//! of an answer, in the trailers of an error), and a refusal as RESOURCE_EXHAUSTED with
//! `retry-after`.

use tonic::{Response, Status};

use super::grpc_status;
use crate::admission::quota::{Refusal, Standing};
use crate::ingress::rest::quota::write;
use crate::request::CoreError;

/// The answer to a call, with where its caller stands when it was counted.
pub(super) fn answer<R>(message: R, standing: Option<&Standing>) -> Response<R> {
    let mut response = Response::new(message);
    if let Some(standing) = standing {
        write(response.metadata_mut().as_mut(), standing);
    }
    response
}

/// The error of a counted call (it still counts), with where its caller stands.
pub(super) fn error(error: CoreError, standing: Option<&Standing>) -> Status {
    let mut status = grpc_status(error);
    if let Some(standing) = standing {
        write(status.metadata_mut().as_mut(), standing);
    }
    status
}

/// A call the quotas refused: RESOURCE_EXHAUSTED with `retry-after` (UNAVAILABLE when the store
/// failed and `on_store_failure = "deny"`).
pub(super) fn refused(refusal: Refusal) -> Status {
    error(refusal.error, Some(&refusal.standing))
}
