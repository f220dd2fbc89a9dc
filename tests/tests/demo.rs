//! The demo (scripts/demo.sh) runs end to end: what a new user sees first must work.

use std::process::Command;

use tfgate_tests::{free_port, repo_root};

#[test]
fn the_demo_runs_through_and_shows_each_step() {
    let port = |name: &str| (name.to_string(), free_port().to_string());
    let output = Command::new(repo_root().join("scripts/demo.sh"))
        .arg("--once")
        .envs([
            port("TFGATE_DEMO_PORT"),
            port("TFGATE_DEMO_SIM_PORT"),
            port("TFGATE_DEMO_METRICS_PORT"),
            port("TFGATE_DEMO_GRPC_PORT"),
        ])
        .current_dir(repo_root())
        .output()
        .expect("run scripts/demo.sh");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("HTTP/1.1 401"), "step 1: no token is a 401\n{text}");
    assert!(text.contains(r#"{"predictions":[2.5,3.0,4.5]}"#), "step 2: version 1\n{text}");
    assert!(text.contains(r#"{"predictions":[3.5,4.0,5.5]}"#), "step 3: the canary label\n{text}");
    assert!(text.contains("200 requests ->"), "step 4: the burst\n{text}");
    let grpc = text.lines().find(|l| l.contains(r#""mode":"grpc""#)).expect("step 5: a gRPC call");
    assert!(grpc.contains(r#""requests":1,"errors":0"#), "step 5: the gRPC call succeeded\n{text}");
    assert!(text.contains("tfgate_jwt: missing"), "step 5: the refused gRPC call\n{text}");
    let v2 = text.lines().find(|l| l.starts_with(r#"{"model_name":"half_plus_two""#)).expect("step 6: a v2 answer");
    assert!(v2.contains("[2.5,3.0,4.5]"), "step 6: the v2 REST answer\n{text}");
    let v2_grpc = text.lines().find(|l| l.contains(r#""mode":"v2-grpc""#)).expect("step 6: a v2 gRPC call");
    assert!(v2_grpc.contains(r#""requests":1,"errors":0"#), "step 6: the v2 gRPC call succeeded\n{text}");
    assert!(text.contains("HTTP/1.1 429"), "step 7: the trial plan's bucket runs out\n{text}");
    assert!(text.contains(r#"ratelimit-policy: "trial:rate";q=3"#), "step 7: the quota headers\n{text}");
    let audit = text.lines().find(|l| l.starts_with(r#"{"time":"#)).expect("step 8: an audit line");
    let audit: serde_json::Value = serde_json::from_str(audit).expect("the audit line is JSON");
    assert_eq!((audit["subject"].as_str(), audit["plan"].as_str()), (Some("user-39"), Some("trial")), "{audit}");
    assert_eq!((audit["status"].as_u64(), audit["code"].as_str()), (Some(429), Some("RESOURCE_EXHAUSTED")));
    assert!(audit["error"].as_str().is_some_and(|e| e.contains("quota exceeded")), "{audit}");
    assert_eq!(audit["requested"], "label:stable", "the default label nginx applied: {audit}");
}

/// The README's commands for a running demo, as written (on this test's ports and token file),
/// give the answer the README shows.
#[test]
fn the_readme_commands_work_while_the_demo_serves() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let after = readme.split("While the demo runs").nth(1).expect("the README's section");
    let block = after.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("its commands");
    let expected = block.lines().find_map(|l| l.strip_prefix("# ")).expect("the answer it shows").to_string();
    let port = free_port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let mut demo = Command::new(repo_root().join("scripts/demo.sh"))
        .envs([
            ("TFGATE_DEMO_PORT".to_string(), port.clone()),
            ("TFGATE_DEMO_SIM_PORT".to_string(), free_port().to_string()),
            ("TFGATE_DEMO_METRICS_PORT".to_string(), free_port().to_string()),
            ("TFGATE_DEMO_GRPC_PORT".to_string(), free_port().to_string()),
            ("TFGATE_DEMO_TOKEN_FILE".to_string(), token_file.display().to_string()),
        ])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start scripts/demo.sh");
    let started = std::time::Instant::now();
    // Serving once its last step has used the token file.
    let answered =
        || std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok() && token_file.exists();
    while !answered() && started.elapsed() < std::time::Duration::from_secs(600) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let script = block
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("/tmp/tfgate-demo.token", &token_file.display().to_string());
    let output = Command::new("bash").args(["-euo", "pipefail", "-c", &script]).output().unwrap();
    let _ = Command::new("kill").args(["-TERM", &demo.id().to_string()]).status();
    let _ = demo.wait();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{script}\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(text.trim(), expected, "{script}");
}
