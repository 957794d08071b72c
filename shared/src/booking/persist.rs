//! Persisting a batch of booking commands (the registration worker's step): many bookings in
//! one Postgres transaction, a savepoint each, so that one booking's unique violation rejects
//! only that booking.
//!
//! Idempotent by booking id: a command whose booking row exists changes nothing. Every hold is
//! re-checked (owner, life) and extended before the transaction; an expired or foreign hold
//! gives a `rejected` booking with its reason. Nothing here talks to the broker: the caller
//! acks after [`Bookings::persist`] returned (the commit), then calls [`Bookings::settle`].
//! A command that failed on every delivery ends `rejected` too, from the dead-letter queue
//! ([`end_dead_lettered`]).

use futures_util::future::join_all;
use sqlx::PgConnection;

use super::{
    Bookings, Rejection, WORK_GRACE,
    write::{self, NewBooking, WriteError},
};
use crate::{
    ids::{BookingId, EventId, HoldId, UserId},
    inventory::HoldState,
    messaging::{BookingRejected, ProcessBookingCommand},
    tokens::TokenKeys,
};

/// What became of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Booking and tickets written; these seats (idx) are to be marked sold.
    Confirmed { seats: Vec<u32> },
    /// A `rejected` booking written, with this reason.
    Rejected(Rejection),
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

impl Bookings {
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
        let queued: Vec<_> = commands
            .iter()
            .map(|command| (command.user_id, command.booking_id))
            .collect();
        let (holds, marked) = tokio::join!(extended, self.claims.are_pending(&queued));
        let holds = holds.into_iter().collect::<Result<Vec<_>, _>>()?;
        let marked = marked?;

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

    /// After the commit (and the ack): seats sold in Redis, the pending markers gone. (The fan
    /// left the active shoppers at the API's 202.) Failures are logged: Postgres has the final
    /// word.
    pub async fn settle(&self, results: &[Persisted]) {
        for result in results {
            let seats = match &result.outcome {
                Outcome::Confirmed { seats } => Some(seats),
                Outcome::AlreadyDone { seats } => seats.as_ref(),
                Outcome::Rejected(_) | Outcome::Dropped => None,
            };
            if let Some(seats) = seats {
                self.mark_sold(
                    result.booking_id,
                    result.event_id,
                    result.hold_id,
                    result.user_id,
                    seats,
                )
                .await;
            }
        }
        let written: Vec<_> = results
            .iter()
            .map(|result| (result.user_id, result.booking_id))
            .collect();
        self.claims.forget(&written).await;
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
        return reject(tx, command, Rejection::HoldExpired).await;
    };
    sqlx::query("SAVEPOINT booking").execute(&mut *tx).await?;
    let written = write::write_booking(
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
        Err(WriteError::SeatSold) => Rejection::SeatsAlreadySold,
        Err(WriteError::EventCancelled) => Rejection::EventCancelled,
        Err(WriteError::Duplicate(constraint)) if constraint == "bookings_pkey" => {
            // Written meanwhile by another worker (a redelivery racing its first delivery).
            sqlx::query("ROLLBACK TO SAVEPOINT booking")
                .execute(&mut *tx)
                .await?;
            return Ok(Outcome::AlreadyDone { seats: None });
        }
        Err(WriteError::Duplicate(_)) => Rejection::Duplicate,
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
    why: Rejection,
) -> anyhow::Result<Outcome> {
    let rejected = BookingRejected {
        booking_id: command.booking_id,
        event_id: command.event_id,
        user_id: command.user_id,
        reason: why.code().to_string(),
    };
    sqlx::query("SAVEPOINT rejection").execute(&mut *tx).await?;
    let written = write::write_rejected(
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
            match write::write_rejected(tx, &rejected, None, None).await {
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

/// The end state of a command that failed on every delivery and was dead-lettered: its booking
/// is written `rejected` with [`Rejection::ProcessingFailed`], unless it exists, in the
/// caller's transaction (the dead letter's record). The hold is recorded when no other booking
/// owns it; the idempotency key is not (it may be what made the command fail). A booking that
/// cannot be written at all (its event or fan is gone) is left unwritten: the dead letter alone
/// says what happened. Returns whether the booking was ended here; if so, call
/// [`Bookings::settle_dead_lettered`] after the commit.
pub async fn end_dead_lettered(
    tx: &mut PgConnection,
    command: &ProcessBookingCommand,
) -> anyhow::Result<bool> {
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM bookings WHERE id = $1")
        .bind(command.booking_id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let rejected = BookingRejected {
        booking_id: command.booking_id,
        event_id: command.event_id,
        user_id: command.user_id,
        reason: Rejection::ProcessingFailed.code().to_string(),
    };
    for hold in [Some(command.hold_id), None] {
        sqlx::query("SAVEPOINT dead_booking")
            .execute(&mut *tx)
            .await?;
        match write::write_rejected(tx, &rejected, hold, None).await {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT dead_booking")
                    .execute(&mut *tx)
                    .await?;
                return Ok(true);
            }
            Err(err) if refused(&err) => {
                sqlx::query("ROLLBACK TO SAVEPOINT dead_booking")
                    .execute(&mut *tx)
                    .await?;
                tracing::warn!(booking.id = %command.booking_id, error = %err,
                    hold = hold.is_some(), "the dead-lettered booking was refused");
            }
            Err(WriteError::Database(err)) => return Err(err.into()),
            Err(err) => return Err(anyhow::anyhow!("writing a rejection: {err}")),
        }
    }
    Ok(false)
}

/// Did the database refuse these values (a constraint), rather than fail?
fn refused(err: &WriteError) -> bool {
    match err {
        WriteError::Duplicate(_) | WriteError::EventNotFound => true,
        // SQLSTATE class 23: integrity constraint violations.
        WriteError::Database(sqlx::Error::Database(db)) => {
            db.code().is_some_and(|code| code.starts_with("23"))
        }
        _ => false,
    }
}

impl Bookings {
    /// After a dead-lettered booking was ended ([`end_dead_lettered`]) and committed, as for
    /// any rejection: the seats go back, the marker goes.
    pub async fn settle_dead_lettered(&self, command: &ProcessBookingCommand) {
        if let Err(err) = self
            .inventory
            .release(command.event_id, command.hold_id, command.user_id)
            .await
        {
            tracing::warn!(booking.id = %command.booking_id, error = %err,
                "could not release the hold of a dead-lettered booking (it expires by itself)");
        }
        self.settle(&[Persisted {
            booking_id: command.booking_id,
            event_id: command.event_id,
            user_id: command.user_id,
            hold_id: command.hold_id,
            outcome: Outcome::Rejected(Rejection::ProcessingFailed),
        }])
        .await;
    }
}
