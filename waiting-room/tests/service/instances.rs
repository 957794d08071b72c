//! Three real waiting-room processes sharing one database, one Redis key prefix and one key
//! directory, one of them SIGKILLed mid-sale, talked to only through the HTTP contract (join,
//! status) plus the admission log in Redis: the test of "several instances agree" (issue #14).
//!
//! Each fan joins through a random instance and polls its status through a random live one, as
//! the gateway's round robin would send it. When about a third of the fans are admitted, one
//! instance is killed; the fans carry on through the others. Checked:
//! - every fan is admitted exactly once: the admission log (`<queue base>admitted`) holds each
//!   fan once and nobody else, and every fan saw itself admitted;
//! - the admission rate never exceeds the configured one, in sliding windows of 1, 3 and 5 s
//!   over the log's length sampled every 25 ms, with the admission credit a tick may carry
//!   (at most one second's worth, `queue.lua`'s cap, so a late tick never turns into a burst)
//!   allowed on top: two instances admitting for the same slot would double the count;
//! - a fan's position never increases while one instance answers, and rises by at most the
//!   admissions of a few ticks when another answers next (each instance serves from the summary
//!   of its own last tick: see `APART`);
//! - two instances asked about the same fan at the same moment agree, within the admissions
//!   made in between (and `APART`, for instances that serve from their own tick's summary).
//!
//! The children are SIGKILLed on every exit path (the kit's drop guard), so a failing test
//! leaves no process behind.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Client;
use serde_json::Value;
use shared::{
    cache::{RedisKeys, redis},
    config::RedisConfig,
    ids::{EventId, UserId},
    tokens::{KeyPurpose, KeySet},
};
use sqlx::PgPool;
use testkit::{
    config::postgres_for,
    process::{KilledOnDrop, keys_dir},
    sale::NewSale,
};
use uuid::Uuid;

const INSTANCES: usize = 3;
const FANS: usize = 60;
const ADMIT_PER_MINUTE: u32 = 600;
const TICK_MS: u64 = 100;
/// How far apart in time two instances' summaries may be: each serves from its own last tick,
/// and on a loaded machine (CI runs this beside other tests) a tick comes late.
const APART_MS: u64 = 5 * TICK_MS;
/// The admissions of that time at the configured rate: how far two instances' answers for one
/// fan may differ, beyond the admissions made in between.
const APART: u64 = (ADMIT_PER_MINUTE as u64 * APART_MS).div_ceil(60_000);
/// The whole sale must be over by then (the test's bound; ~6 s of admissions at 10/s).
const SALE_TIMEOUT: Duration = Duration::from_secs(45);

/// The waiting-room processes of one test and their key directory: every child is SIGKILLed
/// and reaped, and the directory removed, when this is dropped (a panic included).
struct Instances {
    children: Vec<KilledOnDrop>,
    bases: Vec<String>,
    live: Arc<Vec<AtomicBool>>,
    dir: PathBuf,
}

