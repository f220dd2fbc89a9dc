//! A wake-up call with microsecond precision for a model task. tokio's timers tick every
//! millisecond, too coarse for `max_delay_us` of a few hundred microseconds (a 500 us delay
//! would become 1 to 2 ms); this one waits on a condition variable in a thread of its own,
//! which wakes within tens of microseconds, and calls back (the model task gets a message).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

pub(super) struct Alarm {
    shared: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Default)]
struct State {
    at: Option<Instant>,
    stop: bool,
}

impl Alarm {
    /// Starts the alarm's thread; `None` if no thread can be started (the caller then falls
    /// back to tokio's timer).
    pub fn start(ring: impl Fn() + Send + 'static, name: &str) -> Option<Alarm> {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name(format!("tfgate-alarm-{name}"))
            .spawn(move || ring_when_due(&theirs, ring))
            .ok()?;
        Some(Alarm { shared })
    }

    /// Rings once at `at` (replacing any earlier setting); `None` disarms it.
    pub fn set(&self, at: Option<Instant>) {
        let (lock, wake) = &*self.shared;
        let mut state = locked(lock);
        if state.at != at {
            state.at = at;
            wake.notify_one();
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        locked(lock).stop = true;
        wake.notify_one();
    }
}

fn ring_when_due(shared: &(Mutex<State>, Condvar), ring: impl Fn()) {
    let (lock, wake) = shared;
    let mut state = locked(lock);
    loop {
        if state.stop {
            return;
        }
        state = match state.at {
            None => wake.wait(state).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let now = Instant::now();
                if at <= now {
                    state.at = None;
                    drop(state);
                    ring();
                    locked(lock)
                } else {
                    wake.wait_timeout(state, at - now).map(|(s, _)| s).unwrap_or_else(|e| e.into_inner().0)
                }
            }
        };
    }
}

fn locked(lock: &Mutex<State>) -> MutexGuard<'_, State> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn rings_on_time_once_and_can_be_reset_or_disarmed() {
        let (tx, rx) = mpsc::channel();
        let alarm = Alarm::start(move || tx.send(Instant::now()).unwrap(), "test").unwrap();
        let due = Instant::now() + Duration::from_micros(700);
        alarm.set(Some(due));
        let rang = rx.recv_timeout(Duration::from_secs(1)).unwrap();
        assert!(rang >= due && rang < due + Duration::from_millis(20), "{:?}", rang - due);
        assert!(rx.recv_timeout(Duration::from_millis(20)).is_err(), "rang twice");
        alarm.set(Some(Instant::now() + Duration::from_millis(30)));
        alarm.set(None);
        assert!(rx.recv_timeout(Duration::from_millis(60)).is_err(), "disarmed");
        let sooner = Instant::now() + Duration::from_millis(1);
        alarm.set(Some(Instant::now() + Duration::from_secs(10)));
        alarm.set(Some(sooner));
        assert!(rx.recv_timeout(Duration::from_secs(1)).unwrap() >= sooner);
    }
}
