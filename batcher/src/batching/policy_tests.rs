use super::*;

/// Eager fixed dispatch (a batch goes whenever a slot is free): what the queue's mechanics are
/// tested with. Adaptive dispatch has tests of its own (`decide`, `learn`, `sim_tests`).
pub(super) fn limits(max_batch_size: usize, max_inflight: usize) -> Limits {
    Limits { max_batch_size, dispatch: Dispatch::Fixed, max_delay: None, max_inflight, allowed_batch_sizes: Vec::new() }
}

pub(super) struct Clock(pub Instant);

impl Clock {
    pub(super) fn at(&self, micros: u64) -> Instant {
        self.0 + Duration::from_micros(micros)
    }
}

pub(super) fn arrival(id: u64, group: &'static str, subject: &str, rows: usize, at: Instant) -> Arrival<&'static str> {
    Arrival {
        id,
        group,
        mergeable: true,
        subject: subject.to_string(),
        rows,
        arrived: at,
        deadline: at + Duration::from_secs(1),
        class: Class::default(),
    }
}

/// Queues `arrival` at its own arrival time (the queue knows nothing yet to refuse it on).
pub(super) fn admit(q: &mut ModelQueue<&'static str>, arrival: Arrival<&'static str>) {
    let at = arrival.arrived;
    assert_eq!(q.push(arrival, at), Admission::Queued);
}

fn dispatch(q: &mut ModelQueue<&'static str>, now: Instant) -> Batch<&'static str> {
    match q.next(now) {
        Next::Dispatch(batch) => batch,
        other => panic!("expected a batch, got {other:?}"),
    }
}

fn ids(batch: &Batch<&str>) -> Vec<u64> {
    batch.parts.iter().map(|p| p.id).collect()
}

#[test]
fn an_idle_system_sends_at_once() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(8, 2));
    assert_eq!(q.next(clock.at(0)), Next::Idle);
    admit(&mut q, arrival(1, "g", "", 3, clock.at(0)));
    let batch = dispatch(&mut q, clock.at(0));
    assert_eq!((batch.rows, batch.padded_rows, batch.reason), (3, 3, Reason::SlotFree));
    assert_eq!(batch.parts, vec![Part { id: 1, rows: 0..3, last: true }]);
    assert_eq!((q.queued_requests(), q.inflight()), (0, 1));
}

#[test]
fn arrivals_gather_while_every_slot_is_busy() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(4, 1));
    admit(&mut q, arrival(1, "g", "", 1, clock.at(0)));
    dispatch(&mut q, clock.at(0));
    for id in 2..=7 {
        admit(&mut q, arrival(id, "g", "", 1, clock.at(id)));
    }
    // Busy: nothing goes; the wake-up is the earliest deadline.
    assert_eq!(q.next(clock.at(10)), Next::WaitUntil(clock.at(0) + Duration::from_secs(1)));
    q.batch_done(1, Some(Duration::from_millis(1)));
    let batch = dispatch(&mut q, clock.at(20));
    assert_eq!((ids(&batch), batch.reason), (vec![2, 3, 4, 5], Reason::Full));
    q.batch_done(batch.id, Some(Duration::from_millis(1)));
    assert_eq!(ids(&dispatch(&mut q, clock.at(21))), vec![6, 7]);
}

#[test]
fn max_delay_waits_for_a_fuller_batch_from_the_oldest_arrival() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(Limits { max_delay: Some(Duration::from_micros(500)), ..limits(4, 2) });
    admit(&mut q, arrival(1, "g", "", 1, clock.at(0)));
    assert_eq!(q.next(clock.at(100)), Next::WaitUntil(clock.at(500)));
    admit(&mut q, arrival(2, "g", "", 1, clock.at(200)));
    let batch = dispatch(&mut q, clock.at(500));
    assert_eq!((ids(&batch), batch.reason), (vec![1, 2], Reason::DelayElapsed));
    // A full group does not wait.
    admit(&mut q, arrival(3, "g", "", 4, clock.at(600)));
    assert_eq!(dispatch(&mut q, clock.at(600)).reason, Reason::Full);
}

