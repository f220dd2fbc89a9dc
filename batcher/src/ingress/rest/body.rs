//! Answer bodies: whole (`full`), or written while the request's later batches still run
//! (`stream`), so a large answer is never held twice (outputs and their JSON) in memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// An error that ends an answer midway (the connection is closed: the client sees a truncated
/// answer, never a wrong one).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

pub type ResponseBody = BoxBody<Bytes, BodyError>;

/// A body sent at once.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A body written by another task, chunk by chunk, with backpressure (`CHUNKS` in the pipe at
/// most). The writer stops when the reader is gone (the client went away).
pub fn channel() -> (mpsc::Sender<Result<Bytes, BodyError>>, ResponseBody) {
    const CHUNKS: usize = 4;
    let (sender, receiver) = mpsc::channel(CHUNKS);
    (sender, ChannelBody(receiver).boxed())
}

struct ChannelBody(mpsc::Receiver<Result<Bytes, BodyError>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|result| result.map(Frame::data)))
    }
}
