//! SIGHUP: read the file again and apply what can change live. A file that does not load or
//! does not validate changes nothing: the running configuration keeps serving.

use std::path::Path;

use tracing::{error, info, warn};

use crate::app::App;
use crate::config::Config;
use crate::systemd::notify;

pub fn reload(app: &App, path: &Path, serving: &str) {
    notify::reloading(&format!("reloading {}", path.display()));
    info!("SIGHUP received: reloading {}", path.display());
    let status = match Config::load(path) {
        Err(e) => {
            error!("reload refused, the running configuration stays in force: invalid config: {e}");
            format!("{serving}; last reload refused (invalid config, see the log)")
        }
        Ok(config) => {
            let plan = app.apply(config);
            for key in &plan.restart_needed {
                warn!("reload: {key} changed; that takes a restart (systemctl restart tfgate-batcher), the old value stays in force until then");
            }
            if plan.is_empty() {
                info!("reload: no batching, backend, log or quota setting changed");
            } else {
                let mut applied = Vec::new();
                if plan.batching {
                    applied.push("batching settings");
                }
                if plan.grpc {
                    applied.push("backend pool");
                }
                if plan.rest {
                    applied.push("backend.rest");
                }
                if plan.logs {
                    applied.push("log settings");
                }
                match (plan.quotas, plan.quota_store) {
                    (true, false) => applied.push("quotas (counters kept)"),
                    (true, true) => applied.push("quotas (a new store: counters start from what it holds)"),
                    _ => {}
                }
                let backends = app.pool().target_names().join(", ");
                info!(backend = %backends, "reload applied: {}", applied.join(", "));
            }
            serving.to_string()
        }
    };
    notify::ready(&status);
}
