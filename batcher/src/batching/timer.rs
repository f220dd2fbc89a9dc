//! The model task's one-shot timer, to the microsecond. tokio's timer ticks in milliseconds, and
//! the policy's waits are often a fraction of one (a wave of clients coming back over a few
//! hundred microseconds): a Linux timerfd, watched by tokio's reactor, keeps them short. Where a
//! timerfd cannot be had, tokio's timer does, to the millisecond.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::time::{Duration, Instant};

use rustix::time::Timespec;
use rustix::time::{timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Sleep;

use crate::reactor::watch;

pub(super) struct Timer {
    precise: Option<AsyncFd<OwnedFd>>,
    coarse: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    pub fn new() -> Timer {
        let precise = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)
            .map_err(io::Error::from)
            .and_then(|fd| watch(fd, Interest::READABLE));
        let precise = match precise {
            Ok(fd) => Some(fd),
            Err(error) => {
                tracing::warn!("no timerfd ({error}): batching waits are timed to the millisecond");
                None
            }
        };
        Timer { precise, coarse: Box::pin(tokio::time::sleep(Duration::ZERO)), armed: None }
    }

    /// Fires once at `at` (at once when it has passed), replacing any earlier setting.
    pub fn arm(&mut self, at: Instant) {
        if self.armed == Some(at) {
            return;
        }
        self.armed = Some(at);
        if let Some(fd) = &self.precise {
            // A zero value would disarm it.
            let wait = at.saturating_duration_since(Instant::now()).max(Duration::from_micros(1));
            let value = Itimerspec {
                it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: wait.subsec_nanos().into() },
            };
            if timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &value).is_ok() {
                return;
            }
        }
        self.coarse.as_mut().reset(at.into());
    }

    /// Resolves when the armed time comes (never while unarmed). Cancel-safe.
    pub async fn fired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        if let Some(fd) = &self.precise {
            loop {
                let Ok(mut ready) = fd.readable().await else { break };
                match rustix::io::read(fd.get_ref(), &mut [0u8; 8]) {
                    Ok(_) => {
                        self.armed = None;
                        return;
                    }
                    Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                    Err(_) => break,
                }
            }
        }
        self.coarse.as_mut().await;
        self.armed = None;
    }
}
