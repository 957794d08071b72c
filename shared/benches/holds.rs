//! Holds per second against the real Redis, next to `redis-benchmark`'s raw single-command rate
//! at the same concurrency, measured in the same run.
//!
//!     cargo bench -p shared --bench holds
//!
//! Environment: `BENCH_CONCURRENCY` (default 50), `BENCH_HOLDS` (default 50000), `BENCH_GATED`
//! (1: every hold is behind the high-demand gate, each fan admitted beforehand), `REDIS_URL`,
//! `REDIS_CONNECTIONS` (default 4, as the services use),
//! `DATABASE_URL` (any database with the schema; only read to build the inventory).
//! Each hold is one fan taking one seat of a 100,000-seat event through `inventory.lua` — the
//! same call the API makes — so every hold succeeds and none is a cheap refusal.

use std::{process::Command, sync::Arc, time::Instant};

use shared::{
    cache::RedisKeys,
    config::{PostgresConfig, RedisConfig},
    ids::{ClassId, EventId, HoldId, SeatId, UserId},
    inventory::{Catalog, ClassInfo, HoldOutcome, HoldTerms, Inventory, SeatInfo},
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency = env_or("BENCH_CONCURRENCY", 50);
    let holds = env_or("BENCH_HOLDS", 50_000).min(100_000);
    let gated = env_or("BENCH_GATED", 0) == 1;
    let mut redis_config = RedisConfig::from_env()?;

    redis_config.key_prefix = format!("bench:{}:", uuid::Uuid::new_v4());
    let redis = shared::cache::connect(&redis_config)?;
    let db = shared::db::connect(&PostgresConfig::from_env()?).await?;
    let inventory = Inventory::new(
        db,
        redis.clone(),
        RedisKeys::new(redis_config.key_prefix.clone()),
    );

    // 100 rows of 1,000 seats in one class.
    let seats = (0..100_000)
        .map(|i| SeatInfo {
            id: SeatId::new(),
            label: format!("A-{}-{}", i / 1000 + 1, i % 1000 + 1),
            class: 0,
            section: "A".into(),
            row_rank: i / 1000,
            seat_no: i % 1000 + 1,
            x: 0.0,
            y: 0.0,
        })
        .collect();
    let classes = vec![ClassInfo {
        id: ClassId::new(),
        name: "Main".into(),
        position: 0,
        capacity: 0,
    }];
    let catalog = Arc::new(Catalog::from_parts(EventId::new(), classes, seats));
    inventory.ensure_loaded(&catalog).await?;
    // One fan per hold; behind the gate each is in the waiting room's admitted set first.
    let fans: Arc<Vec<UserId>> = Arc::new((0..holds).map(|_| UserId::new()).collect());
    if gated {
        let until = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 3_600_000;
        let active = inventory.keys().queue_active(catalog.event_id);
        for chunk in fans.chunks(1000) {
            let mut zadd = shared::cache::redis::cmd("ZADD");
            zadd.arg(&active);
            for fan in chunk {
                zadd.arg(until).arg(fan.to_string());
            }
            zadd.query_async::<()>(&mut redis.conn()).await?;
        }
    }
    let ttl = std::time::Duration::from_secs(600);
    let terms = if gated {
        HoldTerms::gated(ttl)
    } else {
        HoldTerms::from(ttl)
    };

    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (inventory, catalog, fans) = (inventory.clone(), catalog.clone(), fans.clone());
            tokio::spawn(async move {
                let mut done = 0usize;
                let mut seat = worker;
                while seat < holds {
                    let outcome = inventory
                        .hold_seats(
                            &catalog,
                            HoldId::new(),
                            fans[seat],
                            terms,
                            &[u32::try_from(seat).expect("fits")],
                        )
                        .await
                        .expect("redis answers");
                    assert!(matches!(outcome, HoldOutcome::Held { .. }), "{outcome:?}");
                    done += 1;
                    seat += concurrency;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let holds_per_sec = total as f64 / elapsed;

    // Clean up the event's keys (inventory and waiting room).
    let mut conn = redis.conn();
    let keys: Vec<String> = shared::cache::redis::cmd("KEYS")
        .arg(format!("{}*", redis_config.key_prefix))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(1000) {
        let _: i64 = shared::cache::redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await?;
    }

    let raw = redis_benchmark_set(concurrency, holds)?;
    println!(
        "holds{}:   {total} in {elapsed:.2} s = {holds_per_sec:.0} holds/s (concurrency {concurrency})",
        if gated { " (gated)" } else { "         " }
    );
    println!(
        "redis-benchmark: SET {raw:.0} requests/s (-c {concurrency} -n {holds}, no pipelining)"
    );
    println!(
        "ratio:           {:.0}% of the raw single-command rate",
        100.0 * holds_per_sec / raw
    );
    Ok(())
}

/// `redis-benchmark -t set` at the same concurrency, against the same server.
fn redis_benchmark_set(concurrency: usize, requests: usize) -> anyhow::Result<f64> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let host_port = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .trim_end_matches('/')
        .to_string();
    let (host, port) = host_port.split_once(':').unwrap_or((&host_port, "6379"));
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-t", "set", "-q"])
        .args(["-c", &concurrency.to_string(), "-n", &requests.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "SET: 123456.79 requests per second, p50=0.207 msec"
    text.rsplit("SET:")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("unexpected redis-benchmark output: {text}"))
}
