use super::engine::{Accelerator, Load, Report, Sim};
use crate::batching::models::limits;
use crate::batching::policy::Limits;
use crate::config::BatchSettings;

const LARGE: (f64, f64) = (20_000.0, 200.0);
const SMALL: (f64, f64) = (2_000.0, 20.0);

fn defaults() -> Limits {
    limits(&BatchSettings::default())
}

fn accelerator((fixed, per_row): (f64, f64), executors: usize) -> Accelerator {
    Accelerator { executors, ..Accelerator::new(fixed, per_row) }
}

/// A closed-loop run, warmed up then measured (time scaled to the model's batch time): the
/// report, and its throughput as a share of the bound and of the ceiling a closed loop has (all
/// clients in one batch, then a round trip outside the backend).
fn closed_loop(model: (f64, f64), executors: usize, clients: usize) -> (Report, f64, f64) {
    let accelerator = accelerator(model, executors);
    let mut sim = Sim::new(defaults(), accelerator, Load::Closed { clients });
    let batch_time = ((model.0 + model.1 * 64.0) * 1e-6).max(1e-3);
    sim.run(40.0 * batch_time);
    let report = sim.run(200.0 * batch_time);
    let rows = clients.min(defaults().max_batch_size * executors) / executors;
    let bound = accelerator.bound(rows);
    let one_batch = (model.0 + model.1 * rows as f64) * 1e-6;
    let ceiling = bound.min(clients as f64 / (one_batch + sim.path.round_trip()));
    eprintln!(
        "{model:?} x{executors} c={clients}: {:.0}% of the bound, {:.0}% of the ceiling; {}",
        report.throughput() / bound * 100.0,
        report.throughput() / ceiling * 100.0,
        describe(&report)
    );
    (report.clone(), report.throughput() / bound, report.throughput() / ceiling)
}

fn describe(report: &Report) -> String {
    format!(
        "{:.0}/s, mean batch {:.1}, p50 {:.2} ms, p99 {:.2} ms, reasons {:?}",
        report.throughput(),
        report.mean_batch(),
        report.percentile(0.5) * 1e3,
        report.percentile(0.99) * 1e3,
        report.reasons
    )
}

#[test]
fn a_large_model_runs_at_the_bound_at_every_closed_loop_load() {
    for clients in [8, 32, 64, 256] {
        let (report, share, _) = closed_loop(LARGE, 1, clients);
        assert!(share >= 0.90, "c={clients}: {:.0}% of the bound; {}", share * 100.0, describe(&report));
        assert_eq!(report.expired, 0);
    }
}

#[test]
fn a_small_model_runs_near_the_bound_with_few_clients_and_at_it_with_many() {
    for (clients, goal) in [(8, 0.75), (256, 0.90)] {
        let (report, share, _) = closed_loop(SMALL, 1, clients);
        assert!(share >= goal, "c={clients}: {:.0}% of the bound; {}", share * 100.0, describe(&report));
    }
    // In between, the round trip outside the backend is a large share of a batch's time: the
    // ceiling is all clients in every batch.
    for clients in [32, 64] {
        let (report, _, share) = closed_loop(SMALL, 1, clients);
        assert!(share >= 0.90, "c={clients}: {:.0}% of the ceiling; {}", share * 100.0, describe(&report));
    }
}

#[test]
fn several_executors_are_all_kept_busy() {
    for model in [LARGE, SMALL] {
        let (report, share, _) = closed_loop(model, 2, 256);
        assert!(share >= 0.90, "{model:?}: {:.0}% of 2 executors' bound; {}", share * 100.0, describe(&report));
    }
}

#[test]
fn open_loop_at_80_percent_of_capacity_keeps_p99_within_three_full_batches() {
    for model in [LARGE, SMALL] {
        let accelerator = accelerator(model, 1);
        let full_batch = (model.0 + model.1 * 64.0) * 1e-6;
        let rate = 0.8 * accelerator.bound(64);
        let mut sim = Sim::new(defaults(), accelerator, Load::Open { rate });
        sim.run(50.0 * full_batch);
        let report = sim.run(500.0 * full_batch);
        let p99 = report.percentile(0.99);
        eprintln!("{model:?} open loop at 80%: {}", describe(&report));
        assert!(p99 <= 3.0 * full_batch, "{model:?}: p99 {:.2} ms; {}", p99 * 1e3, describe(&report));
        assert_eq!(report.expired, 0, "{model:?}");
        assert!(report.throughput() >= 0.95 * rate, "{model:?}: kept up? {}", describe(&report));
    }
}

