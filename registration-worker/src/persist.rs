//! Persisting a batch of booking commands: many bookings in one Postgres transaction, a
//! savepoint each, so that one booking's unique violation rejects only that booking.
//!
//! Idempotent by booking id: a command whose booking row exists changes nothing. Every hold is
//! re-checked (owner, life) and extended before the transaction; an expired or foreign hold
//! gives a `rejected` booking with its reason. Nothing here talks to the broker: the caller
//! acks after [`Persister::persist`] returned (the commit), then calls
//! [`Persister::after_commit`].

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use shared::{
    cache::{Redis, RedisKeys, redis},
    ids::{BookingId, EventId, HoldId, UserId},
    inventory::{CatalogCache, HoldState, Inventory},
    messaging::{BookingRejected, ProcessBookingCommand},
    sales::{self, NewBooking, WriteError},
    tokens::TokenKeys,
};
use sqlx::{PgConnection, PgPool};

/// How long the worker keeps a hold alive while it persists it.
const WORK_GRACE: Duration = Duration::from_secs(30);

/// Why a booking was rejected (the `reason` the fan reads).
pub mod reason {
    pub const HOLD_EXPIRED: &str = "hold_expired";
    pub const SEATS_ALREADY_SOLD: &str = "seats_already_sold";
    pub const EVENT_CANCELLED: &str = "event_cancelled";
    pub const DUPLICATE: &str = "duplicate_registration";
    /// The command failed on every delivery and was dead-lettered (see `dead_letters`).
    pub const PROCESSING_FAILED: &str = "processing_failed";
}

/// What became of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Booking and tickets written; these seats (idx) are to be marked sold.
    Confirmed { seats: Vec<u32> },
    /// A `rejected` booking written, with this reason.
    Rejected(&'static str),
    /// The booking row existed already (a redelivery); `seats` of a still-live hold of a
    /// confirmed booking are marked sold again, in case the first attempt died before that.
    AlreadyDone { seats: Option<Vec<u32>> },
    /// Nothing is written: the event is gone, or the API took the command back (it answered
    /// 503 and dropped the pending marker while the hold lives on); the command is dropped.
    Dropped,
}

/// One command's result.
#[derive(Debug, Clone)]
pub struct Persisted {
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub user_id: UserId,
    pub hold_id: HoldId,
    pub outcome: Outcome,
}

/// Everything persisting needs; cheap to clone.
#[derive(Clone)]
pub struct Persister {
    pub db: PgPool,
    pub redis: Redis,
    pub keys: RedisKeys,
    pub inventory: Inventory,
    pub catalogs: CatalogCache,
    pub ticket_keys: Arc<TokenKeys>,
}

impl Persister {
    pub fn new(db: PgPool, redis: Redis, keys: RedisKeys, ticket_keys: TokenKeys) -> Self {
        Self {
            inventory: Inventory::new(db.clone(), redis.clone(), keys.clone()),
            catalogs: CatalogCache::new(),
            db,
            redis,
            keys,
            ticket_keys: Arc::new(ticket_keys),
        }
    }

    /// Persists `commands` in one transaction and commits. An error is transient (Postgres or
    /// Redis unavailable, ...): nothing was committed, and the whole batch may be retried.
    pub async fn persist(
        &self,
        commands: &[ProcessBookingCommand],
    ) -> anyhow::Result<Vec<Persisted>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        // Re-check (and extend) every hold first, concurrently: Redis is not in the
        // transaction, and a slow Redis must not keep Postgres locks. With them, whether the
        // API still stands by each command (its pending marker).
        let extended = join_all(commands.iter().map(|command| {
            self.inventory.extend(
                command.event_id,
                command.hold_id,
                command.user_id,
                WORK_GRACE,
            )
        }));
        let marked = join_all(commands.iter().map(|command| {
            let key = self.keys.booking_pending(command.booking_id);
            let mut conn = self.redis.conn();
            async move {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<bool>(&mut conn)
                    .await
            }
        }));
        let (holds, marked) = tokio::join!(extended, marked);
        let holds = holds.into_iter().collect::<Result<Vec<_>, _>>()?;
        let marked = marked.into_iter().collect::<Result<Vec<_>, _>>()?;

        let mut tx = self.db.begin().await?;
        let ids: Vec<BookingId> = commands.iter().map(|command| command.booking_id).collect();
        let existing: Vec<(BookingId, String)> =
            sqlx::query_as("SELECT id, status FROM bookings WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?;

        let mut results = Vec::with_capacity(commands.len());
        for ((command, hold), marked) in commands.iter().zip(holds).zip(marked) {
            let live_seats = match hold {
                HoldState::Live { seats, .. } => Some(seats),
                HoldState::Expired | HoldState::NotFound => None,
            };
            let outcome = if let Some((_, status)) =
                existing.iter().find(|(id, _)| *id == command.booking_id)
            {
                Outcome::AlreadyDone {
                    seats: live_seats.filter(|_| status == "confirmed"),
                }
            } else if results
                .iter()
                .any(|done: &Persisted| done.booking_id == command.booking_id)
            {
                // The same command twice in one batch (a publish retried by the broker).
                Outcome::AlreadyDone { seats: None }
            } else if live_seats.is_some() && !marked {
                // The API took this command back: its publish was not confirmed in time (a
                // broker going down mid-publish may still have stored it), it answered 503 and
                // dropped the marker, and the fan may register the same, still live, hold again.
                // A lost Redis loses the hold too: that command is rejected below as before.
                Outcome::Dropped
            } else {
                persist_one(&mut tx, &self.ticket_keys, command, live_seats).await?
            };
            results.push(Persisted {
                booking_id: command.booking_id,
                event_id: command.event_id,
                user_id: command.user_id,
                hold_id: command.hold_id,
                outcome,
            });
        }
        tx.commit().await?;
        Ok(results)
    }

