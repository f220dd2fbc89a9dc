//! Counters in Redis (`store = "redis://HOST:PORT[/DB]"`): every daemon pointed at one Redis
//! enforces one quota. One Lua script (script.lua) admits requests atomically, each caller's
//! counters in one key (a record); it is sent as EVALSHA, and when Redis does not know it (a
//! restart, a flush) loaded again with SCRIPT LOAD (the `redis` crate's `Script` does both).
//!
//! One task owns the connection and sends the requests waiting for a decision together, up to
//! [`MAX_BATCH`] in one script call, with at most [`MAX_CALLS`] calls in flight: a lone
//! request goes at once, in one round trip, and under load a round trip carries many, read
//! with one MGET and written with one SET per caller, which keeps Redis's CPU (and the
//! daemon's) per request small.
//!
//! It never makes a request hang: a request waits at most `timeout_ms` for its answer; while
//! Redis cannot be reached requests fail at once (and `on_store_failure` decides) while the
//! task reconnects with a backoff from 50 ms to 5 s. Requests wait for a connection attempt
//! only for the first one after start-up or after a connection broke.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::StoreError;
use crate::admission::quota::decide::{decide, Admission, Decision, Rule, EXPIRY_GRACE_US};
use crate::admission::quota::settings::RedisTarget;
use crate::log_limit::LogLimit;
use crate::metrics::Metrics;

const SCRIPT: &str = include_str!("script.lua");
/// Most requests decided by one script call.
pub const MAX_BATCH: usize = 128;
/// Script calls in flight at once on the connection.
const MAX_CALLS: usize = 2;
/// Requests waiting for the connection task; beyond, a request fails at once (`overloaded`).
const QUEUE: usize = 16_384;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct RedisStore {
    jobs: mpsc::Sender<Job>,
    pub target: RedisTarget,
    pub timeout: Duration,
    /// Set once a reload replaced this store: its task, still finishing, leaves
    /// `tfgate_quota_store_up` to the new one.
    retired: Arc<AtomicBool>,
    /// What `/healthz` should say about this store (credentials refused), if anything.
    problem: Arc<Mutex<Option<String>>>,
}

/// One request waiting for its decision.
struct Job {
    admission: Arc<Admission>,
    now_us: u64,
    reply: oneshot::Sender<Result<Verdict, StoreError>>,
}

/// What the script answered for one request.
struct Verdict {
    admitted: bool,
    priors: Vec<u64>,
}

impl RedisStore {
    /// Starts the connection task (inside the tokio runtime); it ends when the store is dropped.
    pub fn open(target: &RedisTarget, timeout: Duration, metrics: Arc<Metrics>) -> RedisStore {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let retired = Arc::new(AtomicBool::new(false));
        let problem = Arc::new(Mutex::new(None));
        let driver = Driver::new(target, timeout, metrics, retired.clone(), problem.clone());
        tokio::spawn(driver.run(queue));
        RedisStore { jobs, target: target.clone(), timeout, retired, problem }
    }

    /// What an operator must fix for this store to work (credentials refused), if anything.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A reload replaced this store.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Decides on `admission` at `now_us` and, if admitted, counts it, in one script call.
    pub async fn apply(&self, admission: Admission, now_us: u64) -> Result<Decision, StoreError> {
        let admission = Arc::new(admission);
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(Job { admission: admission.clone(), now_us, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Unreachable("the connection task stopped".into()),
        })?;
        let verdict = match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => return Err(StoreError::Timeout),
            Ok(Err(_)) => return Err(StoreError::Unreachable("the connection task stopped".into())),
            Ok(Ok(verdict)) => verdict?,
        };
        let decision = decide(&admission.checks, &verdict.priors, now_us);
        if decision.admitted != verdict.admitted {
            // The script and `decide` disagree: a bug, never a silent wrong answer.
            return Err(StoreError::Failed("the quota script and the daemon disagree".into()));
        }
        Ok(decision)
    }
}

