//! The queue of one event: join, status, the admission tick and the pre-queue shuffle, each one
//! call of `queue.lua` (atomic), so several waiting-room instances can share a queue.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, LazyLock, Mutex, PoisonError},
    time::{Duration, Instant},
};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use redis::Script;
use serde::Serialize;
use shared::{
    cache::{Redis, RedisKeys, redis},
    config::QueueConfig,
    ids::{EventId, UserId},
};
use sqlx::PgPool;
use time::OffsetDateTime;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("queue.lua")));

/// How many fans one tick looks at, at most (admitted plus dropped).
const MAX_SCAN_PER_TICK: u32 = 5_000;
/// Fans per `place` call of the shuffle.
const PLACE_BATCH: usize = 2_000;
/// How long the cached event row (exists, cancelled) is trusted.
const EVENT_CACHE_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no such event")]
    UnknownEvent,
    #[error("the event is cancelled")]
    Cancelled,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the queue script answered {0:?}")]
    Protocol(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    PreQueue,
    Waiting,
    Admitted,
    Expired,
    SoldOut,
}

/// Where a fan stands, as the script sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub state: QueueState,
    /// 1-based place in line while waiting (or sold out); 0 otherwise.
    pub position: u64,
    pub eta_seconds: u64,
    /// When admitted: when the admission ends (Unix ms).
    pub admitted_until_ms: Option<i64>,
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickOutcome {
    pub waiting: u64,
    pub active: u64,
    pub admitted: u64,
    pub dropped: u64,
    pub frozen: bool,
}

#[derive(Debug, Clone, Copy)]
struct EventRow {
    cancelled: bool,
    fetched: Instant,
}

/// The waiting rooms of every event.
#[derive(Clone)]
pub struct Queues {
    db: PgPool,
    redis: Redis,
    keys: RedisKeys,
    config: QueueConfig,
    events: Arc<Mutex<HashMap<EventId, EventRow>>>,
    registered: Arc<Mutex<HashSet<EventId>>>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").finish_non_exhaustive()
    }
}

