//! The machine's own limits, measured in the same run as the load: `redis-benchmark` on the
//! commands the hot paths use (every join, status read and hold is one Lua script call), and a
//! plain Postgres insert rate (single-row autocommit inserts from several connections, which
//! is what persisting a ticket costs at the least).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    /// Requests per second per command, `redis-benchmark -c 50`.
    pub redis: Vec<(String, f64)>,
    /// Rows per second, single-row autocommit inserts from `pg_connections` connections.
    pub postgres_inserts_per_s: Option<f64>,
    pub pg_connections: usize,
    pub notes: Vec<String>,
}

impl Limits {
    pub fn redis(&self, name: &str) -> Option<f64> {
        self.redis
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, rps)| *rps)
    }
}

/// The Lua call every join, status read and hold makes, in its simplest form.
pub const SCRIPT: &str = "EVAL (script: ZSCORE + HSET)";

pub async fn measure(redis_url: &str, key_prefix: &str, db: &PgPool, requests: u64) -> Limits {
    let mut limits = Limits {
        pg_connections: 8,
        ..Limits::default()
    };
    let (host, port) = redis_host_port(redis_url);
    let key = |k: &str| format!("{key_prefix}lt-bench:{{b}}:{k}");
    let (z, h, s, n) = (key("z"), key("h"), key("s"), key("n"));
    let commands: Vec<(&str, Vec<String>)> = vec![
        ("SET", vec!["SET".into(), s.clone(), "v".into()]),
        ("INCR", vec!["INCR".into(), n.clone()]),
        (
            "ZADD",
            vec!["ZADD".into(), z.clone(), "1".into(), "m".into()],
        ),
        (
            "HSET",
            vec!["HSET".into(), h.clone(), "f".into(), "v".into()],
        ),
        (
            SCRIPT,
            vec![
                "EVAL".into(),
                "local s = redis.call('ZSCORE', KEYS[1], ARGV[1]); redis.call('HSET', KEYS[2], ARGV[1], 1); return s".into(),
                "2".into(),
                z.clone(),
                h.clone(),
                "m".into(),
            ],
        ),
    ];
    for (name, args) in commands {
        match redis_benchmark(&host, port, requests, &args) {
            Ok(rps) => limits.redis.push((name.to_string(), rps)),
            Err(err) => limits
                .notes
                .push(format!("redis-benchmark {name} failed: {err:#}")),
        }
    }
    // The keys above are this run's own; remove them.
    let _ = Command::new("redis-cli")
        .args(["-h", &host, "-p", &port.to_string(), "DEL", &z, &h, &s, &n])
        .output();

    match postgres_inserts(db, limits.pg_connections, Duration::from_secs(3)).await {
        Ok(rate) => limits.postgres_inserts_per_s = Some(rate),
        Err(err) => limits
            .notes
            .push(format!("postgres insert rate failed: {err:#}")),
    }
    limits
}

pub(crate) fn redis_host_port(url: &str) -> (String, u16) {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = rest.split('/').next().unwrap_or(rest);
    match hostport.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse().unwrap_or(6379)),
        None => (hostport.to_string(), 6379),
    }
}

/// Requests per second of one command, 50 clients, `requests` requests.
fn redis_benchmark(host: &str, port: u16, requests: u64, args: &[String]) -> anyhow::Result<f64> {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-c",
            "50",
            "-n",
            &requests.to_string(),
            "-q",
            "--csv",
        ])
        .args(args)
        .output()
        .context("running redis-benchmark (package redis-tools)")?;
    anyhow::ensure!(
        output.status.success(),
        "redis-benchmark: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    csv_rate(&text).with_context(|| format!("no rate in redis-benchmark's output: {text}"))
}

/// The rate of the last test in redis-benchmark's `--csv` output.
fn csv_rate(text: &str) -> Option<f64> {
    csv_row(text).map(|row| row.rps)
}

/// One test of redis-benchmark's `--csv` output: requests per second and latency (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BenchRow {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The last test of redis-benchmark's `--csv` output: a header line ("test","rps",...) then
/// one line per test, "NAME","RPS" and six latency columns (avg, min, p50, p95, p99, max).
/// NAME may hold commas (a script), so the columns are counted from the end.
pub(crate) fn csv_row(text: &str) -> Option<BenchRow> {
    text.lines()
        .filter(|line| !line.starts_with("\"test\""))
        .filter_map(|line| {
            let fields: Vec<&str> = line.rsplitn(8, ',').collect();
            if fields.len() != 8 {
                return None;
            }
            let num = |i: usize| fields[i].trim_matches('"').parse::<f64>().ok();
            Some(BenchRow {
                rps: num(6)?,
                p50_ms: num(3)?,
                p99_ms: num(1)?,
            })
        })
        .next_back()
}

/// Single-row autocommit inserts into a table of this measurement's own, for `time`.
async fn postgres_inserts(db: &PgPool, connections: usize, time: Duration) -> anyhow::Result<f64> {
    let table = format!("lt_insert_bench_{}", uuid::Uuid::new_v4().simple());
    // The table name is this measurement's own (a UUID), never input.
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {table} (id uuid PRIMARY KEY, event_id uuid NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(db)
    .await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let db = db.clone();
        let sql = format!("INSERT INTO {table} (id, event_id, payload) VALUES ($1, $2, $3)");
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let event = uuid::Uuid::new_v4();
            while started.elapsed() < time {
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(uuid::Uuid::now_v7())
                    .bind(event)
                    .bind("a ticket's worth of text, about this long")
                    .execute(&db)
                    .await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    sqlx::query(AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(db)
        .await?;
    Ok(total as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::redis_host_port;

    #[test]
    fn the_rate_is_read_from_the_end_of_a_csv_line() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"EVAL a, b 2 k\",\"24096.39\",\"1.616\",\"0.216\",\"1.159\",\"4.231\",\"8.887\",\"16.719\"\n";
        assert_eq!(super::csv_rate(text), Some(24096.39));
        assert_eq!(
            super::csv_row(text),
            Some(super::BenchRow {
                rps: 24096.39,
                p50_ms: 1.159,
                p99_ms: 8.887
            })
        );
    }

    #[test]
    fn redis_urls_give_host_and_port() {
        assert_eq!(
            redis_host_port("redis://127.0.0.1:6379"),
            ("127.0.0.1".into(), 6379)
        );
        assert_eq!(
            redis_host_port("redis://:pw@cache:6380/0"),
            ("cache".into(), 6380)
        );
        assert_eq!(redis_host_port("redis://cache"), ("cache".into(), 6379));
    }
}
