//! Persisting a batch of booking commands (the registration worker's step): one SQL statement
//! per batch (`persist.sql`) decides what becomes of every command and writes the batch's
//! bookings, tickets and outbox rows together — one round trip, atomic by itself (no BEGIN,
//! no COMMIT, no savepoint).
//!
//! Before it, Redis: every hold is re-checked (owner, life) and extended, and every command's
//! pending marker looked up. The statement then says, per command, what the constraints would
//! have said booking by booking in batch order: confirmed; rejected with its reason (the hold
//! expired, the event cancelled, the hold or key owned by another booking, a seat sold before
//! or taken by an earlier booking of the batch); already written (a redelivery: idempotent by
//! booking id); or dropped (the event is gone, or the API took the command back).
//!
//! **Races.** The statement reads one snapshot. A conflicting row that another transaction
//! (another worker's batch, a redelivery) commits after it trips a unique constraint and aborts
//! the whole statement, nothing written; so does a deadlock. The statement is then run again:
//! its fresh snapshot sees that row and rejects just the bookings it conflicts with. Likewise
//! when it waited for an event's lock behind a change it could not see (a cancellation, a price)
//! or found the event moved since its ticket codes were signed: it writes nothing and says so
//! (`stale`), and runs again. At most [`ATTEMPTS`] runs, then the error goes to the caller, which
//! retries the batch as after any failure.
//!
//! Nothing here talks to the broker: the caller acks after [`Bookings::persist`] returned (the
//! commit), then calls [`Bookings::settle`]. A command that failed on every delivery ends
//! `rejected` too, from the dead-letter queue ([`end_dead_lettered`]).

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use futures_util::future::join_all;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::{
    Bookings, Rejection, WORK_GRACE,
    write::{self, WriteError},
};
use crate::{
    ids::{BookingId, ClassId, EventId, HoldId, TicketId, UserId},
    inventory::HoldState,
    messaging::{BookingRejected, ProcessBookingCommand, routing},
    tokens::{TicketClaims, TokenKeys},
};

/// The batch statement; its header says what it binds and returns.
const STATEMENT: &str = include_str!("persist.sql");

/// Runs of the batch statement before a batch that keeps meeting concurrent writers fails.
pub const ATTEMPTS: u32 = 5;

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

/// What Redis said of a command before the statement.
#[derive(Debug)]
enum Held {
    /// The hold is the fan's and alive (extended), and the API stands by the command.
    Live(Vec<u32>),
    /// The hold lives, but the API took the command back (its pending marker is gone): it
    /// answered 503, and the fan may register the same hold again.
    Disowned(Vec<u32>),
    /// Expired, or not the fan's.
    Expired,
}

impl Held {
    fn seats(&self) -> Option<&Vec<u32>> {
        match self {
            Self::Live(seats) | Self::Disowned(seats) => Some(seats),
            Self::Expired => None,
        }
    }

    /// The statement's word for it.
    fn state(&self) -> &'static str {
        match self {
            Self::Live(_) => "live",
            Self::Disowned(_) => "disowned",
            Self::Expired => "expired",
        }
    }
}

/// The statement's answer for one command (see `persist.sql`).
#[derive(Debug, sqlx::FromRow)]
struct Verdict {
    ord: i32,
    verdict: String,
    reason: Option<String>,
    existing: Option<String>,
    starts_at: Option<OffsetDateTime>,
    stale: bool,
}

impl Bookings {
    /// Persists `commands` in one statement. An error is transient (Postgres or Redis
    /// unavailable, writers that kept racing this batch, ...): nothing was committed, and the
    /// whole batch may be retried.
    pub async fn persist(
        &self,
        commands: &[ProcessBookingCommand],
    ) -> anyhow::Result<Vec<Persisted>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        // Re-check (and extend) every hold first, concurrently: Redis is not in the statement,
        // and a slow Redis must not keep Postgres locks. With them, whether the API still
        // stands by each command (its pending marker).
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
        let held: Vec<Held> = holds
            .into_iter()
            .zip(marked?)
            .map(|(hold, marked)| match hold {
                // A broker going down mid-publish may have stored a command whose API answered
                // 503 and dropped the marker. A lost Redis loses the hold too: rejected then.
                HoldState::Live { seats, .. } if !marked => Held::Disowned(seats),
                HoldState::Live { seats, .. } => Held::Live(seats),
                HoldState::Expired | HoldState::NotFound => Held::Expired,
            })
            .collect();

