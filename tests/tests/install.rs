//! scripts/install.sh and uninstall.sh into a temporary root: the installed module, snippets,
//! daemon and units work together, the units pass `systemd-analyze verify`, a module built for
//! another nginx is refused, and uninstall leaves nothing behind.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;
use tfgate_tests::{repo_root, Daemon, DaemonConfig, Nginx, NginxConfig, Sim};

fn install(root: &Path, extra_env: &[(&str, String)]) -> Output {
    let mut command = Command::new(repo_root().join("scripts/install.sh"));
    command
        .env("PREFIX", root.join("usr"))
        .env("SYSCONFDIR", root.join("etc"))
        .env("SYSTEMD_UNIT_DIR", root.join("units"))
        .env("NGINX_MODULES_DIR", root.join("nginx-modules"))
        .env("NGINX_CONF_DIR", root.join("nginx"))
        .env("NGINX_MODULES_AVAILABLE", root.join("modules-available"))
        .env("SETUP_SYSTEM", "no");
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.output().expect("install.sh")
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[test]
fn installed_files_run_together_and_uninstall_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let out = install(root.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The units name the installed binary and config, and systemd accepts them.
    let units = root.path().join("units");
    let service = std::fs::read_to_string(units.join("tfgate-batcher.service")).unwrap();
    assert!(service.contains(&format!(
        "ExecStart={}/usr/bin/tfgate-batcher --config {}/etc/tfgate/batcher.toml",
        root.path().display(),
        root.path().display()
    )));
    assert!(service.contains("Type=notify") && service.contains("NoNewPrivileges=yes"));
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("tfgate-batcher.service"))
        .arg(units.join("tfgate-batcher.socket"))
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

    // nginx loads the installed module through the installed modules-enabled entry and uses the
    // installed snippets; the installed daemon serves a prediction.
    let sim = Sim::start(&[]);
    let run = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_binary(
        &root.path().join("usr/bin/tfgate-batcher"),
        run.path(),
        &sim.grpc_url(),
        &DaemonConfig::default(),
    );
    let enabled = root.path().join("nginx/modules-enabled/50-mod-http-tfgate.conf");
    let snippets = root.path().join("etc/tfgate/nginx");
    let nginx = Nginx::start(
        run.path(),
        &daemon.socket,
        &NginxConfig {
            load_module: Some(format!("include {};", enabled.display())),
            conf_dir: snippets,
            ..NginxConfig::default()
        },
    );
    let answer = nginx.client().post("/v1/models/half_plus_two:predict", r#"{"instances": [1.0, 2.0, 5.0]}"#);
    assert_eq!(answer.json(), json!({"predictions": [2.5, 3.0, 4.5]}), "{}", answer.body);
    drop(nginx);

    let out = Command::new(repo_root().join("scripts/uninstall.sh"))
        .env("SYSCONFDIR", root.path().join("etc"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files_under(root.path()), Vec::<String>::new());
}

#[test]
fn install_refuses_a_module_built_for_another_nginx() {
    let other = repo_root().join("target/other-nginx/release/libngx_http_tfgate_module.so");
    assert!(other.exists(), "scripts/test.sh builds {}", other.display());
    let root = tempfile::tempdir().unwrap();
    let out = install(root.path(), &[("TFGATE_MODULE", other.display().to_string())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not fit the installed nginx") && stderr.contains("instead of"), "{stderr}");
    assert_eq!(files_under(root.path()), Vec::<String>::new(), "nothing installed");
}