impl Instances {
    /// `INSTANCES` real binaries on port 0, each one's address read from its first log line.
    async fn start(db: &PgPool, redis: &RedisConfig, dir: PathBuf) -> Self {
        let mut instances = Self {
            children: Vec::new(),
            bases: Vec::new(),
            live: Arc::new((0..INSTANCES).map(|_| AtomicBool::new(true)).collect()),
            dir,
        };
        for n in 0..INSTANCES {
            let log_path = instances.dir.join(format!("waiting-room-{n}.log"));
            let log = std::fs::File::create(&log_path).expect("log");
            let child = KilledOnDrop::spawn(
                Command::new(env!("CARGO_BIN_EXE_waiting-room"))
                    .env("DATABASE_URL", postgres_for(db).url.expose())
                    // #[sqlx::test] applied the migrations already.
                    .env("DATABASE_AUTO_MIGRATE", "false")
                    .env("DATABASE_MAX_CONNECTIONS", "3")
                    .env("REDIS_URL", redis.url.expose())
                    .env("REDIS_KEY_PREFIX", &redis.key_prefix)
                    .env("KEYS_DIR", &instances.dir)
                    .env("WAITING_ROOM_ADDR", "127.0.0.1:0")
                    .env("QUEUE_TICK_MS", TICK_MS.to_string())
                    // Nobody is dropped for not polling: the test is about admission, not
                    // liveness.
                    .env("QUEUE_GRACE_SECS", "600")
                    .env("APP_ENV", "development")
                    .env("LOG_FORMAT", "json")
                    .env("RUST_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("log"))
                    .stderr(log),
            );
            instances.children.push(child);
            let addr = listening_addr(&log_path, &mut instances.children[n]).await;
            instances.bases.push(format!("http://{addr}"));
        }
        instances
    }

    /// SIGKILL, and reap.
    fn kill(&mut self, n: usize) {
        self.live[n].store(false, Ordering::SeqCst);
        self.children[n].kill();
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for n in 0..self.children.len() {
            self.kill(n);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The address in the process's "waiting room listening" log line (JSON, flattened fields).
async fn listening_addr(log: &Path, child: &mut KilledOnDrop) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .filter(|l| l.contains("waiting room listening"))
            .find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                v["addr"].as_str().map(str::to_string)
            })
        {
            return addr;
        }
        if let Some(Ok(Some(status))) = child.child().map(Child::try_wait) {
            panic!("a waiting room exited at start ({status}):\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no waiting room listening within 15 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A high-demand event, open since a minute ago, straight in Postgres.
async fn open_high_demand_event(db: &PgPool, admit_per_minute: u32, max_active: u32) -> EventId {
    NewSale::high_demand(admit_per_minute as i32, max_active as i32)
        .insert(db)
        .await
        .event
}

/// What the fans, the prober and the sampler share.
struct Sale {
    client: Client,
    bases: Vec<String>,
    live: Arc<Vec<AtomicBool>>,
    event: EventId,
    keys: KeySet,
    /// Fans with a queue token who have not seen themselves admitted yet.
    waiting: Mutex<HashMap<UserId, String>>,
    /// What went wrong, checked at the end (a panic in a task would only end that task).
    violations: Mutex<Vec<String>>,
    /// Requests that failed on a dying instance and were sent again to another.
    retried: std::sync::atomic::AtomicUsize,
}

impl Sale {
    fn violation(&self, what: String) {
        self.violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }

    /// A random live instance, other than `not` when there is one.
    fn pick(&self, not: Option<usize>) -> usize {
        let live: Vec<usize> = (0..self.bases.len())
            .filter(|&n| self.live[n].load(Ordering::SeqCst) && Some(n) != not)
            .collect();
        assert!(!live.is_empty(), "no live instance left");
        live[rand::random_range(0..live.len())]
    }

    fn access(&self, user: UserId) -> String {
        testkit::users::fan_token(&self.keys.access, user)
    }

    /// Sends through instance `n`; a transport error (the instance was killed under the
    /// request) is retried on another live one, as the gateway's next-upstream would.
    async fn send(
        &self,
        mut n: usize,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> (usize, Value) {
        for _ in 0..5 {
            match request(&self.bases[n]).send().await {
                Ok(response) => {
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    assert_eq!(status, 200, "instance {n} answered {status}: {body}");
                    return (n, body);
                }
                Err(err) => {
                    assert!(
                        !self.live[n].load(Ordering::SeqCst) || err.is_connect(),
                        "instance {n} failed a request while alive: {err}"
                    );
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    n = self.pick(Some(n));
                }
            }
        }
        panic!("a request failed on five instances in a row");
    }

    async fn join(&self, user: UserId) -> Value {
        let url = format!("/api/queue/{}/join", self.event);
        let token = self.access(user);
        self.send(self.pick(None), |base| {
            self.client.post(format!("{base}{url}")).bearer_auth(&token)
        })
        .await
        .1
    }

    async fn status(&self, n: usize, queue_token: &str) -> Value {
        let url = format!("/api/queue/{}/status", self.event);
        self.send(n, |base| {
            self.client
                .get(format!("{base}{url}"))
                .header("X-Queue-Token", queue_token)
        })
        .await
        .1
    }
}

/// Place in line as a number: an admitted fan is at 0, a waiting one at `position` (≥ 1).
fn place(body: &Value) -> Option<u64> {
    match body["state"].as_str() {
        Some("admitted") => Some(0),
        Some("waiting") => body["position"].as_u64(),
        _ => None,
    }
}

/// One fan: join through a random instance, then poll through random live ones until admitted.
async fn fan(sale: Arc<Sale>, user: UserId) {
    let joined = sale.join(user).await;
    let token = joined["queue_token"]
        .as_str()
        .expect("a queue token")
        .to_string();
    let mut last = place(&joined).unwrap_or_else(|| panic!("join answered {joined}"));
    if last > 0 {
        sale.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, token.clone());
    }
    let mut body = joined;
    let mut last_instance = None;
    while body["state"] != "admitted" {
        // Faster than poll_after_ms asks, so the test is short and sees every step.
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..150))).await;
        let n = sale.pick(None);
        body = sale.status(n, &token).await;
        let Some(now) = place(&body) else {
            sale.violation(format!("fan {user}: instance {n} answered {body}"));
            return;
        };
        let slack = if last_instance == Some(n) { 0 } else { APART };
        if now > last + slack {
            sale.violation(format!(
                "fan {user}: position went up from {last} to {now} (instance {n})"
            ));
        }
        last = now;
        last_instance = Some(n);
    }
    if body["admission_token"].as_str().is_none_or(str::is_empty) {
        sale.violation(format!("fan {user}: admitted without a token: {body}"));
    }
    sale.waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&user);
}