#[test]
fn batches_are_padded_up_to_an_allowed_size() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(Limits { allowed_batch_sizes: vec![2, 4, 8], ..limits(8, 4) });
    for (id, rows, padded) in [(1, 1, 2), (2, 3, 4), (3, 5, 8), (4, 8, 8)] {
        admit(&mut q, arrival(id, "g", "", rows, clock.at(0)));
        let batch = dispatch(&mut q, clock.at(0));
        assert_eq!((batch.rows, batch.padded_rows), (rows, padded));
    }
    assert_eq!(padded_size(9, &[2, 4, 8]), 9);
    assert_eq!(padded_size(3, &[]), 3);
}

#[test]
fn large_requests_are_split_and_fitting_ones_never() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(4, 8));
    admit(&mut q, arrival(1, "g", "", 10, clock.at(0)));
    let parts: Vec<Part> = (0..3).flat_map(|_| dispatch(&mut q, clock.at(0)).parts).collect();
    assert_eq!(
        parts,
        vec![
            Part { id: 1, rows: 0..4, last: false },
            Part { id: 1, rows: 4..8, last: false },
            Part { id: 1, rows: 8..10, last: true },
        ]
    );
    assert_eq!(q.next(clock.at(0)), Next::Idle);
    // 3 + 3 rows with a batch of 4: the second request waits for the next batch whole.
    admit(&mut q, arrival(2, "g", "", 3, clock.at(1)));
    admit(&mut q, arrival(3, "g", "", 3, clock.at(2)));
    assert_eq!(ids(&dispatch(&mut q, clock.at(3))), vec![2]);
    assert_eq!(dispatch(&mut q, clock.at(3)).parts, vec![Part { id: 3, rows: 0..3, last: true }]);
}

#[test]
fn a_heavy_subject_does_not_starve_a_light_one() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(8, 1));
    for id in 0..100 {
        admit(&mut q, arrival(id, "g", "heavy", 1, clock.at(id)));
    }
    admit(&mut q, arrival(1000, "g", "light", 1, clock.at(200)));
    admit(&mut q, arrival(1001, "g", "light", 1, clock.at(201)));
    let batch = dispatch(&mut q, clock.at(300));
    assert_eq!(batch.rows, 8);
    assert!(ids(&batch).contains(&1000) && ids(&batch).contains(&1001), "{:?}", ids(&batch));
    // A huge request from one subject is split a quantum at a time next to the others.
    let mut q = ModelQueue::new(limits(8, 1));
    admit(&mut q, arrival(1, "g", "heavy", 1000, clock.at(0)));
    admit(&mut q, arrival(2, "g", "light", 2, clock.at(1)));
    let batch = dispatch(&mut q, clock.at(2));
    assert_eq!(batch.parts, vec![Part { id: 1, rows: 0..6, last: false }, Part { id: 2, rows: 0..2, last: true },]);
}

#[test]
fn groups_never_mix_and_the_oldest_goes_first() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(8, 8));
    admit(&mut q, arrival(1, "b", "", 1, clock.at(0)));
    admit(&mut q, arrival(2, "a", "", 1, clock.at(1)));
    admit(&mut q, arrival(3, "b", "", 1, clock.at(2)));
    let first = dispatch(&mut q, clock.at(3));
    assert_eq!((first.group, ids(&first)), ("b", vec![1, 3]));
    let second = dispatch(&mut q, clock.at(3));
    assert_eq!((second.group, ids(&second)), ("a", vec![2]));
}

#[test]
fn requests_that_cannot_share_go_alone_unpadded() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(Limits { allowed_batch_sizes: vec![4], ..limits(4, 8) });
    let mut solo = arrival(1, "solo-1", "", 1, clock.at(0));
    solo.mergeable = false;
    admit(&mut q, solo);
    let batch = dispatch(&mut q, clock.at(0));
    assert_eq!((batch.reason, batch.padded_rows), (Reason::Alone, 1));
}

#[test]
fn expired_requests_leave_before_anything_is_sent() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(4, 1));
    admit(&mut q, arrival(1, "g", "", 1, clock.at(0)));
    dispatch(&mut q, clock.at(0));
    admit(&mut q, arrival(2, "g", "", 1, clock.at(10)));
    admit(&mut q, arrival(3, "g", "x", 1, clock.at(500_000)));
    assert!(q.expire(clock.at(900_000)).is_empty());
    assert_eq!(q.expire(clock.at(1_000_010)), vec![(2, 0)]);
    assert_eq!(q.queued_requests(), 1);
    q.batch_done(1, Some(Duration::from_millis(1)));
    assert_eq!(ids(&dispatch(&mut q, clock.at(1_000_011))), vec![3]);
    assert_eq!(q.expire(clock.at(9_000_000)), Vec::<(u64, usize)>::new());
}