/// A fan as a ZSET member: the 16 raw bytes of their id (not 36 characters).
fn member(user: UserId) -> [u8; 16] {
    *user.as_uuid().as_bytes()
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Queues {
    pub fn new(db: PgPool, redis: Redis, keys: RedisKeys, config: QueueConfig) -> Self {
        Self {
            db,
            redis,
            keys,
            config,
            events: Arc::default(),
            registered: Arc::default(),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Fails with `UnknownEvent` / `Cancelled` (cached for a moment: joins are hot).
    pub async fn check_event(&self, event: EventId) -> Result<(), QueueError> {
        let cached = self
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&event)
            .copied();
        let row = match cached {
            Some(row) if row.fetched.elapsed() < EVENT_CACHE_TTL => row,
            _ => {
                let found: Option<(bool,)> =
                    sqlx::query_as("SELECT cancelled_at IS NOT NULL FROM events WHERE id = $1")
                        .bind(event)
                        .fetch_optional(&self.db)
                        .await?;
                let (cancelled,) = found.ok_or(QueueError::UnknownEvent)?;
                let row = EventRow {
                    cancelled,
                    fetched: Instant::now(),
                };
                self.events
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(event, row);
                row
            }
        };
        if row.cancelled {
            return Err(QueueError::Cancelled);
        }
        Ok(())
    }

    /// Writes the gate hash from Postgres (the ticketing API keeps it current afterwards).
    pub async fn load_gate(&self, event: EventId) -> Result<(), QueueError> {
        let row: Option<(bool, i32, i32, OffsetDateTime)> = sqlx::query_as(
            "SELECT high_demand, admit_per_minute, max_active, sale_opens_at
             FROM events WHERE id = $1",
        )
        .bind(event)
        .fetch_optional(&self.db)
        .await?;
        let (high, rate, max_active, opens) = row.ok_or(QueueError::UnknownEvent)?;
        let opens_ms = opens.unix_timestamp_nanos() / 1_000_000;
        let mut conn = self.redis.conn();
        // HSETNX per field: never overwrite what the API wrote meanwhile.
        let gate = self.keys.queue_gate(event);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_nx(&gate, "high_demand", if high { "1" } else { "0" })
            .hset_nx(&gate, "admit_per_minute", rate)
            .hset_nx(&gate, "max_active", max_active)
            .hset_nx(&gate, "sale_opens_at_ms", opens_ms.to_string())
            .hset_nx(&gate, "updated_at_ms", now_ms());
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn register(&self, event: EventId) -> Result<(), QueueError> {
        if self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&event)
        {
            return Ok(());
        }
        redis::cmd("SADD")
            .arg(self.keys.queue_events())
            .arg(event.to_string())
            .query_async::<()>(&mut self.redis.conn())
            .await?;
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(event);
        Ok(())
    }

    /// Runs the script, loading the gate from Postgres first if Redis lacks it.
    async fn call(&self, event: EventId, args: &[&[u8]]) -> Result<redis::Value, QueueError> {
        for attempt in 0..2 {
            let mut invocation = SCRIPT.key(self.keys.queue_base(event));
            for arg in args {
                invocation.arg(*arg);
            }
            let reply: redis::Value = invocation.invoke_async(&mut self.redis.conn()).await?;
            if first_is(&reply, "no_gate") && attempt == 0 {
                self.load_gate(event).await?;
                continue;
            }
            return Ok(reply);
        }
        Err(QueueError::Protocol("the gate is missing".into()))
    }

    /// Joins the queue (idempotent: joining again returns the same place).
    pub async fn join(&self, event: EventId, user: UserId) -> Result<Standing, QueueError> {
        self.check_event(event).await?;
        self.register(event).await?;
        let standing = self.enqueue(event, user).await?;
        metrics::counter!("waiting_room_joins_total").increment(1);
        Ok(standing)
    }

    /// The script's part of a join alone: no event check, no registration for the admission
    /// loop (the benchmark measures it).
    pub async fn enqueue(&self, event: EventId, user: UserId) -> Result<Standing, QueueError> {
        self.standing(event, user, "join").await
    }

    /// Where the fan stands now; counts as being seen.
    pub async fn status(&self, event: EventId, user: UserId) -> Result<Standing, QueueError> {
        self.standing(event, user, "status").await
    }

    async fn standing(
        &self,
        event: EventId,
        user: UserId,
        op: &str,
    ) -> Result<Standing, QueueError> {
        let raw = member(user);
        let uid = user.to_string();
        let reply = self
            .call(event, &[op.as_bytes(), &raw, uid.as_bytes()])
            .await?;
        let items = as_items(&reply)?;
        let state = text(&items, 0)?;
        if state == "off" {
            return Ok(Standing {
                state: QueueState::Admitted,
                position: 0,
                eta_seconds: 0,
                admitted_until_ms: None,
            });
        }
        let position = int(&items, 1)?.max(0).unsigned_abs();
        let at = int(&items, 2)?;
        let rate = int(&items, 3)?.max(1) as f64;
        let outflow: f64 = text(&items, 4)?.parse().unwrap_or(0.0);
        let sold_out = int(&items, 5)? == 1;
        // Fans per second: the measured outflow once there is one, the configured rate before.
        let per_sec = if outflow > 0.05 { outflow } else { rate / 60.0 };
        let ahead = position.saturating_sub(1) as f64;
        let (state, eta, admitted_until_ms) = match state.as_str() {
            "waiting" if sold_out => (QueueState::SoldOut, 0, None),
            "waiting" => (QueueState::Waiting, (ahead / per_sec).ceil() as u64, None),
            "pre_queue" => (
                QueueState::PreQueue,
                u64::try_from((at - now_ms()).max(0) / 1000).unwrap_or(0),
                None,
            ),
            "admitted" => (QueueState::Admitted, 0, Some(at)),
            "expired" => (QueueState::Expired, 0, None),
            other => return Err(QueueError::Protocol(other.to_string())),
        };
        Ok(Standing {
            state,
            position,
            eta_seconds: eta,
            admitted_until_ms,
        })
    }

    /// One admission step of the event (atomic across instances: keyed by the last tick time
    /// in Redis). `sold_out` stops admissions while no seat is free.
    pub async fn tick(&self, event: EventId, sold_out: bool) -> Result<TickOutcome, QueueError> {
        let grace = self.config.grace.as_millis().to_string();
        let ttl = self.config.admission_token_ttl.as_millis().to_string();
        let max_scan = MAX_SCAN_PER_TICK.to_string();
        let reply = self
            .call(
                event,
                &[
                    b"tick",
                    if sold_out { b"1" } else { b"0" },
                    grace.as_bytes(),
                    ttl.as_bytes(),
                    max_scan.as_bytes(),
                ],
            )
            .await?;
        let items = as_items(&reply)?;
        let phase = text(&items, 0)?;
        let get = |i| int(&items, i).map(|v| v.max(0).unsigned_abs());
        let outcome = TickOutcome {
            frozen: phase == "frozen",
            waiting: get(1)?,
            active: get(2)?,
            admitted: get(3)?,
            dropped: get(4)?,
        };
        if outcome.frozen {
            self.shuffle(event).await?;
        }
        Ok(outcome)
    }

    /// Shuffles the frozen pre-queue into its numbers, under a lock so one instance does it.
    /// Reproducible: the seed is recorded first and the pre-queue is read in arrival order, so
    /// a redo (after a crash mid-way) writes the same numbers. Returns the seed when this call
    /// finished the shuffle.
    pub async fn shuffle(&self, event: EventId) -> Result<Option<u64>, QueueError> {
        let mut conn = self.redis.conn();
        let lock = format!("{}shuffle-lock", self.keys.queue_base(event));
        let got: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query_async(&mut conn)
            .await?;
        if got.is_none() {
            return Ok(None);
        }
        let result = self.shuffle_locked(event).await;
        let _: Result<(), _> = redis::cmd("DEL").arg(&lock).query_async(&mut conn).await;
        result
    }

    async fn shuffle_locked(&self, event: EventId) -> Result<Option<u64>, QueueError> {
        let fresh = rand::random::<u64>().to_string();
        let reply = self
            .call(event, &[b"shuffle_begin", fresh.as_bytes()])
            .await?;
        let items = as_items(&reply)?;
        if text(&items, 0)? != "frozen" {
            return Ok(None);
        }
        let seed: u64 = text(&items, 1)?
            .parse()
            .map_err(|_| QueueError::Protocol("seed".into()))?;
        let mut fans: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(self.keys.queue_pre(event))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis.conn())
            .await?;
        let count = fans.len();
        fisher_yates(&mut fans, seed);
        for (chunk_no, chunk) in fans.chunks(PLACE_BATCH).enumerate() {
            let offset = (chunk_no * PLACE_BATCH).to_string();
            let mut args: Vec<&[u8]> = vec![b"place", offset.as_bytes()];
            args.extend(chunk.iter().map(Vec::as_slice));
            self.call(event, &args).await?;
        }
        let ended = self.call(event, &[b"opened"]).await?;
        if !matches!(ended, redis::Value::Int(1)) {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO audit_log (actor_id, action, target_type, target_id, details)
             VALUES (NULL, 'queue.shuffle', 'event', $1, $2)",
        )
        .bind(event.to_string())
        .bind(serde_json::json!({"seed": seed.to_string(), "count": count}))
        .execute(&self.db)
        .await?;
        tracing::info!(%event, seed, count, "pre-queue shuffled");
        Ok(Some(seed))
    }

    /// Events that have a queue (for the admission loop).
    pub async fn events(&self) -> Result<Vec<EventId>, QueueError> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.queue_events())
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Forgets an event that no longer exists.
    pub async fn unregister(&self, event: EventId) -> Result<(), QueueError> {
        redis::cmd("SREM")
            .arg(self.keys.queue_events())
            .arg(event.to_string())
            .query_async::<()>(&mut self.redis.conn())
            .await?;
        Ok(())
    }
}

