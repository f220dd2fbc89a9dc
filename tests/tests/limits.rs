//! The daemon's bound on request-body bytes held at once (`max_body_bytes_in_flight`): a burst
//! of large bodies gets 429 with Retry-After instead of taking the daemon's memory.

use serde_json::json;
use tfgate_tests::{Daemon, DaemonConfig, Nginx, NginxConfig, Sim};

#[test]
fn bodies_beyond_the_byte_budget_get_429_and_the_budget_comes_back() {
    // A slow backend keeps the first request (and its body) in flight.
    let sim = Sim::start(&["--cost-us", "400000,0"]);
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig { top_level_toml: "max_body_bytes_in_flight = 3000".into(), ..DaemonConfig::default() };
    let daemon = Daemon::start(dir.path(), &sim.grpc_url(), &config);
    let nginx = Nginx::start(dir.path(), &daemon.socket, &NginxConfig::default());

    // About 2 KB each: one fits the 3000-byte budget, two do not.
    let instances: Vec<f64> = (0..300).map(f64::from).collect();
    let body = json!({ "instances": instances }).to_string();
    assert!(body.len() > 1500 && body.len() < 3000, "{}", body.len());
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| nginx.client().post("/v1/models/half_plus_two/versions/1:predict", &body));
        std::thread::sleep(std::time::Duration::from_millis(150));
        let second = nginx.client().post("/v1/models/half_plus_two/versions/1:predict", &body);
        (first.join().unwrap(), second)
    });
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["predictions"].as_array().map(Vec::len), Some(300));
    second.assert_json_error(429);
    assert_eq!(second.header("retry-after"), Some("1"));
    // Small requests fit beside nothing else in flight, and the budget was given back.
    let again = nginx.client().post("/v1/models/half_plus_two/versions/1:predict", &body);
    assert_eq!(again.status, 200, "{}", again.body);
}
