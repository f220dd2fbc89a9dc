//! The TCP connections under the targets' gRPC channels, and how they write.
//!
//! hyper sends a request's HEADERS frame as soon as the stream opens and its DATA frame one turn
//! of the event loop later (h2 assigns the stream send capacity only once the HEADERS are out), so
//! every call to TF Serving cost two `writev`s and two wake-ups of the server. [`CoalescedWrites`]
//! lets the first write of each flush wait one turn: by then the DATA is queued too, and the
//! frames leave in one write. The wait is one pass of the runtime's queue, not a timer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Connects to the target's address (`http://HOST:PORT`; the port defaults to `default_port`).
pub async fn tcp(uri: &Uri, default_port: u16) -> io::Result<TcpStream> {
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((host, uri.port_u16().unwrap_or(default_port))).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// tonic's connector for a plain-text target.
#[derive(Clone, Default)]
pub struct PlainConnector;

type Connecting = Pin<Box<dyn std::future::Future<Output = io::Result<CoalescedWrites<TokioIo<TcpStream>>>> + Send>>;

impl tower_service::Service<Uri> for PlainConnector {
    type Response = CoalescedWrites<TokioIo<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        Box::pin(async move { Ok(CoalescedWrites::new(TokioIo::new(tcp(&uri, 80).await?))) })
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

    /// `Pending` (and woken at once) the first time in a flush.
    fn wait_once(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.waited {
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
        std::task::ready!(this.wait_once(cx));
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.wait_once(cx));
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
}