#[test]
fn cancelled_requests_leave_the_queue_unless_already_sent() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(4, 8));
    admit(&mut q, arrival(1, "g", "", 6, clock.at(0)));
    admit(&mut q, arrival(2, "g", "", 1, clock.at(0)));
    admit(&mut q, arrival(3, "g", "", 1, clock.at(0)));
    assert!(q.cancel(3));
    assert!(!q.cancel(3));
    let batch = dispatch(&mut q, clock.at(0));
    assert_eq!(batch.parts, vec![Part { id: 1, rows: 0..4, last: false }]);
    // Partly sent: its other rows are dropped.
    assert!(q.cancel(1));
    assert_eq!(ids(&dispatch(&mut q, clock.at(0))), vec![2]);
    assert!(!q.cancel(2));
    assert_eq!((q.queued_requests(), q.queued_rows()), (0, 0));
}

#[test]
fn adaptive_dispatch_holds_partial_batches_while_a_queueing_backend_is_busy() {
    let clock = Clock(Instant::now());
    let mut q =
        ModelQueue::new(Limits { dispatch: Dispatch::Adaptive, max_delay: Some(Duration::ZERO), ..limits(8, 2) });
    // Learn the cost alone (10 ms + 0.1 ms a row), then that a second batch waits in the backend.
    for (id, rows) in [(1, 1), (2, 8), (3, 4)] {
        admit(&mut q, arrival(id, "g", "", rows, clock.at(0)));
        let batch = dispatch(&mut q, clock.at(0));
        assert_eq!(batch.reason, if rows == 8 { Reason::Full } else { Reason::SlotFree });
        q.batch_done(batch.id, Some(Duration::from_micros(10_000 + 100 * rows as u64)));
    }
    admit(&mut q, arrival(4, "g", "", 1, clock.at(0)));
    let first = dispatch(&mut q, clock.at(0));
    admit(&mut q, arrival(5, "g", "", 1, clock.at(100)));
    let probe = dispatch(&mut q, clock.at(100));
    assert_eq!(probe.reason, Reason::Probe, "a second batch beside the first: is there room?");
    q.batch_done(first.id, Some(Duration::from_micros(10_100)));
    q.batch_done(probe.id, Some(Duration::from_micros(19_000)));
    assert_eq!(q.learner().parallel.executors(), 1, "it waited: one executor");
    admit(&mut q, arrival(6, "g", "", 1, clock.at(20_000)));
    let running = dispatch(&mut q, clock.at(20_000));
    admit(&mut q, arrival(7, "g", "", 1, clock.at(20_100)));
    admit(&mut q, arrival(8, "g", "", 1, clock.at(20_200)));
    // Held while the backend is busy: the wake-up is only for deadlines.
    assert!(matches!(q.next(clock.at(20_300)), Next::WaitUntil(at) if at >= clock.at(1_000_000)));
    // A full group still goes beside it, oldest rows first.
    for id in 10..18 {
        admit(&mut q, arrival(id, "g", "", 1, clock.at(21_000)));
    }
    let full = dispatch(&mut q, clock.at(21_000));
    assert_eq!((full.reason, ids(&full)), (Reason::Full, vec![7, 8, 10, 11, 12, 13, 14, 15]));
    assert!(matches!(q.next(clock.at(21_000)), Next::WaitUntil(_)));
    q.batch_done(running.id, Some(Duration::from_micros(10_100)));
    q.batch_done(full.id, None);
    let held = dispatch(&mut q, clock.at(30_000));
    assert_eq!((ids(&held), held.reason), (vec![16, 17], Reason::SlotFree));
}

#[path = "policy_random_tests.rs"]
mod random;

#[test]
fn batches_without_a_latency_free_their_slot_but_teach_nothing() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(4, 1));
    admit(&mut q, arrival(1, "g", "", 1, clock.at(0)));
    let batch = dispatch(&mut q, clock.at(0));
    assert_eq!(q.inflight(), 1);
    q.batch_done(batch.id, None);
    assert_eq!(q.inflight(), 0, "the slot is free again");
    q.batch_done(batch.id, Some(Duration::from_millis(1)));
    assert_eq!(q.learner().cost.fit(), None, "skipped, failed or repeated batches are not timings");
}

