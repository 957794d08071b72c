//! Joins/s through `queue.lua` at concurrency 50 against the real Redis, next to
//! `redis-benchmark -t set,zadd` at the same concurrency in the same run; the in-memory status
//! (a fan's standing from this instance's summary, what every status read and push update
//! costs the waiting room besides HTTP) per second on one core; and Redis memory per waiting fan
//! after one tick wrote every fan's heartbeat.
//!
//! `cargo bench -p waiting-room --bench queue` (env: `REDIS_URL`, `BENCH_FANS`, default 100000).

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use shared::{
    cache::{RedisKeys, redis},
    config::{QueueConfig, RedisConfig, Secret},
    gate::GateSettings,
    ids::{EventId, UserId},
};
use time::OffsetDateTime;
use waiting_room::Queues;

const CONCURRENCY: usize = 50;

async fn run<F, Fut>(total: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let next = next.clone();
            let op = op.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// `redis-benchmark` requests/s for one test at the same concurrency.
fn redis_benchmark(test: &str) -> Option<f64> {
    let output = Command::new("redis-benchmark")
        .args([
            "-t",
            test,
            "-c",
            &CONCURRENCY.to_string(),
            "-n",
            "200000",
            "-q",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "SET: 123456.79 requests per second, p50=0.215 msec" (after \r-separated progress).
    let line = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

async fn used_memory(conn: &mut redis::aio::ConnectionManager) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let fans: usize = std::env::var("BENCH_FANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
    let redis = shared::cache::connect(&RedisConfig {
        url: Secret::new(url),
        connections: 4,
        key_prefix: prefix.clone(),
    })?;
    let keys = RedisKeys::new(prefix);
    // The queue never touches Postgres here: the gate is written below, no event is checked.
    let db = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://unused@127.0.0.1/x")?;
    let queues = Queues::new(
        db,
        redis.clone(),
        keys.clone(),
        QueueConfig {
            admission_token_ttl: Duration::from_secs(600),
            queue_token_ttl: Duration::from_secs(3600),
            grace: Duration::from_secs(60),
            tick: Duration::from_millis(250),
        },
    );
    let event = EventId::new();
    GateSettings {
        high_demand: true,
        admit_per_minute: 1,
        max_active: 1,
        sale_opens_at: OffsetDateTime::UNIX_EPOCH,
    }
    .write(&redis, &keys, event)
    .await?;
    let mut conn = redis.conn();
    let users: Arc<Vec<UserId>> = Arc::new((0..fans).map(|_| UserId::new()).collect());

    let set = redis_benchmark("set");
    let before = used_memory(&mut conn).await;
    let joins = {
        let (queues, users) = (queues.clone(), users.clone());
        run(fans, move |i| {
            let (queues, users) = (queues.clone(), users.clone());
            async move {
                queues.enqueue(event, users[i]).await.expect("join");
            }
        })
        .await
    };
    // Each join marked its fan seen; one tick brings this instance the queue's summary.
    let view = queues.view(event);
    queues.tick(event, false).await.expect("tick");
    let after = used_memory(&mut conn).await;
    let base = keys.queue_base(event);
    let mut per_key = 0i64;
    let mut event_keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{base}*"))
        .query_async(&mut conn)
        .await?;
    event_keys.sort();
    for key in &event_keys {
        let bytes: Option<i64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await?;
        per_key += bytes.unwrap_or(0);
    }
    let summary = queues.summary(&view, event).await?;
    let places: Vec<_> = (1..=fans as u64)
        .map(|n| Some(shared::tokens::QueuePlace::Number(n)))
        .collect();
    let started = Instant::now();
    let mut checksum = 0u64;
    for place in &places {
        let standing = queues
            .from_memory(&view, &summary, *place)
            .expect("from memory");
        checksum = checksum.wrapping_add(standing.position);
    }
    let statuses = fans as f64 / started.elapsed().as_secs_f64();
    assert!(checksum > 0);
    let zadd = redis_benchmark("zadd");

    println!("waiting room, {fans} fans, concurrency {CONCURRENCY}");
    println!("  joins/s         {joins:>10.0}");
    println!("  status in memory/s (one core) {statuses:>10.0}");
    match set {
        Some(set) => {
            println!(
                "  redis SET/s     {set:>10.0}   joins = {:.2} x SET",
                joins / set
            );
        }
        None => println!("  redis-benchmark not available"),
    }
    if let Some(zadd) = zadd {
        println!(
            "  redis ZADD/s    {zadd:>10.0}   joins = {:.2} x ZADD",
            joins / zadd
        );
    }
    println!(
        "  memory per waiting fan: {:.0} B (used_memory delta), {:.0} B (MEMORY USAGE of the event's {} keys)",
        (after - before) as f64 / fans as f64,
        per_key as f64 / fans as f64,
        event_keys.len()
    );

    let _: () = redis::cmd("DEL")
        .arg(event_keys)
        .query_async(&mut conn)
        .await?;
    Ok(())
}