/// The connection task's state.
struct Driver {
    client: Result<redis::Client, String>,
    script: Arc<redis::Script>,
    timeout: Duration,
    shown: String,
    metrics: Arc<Metrics>,
    retired: Arc<AtomicBool>,
    /// The connection in use, with its generation (calls on an older one report nothing).
    link: Option<(u64, MultiplexedConnection)>,
    generation: u64,
    connecting: Option<JoinHandle<Result<MultiplexedConnection, String>>>,
    /// Requests wait for the attempt in progress (the first after start-up or a break).
    hold: bool,
    held: Vec<Job>,
    backoff: Duration,
    retry_at: Instant,
    calls: JoinSet<(u64, Option<String>)>,
    down_since_logged: bool,
    warnings: LogLimit,
    /// Why the store cannot be used, for `/healthz` (credentials refused).
    problem: Arc<Mutex<Option<String>>>,
    /// Redis refusing the credentials is logged once, until it accepts them.
    credentials_refused_logged: bool,
}

/// The client of `target`: its URL, the ACL user and password of `[quotas]`, and for
/// `rediss://` the TLS files already checked by the configuration.
fn client(target: &RedisTarget) -> Result<redis::Client, String> {
    use redis::IntoConnectionInfo;
    let mut info = target.url.as_str().into_connection_info().map_err(|e| e.to_string())?;
    if target.username.is_some() || target.password.is_some() {
        let mut settings = info.redis_settings().clone();
        if let Some(username) = &target.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &target.password {
            settings = settings.set_password(&password.0);
        }
        info = info.set_redis_settings(settings);
    }
    match &target.tls {
        None => redis::Client::open(info).map_err(|e| e.to_string()),
        Some(tls) => {
            let client_tls = match (&tls.cert_pem, &tls.key_pem) {
                (Some(cert), Some(key)) => {
                    Some(redis::ClientTlsConfig { client_cert: cert.clone(), client_key: key.clone() })
                }
                _ => None,
            };
            let certificates = redis::TlsCertificates { client_tls, root_cert: tls.ca_pem.clone() };
            redis::Client::build_with_tls(info, certificates).map_err(|e| e.to_string())
        }
    }
}

/// Whether Redis refused the daemon's credentials (AUTH at connection set-up).
fn credentials_refused(error: &str) -> bool {
    ["WRONGPASS", "NOAUTH", "NOPERM", "authentication failed", "invalid password"].iter().any(|m| error.contains(m))
}

impl Driver {
    fn new(
        target: &RedisTarget,
        timeout: Duration,
        metrics: Arc<Metrics>,
        retired: Arc<AtomicBool>,
        problem: Arc<Mutex<Option<String>>>,
    ) -> Driver {
        Driver {
            client: client(target),
            problem,
            credentials_refused_logged: false,
            script: Arc::new(redis::Script::new(SCRIPT)),
            timeout,
            shown: target.shown.clone(),
            metrics,
            retired,
            link: None,
            generation: 0,
            connecting: None,
            hold: true,
            held: Vec::new(),
            backoff: MIN_BACKOFF,
            retry_at: Instant::now(),
            calls: JoinSet::new(),
            down_since_logged: false,
            warnings: LogLimit::new(Duration::from_secs(10)),
        }
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        self.set_up(false);
        self.connect(true);
        loop {
            tokio::select! {
                connected = finished(&mut self.connecting) => self.connected(connected),
                Some(done) = self.calls.join_next(), if !self.calls.is_empty() => {
                    if let Ok((generation, Some(broken))) = done {
                        self.broken(generation, &broken);
                    }
                }
                () = tokio::time::sleep_until(self.retry_at), if self.link.is_none() && self.connecting.is_none() => {
                    self.connect(false);
                }
                job = queue.recv(), if self.calls.len() < MAX_CALLS => {
                    let Some(job) = job else { break };
                    let mut batch = vec![job];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    self.dispatch(batch);
                }
            }
        }
    }

    fn set_up(&self, up: bool) {
        if !self.retired.load(Ordering::Relaxed) {
            self.metrics.quota_store_up.set(&[], i64::from(up));
        }
    }