/// Teaches `q` the cost of batches: 100 ms + 1 ms per row, from lone batches of a few sizes.
fn learnt_100ms_plus_1ms_per_row(q: &mut ModelQueue<&'static str>, clock: &Clock) -> u64 {
    let mut t = 0;
    for (i, rows) in [1usize, 8, 32, 64, 16].into_iter().enumerate() {
        admit(q, arrival(1_000 + i as u64, "g", "teacher", rows, clock.at(t)));
        let batch = dispatch(q, clock.at(t));
        t += 100_000 + 1_000 * rows as u64;
        q.batch_done(batch.id, Some(Duration::from_micros(100_000 + 1_000 * rows as u64)));
    }
    assert!(q.learner().cost.confident());
    t
}

#[test]
fn a_request_that_cannot_be_answered_in_time_is_refused_as_it_arrives() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(64, 1));
    let t = learnt_100ms_plus_1ms_per_row(&mut q, &clock);
    // Nothing known yet of a fresh queue: everything is admitted.
    let mut fresh = ModelQueue::new(limits(64, 1));
    let late = Arrival { deadline: clock.at(1), ..arrival(1, "g", "a", 64, clock.at(0)) };
    assert_eq!(fresh.push(late, clock.at(0)), Admission::Queued);
    // 600 rows queued take 10 batches of 164 ms: a request with 1 s left is refused at once,
    // one with 3 s is taken.
    for id in 0..600 {
        admit(&mut q, Arrival { deadline: clock.at(t + 100_000_000), ..arrival(id, "g", "flood", 1, clock.at(t)) });
    }
    let hurried = Arrival { deadline: clock.at(t + 1_000_000), ..arrival(700, "g", "flood", 1, clock.at(t)) };
    let Admission::Refused { retry_after } = q.push(hurried, clock.at(t)) else { panic!("admitted") };
    assert!(retry_after >= Duration::from_millis(500), "{retry_after:?}");
    let patient = Arrival { deadline: clock.at(t + 3_000_000), ..arrival(701, "g", "flood", 1, clock.at(t)) };
    assert_eq!(q.push(patient, clock.at(t)), Admission::Queued);
    // Another caller is served by round-robin, ahead of most of the flood: it fits in 1 s.
    let polite = Arrival { deadline: clock.at(t + 1_000_000), ..arrival(702, "g", "polite", 1, clock.at(t)) };
    assert_eq!(q.push(polite, clock.at(t)), Admission::Queued);
}

#[test]
fn rows_that_could_not_finish_in_time_are_not_sent() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(64, 1));
    let t = learnt_100ms_plus_1ms_per_row(&mut q, &clock);
    admit(&mut q, Arrival { deadline: clock.at(t + 10_000_000), ..arrival(1, "g", "c", 1, clock.at(t)) });
    let running = dispatch(&mut q, clock.at(t));
    // 250 ms is enough behind the running batch (101 + 101 ms): both are taken.
    admit(&mut q, Arrival { deadline: clock.at(t + 250_000), ..arrival(2, "g", "a", 1, clock.at(t)) });
    admit(&mut q, Arrival { deadline: clock.at(t + 5_000_000), ..arrival(3, "g", "b", 1, clock.at(t)) });
    // The backend was slow: at 200 ms, a 101 ms batch can no longer answer the first in time.
    q.batch_done(running.id, Some(Duration::from_millis(200)));
    assert_eq!(q.next(clock.at(t + 200_000)), Next::Late(vec![(2, 0)]));
    assert_eq!(ids(&dispatch(&mut q, clock.at(t + 200_000))), vec![3]);
}

