//! The TCP connections under the targets' gRPC channels, and how they write.
//!
//! hyper sends a request's HEADERS frame as soon as the stream opens and its DATA frame one turn
//! of the event loop later (h2 assigns the stream send capacity only once the HEADERS are out), so
//! every call to TF Serving cost two `writev`s and two wake-ups of the server. [`CoalescedWrites`]
//! lets the first write of each flush wait one turn: by then the DATA is queued too, and the
//! frames leave in one write. The wait is one pass of the runtime's queue, not a timer, and only
//! a small write waits (a frame header or a HEADERS frame: large DATA frames have nothing to
//! wait for).
//!
//! The connect timeout is applied here, inside tonic's connector: tonic then reports a timeout as
//! a connection error, which the pool knows was never sent and gives to another target. Applied
//! by tonic's `Endpoint::connect_timeout` around a custom connector, it came back as an unknown
//! error, and the call failed instead.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long establishing a connection to a target may take (TCP, and TLS where it is used).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Writes smaller than this wait their turn once (see [`CoalescedWrites`]).
const COALESCE_BELOW_BYTES: usize = 16 << 10;

/// Connects to the target's address (`http://HOST:PORT`; the port defaults to `default_port`).
pub async fn tcp(uri: &Uri, default_port: u16) -> io::Result<TcpStream> {
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((host, uri.port_u16().unwrap_or(default_port))).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// `connecting`, unless it takes longer than `limit`.
pub async fn within<T>(limit: Duration, connecting: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(limit, connecting).await.unwrap_or_else(|_| {
        Err(io::Error::new(io::ErrorKind::TimedOut, format!("no connection within {} ms", limit.as_millis())))
    })
}

/// tonic's connector for a plain-text target.
#[derive(Clone)]
pub struct PlainConnector {
    pub connect_timeout: Duration,
}

type Connecting = Pin<Box<dyn std::future::Future<Output = io::Result<CoalescedWrites<TokioIo<TcpStream>>>> + Send>>;

impl tower_service::Service<Uri> for PlainConnector {
    type Response = CoalescedWrites<TokioIo<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let limit = self.connect_timeout;
        Box::pin(async move { Ok(CoalescedWrites::new(TokioIo::new(within(limit, tcp(&uri, 80)).await?))) })
    }
}

/// A connection whose first write after each flush waits one turn of the event loop.
pub struct CoalescedWrites<S> {
    inner: S,
    /// The write that opens this flush has waited its turn.
    waited: bool,
}

impl<S> CoalescedWrites<S> {
    pub fn new(inner: S) -> CoalescedWrites<S> {
        CoalescedWrites { inner, waited: false }
    }

