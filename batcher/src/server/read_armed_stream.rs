//! nginx's connections, watched for reading only.
//!
//! tokio registers a socket for both directions, edge-triggered. On a Unix socket the kernel
//! signals "writable" every time the peer reads (`sock_wfree` -> `unix_write_space`), so each
//! answer nginx takes woke the daemon once more for nothing: at light load one of its three
//! wake-ups per request (docs/benchmarks.md, "The request path"). [`ReadArmedStream`] registers
//! the connection for reading only and writes straight away; only a write that finds the socket
//! full (an answer larger than its buffer) registers a duplicate of the descriptor for
//! writability, kept until the answer is flushed. Reads and writes are rustix's system calls:
//! no zeroing of hyper's read buffer, none of libc's cancellation-point bookkeeping.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::reactor::{read_into, watch};

pub struct ReadArmedStream {
    stream: AsyncFd<UnixStream>,
    /// A duplicate of the descriptor, registered for writability while a write waits for room.
    waiting_write: Option<AsyncFd<UnixStream>>,
}

impl ReadArmedStream {
    /// Takes over an accepted connection (tokio's registration is dropped for this one).
    pub fn new(stream: tokio::net::UnixStream) -> io::Result<ReadArmedStream> {
        let stream = stream.into_std()?;
        Ok(ReadArmedStream { stream: watch(stream, Interest::READABLE)?, waiting_write: None })
    }

    /// Writes with `write` now; if the socket is full, waits for room on the duplicate.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let waiting = match &self.waiting_write {
            Some(waiting) => waiting,
            None => match write(self.stream.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let duplicate = self.stream.get_ref().try_clone()?;
                    self.waiting_write.insert(watch(duplicate, Interest::WRITABLE)?)
                }
                done => return Poll::Ready(done),
            },
        };
        loop {
            let mut ready = ready!(waiting.poll_write_ready(cx))?;
            if let Ok(done) = ready.try_io(|fd| write(fd.get_ref())) {
                return Poll::Ready(done);
            }
        }
    }
}

impl AsyncRead for ReadArmedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.stream.poll_read_ready(cx))?;
            let wanted = buf.remaining();
            match ready.try_io(|fd| read_into(fd.get_ref(), buf)) {
                Ok(Ok(read)) => {
                    // A short read emptied the socket: as tokio's own streams do, wait for the
                    // next edge instead of asking again only to hear EAGAIN.
                    if read > 0 && read < wanted {
                        ready.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for ReadArmedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |fd| Ok(rustix::io::write(fd, buf)?))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |fd| Ok(rustix::io::writev(fd, bufs)?))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// The answer is out: left registered for writability, the connection would wake the
    /// daemon at every read of nginx's again.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().waiting_write = None;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.stream.get_ref().shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            done => done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (ReadArmedStream, tokio::net::UnixStream) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        (ReadArmedStream::new(ours).unwrap(), theirs)
    }

    #[tokio::test]
    async fn reads_and_writes_both_ways() {
        let (mut ours, mut theirs) = pair();
        theirs.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        ours.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"request");
        ours.write_all(b"answer").await.unwrap();
        let mut got = [0u8; 6];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"answer");
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_socket_buffer_waits_for_room_and_arrives_whole() {
        let (mut ours, mut theirs) = pair();
        let answer: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let expected = answer.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        ours.write_all(&answer).await.unwrap();
        assert!(ours.waiting_write.is_some(), "8 MiB fit in the socket's buffer: nothing was tested");
        ours.flush().await.unwrap();
        assert!(ours.waiting_write.is_none(), "the writability registration outlived the answer");
        ours.shutdown().await.unwrap();
        assert!(reader.await.unwrap() == expected);
    }

    #[tokio::test]
    async fn vectored_writes_keep_their_order() {
        let (mut ours, mut theirs) = pair();
        let parts = [IoSlice::new(b"HTTP/1.1 200 OK\r\n\r\n"), IoSlice::new(b"{}")];
        let written = std::future::poll_fn(|cx| Pin::new(&mut ours).poll_write_vectored(cx, &parts)).await.unwrap();
        assert_eq!(written, 21);
        let mut got = [0u8; 21];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n{}");
    }

    #[tokio::test]
    async fn the_peer_closing_reads_as_the_end() {
        let (mut ours, theirs) = pair();
        drop(theirs);
        let mut got = Vec::new();
        assert_eq!(ours.read_to_end(&mut got).await.unwrap(), 0);
    }
}