#[test]
fn a_batch_queued_at_the_backend_counts_after_the_one_it_waits_for() {
    // Two batches in flight on a backend that runs one at a time: the second starts when the
    // first ends, so a request arriving now is answered after both, not after the longer one.
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(64, 2));
    let t = learnt_100ms_plus_1ms_per_row(&mut q, &clock);
    admit(&mut q, Arrival { deadline: clock.at(t + 10_000_000), ..arrival(1, "g", "a", 64, clock.at(t)) });
    dispatch(&mut q, clock.at(t));
    admit(&mut q, Arrival { deadline: clock.at(t + 10_000_000), ..arrival(2, "g", "a", 64, clock.at(t + 100_000)) });
    dispatch(&mut q, clock.at(t + 100_000));
    // At 150 ms: 14 ms left of the first, then 164 ms of the second, then 101 ms of its own.
    let now = clock.at(t + 150_000);
    let finish = q.predicted_finish(&"g", "b", Class::default(), 1, now).unwrap();
    let expected = clock.at(t + 164_000 + 164_000 + 101_000);
    let error = finish.max(expected) - finish.min(expected);
    assert!(error < Duration::from_millis(2), "predicted {:?} after t", finish.duration_since(clock.at(t)));
    // A request with 250 ms left cannot make it; one with 300 ms can.
    let hurried = Arrival { deadline: now + Duration::from_millis(250), ..arrival(3, "g", "b", 1, now) };
    assert!(matches!(q.push(hurried, now), Admission::Refused { .. }));
    let patient = Arrival { deadline: now + Duration::from_millis(300), ..arrival(4, "g", "b", 1, now) };
    assert_eq!(q.push(patient, now), Admission::Queued);
}

#[test]
fn a_request_of_many_rows_is_predicted_in_a_few_steps() {
    // 2^27 rows are two million batches: predicted at once (whole rounds), and refused.
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(64, 2));
    let t = learnt_100ms_plus_1ms_per_row(&mut q, &clock);
    let started = Instant::now();
    let finish = q.predicted_finish(&"g", "big", Class::default(), 1 << 27, clock.at(t)).unwrap();
    assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
    let expected = Duration::from_secs_f64((1u64 << 21) as f64 * 0.164);
    let predicted = finish.duration_since(clock.at(t));
    assert!(predicted >= expected.mul_f64(0.99) && predicted <= expected.mul_f64(1.01), "{predicted:?}");
    let big = Arrival { rows: 1 << 27, ..arrival(1, "g", "big", 1, clock.at(t)) };
    assert!(matches!(q.push(big, clock.at(t)), Admission::Refused { .. }));
}

#[test]
fn an_abandoned_call_holds_its_slot_until_its_predicted_end() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(64, 1));
    let t = learnt_100ms_plus_1ms_per_row(&mut q, &clock);
    admit(&mut q, Arrival { deadline: clock.at(t + 10_000_000), ..arrival(1, "g", "a", 64, clock.at(t)) });
    let batch = dispatch(&mut q, clock.at(t));
    // Given up 50 ms in: TF Serving computes it for another 114 ms.
    q.batch_abandoned(batch.id, clock.at(t + 50_000));
    admit(&mut q, Arrival { deadline: clock.at(t + 10_000_000), ..arrival(2, "g", "a", 1, clock.at(t + 50_000)) });
    assert_eq!(q.inflight(), 1);
    let Next::WaitUntil(at) = q.next(clock.at(t + 60_000)) else { panic!("sent beside an abandoned call") };
    assert!(at <= clock.at(t + 165_000), "{:?}", at.duration_since(clock.at(t)));
    assert_eq!(ids(&dispatch(&mut q, clock.at(t + 165_000))), vec![2]);
}

#[test]
fn higher_classes_fill_batches_first_lower_ones_keep_a_share_and_weights_divide() {
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(limits(16, 1));
    let high = Class { priority: 1, weight: 1 };
    for id in 0..20 {
        admit(&mut q, Arrival { class: high, ..arrival(id, "g", "gold", 1, clock.at(0)) });
        admit(&mut q, arrival(100 + id, "g", "free", 1, clock.at(0)));
    }
    let batch = dispatch(&mut q, clock.at(0));
    let lower = batch.parts.iter().filter(|p| p.id >= 100).count();
    // 16 rows: 14 of the higher class, the lower class's share of 2 (1/8).
    assert_eq!((batch.rows, lower), (16, 2));
    q.batch_done(batch.id, None);
    // Weights 3:1 within a class divide each batch 12:4.
    let mut q = ModelQueue::new(limits(16, 1));
    for id in 0..40 {
        admit(&mut q, Arrival { class: Class { priority: 0, weight: 3 }, ..arrival(id, "g", "heavy", 1, clock.at(0)) });
        admit(&mut q, arrival(100 + id, "g", "light", 1, clock.at(0)));
    }
    let batch = dispatch(&mut q, clock.at(0));
    let light = batch.parts.iter().filter(|p| p.id >= 100).count();
    assert_eq!((batch.rows - light, light), (12, 4));
}
