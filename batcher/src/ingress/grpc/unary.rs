//! Serving one unary call with an async function: tonic's server machinery (framing, status,
//! limits) around a handler, with a request message that does not decode answered
//! INVALID_ARGUMENT (tonic's own codec says INTERNAL, which blames the server).

use std::future::Future;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::codegen::{BoxFuture, Service};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::ingress::rest::MAX_BODY_BYTES;

/// Answers `request` with `handler`, its messages decoded and encoded by prost.
pub(super) async fn serve<M, R, F, Fut>(
    request: hyper::Request<Incoming>,
    handler: F,
) -> hyper::Response<tonic::body::Body>
where
    M: prost::Message + Default + Send + 'static,
    R: prost::Message + Send + 'static,
    F: FnOnce(Request<M>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<R>, Status>> + Send + 'static,
{
    serve_with(RequestCodec::<R, M>(PhantomData), request, handler).await
}

/// As [`serve`], with another codec.
pub(super) async fn serve_with<C, F, Fut>(
    codec: C,
    request: hyper::Request<Incoming>,
    handler: F,
) -> hyper::Response<tonic::body::Body>
where
    C: Codec + Send + 'static,
    F: FnOnce(Request<C::Decode>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<C::Encode>, Status>> + Send + 'static,
{
    // Requests as large as REST bodies may be; answers as large as the backend's.
    let mut grpc = tonic::server::Grpc::new(codec)
        .max_decoding_message_size(MAX_BODY_BYTES)
        .max_encoding_message_size(crate::backend::MAX_MESSAGE_BYTES);
    grpc.unary(Once(Some(handler)), request).await
}

/// A service for exactly one call.
struct Once<F>(Option<F>);

impl<M, R, F, Fut> Service<Request<M>> for Once<F>
where
    F: FnOnce(Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>> + Send + 'static,
{
    type Response = Response<R>;
    type Error = Status;
    type Future = BoxFuture<Response<R>, Status>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<M>) -> Self::Future {
        match self.0.take() {
            Some(handler) => Box::pin(handler(request)),
            None => Box::pin(async { Err(Status::internal("a unary service called twice")) }),
        }
    }
}

/// prost's codec, with decoding errors blamed on the request.
struct RequestCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Codec for RequestCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = RequestDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

struct RequestDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for RequestDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D::Item>, Status> {
        self.0.decode(src).map_err(|status| match status.code() {
            Code::Internal => {
                Status::invalid_argument(format!("the request message does not decode: {}", status.message()))
            }
            _ => status,
        })
    }
}