#[test]
fn light_open_loop_traffic_waits_within_the_latency_budget() {
    for model in [LARGE, SMALL] {
        let accelerator = accelerator(model, 1);
        let rate = 0.1 * accelerator.bound(64);
        let mut sim = Sim::new(defaults(), accelerator, Load::Open { rate });
        let full_batch = (model.0 + model.1 * 64.0) * 1e-6;
        sim.run(50.0 * full_batch);
        let report = sim.run(500.0 * full_batch);
        eprintln!("{model:?} open loop at 10%: {}", describe(&report));
        let budget = BatchSettings::default().latency_budget.as_secs_f64();
        let mut queued = report.queued.clone();
        queued.sort_by(f64::total_cmp);
        let p99 = queued[queued.len() * 99 / 100];
        // Queued: the batch in flight, then the budget (and the timer's lateness). Rare probes
        // (a batch sent beside another to learn whether the backend has room) wait longer.
        assert!(p99 <= full_batch + budget + 1e-3, "{model:?}: queued p99 {:.2} ms", p99 * 1e3);
        assert_eq!(report.expired, 0);
    }
}

#[test]
fn a_lone_client_never_waits_for_company() {
    for model in [LARGE, SMALL, (0.0, 0.0)] {
        let (report, _, _) = closed_loop(model, 1, 1);
        let longest = report.queued.iter().copied().fold(0.0, f64::max);
        assert_eq!(longest, 0.0, "{model:?}: waited {:.0} us; {}", longest * 1e6, describe(&report));
    }
}

#[test]
fn the_policy_follows_the_load_up_and_down_within_a_few_batches() {
    let accelerator = accelerator(LARGE, 1);
    let mut sim = Sim::new(defaults(), accelerator, Load::Closed { clients: 64 });
    let batch = |rows: f64| (LARGE.0 + LARGE.1 * rows) * 1e-6;
    sim.run(40.0 * batch(64.0));
    for clients in [4, 32, 1, 16] {
        sim.set_load(Load::Closed { clients });
        // A few batches to adapt, then as good as a steady load.
        sim.run(10.0 * batch(clients as f64));
        let report = sim.run(100.0 * batch(clients as f64));
        let share = report.throughput() / accelerator.bound(clients);
        assert!(share >= 0.90, "to c={clients}: {:.0}% of the bound; {}", share * 100.0, describe(&report));
        if clients == 1 {
            assert_eq!(report.queued.iter().copied().fold(0.0, f64::max), 0.0, "alone again: no wait");
        }
    }
}

#[test]
fn clients_that_start_out_of_step_end_up_in_one_batch() {
    // Half the clients start while the first half's batch runs: two waves, a batch apart, which
    // the policy must merge rather than keep sending as half batches.
    for (model, clients) in [(LARGE, 8), (LARGE, 32), (SMALL, 8)] {
        let accelerator = accelerator(model, 1);
        let batch = |rows: f64| (model.0 + model.1 * rows) * 1e-6;
        let mut sim = Sim::new(defaults(), accelerator, Load::Closed { clients: clients / 2 });
        sim.run(0.5 * batch(clients as f64 / 2.0));
        sim.set_load(Load::Closed { clients });
        sim.run(40.0 * batch(clients as f64));
        let report = sim.run(200.0 * batch(clients as f64));
        let share = report.throughput() / accelerator.bound(clients);
        let goal = if model == LARGE { 0.90 } else { 0.75 };
        assert!(
            share >= goal,
            "{model:?} c={clients} out of step: {:.0}% of the bound; {}",
            share * 100.0,
            describe(&report)
        );
        assert!(report.mean_batch() >= clients as f64 * 0.9, "still half batches: {}", describe(&report));
    }
}
