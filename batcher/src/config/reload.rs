//! What a SIGHUP reload can change: the pure comparison of the running configuration with the
//! one just read. Batching settings and backends are applied live; the listeners were bound at
//! start-up (and the socket may belong to systemd), so changes to them wait for a restart.

use super::Config;

/// The differences between the running configuration and a new one, by what applying them takes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    /// `[batching]` or some `[models.NAME]` differ: the model queues take the new settings (and
    /// the models' row caches theirs).
    pub batching: bool,
    /// `backend.grpc`, `protocol`, `timeout_ms`, `health_interval_ms`, `resolver`,
    /// `resolve_interval_ms` or `[backend.tls]` (its settings or its files' contents) differ: a
    /// new pool for new calls (and new resolutions of the `dns://` names).
    pub grpc: bool,
    /// `backend.rest` differs.
    pub rest: bool,
    /// `[audit]`, `[prediction_log]` or a model's sampling rate differ (the logs' files are
    /// reopened at every reload regardless).
    pub logs: bool,
    /// `[quotas]` differs: the new plans apply to the next request.
    pub quotas: bool,
    /// ... and the counters move to a new store (`store` changed; for Redis, `timeout_ms`
    /// too, which loses nothing: the counters are Redis's). Otherwise they are kept.
    pub quota_store: bool,
    /// Keys whose new values only a restart applies, described for the log.
    pub restart_needed: Vec<String>,
}

impl ReloadPlan {
    pub fn between(running: &Config, new: &Config) -> ReloadPlan {
        let mut restart_needed = Vec::new();
        if running.listen != new.listen {
            restart_needed.push(format!("listen ({} -> {})", running.listen.display(), new.listen.display()));
        }
        if running.socket_mode != new.socket_mode {
            restart_needed.push(format!("socket_mode ({:04o} -> {:04o})", running.socket_mode, new.socket_mode));
        }
        if running.metrics_listen != new.metrics_listen {
            let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
            restart_needed.push(format!(
                "metrics_listen ({} -> {})",
                show(running.metrics_listen),
                show(new.metrics_listen)
            ));
        }
        if running.max_body_bytes_in_flight != new.max_body_bytes_in_flight {
            restart_needed.push(format!(
                "max_body_bytes_in_flight ({} -> {})",
                running.max_body_bytes_in_flight, new.max_body_bytes_in_flight
            ));
        }
        if running.grpc_listen != new.grpc_listen {
            restart_needed.push("grpc_listen".to_string());
        }
        if running.worker_threads != new.worker_threads {
            restart_needed.push(format!("worker_threads ({} -> {})", running.worker_threads, new.worker_threads));
        }
        if running.connections != new.connections {
            restart_needed.push("max_connections, idle_timeout_ms or body_timeout_ms".to_string());
        }
        if running.tracing != new.tracing {
            restart_needed.push("[tracing]".to_string());
        }
        let (old_backend, new_backend) = (&running.backend, &new.backend);
        ReloadPlan {
            batching: running.batching != new.batching
                || running.models != new.models
                || running.row_caches != new.row_caches,
            grpc: old_backend.grpc != new_backend.grpc
                || old_backend.protocol != new_backend.protocol
                || old_backend.timeout != new_backend.timeout
                || old_backend.health_interval != new_backend.health_interval
                || old_backend.resolver != new_backend.resolver
                || old_backend.resolve_interval != new_backend.resolve_interval
                || old_backend.tls != new_backend.tls
                || old_backend.tls_server_name != new_backend.tls_server_name
                || old_backend.dns_over_tls != new_backend.dns_over_tls,
            rest: old_backend.rest != new_backend.rest,
            logs: running.logs != new.logs,
            quotas: running.quotas != new.quotas,
            quota_store: match (&running.quotas, &new.quotas) {
                (Some(old), Some(new)) => !old.keeps_store(new),
                (old, new) => old.is_some() != new.is_some(),
            },
            restart_needed,
        }
    }

    /// Nothing to apply live.
    pub fn is_empty(&self) -> bool {
        !self.batching && !self.grpc && !self.rest && !self.logs && !self.quotas
    }

