//! When a group's batch goes (the `dispatch` setting): a pure function of the limits, what
//! was learnt, the group and the time.
//!
//! Adaptive dispatch, the default:
//! - a full group goes while a slot is free (`max_inflight`): a full batch waiting in the
//!   backend keeps it busy while the answers of the one before travel;
//! - a partial group goes only while the backend can run it (fewer batches in flight than it
//!   runs side by side, as learnt): held otherwise, it grows instead of queueing in the backend
//!   with few rows. Now and then it goes anyway, as a probe, to learn whether the backend has
//!   room for one more;
//! - when the backend could run it, it waits for more rows only while that is expected to pay
//!   ([`Learner::wait_for_more`]): on an idle system, a lone request goes at once.
//!
//! Fixed dispatch does what TF Serving does: a partial group goes `max_delay` after its oldest
//! request, on a free slot.

use std::time::{Duration, Instant};

use super::batch::{Dispatch, Limits, Reason};
use super::learn::{Learner, Pending};

/// A group as the decision sees it.
pub(super) struct View {
    pub mergeable: bool,
    /// Rows not yet sent.
    pub rows: usize,
    pub oldest: Instant,
    /// Since when it has been waiting for more rows while it could have gone.
    pub waiting_since: Option<Instant>,
    /// Requests queued or in flight, of every group.
    pub outstanding: usize,
    /// A batch sent now beside those in flight would teach whether the backend has room.
    pub probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Send(Reason),
    /// Look again at this instant (or on the next event).
    WaitUntil(Instant),
    /// Nothing until a batch comes back (or the next event).
    Hold,
}

pub(super) fn decide(limits: &Limits, learner: &Learner, group: &View, inflight: usize, now: Instant) -> Verdict {
    if inflight >= limits.max_inflight {
        return Verdict::Hold;
    }
    // A request that cannot share a batch gains nothing by waiting.
    if !group.mergeable {
        return Verdict::Send(Reason::Alone);
    }
    if group.rows >= limits.max_batch_size {
        return Verdict::Send(Reason::Full);
    }
    match limits.dispatch {
        Dispatch::Fixed => fixed(limits, group, now),
        Dispatch::Adaptive => adaptive(limits, learner, group, inflight, now),
    }
}

fn fixed(limits: &Limits, group: &View, now: Instant) -> Verdict {
    let delay = limits.max_delay.unwrap_or(Duration::ZERO);
    let ready = group.oldest + delay;
    match () {
        () if delay.is_zero() => Verdict::Send(Reason::SlotFree),
        () if now >= ready => Verdict::Send(Reason::DelayElapsed),
        () => Verdict::WaitUntil(ready),
    }
}

fn adaptive(limits: &Limits, learner: &Learner, group: &View, inflight: usize, now: Instant) -> Verdict {
    let side_by_side = learner.parallel.executors().min(limits.max_inflight);
    if inflight >= side_by_side {
        // The backend is busy: send beside it only to learn whether it has room.
        if inflight > 0 && group.probe {
            return Verdict::Send(Reason::Probe);
        }
        return Verdict::Hold;
    }
    let pending = Pending {
        rows: group.rows,
        max_rows: limits.max_batch_size,
        since: group.waiting_since.unwrap_or(now),
        outstanding: group.outstanding,
    };
    match learner.wait_for_more(now, &pending, limits.max_delay) {
        Some(at) if at > now => Verdict::WaitUntil(at),
        _ if group.waiting_since.is_some() => Verdict::Send(Reason::Waited),
        _ => Verdict::Send(Reason::SlotFree),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(dispatch: Dispatch, max_delay: Option<Duration>) -> Limits {
        Limits { max_batch_size: 8, dispatch, max_delay, max_inflight: 2, allowed_batch_sizes: Vec::new() }
    }

    fn view(rows: usize, oldest: Instant) -> View {
        view_probing(rows, oldest, false)
    }

    fn view_probing(rows: usize, oldest: Instant, probe: bool) -> View {
        View { mergeable: true, rows, oldest, waiting_since: None, outstanding: rows, probe }
    }

    #[test]
    fn full_groups_go_while_a_slot_is_free_and_nothing_goes_beyond_the_slots() {
        let now = Instant::now();
        let learner = Learner::new(2);
        let adaptive = limits(Dispatch::Adaptive, None);
        assert_eq!(decide(&adaptive, &learner, &view(8, now), 1, now), Verdict::Send(Reason::Full));
        assert_eq!(decide(&adaptive, &learner, &view(8, now), 2, now), Verdict::Hold);
    }

    #[test]
    fn an_idle_backend_takes_a_lone_request_at_once_and_a_busy_one_makes_it_wait() {
        let now = Instant::now();
        let mut learner = Learner::new(2);
        let adaptive = limits(Dispatch::Adaptive, None);
        assert_eq!(decide(&adaptive, &learner, &view(1, now), 0, now), Verdict::Send(Reason::SlotFree));
        // Nothing known of the backend: held beside a batch in flight, no probe can teach yet.
        let first = learner.sending(1, 1, now, std::iter::empty(), 1);
        assert!(!learner.probe_teaches(now, [&first].into_iter()));
        assert_eq!(decide(&adaptive, &learner, &view_probing(1, now, false), 1, now), Verdict::Hold);
        // Its cost known, and the second depth never seen: one probe.
        learner.answered(&first, Duration::from_millis(20));
        let first = learner.sending(1, 1, now, std::iter::empty(), 1);
        assert!(learner.probe_teaches(now, [&first].into_iter()));
        assert_eq!(decide(&adaptive, &learner, &view_probing(1, now, true), 1, now), Verdict::Send(Reason::Probe));
        // Learnt: a second batch waits in the backend. No more probes: held.
        let second = learner.sending(1, 1, now, [&first].into_iter(), 2);
        learner.answered(&second, Duration::from_millis(39));
        assert!(!learner.probe_teaches(now, [&first].into_iter()));
        assert_eq!(learner.parallel.executors(), 1);
    }

    #[test]
    fn fixed_dispatch_waits_its_delay_from_the_oldest_request() {
        let now = Instant::now();
        let learner = Learner::new(2);
        let fixed = limits(Dispatch::Fixed, Some(Duration::from_millis(5)));
        let later = now + Duration::from_millis(5);
        assert_eq!(decide(&fixed, &learner, &view(1, now), 1, now), Verdict::WaitUntil(later));
        assert_eq!(decide(&fixed, &learner, &view(1, now), 1, later), Verdict::Send(Reason::DelayElapsed));
        let eager = limits(Dispatch::Fixed, None);
        assert_eq!(decide(&eager, &learner, &view(1, now), 1, now), Verdict::Send(Reason::SlotFree));
    }
}
