//! Faults injected into Predict calls: failures and extra delay. The HTTP endpoint (`control`)
//! sets them and the gRPC service (`service`) applies them; a module of its own so that the
//! service, which owns the simulator's state, does not need the endpoint.

use std::sync::Mutex;

/// Faults injected into Predict calls.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<FaultState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct FaultState {
    fail_code: i32,
    fail_count: u64,
    extra_delay_us: u64,
}

impl Faults {
    /// The gRPC code the next call must fail with, if any (and counts it).
    pub fn take_failure(&self) -> Option<tonic::Code> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if state.fail_count == 0 {
            return None;
        }
        state.fail_count -= 1;
        Some(tonic::Code::from_i32(state.fail_code))
    }

    pub fn extra_delay(&self) -> std::time::Duration {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::time::Duration::from_micros(state.extra_delay_us)
    }

    fn set(&self, update: impl FnOnce(&mut FaultState)) {
        update(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The next `count` calls fail with gRPC code `code` (`POST /fail`).
    pub fn fail_next(&self, code: i32, count: u64) {
        self.set(|f| {
            f.fail_code = code;
            f.fail_count = count;
        });
    }

    /// Every call takes `us` microseconds more (`POST /delay`).
    pub fn set_extra_delay_us(&self, us: u64) {
        self.set(|f| f.extra_delay_us = us);
    }
}
