//! The keeper without DNS: answers are handed to it as its tasks would, and the pools it builds
//! are looked at. The tasks still run, against a resolver address where nothing answers, so
//! they only ever report failures, which change no address.

use std::time::Duration;

use super::*;
use crate::config::Config;

const NAME: &str = "dns://tfs.test:8500";

fn backend(extra: &str) -> BackendConfig {
    Config::parse(&format!(
        "listen = \"/tmp/x.sock\"\n[backend]\ngrpc = [\"http://10.9.9.9:8500\", \"{NAME}\"]\nresolver = \"127.0.0.1:9\"\nhealth_interval_ms = 0\n{extra}"
    ))
    .unwrap()
    .backend
}

fn name() -> DnsName {
    DnsName { host: "tfs.test".to_string(), port: 8500 }
}

fn answer(addresses: &[&str]) -> Answer {
    Answer::Addresses {
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        ttl: Duration::from_secs(30),
    }
}

fn targets(discovery: &Discovery) -> Vec<String> {
    discovery.pool().get().target_names().iter().map(|t| t.to_string()).collect()
}

fn has_series(metrics: &Metrics, target: &str) -> bool {
    metrics.render().contains(&format!("tfgate_backend_up{{target=\"{target}\"}}"))
}

#[tokio::test]
async fn answers_build_successor_pools_and_removed_targets_live_on_with_their_calls() {
    let metrics = Arc::new(Metrics::default());
    let discovery = Discovery::start(&backend(""), metrics.clone());
    assert_eq!(targets(&discovery), ["http://10.9.9.9:8500"], "the URL at once, the name once resolved");
    assert!(metrics.render().contains(&format!("tfgate_backend_targets{{name=\"{NAME}\"}} 0")));

    assert_eq!(discovery.keeper.record(0, &name(), &answer(&["10.0.0.1:8500", "10.0.0.2:8500"])), Some(2));
    assert_eq!(targets(&discovery), ["http://10.9.9.9:8500", "http://10.0.0.1:8500", "http://10.0.0.2:8500"]);
    assert!(metrics.render().contains(&format!("tfgate_backend_targets{{name=\"{NAME}\"}} 2")));

    // A call in flight holds the pool it started on.
    let in_flight = discovery.pool().get();
    let kept = in_flight.targets[2].clone();
    assert_eq!(discovery.keeper.record(0, &name(), &answer(&["10.0.0.2:8500", "10.0.0.3:8500"])), Some(2));
    assert_eq!(targets(&discovery), ["http://10.9.9.9:8500", "http://10.0.0.2:8500", "http://10.0.0.3:8500"]);
    assert!(Arc::ptr_eq(&discovery.pool().get().targets[1], &kept), "a target in both keeps its state");
    assert!(has_series(&metrics, "http://10.0.0.1:8500"), "the removed target lives while its call runs");
    drop((in_flight, kept));
    assert!(!has_series(&metrics, "http://10.0.0.1:8500"), "and goes with it");

    // Failed or empty resolutions keep the last good addresses.
    let before = discovery.pool().get();
    assert_eq!(discovery.keeper.record(0, &name(), &Answer::Failed("timeout".into())), Some(2));
    assert_eq!(discovery.keeper.record(0, &name(), &Answer::Empty("NXDOMAIN".into())), Some(2));
    assert!(Arc::ptr_eq(&before, &discovery.pool().get()), "no change, no new pool");
    let text = metrics.render();
    assert!(text.contains(&format!("tfgate_backend_resolutions_total{{name=\"{NAME}\",result=\"ok\"}} 2")), "{text}");
    assert!(
        text.contains(&format!("tfgate_backend_resolutions_total{{name=\"{NAME}\",result=\"empty\"}} 1")),
        "{text}"
    );
}

#[tokio::test]
async fn a_failing_target_asks_for_its_name_to_be_resolved_again() {
    let discovery = Discovery::start(&backend(""), Arc::new(Metrics::default()));
    // The task would take the notification itself: without it, the notification waits.
    for task in discovery.keeper.lock().tasks.drain(..) {
        task.abort();
    }
    discovery.keeper.record(0, &name(), &answer(&["10.0.0.1:8500"]));
    let pool = discovery.pool().get();
    let resolve_again = discovery.keeper.lock().names[&name()].resolve_again.clone();
    pool.mark_down(1);
    assert!(tokio::time::timeout(Duration::from_secs(1), resolve_again.notified()).await.is_ok());
    // The URL entry has no name to resolve again: nothing to notify.
    pool.mark_down(0);
    assert!(tokio::time::timeout(Duration::from_millis(50), resolve_again.notified()).await.is_err());
}

#[tokio::test]
async fn a_reload_keeps_known_addresses_and_retires_the_old_tasks() {
    let metrics = Arc::new(Metrics::default());
    let discovery = Discovery::start(&backend(""), metrics.clone());
    discovery.keeper.record(0, &name(), &answer(&["10.0.0.1:8500"]));
    discovery.reconfigure(&backend("resolve_interval_ms = 1000"));
    assert_eq!(targets(&discovery), ["http://10.9.9.9:8500", "http://10.0.0.1:8500"]);
    assert_eq!(discovery.keeper.record(0, &name(), &answer(&["10.0.0.7:8500"])), None, "a task of the old config");
    assert_eq!(targets(&discovery), ["http://10.9.9.9:8500", "http://10.0.0.1:8500"]);

    let without_name =
        Config::parse("listen = \"/tmp/x.sock\"\n[backend]\ngrpc = [\"http://10.9.9.9:8500\"]\n").unwrap();
    discovery.reconfigure(&without_name.backend);
    assert_eq!(targets(&discovery), ["http://10.9.9.9:8500"]);
    assert!(!metrics.render().contains("tfgate_backend_targets{"), "{}", metrics.render());
    assert!(discovery.keeper.lock().tasks.is_empty());
}

#[tokio::test]
async fn start_up_waits_for_first_answers_good_or_not() {
    let server = super::resolve::tests::fake_server(Vec::new(), 1).await;
    let config = Config::parse(&format!(
        "listen = \"/tmp/x.sock\"\n[backend]\ngrpc = [\"http://10.9.9.9:8500\", \"{NAME}\"]\nresolver = \"{server}\"\n"
    ))
    .unwrap();
    let metrics = Arc::new(Metrics::default());
    let discovery = Discovery::start(&config.backend, metrics.clone());
    // NXDOMAIN is an answer too: the daemon starts with what it has.
    assert!(discovery.first_answers(Duration::from_secs(30)).await);
    assert_eq!(targets(&discovery), ["http://10.9.9.9:8500"]);
    assert!(metrics
        .render()
        .contains(&format!("tfgate_backend_resolutions_total{{name=\"{NAME}\",result=\"empty\"}} 1")));
    let static_only = Config::parse("listen = \"/tmp/x.sock\"\n[backend]\ngrpc = [\"http://h:1\"]\n").unwrap();
    let discovery = Discovery::start(&static_only.backend, Arc::new(Metrics::default()));
    assert!(discovery.first_answers(Duration::ZERO).await, "no name: nothing to wait for");
}
