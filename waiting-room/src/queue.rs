//! The queue of one event: join, the admission tick and the pre-queue shuffle, each one call
//! of `queue.lua` (atomic), so several waiting-room instances can share a queue; and the
//! standing of a fan, computed in memory from the summary every tick brings back (see
//! [`crate::summary`] and [`crate::view`]), so status reads and push updates cost no Redis
//! call in steady state. Redis is asked about one fan only when the summary cannot tell: a
//! token without a place, a fan the serving mark has reached, or a summary gone stale.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use redis::Script;
use serde::Serialize;
use shared::{
    audit::Actor,
    cache::{Redis, RedisKeys, redis},
    config::QueueConfig,
    gate::GateSettings,
    ids::{EventId, UserId},
    lock::Lock,
    reply::{Reply, ReplyError},
    tokens::QueuePlace,
};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    summary::{Phase, Summary},
    view::{View, Views},
};

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("queue.lua")));

/// How many fans one tick looks at, at most (admitted plus dropped).
const MAX_SCAN_PER_TICK: u32 = 5_000;
/// Numbers of the line the sweep looks at per second (a 1,000,000-fan line in under a minute).
const SWEEP_PER_SECOND: u32 = 20_000;
/// Fans per `place` call of the shuffle.
const PLACE_BATCH: usize = 2_000;
/// How long the cached event row (exists, cancelled) is trusted.
const EVENT_CACHE_TTL: Duration = Duration::from_secs(2);
/// How long an instance that died mid-shuffle keeps the others from redoing it.
const SHUFFLE_LOCK_TTL: Duration = Duration::from_secs(30);

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
    #[error("the queue script answered {0}")]
    Reply(#[from] ReplyError),
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

/// Where a fan stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub state: QueueState,
    /// 1-based place in line while waiting (or sold out); 0 otherwise.
    pub position: u64,
    pub eta_seconds: u64,
    /// When admitted: when the admission ends (Unix ms); `None` when the gate is off.
    pub admitted_until_ms: Option<i64>,
}

impl Standing {
    /// A standing with no place and no wait: expired, or admitted while the gate is off.
    pub fn ended(state: QueueState) -> Self {
        Self {
            state,
            position: 0,
            eta_seconds: 0,
            admitted_until_ms: None,
        }
    }
}

/// A join: where the fan stands and the place to seal in their queue token.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub standing: Standing,
    pub place: Option<QueuePlace>,
}

