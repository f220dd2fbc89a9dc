//! Descriptors the daemon hands to tokio's reactor itself, with the readiness it asks for (the
//! batching timer's timerfd, and nginx's connections watched for reading only), and reads into
//! the buffers tokio lends uninitialized.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{Interest, ReadBuf};

/// Registers `owner`'s descriptor for `interest`; the `AsyncFd` owns it from then on.
#[allow(unsafe_code)]
pub(crate) fn watch<T>(owner: T, interest: Interest) -> io::Result<AsyncFd<T>>
where
    T: AsRawFd,
    OwnedFd: From<T>,
{
    // SAFETY: a type that converts into an `OwnedFd` owns its descriptor, which stays open and
    // the same for as long as the value lives; the `AsyncFd` owns the value. That is what
    // `register_with_interest` asks of its argument.
    unsafe { AsyncFd::register_with_interest(owner, interest) }.map_err(|e| e.into_parts().1)
}

/// Reads from `fd` into the unfilled part of `buf` without zeroing it first (hyper lends its read
/// buffer uninitialized: zeroing it was a memset of the whole buffer at every read); the bytes
/// read become filled.
#[allow(unsafe_code)]
pub(crate) fn read_into(fd: impl AsFd, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: only the kernel writes to the slice (through `read`); nothing de-initializes it.
    let unfilled = unsafe { buf.unfilled_mut() };
    let (read, _) = rustix::io::read(fd, unfilled)?;
    let read = read.len();
    // SAFETY: `read` initialized the first `read` bytes of the unfilled part.
    unsafe { buf.assume_init(read) };
    buf.advance(read);
    Ok(read)
}