async fn admitted_len(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("LLEN")
        .arg(key)
        .query_async(conn)
        .await
        .expect("llen")
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn three_instances_one_killed_mid_sale_admit_every_fan_once_at_the_rate(db: PgPool) {
    let redis_config = testkit::config::redis();
    let dir = keys_dir("wr-instances");
    let keys = KeySet::load(&dir, &[KeyPurpose::Access]).expect("the test's keys");
    let event = open_high_demand_event(&db, ADMIT_PER_MINUTE, FANS as u32 + 40).await;
    let mut instances = Instances::start(&db, &redis_config, dir).await;
    let admitted_key = format!(
        "{}admitted",
        RedisKeys::new(redis_config.key_prefix.clone()).queue_base(event)
    );
    let conn = || async {
        redis::Client::open(redis_config.url.expose().as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    };
    let sale = Arc::new(Sale {
        client: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        bases: instances.bases.clone(),
        live: instances.live.clone(),
        event,
        keys,
        waiting: Mutex::new(HashMap::new()),
        violations: Mutex::new(Vec::new()),
        retried: Default::default(),
    });
    let done = Arc::new(AtomicBool::new(false));

    // The admission log's length, every 25 ms: the rate check's data.
    let sampler = {
        let (done, key, mut conn) = (done.clone(), admitted_key.clone(), conn().await);
        tokio::spawn(async move {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let len = admitted_len(&mut conn, &key).await;
                samples.push((start.elapsed().as_secs_f64(), len));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            samples
        })
    };

    // Two different live instances asked about one waiting fan at once, bracketed by the
    // admission log's length.
    let prober = {
        let (sale, done, key, mut conn) = (
            sale.clone(),
            done.clone(),
            admitted_key.clone(),
            conn().await,
        );
        tokio::spawn(async move {
            let mut probes = 0usize;
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(40)).await;
                let picked = {
                    let waiting = sale.waiting.lock().unwrap_or_else(|e| e.into_inner());
                    let all: Vec<(&UserId, &String)> = waiting.iter().collect();
                    (!all.is_empty())
                        .then(|| all[rand::random_range(0..all.len())])
                        .map(|(u, t)| (*u, t.clone()))
                };
                let Some((user, token)) = picked else {
                    continue;
                };
                let a = sale.pick(None);
                let b = sale.pick(Some(a));
                if a == b {
                    continue;
                }
                let before = admitted_len(&mut conn, &key).await;
                let (x, y) = tokio::join!(sale.status(a, &token), sale.status(b, &token));
                let after = admitted_len(&mut conn, &key).await;
                let (Some(px), Some(py)) = (place(&x), place(&y)) else {
                    sale.violation(format!("probe of {user}: {x} / {y}"));
                    continue;
                };
                // Each answers from its own tick's summary: APART on top.
                let allowed = after - before + APART;
                if px.abs_diff(py) > allowed {
                    sale.violation(format!(
                        "fan {user}: instance {a} says {px}, instance {b} says {py}, with {} admitted in between",
                        after - before
                    ));
                }
                probes += 1;
            }
            probes
        })
    };

    let users: Vec<UserId> = (0..FANS).map(|_| UserId::from(Uuid::new_v4())).collect();
    let started = Instant::now();
    let fans: Vec<_> = users
        .iter()
        .map(|&user| tokio::spawn(fan(sale.clone(), user)))
        .collect();

    // SIGKILL one instance when about a third of the fans are in.
    let mut watch = conn().await;
    let killed = rand::random_range(0..INSTANCES);
    let at_kill = loop {
        let len = admitted_len(&mut watch, &admitted_key).await;
        if len >= FANS as u64 / 3 {
            break len;
        }
        assert!(
            started.elapsed() < SALE_TIMEOUT,
            "only {len} admitted in {SALE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    instances.kill(killed);
    assert!(
        at_kill < FANS as u64 * 2 / 3,
        "{at_kill} of {FANS} were admitted before the kill; the test proves little"
    );

    let finished = tokio::time::timeout(SALE_TIMEOUT.saturating_sub(started.elapsed()), async {
        for fan in fans {
            fan.await.expect("a fan's task");
        }
    })
    .await;
    done.store(true, Ordering::SeqCst);
    let samples = sampler.await.expect("sampler");
    let probes = prober.await.expect("prober");
    let violations = sale
        .violations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert!(
        finished.is_ok(),
        "not every fan was admitted within {SALE_TIMEOUT:?}; {} still waiting; violations: {violations:#?}",
        sale.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    );
    assert!(violations.is_empty(), "{violations:#?}");

    // Exactly once: the log holds each fan once, and nobody else.
    let log: Vec<String> = redis::cmd("LRANGE")
        .arg(&admitted_key)
        .arg(0)
        .arg(-1)
        .query_async(&mut watch)
        .await
        .expect("lrange");
    let distinct: HashSet<&String> = log.iter().collect();
    assert_eq!(distinct.len(), log.len(), "someone admitted twice: {log:?}");
    let expected: HashSet<String> = users.iter().map(|u| u.to_string()).collect();
    assert_eq!(
        distinct,
        expected.iter().collect::<HashSet<_>>(),
        "the admission log is not exactly the fans"
    );

    // The rate, in every sliding window of one, three and five seconds over the samples.
    let per_s = f64::from(ADMIT_PER_MINUTE) / 60.0;
    let burst = per_s.max(1.0);
    let mut worst = (0.0f64, 0u64, 0.0f64);
    for window in [1.0f64, 3.0, 5.0] {
        for (i, &(t0, n0)) in samples.iter().enumerate() {
            let Some(&(t1, n1)) = samples[i..]
                .iter()
                .take_while(|(t, _)| t - t0 <= window)
                .last()
            else {
                continue;
            };
            // The credit carried into the window, and 50 ms for the samples' own round trips.
            let allowed = per_s * (t1 - t0 + 0.05) + burst;
            let count = n1 - n0;
            assert!(
                count as f64 <= allowed,
                "{count} admitted in {:.3} s from {t0:.3} s (at most {allowed:.1} at {ADMIT_PER_MINUTE}/min)",
                t1 - t0
            );
            if count as f64 / allowed > worst.2 {
                worst = (t1 - t0, count, count as f64 / allowed);
            }
        }
    }
    assert!(
        probes >= 10,
        "only {probes} two-instance probes ran; the agreement check proves little"
    );
    drop(instances);
    // A SIGKILLed child's Postgres sessions end a moment later; the test's database can only
    // be dropped once they have.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_one(&db)
        .await
        .expect("pg_stat_activity");
        if others <= i64::from(db.size()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{FANS} fans admitted once each by {INSTANCES} instances in {:.1} s; instance {killed} SIGKILLed at {at_kill} admitted; {} requests retried on another instance; {probes} two-instance probes agreed; busiest window: {} admitted in {:.2} s ({:.0} % of the allowance)",
        started.elapsed().as_secs_f64(),
        sale.retried.load(Ordering::Relaxed),
        worst.1,
        worst.0,
        worst.2 * 100.0
    );
}
