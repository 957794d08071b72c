//! Seats and holds in Redis: the fast path of every sale, never its final word.
//!
//! Every operation is one call of `inventory.lua` (atomic, owner-checked). Holds are
//! all-or-nothing, expire by themselves at their TTL, and one fan has at most one live hold per
//! event: a new hold replaces the previous one (atomically; if the new one cannot be made, the
//! old one stays). A sold seat can never be held again.
//!
//! The inventory of an event is built from Postgres the first time it is needed, and again
//! whenever Redis has lost it (flush, failover): sold seats come from the tickets table, so a
//! lost Redis can cost fans their holds but can never sell a seat twice — Postgres'
//! `UNIQUE (event_id, seat_id)` is the final word, checked by every booking.

pub mod catalog;

use std::{sync::LazyLock, time::Duration};

use redis::Script;
use sqlx::PgPool;

pub use self::catalog::{Catalog, CatalogCache, ClassInfo, SeatInfo};
use crate::{
    admission::Spent,
    cache::{Redis, RedisKeys, redis},
    ids::{EventId, HoldId, UserId},
    lock::Lock,
    reply::{Reply, ReplyError},
};

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("inventory.lua")));

/// How far best-available looks through a class's free seats for `quantity` adjacent ones
/// before it settles for the best free seats. Bounds the script's time on huge classes.
const BEST_SCAN_LIMIT: u32 = 20_000;
/// How long another process's inventory build may take before this one gives up waiting.
const LOAD_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the inventory answered {0}")]
    Protocol(#[from] ReplyError),
    #[error("the event has no seat {0}")]
    NoSuchSeat(u32),
    #[error("the inventory of the event is being built by another process; try again")]
    Loading,
}

/// How long a hold may last, and whether the high-demand gate applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTerms {
    pub ttl: Duration,
    /// The fan must be admitted by the waiting room at this moment (in its active set); the
    /// hold then ends no later than the admission.
    pub gated: bool,
}

impl HoldTerms {
    /// A hold behind the high-demand gate.
    pub fn gated(ttl: Duration) -> Self {
        Self { ttl, gated: true }
    }
}

/// An ungated hold of this length.
impl From<Duration> for HoldTerms {
    fn from(ttl: Duration) -> Self {
        Self { ttl, gated: false }
    }
}

/// What happened to a request for a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held until `expires_at_ms` (Unix ms); `seats` are the idx held.
    Held { expires_at_ms: i64, seats: Vec<u32> },
    /// These requested seats are held by someone else or sold; nothing was held.
    Taken(Vec<u32>),
    /// The class has fewer free seats than asked for; nothing was held.
    NotEnough { free: u64 },
    /// The hold was gated and the fan is not admitted now (never was, spent their admission
    /// on a purchase, or it ended); nothing was held.
    NotAdmitted,
}

/// The state of a live hold after extending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldState {
    Live { expires_at_ms: i64, seats: Vec<u32> },
    Expired,
    NotFound,
}

/// What [`Inventory::extend_spending`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spending {
    /// The hold lives on (these seats, by idx) and the admission is spent.
    Spent { seats: Vec<u32>, admission: Spent },
    /// The hold is not live (or not the owner's): nothing changed.
    HoldGone(HoldState),
    /// The owner holds no live admission: nothing changed.
    NotAdmitted,
}

/// Seats of one class by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ClassCounts {
    pub free: u32,
    pub held: u32,
    pub sold: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Free,
    Held,
    Sold,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    db: PgPool,
    redis: Redis,
    keys: RedisKeys,
}

impl Inventory {
    pub fn new(db: PgPool, redis: Redis, keys: RedisKeys) -> Self {
        Self { db, redis, keys }
    }

    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    async fn call(&self, event: EventId, args: &[String]) -> Result<redis::Value, InventoryError> {
        self.call_gated(event, false, args).await
    }