    fn connect(&mut self, hold: bool) {
        self.hold = hold;
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                let e = e.clone();
                self.connecting = Some(tokio::spawn(async move { Err(e) }));
                return;
            }
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        self.connecting = Some(tokio::spawn(async move {
            let connect = client.get_multiplexed_async_connection_with_config(&config);
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(connection)) => Ok(connection),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no connection within {} ms", CONNECT_TIMEOUT.as_millis())),
            }
        }));
    }

    fn connected(&mut self, result: Result<Result<MultiplexedConnection, String>, tokio::task::JoinError>) {
        self.connecting = None;
        let held = std::mem::take(&mut self.held);
        match result.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(connection) => {
                *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = None;
                if std::mem::take(&mut self.credentials_refused_logged) {
                    info!("quota store {}: Redis accepts the credentials now", self.shown);
                }
                self.generation += 1;
                self.link = Some((self.generation, connection));
                self.backoff = MIN_BACKOFF;
                self.set_up(true);
                if std::mem::take(&mut self.down_since_logged) {
                    info!("quota store {}: connected again", self.shown);
                }
                for batch in chunks(held) {
                    self.dispatch(batch);
                }
            }
            Err(e) => {
                let error = StoreError::Unreachable(e.clone());
                for job in held {
                    let _ = job.reply.send(Err(error.clone()));
                }
                self.hold = false;
                if credentials_refused(&e) {
                    // Fail fast: no call waits for a connection that cannot be made; tried
                    // again at the longest backoff, in case the password is rotated on the
                    // server first.
                    let problem = format!(
                        "quota store {}: Redis refused the credentials (quotas.username, quotas.password_file); on_store_failure decides until it accepts them",
                        self.shown
                    );
                    if !std::mem::replace(&mut self.credentials_refused_logged, true) {
                        error!("{problem}: {e}");
                    }
                    *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(problem);
                    self.backoff = MAX_BACKOFF;
                    self.retry_at = Instant::now() + self.backoff;
                    return;
                }
                self.retry_at = Instant::now() + self.backoff;
                if let Some(more) = self.warnings.event(std::time::Instant::now()) {
                    warn!(
                        "quota store {}: cannot connect: {e}; retrying in {} ms ({more} more failed attempts since the last warning)",
                        self.shown,
                        self.backoff.as_millis()
                    );
                    self.down_since_logged = true;
                }
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// A call found the connection broken: drop it and connect again at once.
    fn broken(&mut self, generation: u64, error: &str) {
        if self.link.as_ref().is_none_or(|(current, _)| *current != generation) {
            return;
        }
        self.link = None;
        self.set_up(false);
        if let Some(more) = self.warnings.event(std::time::Instant::now()) {
            warn!(
                "quota store {}: connection lost: {error}; reconnecting ({more} more since the last warning)",
                self.shown
            );
            self.down_since_logged = true;
        }
        if self.connecting.is_none() {
            self.connect(true);
        }
    }

    fn dispatch(&mut self, batch: Vec<Job>) {
        // Requests whose caller stopped waiting are not counted.
        let batch: Vec<Job> = batch.into_iter().filter(|job| !job.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        match &self.link {
            Some((generation, connection)) => {
                self.metrics.quota_store_batch.observe(&[], batch.len() as f64);
                let call = call(connection.clone(), self.script.clone(), batch, self.timeout);
                let generation = *generation;
                self.calls.spawn(async move { (generation, call.await) });
            }
            None if self.connecting.is_some() && self.hold => self.held.extend(batch),
            None => {
                let error = StoreError::Unreachable("not connected".into());
                for job in batch {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

async fn finished<T>(handle: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

fn chunks(mut jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut out = Vec::new();
    while jobs.len() > MAX_BATCH {
        let rest = jobs.split_off(MAX_BATCH);
        out.push(std::mem::replace(&mut jobs, rest));
    }
    if !jobs.is_empty() {
        out.push(jobs);
    }
    out
}

/// One script call for `batch`; answers every job. Returns what broke the connection, if
/// something did.
async fn call(
    mut connection: MultiplexedConnection,
    script: Arc<redis::Script>,
    batch: Vec<Job>,
    timeout: Duration,
) -> Option<String> {
    let mut invocation = script.prepare_invoke();
    let (blob, fields) = encode(&batch, &mut invocation);
    invocation.arg(EXPIRY_GRACE_US).arg(blob);
    for field in fields {
        invocation.arg(field);
    }
    let (error, broken) = match tokio::time::timeout(timeout, invocation.invoke_async::<Vec<u8>>(&mut connection)).await
    {
        Err(_) => (StoreError::Timeout, Some(format!("no answer within {} ms", timeout.as_millis()))),
        Ok(Err(e)) if e.is_timeout() => (StoreError::Timeout, Some(e.to_string())),
        Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() => {
            (StoreError::Unreachable(e.to_string()), Some(e.to_string()))
        }
        Ok(Err(e)) => (StoreError::Failed(e.to_string()), None),
        Ok(Ok(reply)) => {
            answer(batch, &decode(&reply));
            return None;
        }
    };
    for job in batch {
        let _ = job.reply.send(Err(error.clone()));
    }
    broken
}

/// The batch as the script reads it (see script.lua): each record once in KEYS (a caller may
/// have several requests in the batch), the checks in one binary argument, the field names
/// they refer to after it. Binary doubles rather than decimal text: Redis's Lua would spend
/// more time parsing the numbers than deciding.
fn encode<'a>(batch: &'a [Job], invocation: &mut redis::ScriptInvocation<'_>) -> (Vec<u8>, Vec<&'static str>) {
    let checks: usize = batch.iter().map(|job| job.admission.checks.len()).sum();
    let mut blob = Vec::with_capacity(2 + batch.len() * 9 + checks * 28);
    let mut keys: HashMap<&'a str, u16> = HashMap::with_capacity(batch.len());
    let mut fields: Vec<&'static str> = Vec::with_capacity(4);
    blob.extend_from_slice(&(batch.len() as u16).to_le_bytes());
    for job in batch {
        let records: Vec<u16> = job
            .admission
            .records
            .iter()
            .map(|key| {
                let next = keys.len() as u16 + 1;
                *keys.entry(key.as_str()).or_insert_with(|| {
                    invocation.key(key.as_str());
                    next
                })
            })
            .collect();
        blob.extend_from_slice(&(job.now_us as f64).to_le_bytes());
        blob.push(job.admission.checks.len() as u8);
        for check in &job.admission.checks {
            let field = match fields.iter().position(|f| *f == check.field) {
                Some(i) => i + 1,
                None => {
                    fields.push(check.field);
                    fields.len()
                }
            };
            let (kind, a, b) = match check.rule {
                Rule::Bucket(bucket) => (0u8, bucket.interval_us, bucket.capacity_us()),
                Rule::Window { limit, end_us } => (1u8, limit, end_us),
            };
            blob.extend_from_slice(&records.get(check.record).copied().unwrap_or(0).to_le_bytes());
            blob.push(field as u8);
            blob.push(kind);
            for number in [a, b, check.cost] {
                blob.extend_from_slice(&(number as f64).to_le_bytes());
            }
        }
    }
    (blob, fields)
}

/// The script's answer: little-endian doubles, each a whole number.
fn decode(reply: &[u8]) -> Vec<u64> {
    reply.chunks_exact(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as u64).collect()
}

/// Hands each job its part of the script's answer: a flag, then one value per check.
fn answer(batch: Vec<Job>, values: &[u64]) {
    let mut rest = values;
    for job in batch {
        let n = job.admission.checks.len();
        let verdict = match rest.split_first() {
            Some((&flag, tail)) if tail.len() >= n => {
                let priors = tail[..n].to_vec();
                rest = &tail[n..];
                Ok(Verdict { admitted: flag == 1, priors })
            }
            _ => Err(StoreError::Failed("the quota script's answer is too short".into())),
        };
        let _ = job.reply.send(verdict);
    }
}
