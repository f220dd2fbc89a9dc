//! All targets of `backend.grpc` (TF Serving, or v2 servers: see `Backend`), used as one: each
//! call goes to the target with the fewest calls in flight among those that are up (and serve the
//! model, when known), ties taken in turn (see `balance`). A call that could not connect was never
//! sent: it goes on to another target, as long as one is up and untried and its deadline allows;
//! one that TF Serving refused without running it (UNAVAILABLE) is retried once elsewhere. A
//! target that fails at the transport level is down: it gets no call while another target is up,
//! and is probed (see `health`, never with a client's call) once its backoff is over, one probe at
//! a time (see `target_state`); health checks (see `health`) bring targets back too.
//!
//! A pool's targets never change: a reload or a `dns://` name resolving to other addresses
//! builds a successor (see `discovery`), and calls already running finish on the pool they
//! started on.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Uri;
use tfgate_proto::tensorflow::serving::{
    GetModelMetadataResponse, GetModelStatusResponse, PredictRequest, PredictResponse,
};
use tokio::sync::Notify;
use tonic::metadata::MetadataValue;
use tonic::Status;

use super::balance::{choose_target, Candidate};
use super::error::{is_transport_failure, never_sent, not_executed, unprocessed};
use super::settings::{BackendConfig, GrpcTarget, Protocol};
use super::target_state::TargetState;
use super::{from_status, health, metadata_request, status_request, with_deadline, Backend, TargetTls};
use crate::metrics::Metrics;
use crate::request::status::code_name;
use crate::request::CoreError;
use crate::target::ModelTarget;

/// How many times a call the server refused unprocessed goes to the same target again.
const UNPROCESSED_RETRIES: u32 = 3;

/// A target a pool is built with.
pub struct PoolTarget {
    pub uri: Uri,
    /// Told when a call or probe to the target fails at the transport level: the `dns://` name
    /// it came from is resolved again (the replica may be gone).
    pub on_failure: Option<Arc<Notify>>,
    /// `None`: plaintext.
    pub tls: Option<TargetTls>,
    /// `backend.protocol`.
    pub protocol: Protocol,
}

pub struct Pool {
    pub(super) targets: Vec<Arc<TargetState>>,
    /// `on_failure` of each target, by index.
    pub(super) on_failure: Vec<Option<Arc<Notify>>>,
    rotation: AtomicUsize,
    /// `backend.timeout_ms`: the longest any call may take.
    pub timeout: Duration,
    pub(super) metrics: Arc<Metrics>,
    /// Models that answered through this pool, for the health checks.
    known_models: Mutex<BTreeSet<String>>,
}

impl Pool {
    /// The pool of the `http://` targets of `config` alone (`dns://` names add theirs once
    /// resolved: see `discovery`). Must run inside the tokio runtime (the channels spawn their
    /// workers there).
    pub fn new(config: &BackendConfig, metrics: Arc<Metrics>) -> Pool {
        let targets = config
            .grpc
            .iter()
            .filter_map(|target| match target {
                GrpcTarget::Url(uri) => Some(PoolTarget {
                    uri: uri.clone(),
                    on_failure: None,
                    tls: config.target_tls(uri, None),
                    protocol: config.protocol,
                }),
                GrpcTarget::Dns(_) => None,
            })
            .collect();
        Pool::with_targets(targets, config.timeout, metrics)
    }

    /// A pool of exactly `targets`; the same runtime requirement as [`Pool::new`].
    pub fn with_targets(targets: Vec<PoolTarget>, timeout: Duration, metrics: Arc<Metrics>) -> Pool {
        Pool::build(targets, timeout, metrics, |_| None, BTreeSet::new())
    }

    /// The pool that replaces `previous` (a reload, a name resolving to other addresses): targets
    /// `previous` also has, secured the same way and speaking the same protocol, keep their
    /// channel, calls in flight and health (so balancing stays right while old calls finish), new
    /// ones start fresh; the models learnt so far stay known to the health checks.
    pub fn succeed(previous: &Pool, targets: Vec<PoolTarget>, timeout: Duration) -> Pool {
        let kept = |target: &PoolTarget| {
            let name = Backend::target_name(&target.uri);
            previous
                .targets
                .iter()
                .find(|t| {
                    t.backend.target() == name
                        && t.secured_as(target.tls.as_ref())
                        && t.backend.protocol() == target.protocol
                })
                .cloned()
        };
        Pool::build(targets, timeout, previous.metrics.clone(), kept, previous.known_models_set())
    }