    /// `Pending` (and woken at once) the first time in a flush, for a small write.
    fn wait_once(&mut self, cx: &mut Context<'_>, bytes: usize) -> Poll<()> {
        if self.waited || bytes >= COALESCE_BELOW_BYTES {
            return Poll::Ready(());
        }
        self.waited = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: Read + Unpin> Read for CoalescedWrites<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: Write + Unpin> Write for CoalescedWrites<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.wait_once(cx, buf.len()));
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.wait_once(cx, bufs.iter().map(|b| b.len()).sum()));
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        this.waited = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Counted(AtomicUsize);
    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection that takes every byte at once.
    struct TakesAll;

    impl Write for TakesAll {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn the_first_write_of_a_flush_waits_one_turn_and_wakes_itself() {
        let wakes = Arc::new(Counted(AtomicUsize::new(0)));
        let waker = wakes.clone().into();
        let mut cx = Context::from_waker(&waker);
        let mut io = CoalescedWrites::new(TakesAll);
        assert!(Pin::new(&mut io).poll_write(&mut cx, b"HEADERS").is_pending());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "a write put off must wake its task");
        assert!(matches!(Pin::new(&mut io).poll_write(&mut cx, b"HEADERS"), Poll::Ready(Ok(7))));
        assert!(matches!(Pin::new(&mut io).poll_write(&mut cx, b"DATA"), Poll::Ready(Ok(4))), "once per flush");
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        assert!(Pin::new(&mut io).poll_write(&mut cx, b"next").is_pending(), "the next flush waits again");
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        let frame = vec![0u8; COALESCE_BELOW_BYTES];
        assert!(Pin::new(&mut io).poll_write(&mut cx, &frame).is_ready(), "a large frame has nothing to wait for");
    }

    /// Counts the writes that reach the connection.
    struct CountWrites<S> {
        inner: S,
        writes: Arc<AtomicUsize>,
    }

    impl<S: Read + Unpin> Read for CountWrites<S> {
        fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
        }
    }

    impl<S: Write + Unpin> Write for CountWrites<S> {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let written = Pin::new(&mut this.inner).poll_write(cx, buf);
            if written.is_ready() {
                this.writes.fetch_add(1, Ordering::Relaxed);
            }
            written
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
        }
    }

    /// The writes an HTTP/2 client makes for one request with a body, after the handshake.
    async fn writes_per_request(coalesce: bool) -> usize {
        use http_body_util::{BodyExt, Full};
        use hyper_util::rt::TokioExecutor;

        let (client, server) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                let body = request.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(server), service)
                .await;
        });
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = CountWrites { inner: TokioIo::new(client), writes: writes.clone() };
        let (mut sender, connection) = if coalesce {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), CoalescedWrites::new(counted))
                    .await
                    .unwrap();
            (sender, tokio::spawn(connection))
        } else {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), counted).await.unwrap();
            (sender, tokio::spawn(connection))
        };
        let post = |body: &'static [u8]| {
            hyper::Request::post("http://backend/predict").body(Full::new(bytes::Bytes::from_static(body))).unwrap()
        };
        // The first exchange settles the handshake's SETTINGS and their acknowledgements.
        sender.send_request(post(b"warm-up")).await.unwrap().into_body().collect().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let before = writes.load(Ordering::Relaxed);
        let answer = sender.send_request(post(b"a batch")).await.unwrap().into_body().collect().await.unwrap();
        assert_eq!(answer.to_bytes(), "a batch");
        let counted = writes.load(Ordering::Relaxed) - before;
        drop(sender);
        let _ = connection.await;
        counted
    }

    #[tokio::test]
    async fn a_request_leaves_in_one_write_where_hyper_alone_makes_two() {
        assert_eq!(writes_per_request(false).await, 2, "hyper alone: HEADERS, then DATA");
        assert_eq!(writes_per_request(true).await, 1);
    }

    /// A listener whose accept queue is full: the kernel drops further SYNs, so a connection to
    /// it hangs as one to a host that went away does. The connections that fill it are returned.
    fn unanswering_listener() -> (tokio::net::TcpListener, Vec<std::net::TcpStream>) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let address = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_millis(200)) {
                Ok(stream) => queued.push(stream),
                Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
                    return (listener, queued)
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the accept queue never filled");
    }

    #[tokio::test]
    async fn a_target_that_does_not_answer_is_a_connection_error_another_target_may_take() {
        use tfgate_proto::tensorflow::serving::model_service_client::ModelServiceClient;
        use tfgate_proto::tensorflow::serving::GetModelStatusRequest;

        let (listener, _queued) = unanswering_listener();
        let uri = format!("http://{}", listener.local_addr().unwrap());
        let connector = PlainConnector { connect_timeout: Duration::from_millis(300) };
        let channel = tonic::transport::Endpoint::from_shared(uri).unwrap().connect_with_connector_lazy(connector);
        let started = std::time::Instant::now();
        let status =
            ModelServiceClient::new(channel).get_model_status(GetModelStatusRequest::default()).await.unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(super::super::error::never_sent(&status), "{status:?}");
    }
}