    /// The script, with the waiting room's admitted fans as its second key when `gated`.
    async fn call_gated(
        &self,
        event: EventId,
        gated: bool,
        args: &[String],
    ) -> Result<redis::Value, InventoryError> {
        let mut conn = self.redis.conn();
        let mut invocation = SCRIPT.key(self.keys.inventory(event));
        if gated {
            invocation.key(self.keys.queue_active(event));
        }
        for arg in args {
            invocation.arg(arg);
        }
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Runs `args`, building the inventory first if Redis does not have it.
    async fn call_loaded(
        &self,
        catalog: &Catalog,
        args: &[String],
    ) -> Result<redis::Value, InventoryError> {
        self.call_loaded_gated(catalog, false, args).await
    }

    async fn call_loaded_gated(
        &self,
        catalog: &Catalog,
        gated: bool,
        args: &[String],
    ) -> Result<redis::Value, InventoryError> {
        let reply = self.call_gated(catalog.event_id, gated, args).await?;
        if !is(&reply, "not_loaded") {
            return Ok(reply);
        }
        self.ensure_loaded(catalog).await?;
        self.call_gated(catalog.event_id, gated, args).await
    }

    /// Holds exactly these seats (by idx) for `owner`, all or nothing.
    pub async fn hold_seats(
        &self,
        catalog: &Catalog,
        hold: HoldId,
        owner: UserId,
        terms: impl Into<HoldTerms>,
        seats: &[u32],
    ) -> Result<HoldOutcome, InventoryError> {
        let terms = terms.into();
        let mut args = vec![
            "hold".to_string(),
            hold.to_string(),
            owner.to_string(),
            terms.ttl.as_millis().to_string(),
        ];
        for &idx in seats {
            let seat = catalog.seat(idx).ok_or(InventoryError::NoSuchSeat(idx))?;
            args.extend([
                idx.to_string(),
                seat.class.to_string(),
                seat.score().to_string(),
            ]);
        }
        let value = self.call_loaded_gated(catalog, terms.gated, &args).await?;
        let mut reply = Reply::new(&value)?;
        Ok(match reply.text()?.as_str() {
            "ok" => HoldOutcome::Held {
                expires_at_ms: reply.int()?,
                seats: seats.to_vec(),
            },
            "taken" => HoldOutcome::Taken(reply.numbers()?),
            "not_admitted" => HoldOutcome::NotAdmitted,
            _ => return Err(reply.error("unexpected").into()),
        })
    }

    /// Holds the best `quantity` seats of class `class` (by position): adjacent in one row
    /// where possible, best rows first; otherwise the best free seats.
    pub async fn hold_best(
        &self,
        catalog: &Catalog,
        hold: HoldId,
        owner: UserId,
        terms: impl Into<HoldTerms>,
        class: u16,
        quantity: u32,
    ) -> Result<HoldOutcome, InventoryError> {
        let terms = terms.into();
        let args = [
            "best".to_string(),
            hold.to_string(),
            owner.to_string(),
            terms.ttl.as_millis().to_string(),
            class.to_string(),
            quantity.to_string(),
            BEST_SCAN_LIMIT.to_string(),
        ];
        let value = self.call_loaded_gated(catalog, terms.gated, &args).await?;
        let mut reply = Reply::new(&value)?;
        Ok(match reply.text()?.as_str() {
            "ok" => HoldOutcome::Held {
                expires_at_ms: reply.int()?,
                seats: reply.numbers()?,
            },
            "not_enough" => HoldOutcome::NotEnough {
                free: reply.number()?,
            },
            "not_admitted" => HoldOutcome::NotAdmitted,
            _ => return Err(reply.error("unexpected").into()),
        })
    }

    /// Releases `owner`'s live hold. `false` if it is not theirs, not live, or unknown.
    pub async fn release(
        &self,
        event: EventId,
        hold: HoldId,
        owner: UserId,
    ) -> Result<bool, InventoryError> {
        let reply = self
            .call(
                event,
                &["release".into(), hold.to_string(), owner.to_string()],
            )
            .await?;
        Ok(is(&reply, "ok"))
    }

    /// Keeps `owner`'s hold alive at least `ttl` from now and returns its seats.
    pub async fn extend(
        &self,
        event: EventId,
        hold: HoldId,
        owner: UserId,
        ttl: Duration,
    ) -> Result<HoldState, InventoryError> {
        let value = self.call(event, &extend_args(hold, owner, ttl)).await?;
        let mut reply = Reply::new(&value)?;
        match reply.text()?.as_str() {
            "ok" => {
                let expires_at_ms = reply.int()?;
                let _no_admission_spent = reply.int()?;
                Ok(HoldState::Live {
                    expires_at_ms,
                    seats: reply.numbers()?,
                })
            }
            tag => gone(tag, &reply),
        }
    }

    /// [`Inventory::extend`], and in the same step spends `owner`'s live admission to the event
    /// (the high-demand gate: see `crate::admission`): a queued order keeps its hold and uses
    /// up the admission that let the fan in, or does neither.
    pub async fn extend_spending(
        &self,
        event: EventId,
        hold: HoldId,
        owner: UserId,
        ttl: Duration,
    ) -> Result<Spending, InventoryError> {
        let value = self
            .call_gated(event, true, &extend_args(hold, owner, ttl))
            .await?;
        let mut reply = Reply::new(&value)?;
        match reply.text()?.as_str() {
            "ok" => {
                let _expires_at_ms = reply.int()?;
                let ends_at_ms = reply.int()?;
                Ok(Spending::Spent {
                    seats: reply.numbers()?,
                    admission: Spent {
                        event,
                        fan: owner,
                        ends_at_ms,
                    },
                })
            }
            "not_admitted" => Ok(Spending::NotAdmitted),
            tag => gone(tag, &reply).map(Spending::HoldGone),
        }
    }

    /// After a booking committed: the seats are sold, the hold is gone.
    pub async fn convert(
        &self,
        catalog: &Catalog,
        hold: HoldId,
        owner: UserId,
        seats: &[u32],
    ) -> Result<(), InventoryError> {
        let mut args = vec!["convert".to_string(), hold.to_string(), owner.to_string()];
        for &idx in seats {
            let class = catalog.seat(idx).map_or(0, |seat| seat.class);
            args.extend([idx.to_string(), class.to_string()]);
        }
        // An inventory that is not loaded will read these seats as sold from Postgres.
        let value = self.call(catalog.event_id, &args).await?;
        let mut reply = Reply::new(&value)?;
        match reply.text()?.as_str() {
            "ok" | "not_loaded" => Ok(()),
            _ => Err(reply.error("unexpected").into()),
        }
    }

    /// Free, held and sold seats per class (by position).
    pub async fn counts(&self, catalog: &Catalog) -> Result<Vec<ClassCounts>, InventoryError> {
        let args = ["counts".to_string(), catalog.classes.len().to_string()];
        let value = self.call_loaded(catalog, &args).await?;
        let mut reply = Reply::new(&value)?;
        if reply.text()? != "ok" {
            return Err(reply.error("unexpected").into());
        }
        let numbers: Vec<u32> = reply.numbers()?;
        Ok(catalog
            .classes
            .iter()
            .zip(numbers.chunks(2))
            .map(|(class, pair)| {
                let (free, sold) = (pair[0], pair.get(1).copied().unwrap_or(0));
                ClassCounts {
                    free,
                    sold,
                    held: class.capacity.saturating_sub(free + sold),
                }
            })
            .collect())
    }

    /// Every seat's state, indexed by idx.
    pub async fn snapshot(&self, catalog: &Catalog) -> Result<Vec<SeatState>, InventoryError> {
        let value = self.call_loaded(catalog, &["snapshot".to_string()]).await?;
        let mut reply = Reply::new(&value)?;
        if reply.text()? != "ok" {
            return Err(reply.error("unexpected").into());
        }
        let mut states = vec![SeatState::Free; catalog.seats.len()];
        while !reply.is_empty() {
            let idx: usize = reply.number()?;
            let state = reply.bytes()?;
            if let Some(slot) = states.get_mut(idx) {
                *slot = if state == b"s" {
                    SeatState::Sold
                } else {
                    SeatState::Held
                };
            }
        }
        Ok(states)
    }

    /// Returns the seats of up to `limit` expired holds to the free sets.
    pub async fn sweep(&self, event: EventId, limit: u32) -> Result<u32, InventoryError> {
        let value = self
            .call(event, &["sweep".into(), limit.to_string()])
            .await?;
        let mut reply = Reply::new(&value)?;
        match reply.text()?.as_str() {
            "ok" => Ok(reply.number()?),
            "not_loaded" => Ok(0),
            _ => Err(reply.error("unexpected").into()),
        }
    }

    /// Builds the event's inventory in Redis from Postgres, unless it is there already.
    /// One process builds (a lock); the others wait for it.
    pub async fn ensure_loaded(&self, catalog: &Catalog) -> Result<(), InventoryError> {
        let event = catalog.event_id;
        let base = self.keys.inventory(event);
        let mut conn = self.redis.conn();
        let Some(lock) = Lock::acquire(&self.redis, format!("{base}loading"), LOAD_WAIT).await?
        else {
            return self.wait_loaded(&base).await;
        };

        let sold: Vec<(i32,)> = sqlx::query_as(
            "SELECT s.idx FROM tickets t
             JOIN seats s ON s.event_id = t.event_id AND s.id = t.seat_id
             WHERE t.event_id = $1",
        )
        .bind(event)
        .fetch_all(&self.db)
        .await?;
        let mut is_sold = vec![false; catalog.seats.len()];
        for (idx,) in sold {
            if let Some(slot) = usize::try_from(idx).ok().and_then(|i| is_sold.get_mut(i)) {
                *slot = true;
            }
        }

        // Stage everything under separate keys, then swap them in at once (commit_load).
        let mut pipe = redis::pipe();
        pipe.del(format!("{base}stage:seats"))
            .del(format!("{base}stage:sold"));
        for class in &catalog.classes {
            pipe.del(format!("{base}stage:free:{}", class.position));
        }
        let mut sold_per_class = vec![0u32; catalog.classes.len()];
        for chunk in catalog
            .seats
            .iter()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(2_000)
        {
            for &(idx, seat) in chunk {
                if is_sold[idx] {
                    pipe.hset(format!("{base}stage:seats"), idx, "S");
                    if let Some(count) = sold_per_class.get_mut(usize::from(seat.class)) {
                        *count += 1;
                    }
                } else {
                    pipe.zadd(
                        format!("{base}stage:free:{}", seat.class),
                        idx,
                        seat.score(),
                    );
                }
            }
        }
        for (class, count) in sold_per_class.iter().enumerate() {
            if *count > 0 {
                pipe.hset(format!("{base}stage:sold"), class, count);
            }
        }
        pipe.query_async::<()>(&mut conn).await?;
        let value: redis::Value = SCRIPT
            .key(&base)
            .arg("commit_load")
            .arg(catalog.classes.len())
            .invoke_async(&mut conn)
            .await?;
        // Owner-checked: the lock may have expired and been taken by another builder.
        lock.release().await?;
        redis::cmd("SADD")
            .arg(self.keys.active_events())
            .arg(event.to_string())
            .query_async::<i64>(&mut conn)
            .await?;
        let mut reply = Reply::new(&value)?;
        match reply.text()?.as_str() {
            "ok" => {
                tracing::info!(event.id = %event, seats = catalog.seats.len(), "inventory built from Postgres");
                Ok(())
            }
            "already" => Ok(()),
            _ => Err(reply.error("unexpected").into()),
        }
    }

    async fn wait_loaded(&self, base: &str) -> Result<(), InventoryError> {
        let started = std::time::Instant::now();
        let mut conn = self.redis.conn();
        while started.elapsed() < LOAD_WAIT {
            let loaded: bool = redis::cmd("EXISTS")
                .arg(format!("{base}loaded"))
                .query_async(&mut conn)
                .await?;
            if loaded {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(InventoryError::Loading)
    }

    /// The events whose inventory was built, for the periodic sweep.
    pub async fn active_events(&self) -> Result<Vec<EventId>, InventoryError> {
        let mut conn = self.redis.conn();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.active_events())
            .query_async(&mut conn)
            .await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Sweeps expired holds of every active event, every `every`, until the process ends.
    pub fn spawn_sweeper(&self, every: Duration) {
        let inventory = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let events = match inventory.active_events().await {
                    Ok(events) => events,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot list events to sweep");
                        continue;
                    }
                };
                for event in events {
                    if let Err(err) = inventory.sweep(event, 1_000).await {
                        tracing::warn!(event.id = %event, error = %err, "sweep failed");
                    }
                }
            }
        });
    }
}

/// The script's `extend`: ARGV for `hold` of `owner`, kept `ttl` from now.
fn extend_args(hold: HoldId, owner: UserId, ttl: Duration) -> [String; 4] {
    [
        "extend".to_string(),
        hold.to_string(),
        owner.to_string(),
        ttl.as_millis().to_string(),
    ]
}

/// An `extend` answer (its first item `tag`) for a hold that is not live.
fn gone(tag: &str, reply: &Reply<'_>) -> Result<HoldState, InventoryError> {
    match tag {
        "expired" => Ok(HoldState::Expired),
        // A lost inventory lost its holds too.
        "not_found" | "not_loaded" => Ok(HoldState::NotFound),
        _ => Err(reply.error("unexpected").into()),
    }
}

/// Does the answer start with `tag`?
fn is(reply: &redis::Value, tag: &str) -> bool {
    Reply::new(reply)
        .and_then(|mut reply| reply.bytes())
        .is_ok_and(|first| first == tag.as_bytes())
}
