//! Reading a request body, for every ingress: its bytes are reserved in the daemon's memory
//! budget as they arrive (a client announcing a large body and sending nothing holds nothing),
//! bounded in size, and a body that stalls is given up on.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::admission::Reservation;
use crate::request::{Code, CoreError};

/// Largest request body (or gRPC message) accepted.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// A body's data, read whole; `declared` is its `Content-Length` when announced. A body that
/// stalls for `stall` between two reads is DEADLINE_EXCEEDED (HTTP 408); trailers are not read
/// (nothing trusted ever comes from them).
pub async fn read_body<B>(
    mut body: B,
    declared: Option<usize>,
    memory: &mut Reservation,
    stall: Duration,
    max: usize,
) -> Result<Bytes, CoreError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let mut collected = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => {
                let message = format!("request body stalled for {} ms", stall.as_millis());
                return Err(CoreError::new(Code::DeadlineExceeded, message).with_http_status(408));
            }
            Ok(None) => return Ok(collected.freeze()),
            Ok(Some(Err(e))) => return Err(CoreError::invalid(format!("cannot read the request body: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if collected.len() + data.len() > max {
            return Err(too_large(max));
        }
        memory.grow(data.len())?;
        if collected.is_empty() {
            // Usually the one chunk of a small body: no copy. Otherwise room for all of it.
            if declared.is_none_or(|n| n == data.len()) {
                collected = BytesMut::from(data);
                continue;
            }
            collected.reserve(declared.unwrap_or(0).min(max));
        }
        collected.extend_from_slice(&data);
    }
}

fn too_large(max: usize) -> CoreError {
    CoreError::too_large(format!("request body larger than {max} bytes"))
}
