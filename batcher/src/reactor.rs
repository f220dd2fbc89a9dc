//! Descriptors the daemon hands to tokio's reactor itself, with the readiness it asks for: the
//! batching timer's timerfd, and nginx's connections watched for reading only.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers `owner`'s descriptor for `interest`; the `AsyncFd` owns it from then on.
#[allow(unsafe_code)]
pub fn watch<T>(owner: T, interest: Interest) -> io::Result<AsyncFd<T>>
where
    T: AsRawFd,
    OwnedFd: From<T>,
{
    // SAFETY: a type that converts into an `OwnedFd` owns its descriptor, which stays open and
    // the same for as long as the value lives; the `AsyncFd` owns the value. That is what
    // `register_with_interest` asks of its argument.
    unsafe { AsyncFd::register_with_interest(owner, interest) }.map_err(|e| e.into_parts().1)
}