    /// The configuration to run with after applying `new`: everything from it except the
    /// listeners, which stay as bound (so the next reload still reports them as pending).
    pub fn running_after(running: &Config, new: Config) -> Config {
        Config {
            listen: running.listen.clone(),
            socket_mode: running.socket_mode,
            metrics_listen: running.metrics_listen,
            grpc_listen: running.grpc_listen.clone(),
            max_body_bytes_in_flight: running.max_body_bytes_in_flight,
            connections: running.connections.clone(),
            worker_threads: running.worker_threads,
            tracing: running.tracing.clone(),
            ..new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(&format!("listen = \"/tmp/a.sock\"\n{extra}\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\n"))
            .unwrap()
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let plan = ReloadPlan::between(&config(""), &config(""));
        assert!(plan.is_empty());
        assert!(plan.restart_needed.is_empty());
    }

    #[test]
    fn each_part_is_told_apart() {
        let base = config("");
        let with = |text: &str| Config::parse(text).unwrap();
        let batching = with(
            "listen = \"/tmp/a.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\n[batching]\nmax_batch_size = 8\n",
        );
        let plan = ReloadPlan::between(&base, &batching);
        assert!(plan.batching && !plan.grpc && !plan.rest);

        let model = with(
            "listen = \"/tmp/a.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\n[models.m]\nmax_queue = 8\n",
        );
        assert!(ReloadPlan::between(&base, &model).batching);

        let grpc = with(
            "listen = \"/tmp/a.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\", \"http://127.0.0.1:8501\"]\n",
        );
        let plan = ReloadPlan::between(&base, &grpc);
        assert!(plan.grpc && !plan.batching && !plan.rest);

        let timeout = with("listen = \"/tmp/a.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\ntimeout_ms = 5\n");
        assert!(ReloadPlan::between(&base, &timeout).grpc);

        let v2 = with("listen = \"/tmp/a.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\nprotocol = \"v2\"\n");
        let plan = ReloadPlan::between(&base, &v2);
        assert!(plan.grpc && !plan.batching && !plan.rest, "another protocol: a new pool");
        assert!(plan.restart_needed.is_empty());

        let rest = with("listen = \"/tmp/a.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\nrest = \"http://127.0.0.1:8501\"\n");
        let plan = ReloadPlan::between(&base, &rest);
        assert!(plan.rest && !plan.grpc);
    }

    #[test]
    fn listeners_wait_for_a_restart_and_stay_as_bound() {
        let running = config("");
        let new = Config::parse(
            "listen = \"/tmp/b.sock\"\nsocket_mode = \"0600\"\nmetrics_listen = \"127.0.0.1:9464\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\n[batching]\nmax_batch_size = 3\n",
        )
        .unwrap();
        let plan = ReloadPlan::between(&running, &new);
        assert_eq!(plan.restart_needed.len(), 3, "{:?}", plan.restart_needed);
        assert!(plan.restart_needed[0].contains("/tmp/a.sock -> /tmp/b.sock"));
        assert!(plan.restart_needed[2].contains("off -> 127.0.0.1:9464"));
        let after = ReloadPlan::running_after(&running, new);
        assert_eq!(after.listen, running.listen);
        assert_eq!(after.metrics_listen, None);
        assert_eq!(after.batching.max_batch_size, 3);
        // Still different from the file: the next reload says so again.
        assert_eq!(
            ReloadPlan::between(
                &after,
                &Config::parse("listen = \"/tmp/b.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\n",).unwrap()
            )
            .restart_needed
            .len(),
            1
        );
    }

    #[test]
    fn tracing_waits_for_a_restart() {
        let running = config("");
        let new = Config::parse(
            "listen = \"/tmp/a.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:8500\"]\n[tracing]\notlp_endpoint = \"http://127.0.0.1:4317\"\n",
        )
        .unwrap();
        let plan = ReloadPlan::between(&running, &new);
        assert_eq!(plan.restart_needed, vec!["[tracing]".to_string()]);
        assert_eq!(ReloadPlan::running_after(&running, new).tracing.otlp_endpoint, None);
    }
}
