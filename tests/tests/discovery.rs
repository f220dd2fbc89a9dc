//! DNS discovery over the real components: dnsmasq on loopback serves one name for tfs-sim
//! replicas on 127.0.0.2, .3 and .4 (one port, as on three hosts), and tfgate-batcher is given
//! `dns://NAME:PORT` with that server as `backend.resolver`. Under continuous load through the
//! daemon's socket the name goes from 2 to 3 to 1 replicas: no request fails, the new replica
//! gets traffic soon after it appears, and the removed ones are stopped only once the daemon no
//! longer uses them (as a rolling update that waits for connection draining would).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tfgate_tests::batching_stack::{metric_value, BatchDaemon, ControlledSim, UnixClient};
use tfgate_tests::{free_port, Dnsmasq};

const NAME: &str = "tfs.discovery.test";
const PREDICT: &str = "/v1/models/half_plus_two:predict";
const ONE: &str = r#"{"instances": [1.0]}"#;
/// `backend.resolve_interval_ms`. The records' TTL is 1 s too, so a change is seen by the next
/// resolution, at most one interval later.
const INTERVAL: Duration = Duration::from_millis(1000);
/// How long a change may take to reach the traffic: one interval in principle, five here,
/// because a loaded CI machine may delay any of the processes involved by a second or more.
const WITHIN: Duration = Duration::from_millis(5 * 1000);
const CLIENTS: usize = 6;

#[test]
fn replicas_join_and_leave_under_load_without_a_failed_request() {
    let port = free_port();
    let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3), Ipv4Addr::new(127, 0, 0, 4)];
    // 5 ms per call, so that calls are in flight whenever the set of replicas changes.
    let sims: Vec<ControlledSim> =
        ips.iter().map(|&ip| ControlledSim::start_at(ip, port, &["--cost-us", "5000,0"])).collect();
    let dns = Dnsmasq::start(NAME, &ips[..2], 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = format!(
        "resolver = \"{}\"\nresolve_interval_ms = {}\nhealth_interval_ms = 200",
        dns.address(),
        INTERVAL.as_millis()
    );
    let daemon = BatchDaemon::start(
        dir.path(),
        &[format!("dns://{NAME}:{port}")],
        &backend,
        "[batching]\nmax_inflight_batches = 4\n",
    );
    let name_series = format!("tfgate_backend_targets{{name=\"dns://{NAME}:{port}\"}}");
    // The daemon waits for the first answer before it listens: both replicas are known at once.
    assert_eq!(daemon.metric(&name_series), 2.0, "{}", daemon.metrics_text());

    let load = Load::start(&daemon.client(), CLIENTS);
    wait_until("both first replicas serve", WITHIN, || calls(&sims[0]) > 0 && calls(&sims[1]) > 0);
    assert_eq!(calls(&sims[2]), 0, "127.0.0.4 is not in DNS yet");

    // 2 -> 3: the new replica takes traffic within the deadline.
    dns.set(NAME, &ips);
    let changed = Instant::now();
    wait_until("the new replica 127.0.0.4 serves", WITHIN, || calls(&sims[2]) > 0);
    eprintln!("127.0.0.4 served its first call {:?} after the DNS change", changed.elapsed());
    assert_eq!(daemon.metric(&name_series), 3.0);

    // 3 -> 1: the two first replicas leave the name; they keep running until the daemon has
    // let go of them (their metric series go with their last call), and only then stop.
    dns.set(NAME, &ips[2..]);
    let gone = |ip: &Ipv4Addr| {
        let text = daemon.metrics_text();
        metric_value(&text, &format!("tfgate_backend_outstanding_calls{{target=\"http://{ip}:{port}\"}}")).is_none()
    };
    wait_until("the daemon lets go of 127.0.0.2 and 127.0.0.3", WITHIN, || {
        daemon.metric(&name_series) == 1.0 && gone(&ips[0]) && gone(&ips[1])
    });
    let mut sims = sims;
    let last = sims.pop().expect("three sims");
    for mut removed in sims {
        removed.sim.process.stop();
    }
    let before = calls(&last);
    wait_until("the last replica goes on serving", WITHIN, || calls(&last) > before + 20);

    let (answered, failures) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        answered,
        &failures[..failures.len().min(5)]
    );
    assert!(answered > 100, "only {answered} requests answered");
    let log = daemon.process.log_text();
    assert!(log.contains(&format!("backend dns://{NAME}:{port}: 3 target(s) now")), "{log}");
}

/// A name that does not resolve at start-up leaves the daemon running, answering 503 (no
/// target), until it does.
#[test]
fn a_name_that_does_not_resolve_yet_answers_503_until_it_does() {
    let port = free_port();
    let ip = Ipv4Addr::new(127, 0, 0, 5);
    let sim = ControlledSim::start_at(ip, port, &[]);
    let dns = Dnsmasq::start("other.discovery.test", &[ip], 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = format!("resolver = \"{}\"\nresolve_interval_ms = {}", dns.address(), INTERVAL.as_millis());
    let daemon = BatchDaemon::start(dir.path(), &[format!("dns://{NAME}:{port}")], &backend, "");
    let client = daemon.client();
    let error = client.post(PREDICT, &[], ONE).assert_json_error(503);
    assert!(error.contains("no TF Serving target"), "{error}");

    dns.set(NAME, &[ip]);
    wait_until("the name resolves and serves", WITHIN, || client.post(PREDICT, &[], ONE).status == 200);
    assert!(calls(&sim) > 0);
    let resolutions =
        daemon.metric(&format!("tfgate_backend_resolutions_total{{name=\"dns://{NAME}:{port}\",result=\"empty\"}}"));
    assert!(resolutions >= 1.0, "{}", daemon.metrics_text());
}

fn calls(sim: &ControlledSim) -> u64 {
    sim.stats()["predict_calls"].as_u64().unwrap_or(0)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Clients sending one Predict after another until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    fn start(client: &UnixClient, count: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..count)
            .map(|_| {
                let (client, stop) = (client.clone(), stop.clone());
                thread::spawn(move || {
                    let (mut answered, mut failures) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let answer = client.post(PREDICT, &[], ONE);
                        answered += 1;
                        if answer.status != 200 {
                            failures.push(format!("{} {}", answer.status, answer.body));
                        }
                    }
                    (answered, failures)
                })
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops the clients; how many requests were answered, and the failed ones.
    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().map(|c| c.join().expect("client thread")).fold(
            (0, Vec::new()),
            |(n, mut all), (answered, failures)| {
                all.extend(failures);
                (n + answered, all)
            },
        )
    }
}