    /// After the commit (and the ack): seats sold in Redis, the pending marker gone. (The fan
    /// left the active shoppers at the API's 202.) Failures are logged: Postgres has the final
    /// word.
    pub async fn after_commit(&self, results: &[Persisted]) {
        let mut conn = self.redis.conn();
        for result in results {
            let seats = match &result.outcome {
                Outcome::Confirmed { seats } => Some(seats),
                Outcome::AlreadyDone { seats } => seats.as_ref(),
                Outcome::Rejected(_) | Outcome::Dropped => None,
            };
            if let Some(seats) = seats {
                match self.catalogs.get(&self.db, result.event_id).await {
                    Ok(Some(catalog)) => {
                        if let Err(err) = self
                            .inventory
                            .convert(&catalog, result.hold_id, result.user_id, seats)
                            .await
                        {
                            tracing::error!(booking.id = %result.booking_id, error = %err,
                                "could not mark seats sold in Redis");
                        }
                    }
                    Ok(None) => {}
                    Err(err) => tracing::error!(booking.id = %result.booking_id, error = %err,
                        "could not load the event's catalog"),
                }
            }
            let deleted = redis::cmd("DEL")
                .arg(self.keys.booking_pending(result.booking_id))
                .query_async::<i64>(&mut conn)
                .await;
            if let Err(err) = deleted {
                tracing::warn!(booking.id = %result.booking_id, error = %err,
                    "could not drop the pending marker");
            }
        }
    }
}

/// One new booking inside the batch's transaction, under its own savepoint.
async fn persist_one(
    tx: &mut PgConnection,
    ticket_keys: &TokenKeys,
    command: &ProcessBookingCommand,
    live_seats: Option<Vec<u32>>,
) -> anyhow::Result<Outcome> {
    let Some(seats) = live_seats else {
        return reject(tx, command, reason::HOLD_EXPIRED).await;
    };
    sqlx::query("SAVEPOINT booking").execute(&mut *tx).await?;
    let written = sales::write_booking(
        tx,
        ticket_keys,
        NewBooking {
            id: command.booking_id,
            event: command.event_id,
            fan: command.user_id,
            hold: command.hold_id,
            idempotency_key: command.idempotency_key.as_deref(),
            seat_idx: &seats,
            quote: Some(&command.prices),
        },
    )
    .await;
    let why = match written {
        Ok(_) => {
            sqlx::query("RELEASE SAVEPOINT booking")
                .execute(&mut *tx)
                .await?;
            return Ok(Outcome::Confirmed { seats });
        }
        Err(WriteError::SeatSold) => reason::SEATS_ALREADY_SOLD,
        Err(WriteError::EventCancelled) => reason::EVENT_CANCELLED,
        Err(WriteError::Duplicate(constraint)) if constraint == "bookings_pkey" => {
            // Written meanwhile by another worker (a redelivery racing its first delivery).
            sqlx::query("ROLLBACK TO SAVEPOINT booking")
                .execute(&mut *tx)
                .await?;
            return Ok(Outcome::AlreadyDone { seats: None });
        }
        Err(WriteError::Duplicate(_)) => reason::DUPLICATE,
        Err(WriteError::EventNotFound) => {
            sqlx::query("ROLLBACK TO SAVEPOINT booking")
                .execute(&mut *tx)
                .await?;
            tracing::error!(booking.id = %command.booking_id, event.id = %command.event_id,
                "a booking command for an unknown event: dropped");
            return Ok(Outcome::Dropped);
        }
        Err(WriteError::Database(err)) => return Err(err.into()),
        Err(WriteError::Internal(err)) => return Err(err),
    };
    sqlx::query("ROLLBACK TO SAVEPOINT booking")
        .execute(&mut *tx)
        .await?;
    reject(tx, command, why).await
}

/// A `rejected` booking row and its outbox event. The hold and the key are recorded unless
/// another booking owns them already.
async fn reject(
    tx: &mut PgConnection,
    command: &ProcessBookingCommand,
    why: &'static str,
) -> anyhow::Result<Outcome> {
    let rejected = BookingRejected {
        booking_id: command.booking_id,
        event_id: command.event_id,
        user_id: command.user_id,
        reason: why.to_string(),
    };
    sqlx::query("SAVEPOINT rejection").execute(&mut *tx).await?;
    let written = sales::write_rejected(
        tx,
        &rejected,
        Some(command.hold_id),
        command.idempotency_key.as_deref(),
    )
    .await;
    match written {
        Ok(()) => {}
        Err(WriteError::Duplicate(constraint)) if constraint == "bookings_pkey" => {
            sqlx::query("ROLLBACK TO SAVEPOINT rejection")
                .execute(&mut *tx)
                .await?;
            return Ok(Outcome::AlreadyDone { seats: None });
        }
        Err(WriteError::Duplicate(_)) => {
            sqlx::query("ROLLBACK TO SAVEPOINT rejection")
                .execute(&mut *tx)
                .await?;
            match sales::write_rejected(tx, &rejected, None, None).await {
                Ok(()) => {}
                Err(WriteError::Database(err)) => return Err(err.into()),
                Err(other) => return Err(anyhow::anyhow!("writing a rejection: {other}")),
            }
        }
        Err(WriteError::EventNotFound) => return Ok(Outcome::Dropped),
        Err(WriteError::Database(err)) => return Err(err.into()),
        Err(other) => return Err(anyhow::anyhow!("writing a rejection: {other}")),
    }
    sqlx::query("RELEASE SAVEPOINT rejection")
        .execute(&mut *tx)
        .await?;
    Ok(Outcome::Rejected(why))
}
