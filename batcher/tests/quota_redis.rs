//! The quota store against a real `redis-server` (Debian's, started on a free loopback port):
//! the Lua script decides exactly as the daemon's pure core does, requests waiting together
//! share round trips, keys expire with their windows, and a lost script cache, a dead server
//! and a restarted one are all survived without a hang. The clock is injected throughout.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tfgate_batcher::admission::quota::decide::{Bucket, Decision};
use tfgate_batcher::admission::quota::limits::{parse_rate, Window};
use tfgate_batcher::admission::quota::plan::{Counted, Limit, LimitKind, LimitSet};
use tfgate_batcher::admission::quota::settings::RedisTarget;
use tfgate_batcher::admission::quota::store::memory::MemoryStore;
use tfgate_batcher::admission::quota::store::redis::RedisStore;
use tfgate_batcher::admission::quota::store::StoreError;
use tfgate_batcher::metrics::Metrics;

const S: u64 = 1_000_000;
/// 2026-04-13T13:05:42Z.
const T0: u64 = 1_776_085_542 * S;
const PREFIX: &str = "t:";

/// `redis-server` on loopback, without persistence, stopped on drop.
struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("tfgate-quota-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer { port, child: None, dir };
        server.restart();
        server
    }

    /// (Re)starts the server on its port, empty.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        while self.command("PING") != "+PONG" {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn target(&self) -> RedisTarget {
        let url = format!("redis://127.0.0.1:{}", self.port);
        RedisTarget { shown: url.clone(), url, tls: None, username: None, password: None }
    }

    /// One inline command; the first line of the answer ("" if the server is not there).
    fn command(&self, command: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return String::new() };
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if stream.write_all(format!("{command}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        line.trim_end().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn quota(counted: Counted, count: u64, window: Window, model: Option<&str>) -> Limit {
    Limit { kind: LimitKind::Quota { counted, count, window }, model: model.map(str::to_string) }
}

fn rate(text: &str, burst: u64) -> Limit {
    let rate = parse_rate(text).unwrap();
    Limit { kind: LimitKind::Rate { rate, bucket: Bucket::new(rate, burst) }, model: None }
}

/// Plans small enough to be refused often.
fn limit_sets() -> Vec<LimitSet> {
    vec![
        LimitSet::new("a", vec![rate("5/s", 3), quota(Counted::Requests, 20, Window::Minute, None)]),
        LimitSet::new(
            "b",
            vec![
                quota(Counted::Requests, 50, Window::Hour, None),
                quota(Counted::Rows, 200, Window::Day, None),
                quota(Counted::Rows, 1000, Window::Month, Some("m")),
            ],
        ),
        LimitSet::new("c", vec![rate("2/minute", 1), quota(Counted::Rows, 30, Window::Minute, Some("m"))]),
    ]
}

/// xorshift64: the same sequence on every run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn redis_store(server: &RedisServer, timeout: Duration) -> RedisStore {
    RedisStore::open(&server.target(), timeout, Arc::new(Metrics::default()))
}

#[tokio::test]
async fn the_script_decides_as_the_daemon_does() {
    let server = RedisServer::start();
    let redis = redis_store(&server, Duration::from_secs(5));
    let memory = MemoryStore::new(1_000_000, Arc::new(Metrics::default()));
    let sets = limit_sets();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut now = T0;
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..3000 {
        // Mostly small steps (within a second, refusals from the buckets); now and then one
        // across windows.
        now += match random.below(100) {
            0 => 86_400 * S,
            1..=3 => 3600 * S,
            4..=10 => 60 * S,
            _ => random.below(2 * S),
        };
        let caller = ["sub:alice", "sub:bob", "addr:10.0.0.1"][random.below(3) as usize];
        let set = &sets[random.below(3) as usize];
        let rows = random.below(25);
        let admission = set.admission(PREFIX, caller, rows, now);
        let expected: Decision = memory.apply(caller, &admission, now).unwrap();
        let got = redis.apply(admission, now).await.unwrap_or_else(|e| panic!("admission {i}: {e}"));
        assert_eq!(got, expected, "admission {i} at {now}: {caller}, plan {}, {rows} rows", set.plan);
        if expected.admitted {
            admitted += 1;
        } else {
            refused += 1;
        }
    }
    // Both outcomes were exercised, many times.
    assert!(admitted > 500 && refused > 500, "{admitted} admitted, {refused} refused");
}