/// Fisher–Yates with a seeded RNG: the same seed and input always give the same order.
pub fn fisher_yates<T>(items: &mut [T], seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

fn first_is(value: &redis::Value, what: &str) -> bool {
    match value {
        redis::Value::Array(items) => {
            matches!(items.first(), Some(redis::Value::BulkString(b)) if b == what.as_bytes())
        }
        _ => false,
    }
}

fn as_items(value: &redis::Value) -> Result<Vec<redis::Value>, QueueError> {
    match value {
        redis::Value::Array(items) => Ok(items.clone()),
        other => Err(QueueError::Protocol(format!("{other:?}"))),
    }
}

fn text(items: &[redis::Value], i: usize) -> Result<String, QueueError> {
    match items.get(i) {
        Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
        Some(redis::Value::Int(n)) => Ok(n.to_string()),
        other => Err(QueueError::Protocol(format!("item {i}: {other:?}"))),
    }
}

fn int(items: &[redis::Value], i: usize) -> Result<i64, QueueError> {
    match items.get(i) {
        Some(redis::Value::Int(n)) => Ok(*n),
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b)
            .parse()
            .map_err(|_| QueueError::Protocol(format!("item {i} is not a number"))),
        other => Err(QueueError::Protocol(format!("item {i}: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_yates_is_a_reproducible_permutation() {
        let mut a: Vec<u32> = (0..1000).collect();
        let mut b = a.clone();
        fisher_yates(&mut a, 42);
        fisher_yates(&mut b, 42);
        assert_eq!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    }
}