/// What `join` and `lookup` found in Redis for one fan.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Found {
    Off,
    PreQueue(u64),
    Waiting(u64),
    Admitted(i64),
    Expired,
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickOutcome {
    pub waiting: u64,
    pub active: u64,
    pub admitted: u64,
    /// Stale fans the tick reached at the front of the line.
    pub dropped: u64,
    /// Stale fans the sweep took out of the line behind the front.
    pub swept: u64,
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
    views: Views,
    events: Arc<Mutex<HashMap<EventId, EventRow>>>,
    registered: Arc<Mutex<HashSet<EventId>>>,
    /// Calls of `queue.lua` made by this instance: what a status read must not add to.
    script_calls: Arc<AtomicU64>,
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
            views: Views::default(),
            events: Arc::default(),
            registered: Arc::default(),
            script_calls: Arc::default(),
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

    /// How many times this instance has called `queue.lua`.
    pub fn script_calls(&self) -> u64 {
        self.script_calls.load(Ordering::Relaxed)
    }

    /// Liveness is counted in epochs of half the grace (see `queue.lua`).
    fn epoch_ms(&self) -> u64 {
        (self.config.grace.as_millis() / 2).max(1) as u64
    }

    fn epoch(&self) -> u64 {
        now_ms().max(0).unsigned_abs() / self.epoch_ms()
    }

    /// How old a summary may be before a status read fetches a new one itself (the ticks
    /// have stopped reaching Redis, or this instance has not ticked the event yet).
    fn summary_fresh(&self) -> Duration {
        (self.config.tick * 4).max(Duration::from_secs(2))
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
        let (high_demand, admit_per_minute, max_active, sale_opens_at) =
            row.ok_or(QueueError::UnknownEvent)?;
        // Never overwrite what the API wrote meanwhile.
        GateSettings {
            high_demand,
            admit_per_minute,
            max_active,
            sale_opens_at,
        }
        .write_missing(&self.redis, &self.keys, event)
        .await?;
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
            self.script_calls.fetch_add(1, Ordering::Relaxed);
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
    pub async fn join(&self, event: EventId, user: UserId) -> Result<Joined, QueueError> {
        self.check_event(event).await?;
        self.register(event).await?;
        let joined = self.enqueue(event, user).await?;
        metrics::counter!("waiting_room_joins_total").increment(1);
        Ok(joined)
    }

    /// The script's part of a join alone: no event check, no registration for the admission
    /// loop (the benchmark measures it).
    pub async fn enqueue(&self, event: EventId, user: UserId) -> Result<Joined, QueueError> {
        let found = self.find(event, user, "join").await?;
        let place = match found {
            Found::Waiting(n) => Some(QueuePlace::Number(n)),
            Found::PreQueue(arrival) => Some(QueuePlace::PreQueue(arrival)),
            Found::Off | Found::Admitted(_) | Found::Expired => None,
        };
        let view = self.views.get_or_insert(event);
        let summary = self.summary(&view, event).await?;
        let standing = self.standing_of(&view, &summary, found);
        Ok(Joined { standing, place })
    }

    /// Where the fan stands now, from this instance's summary of the queue; counts as being
    /// seen. `place` is what their queue token says.
    pub async fn standing(
        &self,
        event: EventId,
        user: UserId,
        place: Option<QueuePlace>,
    ) -> Result<Standing, QueueError> {
        let view = self.views.get_or_insert(event);
        let summary = self.summary(&view, event).await?;
        if let Some(standing) = self.from_memory(&view, &summary, place) {
            return Ok(standing);
        }
        let found = self.find(event, user, "lookup").await?;
        let standing = self.standing_of(&view, &summary, found);
        if let Some(n) = number_of(&view, &summary, place)
            && n <= summary.serving
        {
            view.remember_reached(n, &standing);
        }
        Ok(standing)
    }

    /// The standing the summary tells alone, or `None` when Redis must be asked.
    pub fn from_memory(
        &self,
        view: &View,
        summary: &Summary,
        place: Option<QueuePlace>,
    ) -> Option<Standing> {
        if !summary.gate_on {
            return Some(Standing::ended(QueueState::Admitted));
        }
        if matches!(place?, QueuePlace::PreQueue(_)) && !summary.pre_queue_placed() {
            return Some(summary.pre_queue(now_ms()));
        }
        let number = number_of(view, summary, place)?;
        if number > summary.seq {
            return None; // the queue was reset since the join: ask
        }
        if number <= summary.serving {
            return view.reached(number);
        }
        if summary.is_gone(number) || view.is_gone(number) {
            return Some(Standing::ended(QueueState::Expired));
        }
        view.saw(number, self.epoch());
        Some(summary.waiting(number))
    }

    fn standing_of(&self, view: &View, summary: &Summary, found: Found) -> Standing {
        match found {
            Found::Off => Standing::ended(QueueState::Admitted),
            Found::PreQueue(_) => summary.pre_queue(now_ms()),
            Found::Waiting(n) => {
                view.saw(n, self.epoch());
                // A summary a moment older than the answer may not have reached n yet.
                summary.waiting(n.max(summary.serving + 1))
            }
            Found::Admitted(until) => Standing {
                state: QueueState::Admitted,
                position: 0,
                eta_seconds: 0,
                admitted_until_ms: Some(until),
            },
            Found::Expired => Standing::ended(QueueState::Expired),
        }
    }

    /// This instance's summary of the queue: the last tick's, or a fresh one from Redis when
    /// that is too old (published to the push streams too).
    pub async fn summary(&self, view: &View, event: EventId) -> Result<Arc<Summary>, QueueError> {
        if let Some(summary) = view.summary(self.summary_fresh()) {
            return Ok(summary);
        }
        let _refreshing = view.refreshing.lock().await;
        if let Some(summary) = view.summary(self.summary_fresh()) {
            return Ok(summary); // another read fetched it meanwhile
        }
        let reply = self.call(event, &[b"summary"]).await?;
        view.publish(Summary::parse(&mut Reply::new(&reply)?)?);
        view.summary(Duration::MAX)
            .ok_or_else(|| QueueError::Protocol("no summary".into()))
    }

    /// The view of an event's queue (push streams subscribe to its summaries).
    pub fn view(&self, event: EventId) -> Arc<View> {
        self.views.get_or_insert(event)
    }

    async fn find(&self, event: EventId, user: UserId, op: &str) -> Result<Found, QueueError> {
        let raw = member(user);
        let uid = user.to_string();
        let epoch_ms = self.epoch_ms().to_string();
        let reply = self
            .call(
                event,
                &[op.as_bytes(), &raw, uid.as_bytes(), epoch_ms.as_bytes()],
            )
            .await?;
        let mut reply = Reply::new(&reply)?;
        Ok(match reply.text()?.as_str() {
            "off" => Found::Off,
            "pre_queue" => Found::PreQueue(reply.uint()?),
            "waiting" => Found::Waiting(reply.uint()?),
            "admitted" => Found::Admitted(reply.int()?),
            "expired" => Found::Expired,
            other => return Err(reply.error(format!("unknown state {other}")).into()),
        })
    }

    /// One admission step of the event (atomic across instances: keyed by the last tick time
    /// in Redis), carrying the numbers this instance saw since its last tick, and bringing
    /// back the queue's summary for this instance's view. `sold_out` stops admissions while
    /// no seat is free.
    pub async fn tick(&self, event: EventId, sold_out: bool) -> Result<TickOutcome, QueueError> {
        let view = self.views.get_or_insert(event);
        let seen = view.take_seen();
        let result = self.tick_with(event, sold_out, &view, &seen).await;
        if result.is_err() {
            view.restore_seen(seen);
        }
        let outcome = result?;
        if outcome.frozen {
            self.shuffle(event).await?;
        }
        Ok(outcome)
    }

    async fn tick_with(
        &self,
        event: EventId,
        sold_out: bool,
        view: &Arc<View>,
        seen: &[u32],
    ) -> Result<TickOutcome, QueueError> {
        let grace = self.config.grace.as_millis().to_string();
        let ttl = self.config.admission_token_ttl.as_millis().to_string();
        let max_scan = MAX_SCAN_PER_TICK.to_string();
        let sweep = SWEEP_PER_SECOND.to_string();
        let packed: Vec<u8> = seen.iter().flat_map(|n| n.to_be_bytes()).collect();
        let reply = self
            .call(
                event,
                &[
                    b"tick",
                    if sold_out { b"1" } else { b"0" },
                    grace.as_bytes(),
                    ttl.as_bytes(),
                    max_scan.as_bytes(),
                    sweep.as_bytes(),
                    &packed,
                ],
            )
            .await?;
        let mut reply = Reply::new(&reply)?;
        let mut outcome = TickOutcome {
            waiting: reply.uint()?,
            active: reply.uint()?,
            admitted: reply.uint()?,
            dropped: reply.uint()?,
            swept: reply.uint()?,
            frozen: false,
        };
        let summary = Summary::parse(&mut reply.list()?)?;
        let mut gone = reply.list()?;
        let mut numbers = Vec::new();
        while !gone.is_empty() {
            numbers.push(gone.uint()?);
        }
        view.learn_gone(numbers);
        outcome.frozen = summary.phase == Phase::Frozen;
        if let Some((seed, count)) = view.order_wanted(&summary) {
            let view = view.clone();
            // Up to a few milliseconds per 100,000 fans: off the runtime's threads.
            tokio::task::spawn_blocking(move || view.set_order(seed, count));
        }
        view.publish(summary);
        Ok(outcome)
    }

    /// Shuffles the frozen pre-queue into its numbers, under a lock so one instance does it.
    /// Reproducible: the seed is recorded first and the pre-queue is read in arrival order, so
    /// a redo (after a crash mid-way) writes the same numbers. Returns the seed when this call
    /// finished the shuffle.
    pub async fn shuffle(&self, event: EventId) -> Result<Option<u64>, QueueError> {
        let key = format!("{}shuffle-lock", self.keys.queue_base(event));
        let Some(lock) = Lock::acquire(&self.redis, key, SHUFFLE_LOCK_TTL).await? else {
            return Ok(None);
        };
        let result = self.shuffle_locked(event).await;
        if let Err(err) = lock.release().await {
            tracing::warn!(%event, error = %err, "could not release the shuffle lock; it expires");
        }
        result
    }

    async fn shuffle_locked(&self, event: EventId) -> Result<Option<u64>, QueueError> {
        let fresh = rand::random::<u64>().to_string();
        let reply = self
            .call(event, &[b"shuffle_begin", fresh.as_bytes()])
            .await?;
        let mut reply = Reply::new(&reply)?;
        if reply.text()? != "frozen" {
            return Ok(None);
        }
        let seed: u64 = reply
            .text()?
            .parse()
            .map_err(|_| reply.error("not a seed"))?;
        let mut fans: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(self.keys.queue_pre(event))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis.conn())
            .await?;
        let count = fans.len();
        fisher_yates(&mut fans, seed);
        let epoch_ms = self.epoch_ms().to_string();
        for (chunk_no, chunk) in fans.chunks(PLACE_BATCH).enumerate() {
            let offset = (chunk_no * PLACE_BATCH).to_string();
            let mut args: Vec<&[u8]> = vec![b"place", offset.as_bytes(), epoch_ms.as_bytes()];
            args.extend(chunk.iter().map(Vec::as_slice));
            self.call(event, &args).await?;
        }
        let ended = self.call(event, &[b"opened"]).await?;
        if !matches!(ended, redis::Value::Int(1)) {
            return Ok(None);
        }
        shared::audit::record(
            &mut *self.db.acquire().await?,
            Actor::System,
            "queue.shuffle",
            "event",
            &event.to_string(),
            serde_json::json!({"seed": seed.to_string(), "count": count}),
        )
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
        self.views.remove(event);
        redis::cmd("SREM")
            .arg(self.keys.queue_events())
            .arg(event.to_string())
            .query_async::<()>(&mut self.redis.conn())
            .await?;
        Ok(())
    }
}

/// The fan's number, from their token's place (a pre-queue place once the shuffle is known).
fn number_of(view: &View, summary: &Summary, place: Option<QueuePlace>) -> Option<u64> {
    match place? {
        QueuePlace::Number(n) => Some(n),
        QueuePlace::PreQueue(arrival) => view.pre_queue_number(summary, arrival),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_reads_the_gate_fields_rust_writes_in_their_order() {
        let script = include_str!("queue.lua");
        let call = "redis.call('HMGET', GATE,";
        let start = script.find(call).expect("read_gate's HMGET") + call.len();
        let end = start + script[start..].find(')').expect("the call's end");
        let read: Vec<&str> = script[start..end]
            .split(',')
            .map(|name| name.trim().trim_matches('\''))
            .collect();
        assert_eq!(read, shared::gate::field::READ_BY_THE_QUEUE);
    }

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