        let verdicts = self.write_batch(commands, &held).await?;
        commands
            .iter()
            .zip(held)
            .zip(verdicts)
            .map(|((command, held), verdict)| {
                Ok(Persisted {
                    booking_id: command.booking_id,
                    event_id: command.event_id,
                    user_id: command.user_id,
                    hold_id: command.hold_id,
                    outcome: outcome(command, held, verdict)?,
                })
            })
            .collect()
    }

    /// Runs the batch statement until it is neither stale nor beaten by a concurrent writer.
    async fn write_batch(
        &self,
        commands: &[ProcessBookingCommand],
        held: &[Held],
    ) -> anyhow::Result<Vec<Verdict>> {
        let mut events: Vec<EventId> = commands.iter().map(|command| command.event_id).collect();
        events.sort_unstable();
        events.dedup();
        let mut attempt = 1;
        loop {
            let starts = self.starts.of(&self.db, &events).await?;
            let params = Params::new(&self.ticket_keys, commands, held, &starts)?;
            let rerun = match params.run(&self.db).await {
                Ok(verdicts) if verdicts.iter().any(|verdict| verdict.stale) => {
                    for (command, verdict) in commands.iter().zip(&verdicts) {
                        if let Some(starts_at) = verdict.starts_at {
                            self.starts.set(command.event_id, starts_at);
                        }
                    }
                    "an event changed after the statement's snapshot".to_string()
                }
                Ok(verdicts) => {
                    let in_order = verdicts.len() == commands.len()
                        && verdicts
                            .iter()
                            .zip(1..)
                            .all(|(verdict, ord)| verdict.ord == ord);
                    anyhow::ensure!(
                        in_order,
                        "the batch statement answered {} rows, not one per command in order ({})",
                        verdicts.len(),
                        commands.len()
                    );
                    return Ok(verdicts);
                }
                Err(err) if raced(&err) => err.to_string(),
                Err(err) => return Err(err.into()),
            };
            if attempt == ATTEMPTS {
                anyhow::bail!("the batch statement ran {ATTEMPTS} times, never alone: {rerun}");
            }
            metrics::counter!("worker_batch_reruns_total").increment(1);
            tracing::debug!(batch = commands.len(), attempt, cause = %rerun,
                "the batch statement met a concurrent writer; running it again");
            attempt += 1;
        }
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

/// What the statement's verdict means for the command.
fn outcome(
    command: &ProcessBookingCommand,
    held: Held,
    verdict: Verdict,
) -> anyhow::Result<Outcome> {
    Ok(match verdict.verdict.as_str() {
        "confirmed" => match held {
            Held::Live(seats) => Outcome::Confirmed { seats },
            other => anyhow::bail!("a booking confirmed for a hold that is {other:?}"),
        },
        "rejected" => {
            let reason = verdict.reason.unwrap_or_default();
            Outcome::Rejected(
                Rejection::from_code(&reason)
                    .ok_or_else(|| anyhow::anyhow!("an unknown rejection {reason:?}"))?,
            )
        }
        "done" => Outcome::AlreadyDone {
            seats: held
                .seats()
                .filter(|_| verdict.existing.as_deref() == Some("confirmed"))
                .cloned(),
        },
        // The same command twice in one batch (a publish retried by the broker).
        "repeat" => Outcome::AlreadyDone { seats: None },
        "disowned" => Outcome::Dropped,
        "gone" => {
            tracing::error!(booking.id = %command.booking_id, event.id = %command.event_id,
                "a booking command for an unknown event: dropped");
            Outcome::Dropped
        }
        other => anyhow::bail!("the batch statement answered {other:?}"),
    })
}

/// The statement's parameters for one run (see `persist.sql`): the commands, and ticket ids
/// and codes for every seat of a live hold, signed for the events' starts as known (`starts`;
/// an event missing there is gone, or the statement finds it stale).
struct Params {
    ids: Vec<BookingId>,
    events: Vec<EventId>,
    fans: Vec<UserId>,
    holds: Vec<HoldId>,
    keys: Vec<Option<String>>,
    states: Vec<&'static str>,
    seat_ord: Vec<i32>,
    seat_idx: Vec<i32>,
    ticket_ids: Vec<TicketId>,
    codes: Vec<String>,
    quote_ord: Vec<i32>,
    quote_class: Vec<ClassId>,
    quote_price: Vec<i64>,
    start_events: Vec<EventId>,
    start_times: Vec<OffsetDateTime>,
}

impl Params {
    fn new(
        ticket_keys: &TokenKeys,
        commands: &[ProcessBookingCommand],
        held: &[Held],
        starts: &HashMap<EventId, OffsetDateTime>,
    ) -> anyhow::Result<Self> {
        let now = OffsetDateTime::now_utc();
        let (start_events, start_times) = starts.iter().map(|(event, at)| (*event, *at)).unzip();
        let mut params = Self {
            ids: commands.iter().map(|c| c.booking_id).collect(),
            events: commands.iter().map(|c| c.event_id).collect(),
            fans: commands.iter().map(|c| c.user_id).collect(),
            holds: commands.iter().map(|c| c.hold_id).collect(),
            keys: commands.iter().map(|c| c.idempotency_key.clone()).collect(),
            states: held.iter().map(Held::state).collect(),
            seat_ord: Vec::new(),
            seat_idx: Vec::new(),
            ticket_ids: Vec::new(),
            codes: Vec::new(),
            quote_ord: Vec::new(),
            quote_class: Vec::new(),
            quote_price: Vec::new(),
            start_events,
            start_times,
        };
        for ((ord, command), held) in (1..).zip(commands).zip(held) {
            let (Held::Live(seats), Some(starts_at)) = (held, starts.get(&command.event_id)) else {
                continue;
            };
            // A ticket code stays verifiable until a day after the show.
            let code_ttl = Duration::try_from(*starts_at - now).unwrap_or_default()
                + Duration::from_secs(86_400);
            for &idx in seats {
                let ticket = TicketId::new();
                let code = ticket_keys
                    .sign(
                        TicketClaims {
                            tid: ticket,
                            evt: command.event_id,
                        },
                        code_ttl,
                    )
                    .map_err(|err| anyhow::anyhow!("signing a ticket code: {err}"))?;
                params.seat_ord.push(ord);
                params.seat_idx.push(i32::try_from(idx)?);
                params.ticket_ids.push(ticket);
                params.codes.push(code);
            }
            // The fan pays what they were quoted (the first price of a class); a class missing
            // from the quote, its price now.
            for (i, price) in command.prices.iter().enumerate() {
                if command.prices[..i]
                    .iter()
                    .all(|earlier| earlier.class_id != price.class_id)
                {
                    params.quote_ord.push(ord);
                    params.quote_class.push(price.class_id);
                    params.quote_price.push(price.price_minor);
                }
            }
        }
        Ok(params)
    }

    async fn run(self, db: &PgPool) -> Result<Vec<Verdict>, sqlx::Error> {
        sqlx::query_as(STATEMENT)
            .bind(self.ids)
            .bind(self.events)
            .bind(self.fans)
            .bind(self.holds)
            .bind(self.keys)
            .bind(self.states)
            .bind(self.seat_ord)
            .bind(self.seat_idx)
            .bind(self.ticket_ids)
            .bind(self.codes)
            .bind(self.quote_ord)
            .bind(self.quote_class)
            .bind(self.quote_price)
            .bind(self.start_events)
            .bind(self.start_times)
            .bind(Rejection::HoldExpired.code())
            .bind(Rejection::EventCancelled.code())
            .bind(Rejection::Duplicate.code())
            .bind(Rejection::SeatsAlreadySold.code())
            .bind(routing::BOOKING_CONFIRMED)
            .bind(routing::BOOKING_REJECTED)
            .fetch_all(db)
            .await
    }
}

/// Did the statement lose a race it can win on a fresh snapshot? A booking, hold, key or seat
/// another transaction committed meanwhile; or a deadlock with one.
fn raced(err: &sqlx::Error) -> bool {
    const DEADLOCK: &str = "40P01";
    if let sqlx::Error::Database(db) = err
        && db.code().as_deref() == Some(DEADLOCK)
    {
        return true;
    }
    matches!(
        crate::db::unique_violation(err),
        Some(
            "tickets_event_seat_key"
                | "bookings_pkey"
                | "bookings_hold_key"
                | "bookings_user_idempotency_key"
        )
    )
}

/// When each event starts, as this process last read it. A ticket code is valid until a day
/// after the show, and codes are signed before the statement: for the start known here, which
/// the statement checks (a moved event makes it stale, and it answers the new start). Loaded
/// once per event per process, like the catalogs.
#[derive(Debug, Clone, Default)]
pub(super) struct EventStarts(Arc<RwLock<HashMap<EventId, OffsetDateTime>>>);

impl EventStarts {
    /// The starts of `events` that exist, loading those not known yet (one query).
    async fn of(
        &self,
        db: &PgPool,
        events: &[EventId],
    ) -> Result<HashMap<EventId, OffsetDateTime>, sqlx::Error> {
        let mut known = HashMap::with_capacity(events.len());
        let mut missing = Vec::new();
        {
            let cached = self.0.read().unwrap_or_else(PoisonError::into_inner);
            for event in events {
                match cached.get(event) {
                    Some(at) => {
                        known.insert(*event, *at);
                    }
                    None => missing.push(*event),
                }
            }
        }
        if !missing.is_empty() {
            let loaded: Vec<(EventId, OffsetDateTime)> =
                sqlx::query_as("SELECT id, starts_at FROM events WHERE id = ANY($1)")
                    .bind(&missing)
                    .fetch_all(db)
                    .await?;
            for (event, at) in loaded {
                self.set(event, at);
                known.insert(event, at);
            }
        }
        Ok(known)
    }

    fn set(&self, event: EventId, starts_at: OffsetDateTime) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(event, starts_at);
    }
}

/// The end state of a command that failed on every delivery and was dead-lettered: its booking
/// is written `rejected` with [`Rejection::ProcessingFailed`], unless it exists, in the
/// caller's transaction (the dead letter's record). The hold is recorded when no other booking
/// owns it; the idempotency key is not (it may be what made the command fail). A booking that
/// cannot be written at all (its event or fan is gone) is left unwritten: the dead letter alone
/// says what happened. Returns whether the booking was ended here; if so, call
/// [`Bookings::settle_dead_lettered`] after the commit. A rare path: a savepoint per attempt.
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
        match write::write_rejected(tx, &rejected, hold).await {
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