    fn build(
        targets: Vec<PoolTarget>,
        timeout: Duration,
        metrics: Arc<Metrics>,
        kept: impl Fn(&PoolTarget) -> Option<Arc<TargetState>>,
        known_models: BTreeSet<String>,
    ) -> Pool {
        let (states, on_failure) = targets
            .into_iter()
            .map(|target| {
                let state = kept(&target).unwrap_or_else(|| {
                    TargetState::new(&target.uri, target.tls.clone(), target.protocol, metrics.clone())
                });
                (state, target.on_failure)
            })
            .unzip();
        Pool {
            targets: states,
            on_failure,
            rotation: AtomicUsize::new(0),
            timeout,
            metrics,
            known_models: Mutex::new(known_models),
        }
    }

    /// The targets whose last TLS handshake failed, with why.
    pub fn tls_failures(&self) -> Vec<(&str, crate::tls::failure::Failure)> {
        self.targets.iter().filter_map(|t| Some((t.backend.target(), t.backend.tls_state()?.failure()?))).collect()
    }

    /// The API the targets speak (`backend.protocol`, the same for all); `None` without targets.
    pub fn protocol(&self) -> Option<Protocol> {
        self.targets.first().map(|t| t.backend.protocol())
    }

    /// Why no call can be served now, if none can: the pool has no target (`dns://` names not
    /// resolved yet), or every target is down (from a transport failure until a call or a probe
    /// finds it back).
    pub fn unavailable(&self) -> Option<&'static str> {
        if self.targets.is_empty() {
            return Some("no backend target (dns:// names not resolved yet?)");
        }
        let up = self.targets.iter().any(|target| !target.health().down);
        (!up).then_some("no backend target is up")
    }

    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.backend.target()).collect()
    }

    /// A Predict call, and the target that answered it.
    /// A batch's Predict call, limited by `backend.timeout_ms` only (the batcher answers its
    /// callers at their deadline itself).
    pub async fn predict(
        &self,
        request: PredictRequest,
        traceparent: Option<&str>,
    ) -> Result<(PredictResponse, Arc<str>), CoreError> {
        let model = request.model_spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        let (response, index) = self
            .call("Predict", &model, request, self.timeout, traceparent, |b, r| async move { b.predict(r).await })
            .await?;
        Ok((response, self.targets[index].backend.shared_target()))
    }

    /// A call forwarded as raw bytes (`path`: the gRPC method), with the pool's balancing and
    /// single retry.
    pub async fn raw(
        &self,
        path: &'static str,
        model: &str,
        message: Bytes,
        deadline: Instant,
        traceparent: Option<&str>,
    ) -> Result<Bytes, CoreError> {
        if self.protocol() == Some(Protocol::V2) {
            // Refused here, not by each target: nothing was sent, so no target's metrics count it.
            return Err(CoreError::new(tonic::Code::Unimplemented, super::unforwardable(path)));
        }
        let timeout =
            self.timeout.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(1));
        let method = path.rsplit('/').next().unwrap_or(path);
        self.call(method, model, message, timeout, traceparent, |b, r| async move { b.raw(path, r).await })
            .await
            .map(|(answer, _target)| answer)
    }

    pub async fn model_metadata(
        &self,
        target: &ModelTarget,
        timeout: Duration,
    ) -> Result<GetModelMetadataResponse, CoreError> {
        let timeout = timeout.min(self.timeout);
        let request = metadata_request(target);
        self.call(
            "GetModelMetadata",
            &target.model,
            request,
            timeout,
            None,
            |b, r| async move { b.model_metadata(r).await },
        )
        .await
        .map(|(response, _)| response)
    }

    pub async fn model_status(
        &self,
        target: &ModelTarget,
        timeout: Duration,
    ) -> Result<GetModelStatusResponse, CoreError> {
        let timeout = timeout.min(self.timeout);
        let request = status_request(target);
        self.call(
            "GetModelStatus",
            &target.model,
            request,
            timeout,
            None,
            |b, r| async move { b.model_status(r).await },
        )
        .await
        .map(|(response, _)| response)
    }

    /// One call, retried on other targets while that cannot run it twice; the answer and which
    /// target gave it.
    async fn call<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        model: &str,
        request: Req,
        timeout: Duration,
        traceparent: Option<&str>,
        send: F,
    ) -> Result<(Resp, usize), CoreError>
    where
        Req: Clone,
        F: Fn(Backend, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<Resp, Status>>,
    {
        let started = Instant::now();
        if self.targets.is_empty() {
            return Err(CoreError::unavailable(
                "no TF Serving target: the dns:// names of backend.grpc resolved to no address so far",
            ));
        }
        let mut tried = Vec::with_capacity(2);
        let mut index = self.pick(model, &tried).unwrap_or(0);
        let mut request = Some(request);
        let mut refusals_retried = false;
        let mut same_target_retries = 0;
        loop {
            tried.push(index);
            // A copy is kept while a retry could follow: on another target, or once on this one
            // (tensor contents are shared `Bytes`, so a copy is mostly the message's frame).
            let retry_possible = tried.len() < self.targets.len() || same_target_retries < UNPROCESSED_RETRIES;
            let message = if retry_possible { request.clone() } else { request.take() };
            let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
            let status = match message {
                Some(message) => match self.attempt(index, method, message, left, traceparent, &send).await {
                    Ok(response) => return Ok((self.answered(model, response), index)),
                    Err(status) => status,
                },
                None => return Err(CoreError::internal("backend call without a request")),
            };
            // Not connected: never sent, so any number of other targets may be tried. Refused
            // by TF Serving: it did not run the call, but another refusal is likely (overload),
            // so once.
            let refused_unprocessed = unprocessed(&status);
            let retry = if never_sent(&status) || refused_unprocessed {
                true
            } else if not_executed(&status) && !refusals_retried {
                refusals_retried = true;
                true
            } else {
                false
            };
            let next = match retry && started.elapsed() < timeout {
                // A call the server refused unprocessed (a connection it was closing) may go
                // to the same target again: tonic connects anew (a call already queued on the
                // closing connection is refused once more, hence a few tries).
                true => self.pick_retry(model, &tried).or_else(|| {
                    let again = refused_unprocessed && same_target_retries < UNPROCESSED_RETRIES;
                    same_target_retries += 1;
                    again.then_some(index)
                }),
                false => None,
            };
            let Some(next) = next else {
                return Err(self.error(index, &status, left));
            };
            self.metrics.backend_retries.inc(&[self.targets[index].backend.target()]);
            index = next;
        }
    }

    async fn attempt<Req, Resp, F, Fut>(
        &self,
        index: usize,
        method: &'static str,
        request: Req,
        timeout: Duration,
        traceparent: Option<&str>,
        send: &F,
    ) -> Result<Resp, Status>
    where
        F: Fn(Backend, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<Resp, Status>>,
    {
        let target = &self.targets[index];
        let name = target.backend.target();
        let mut request = with_deadline(request, timeout);
        if let Some(value) = traceparent.and_then(|t| MetadataValue::try_from(t).ok()) {
            request.metadata_mut().insert("traceparent", value);
        }
        let in_flight = target.call_started();
        let started = Instant::now();
        // Carries TimeoutExpired as its source, which `from_status` reads as a deadline.
        let deadline_passed = || Status::from_error(Box::new(tonic::TimeoutExpired(())));
        let call = tokio::time::timeout(timeout, send(target.backend.clone(), request));
        let result = match call.await {
            Err(_elapsed) => Err(deadline_passed()),
            // tonic enforces the same `grpc-timeout` itself and may get there first, with a
            // CANCELLED status whose cause does not always survive: that is the deadline too.
            Ok(Err(status)) if status.code() == tonic::Code::Cancelled && started.elapsed() >= timeout => {
                Err(deadline_passed())
            }
            Ok(result) => result,
        };
        drop(in_flight);
        let code = result.as_ref().err().map_or(tonic::Code::Ok, Status::code);
        self.metrics.backend_calls.inc(&[name, method, code_name(code)]);
        self.metrics.backend_seconds.observe(&[name, method], started.elapsed().as_secs_f64());
        match &result {
            // A connection the server was closing: the target is fine, the call goes again.
            Err(status) if unprocessed(status) => {}
            Err(status) if is_transport_failure(status) => self.mark_down(index),
            _ => self.mark_up(index),
        }
        result
    }

    fn answered<T>(&self, model: &str, response: T) -> T {
        if !model.is_empty() {
            let mut known = lock(&self.known_models);
            if !known.contains(model) {
                known.insert(model.to_string());
            }
        }
        response
    }

    fn error(&self, index: usize, status: &Status, timeout: Duration) -> CoreError {
        from_status(status, self.targets[index].backend.target(), timeout)
    }

    /// The target of a call's first attempt: one that is down only if none is up.
    fn pick(&self, model: &str, tried: &[usize]) -> Option<usize> {
        self.choose(model, tried, true)
    }

    /// Where to retry: only a target that is up (when all are down, the call has had its try).
    fn pick_retry(&self, model: &str, tried: &[usize]) -> Option<usize> {
        self.choose(model, tried, false)
    }

    fn choose(&self, model: &str, tried: &[usize], down_allowed: bool) -> Option<usize> {
        let now = Instant::now();
        let candidates: Vec<Candidate> = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (candidate, probe) = {
                    let mut health = t.health();
                    let candidate = Candidate {
                        up: !health.down,
                        due: health.due(now),
                        serves_model: health.serves.get(model).copied().unwrap_or(true),
                        outstanding: t.outstanding.load(Ordering::Relaxed),
                        excluded: tried.contains(&i),
                    };
                    (candidate, health.claim_probe(now))
                };
                if probe {
                    health::reprobe(t.clone(), self.known_models(), self.on_failure[i].clone());
                }
                candidate
            })
            .collect();
        let start = self.rotation.fetch_add(1, Ordering::Relaxed);
        choose_target(&candidates, start, down_allowed)
    }

    pub(super) fn mark_down(&self, index: usize) {
        self.targets[index].mark_down();
        if let Some(resolve_again) = &self.on_failure[index] {
            resolve_again.notify_one();
        }
    }

    pub(super) fn mark_up(&self, index: usize) {
        self.targets[index].mark_up();
    }

    pub(super) fn known_models(&self) -> Vec<String> {
        lock(&self.known_models).iter().cloned().collect()
    }

    fn known_models_set(&self) -> BTreeSet<String> {
        lock(&self.known_models).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::VersionRef;

    /// A call whose future is dropped mid-flight (the client went away) still ends its count.
    #[tokio::test]
    async fn a_dropped_call_does_not_stay_outstanding() {
        // Accepts connections and never answers, so the call is in flight until dropped.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let config = BackendConfig {
            grpc: vec![GrpcTarget::Url(format!("http://127.0.0.1:{port}").parse().unwrap())],
            protocol: Protocol::TfServing,
            rest: None,
            timeout: Duration::from_secs(30),
            health_interval: None,
            resolver: None,
            resolve_interval: crate::backend::DEFAULT_RESOLVE_INTERVAL,
            tls: None,
            tls_server_name: None,
            dns_over_tls: false,
        };
        let pool = Pool::new(&config, Arc::new(Metrics::default()));
        let target = ModelTarget { model: "m".to_string(), version: VersionRef::Latest };
        for _ in 0..3 {
            let call = pool.model_metadata(&target, Duration::from_secs(30));
            assert!(tokio::time::timeout(Duration::from_millis(100), call).await.is_err());
        }
        let status = pool.model_status(&target, Duration::from_secs(30));
        assert!(tokio::time::timeout(Duration::from_millis(100), status).await.is_err());
        assert_eq!(pool.targets[0].outstanding.load(Ordering::Relaxed), 0);
        let gauge = gauge_line(&pool);
        assert!(gauge.ends_with(" 0"), "{gauge}");
        held.abort();
    }

    #[tokio::test]
    async fn a_pool_without_targets_answers_unavailable() {
        let pool = Pool::with_targets(Vec::new(), Duration::from_secs(1), Arc::new(Metrics::default()));
        let target = ModelTarget { model: "m".to_string(), version: VersionRef::Latest };
        let error = pool.model_status(&target, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(error.code, tonic::Code::Unavailable);
        assert!(error.message.contains("no TF Serving target"), "{}", error.message);
        let request = PredictRequest::default();
        let error = pool.predict(request, None).await.unwrap_err();
        assert_eq!(error.code, tonic::Code::Unavailable);
    }

    /// A call that cannot connect goes on to the other targets until one takes it; each dead
    /// target costs that one failure, and the next call goes straight to the live one.
    #[tokio::test]
    async fn a_call_that_cannot_connect_goes_on_to_the_next_target_and_the_dead_are_skipped() {
        let dead: Vec<u16> =
            (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
        // Accepts and never answers: a call that reaches it ends at its deadline.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let targets = dead
            .iter()
            .chain([&live])
            .map(|port| PoolTarget {
                uri: format!("http://127.0.0.1:{port}").parse().unwrap(),
                on_failure: None,
                tls: None,
                protocol: Protocol::TfServing,
            })
            .collect();
        let pool = Pool::with_targets(targets, Duration::from_secs(30), Arc::new(Metrics::default()));
        let target = ModelTarget { model: "m".to_string(), version: VersionRef::Latest };
        let retries = |pool: &Pool| -> u64 {
            dead.iter().map(|p| pool.metrics.backend_retries.get(&[&format!("http://127.0.0.1:{p}")])).sum()
        };
        for call in 0..3 {
            let error = pool.model_status(&target, Duration::from_millis(300)).await.unwrap_err();
            assert_eq!(
                error.code,
                tonic::Code::DeadlineExceeded,
                "call {call} reached the live target: {}",
                error.message
            );
            let down = pool.targets[..3].iter().filter(|t| t.health().down).count() as u64;
            assert_eq!(retries(&pool), down, "one retry per dead target that was tried");
            if call == 0 {
                assert!(down >= 1);
            }
        }
        assert!(!pool.targets[3].health().down);
        held.abort();
    }

    fn gauge_line(pool: &Pool) -> String {
        let text = pool.metrics.render();
        text.lines().find(|l| l.starts_with("tfgate_backend_outstanding_calls{")).unwrap_or("").to_string()
    }
}