#[tokio::test]
async fn requests_waiting_together_share_round_trips_and_count_exactly() {
    let server = RedisServer::start();
    let metrics = Arc::new(Metrics::default());
    let redis = Arc::new(RedisStore::open(&server.target(), Duration::from_secs(5), metrics.clone()));
    let set = Arc::new(LimitSet::new("p", vec![quota(Counted::Requests, 600, Window::Day, None)]));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (redis, set) = (redis.clone(), set.clone());
        tasks.spawn(async move { redis.apply(set.admission(PREFIX, "sub:alice", 1, T0), T0).await });
    }
    let mut admitted = 0;
    while let Some(result) = tasks.join_next().await {
        admitted += usize::from(result.unwrap().unwrap().admitted);
    }
    assert_eq!(admitted, 600);
    let text = metrics.render();
    let calls: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tfgate_quota_store_batch_requests_count "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(calls < 1000.0, "one script call per request: {text}");
    assert_eq!(server.command("EXISTS t:{sub%3Aalice}"), ":1");
}

#[tokio::test]
async fn records_live_as_long_as_their_last_counter() {
    let server = RedisServer::start();
    let redis = redis_store(&server, Duration::from_secs(5));
    let set = LimitSet::new("p", vec![rate("1/s", 10), quota(Counted::Rows, 100, Window::Hour, Some("m"))]);
    assert!(redis.apply(set.admission(PREFIX, "sub:alice", 7, T0), T0).await.unwrap().admitted);
    // The bucket is full again 1 s later, the hour ends at 14:00; both then live 60 s more.
    let pttl = |key: &str| server.command(&format!("PTTL {key}")).trim_start_matches(':').parse::<u64>().unwrap();
    let bucket = pttl("t:{sub%3Aalice}");
    assert!((56_000..=61_000).contains(&bucket), "{bucket}");
    let window = pttl("t:{sub%3Aalice}:m=m");
    let expected = (3600 - 342 + 60) * 1000;
    assert!((expected - 5000..=expected).contains(&window), "{window}");
}

/// One request of alice's, failing the test if it hangs.
async fn admit_one(redis: &RedisStore, set: &LimitSet) -> Result<Decision, StoreError> {
    let admission = set.admission(PREFIX, "sub:alice", 1, T0);
    tokio::time::timeout(Duration::from_secs(5), redis.apply(admission, T0)).await.expect("no hang")
}

#[tokio::test]
async fn a_lost_script_cache_a_dead_server_and_a_restart_are_survived() {
    let mut server = RedisServer::start();
    let redis = redis_store(&server, Duration::from_millis(500));
    let set = LimitSet::new("p", vec![quota(Counted::Requests, 100, Window::Day, None)]);
    assert_eq!(admit_one(&redis, &set).await.unwrap().limits[0].remaining, 99);
    // The script is loaded again (NOSCRIPT, then SCRIPT LOAD) and the count goes on.
    assert_eq!(server.command("SCRIPT FLUSH"), "+OK");
    assert_eq!(admit_one(&redis, &set).await.unwrap().limits[0].remaining, 98);

    server.kill();
    let error = admit_one(&redis, &set).await.unwrap_err();
    assert!(matches!(error, StoreError::Unreachable(_) | StoreError::Timeout), "{error:?}");
    // While it is down, requests fail at once rather than each waiting for the timeout.
    let started = Instant::now();
    for _ in 0..20 {
        assert!(admit_one(&redis, &set).await.is_err());
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    server.restart();
    let started = Instant::now();
    loop {
        match admit_one(&redis, &set).await {
            // An empty server (no persistence): counting starts again.
            Ok(decision) => {
                assert_eq!(decision.limits[0].remaining, 99);
                break;
            }
            Err(_) => assert!(started.elapsed() < Duration::from_secs(15), "never reconnected"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
