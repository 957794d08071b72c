//! Writing one booking's rows in the caller's transaction: the simple path's booking (in the
//! API's request) and the rejection that ends a dead-lettered command. The queued path writes
//! the same rows for a whole batch in one statement (`persist.sql`).
//!
//! Prices are the server's, never a request's: read from the event's classes under the event's
//! `FOR KEY SHARE` lock. Booking, tickets (with signed codes) and the outbox event go in
//! together; `UNIQUE (event_id, seat_id)` on tickets is the final word against selling a seat
//! twice, and a violation of it comes back as [`WriteError::SeatSold`] for this booking alone.

use std::time::Duration;

use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::{
    domain::{Currency, Money},
    ids::{BookingId, ClassId, EventId, HoldId, SeatId, TicketId, UserId},
    messaging::{BookingConfirmed, BookingRejected, TicketSummary, routing},
    tokens::{TicketClaims, TokenKeys},
};

/// Why a booking could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("no such event")]
    EventNotFound,
    #[error("the event is cancelled")]
    EventCancelled,
    #[error("some of these seats were sold meanwhile")]
    SeatSold,
    /// A booking with this id, hold or (fan, idempotency key) exists already; the constraint.
    #[error("a booking for this hold or key exists already ({0})")]
    Duplicate(String),
    #[error(transparent)]
    Database(sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for WriteError {
    fn from(err: sqlx::Error) -> Self {
        match crate::db::unique_violation(&err) {
            Some("tickets_event_seat_key") => Self::SeatSold,
            Some(
                constraint @ ("bookings_pkey"
                | "bookings_user_idempotency_key"
                | "bookings_hold_key"),
            ) => Self::Duplicate(constraint.to_string()),
            _ => Self::Database(err),
        }
    }
}

/// A booking to write: the hold's seats by idx.
#[derive(Debug, Clone, Copy)]
pub struct NewBooking<'a> {
    pub id: BookingId,
    pub event: EventId,
    pub fan: UserId,
    pub hold: HoldId,
    pub idempotency_key: Option<&'a str>,
    pub seat_idx: &'a [u32],
}

#[derive(sqlx::FromRow)]
struct PricedSeat {
    seat_id: SeatId,
    label: String,
    class_id: ClassId,
    class_name: String,
    price_minor: i64,
    currency: String,
}

/// Booking (`confirmed`), tickets and the `booking.confirmed` outbox row, in the caller's
/// transaction. On error the transaction must be rolled back.
pub async fn write_booking(
    tx: &mut PgConnection,
    ticket_keys: &TokenKeys,
    new: NewBooking<'_>,
) -> Result<BookingConfirmed, WriteError> {
    // The same lock the bookings→events foreign key takes, taken first: a concurrent price
    // change or cancellation (FOR UPDATE on the event) waits for this booking, or this booking
    // waits for it and then reads the new prices. Never a booking at a price that no longer is.
    let event: Option<(Option<OffsetDateTime>, OffsetDateTime)> =
        sqlx::query_as("SELECT cancelled_at, starts_at FROM events WHERE id = $1 FOR KEY SHARE")
            .bind(new.event)
            .fetch_optional(&mut *tx)
            .await?;
    let starts_at = match event {
        None => return Err(WriteError::EventNotFound),
        Some((Some(_), _)) => return Err(WriteError::EventCancelled),
        Some((None, starts_at)) => starts_at,
    };
    let idx: Vec<i32> = new
        .seat_idx
        .iter()
        .filter_map(|&i| i32::try_from(i).ok())
        .collect();
    // Prices from the classes, now, inside the transaction: never from the request.
    let seats: Vec<PricedSeat> = sqlx::query_as(
        "SELECT s.id AS seat_id, s.label, c.id AS class_id, c.name AS class_name,
                c.price_minor, c.currency
         FROM seats s JOIN ticket_classes c ON c.id = s.class_id
         WHERE s.event_id = $1 AND s.idx = ANY($2) ORDER BY s.idx",
    )
    .bind(new.event)
    .bind(&idx)
    .fetch_all(&mut *tx)
    .await?;
    let currency = seats
        .first()
        .map(|seat| seat.currency.clone())
        .ok_or_else(|| anyhow::anyhow!("a hold without seats"))?;
    let total: i64 = seats.iter().map(|seat| seat.price_minor).sum();

    sqlx::query(
        "INSERT INTO bookings (id, event_id, user_id, status, total_minor, currency, hold_id,
                               idempotency_key)
         VALUES ($1, $2, $3, 'confirmed', $4, $5, $6, $7)",
    )
    .bind(new.id)
    .bind(new.event)
    .bind(new.fan)
    .bind(total)
    .bind(&currency)
    .bind(new.hold)
    .bind(new.idempotency_key)
    .execute(&mut *tx)
    .await?;

    // A ticket code stays verifiable until a day after the show.
    let code_ttl = Duration::try_from(starts_at - OffsetDateTime::now_utc()).unwrap_or_default()
        + Duration::from_secs(86_400);
    let mut ids = Vec::with_capacity(seats.len());
    let mut codes = Vec::with_capacity(seats.len());
    for _ in &seats {
        let id = TicketId::new();
        let code = ticket_keys
            .sign(
                TicketClaims {
                    tid: id,
                    evt: new.event,
                },
                code_ttl,
            )
            .map_err(|err| anyhow::anyhow!("signing a ticket code: {err}"))?;
        ids.push(id);
        codes.push(code);
    }
    sqlx::query(
        "INSERT INTO tickets (id, booking_id, event_id, seat_id, class_id, price_minor, code)
         SELECT t.id, $1, $2, t.seat_id, t.class_id, t.price_minor, t.code
         FROM UNNEST($3::uuid[], $4::uuid[], $5::uuid[], $6::bigint[], $7::text[])
              AS t(id, seat_id, class_id, price_minor, code)",
    )
    .bind(new.id)
    .bind(new.event)
    .bind(&ids)
    .bind(seats.iter().map(|seat| seat.seat_id).collect::<Vec<_>>())
    .bind(seats.iter().map(|seat| seat.class_id).collect::<Vec<_>>())
    .bind(
        seats
            .iter()
            .map(|seat| seat.price_minor)
            .collect::<Vec<_>>(),
    )
    .bind(&codes)
    .execute(&mut *tx)
    .await?;

    let confirmed = BookingConfirmed {
        booking_id: new.id,
        event_id: new.event,
        user_id: new.fan,
        total: Money {
            amount: total,
            currency: Currency::parse(&currency)
                .map_err(|err| anyhow::anyhow!("a stored currency is invalid: {err}"))?,
        },
        tickets: ids
            .iter()
            .zip(&seats)
            .map(|(id, seat)| TicketSummary {
                ticket_id: *id,
                seat_label: seat.label.clone(),
                class: seat.class_name.clone(),
            })
            .collect(),
    };
    sqlx::query("INSERT INTO outbox (routing_key, payload) VALUES ($1, $2)")
        .bind(routing::BOOKING_CONFIRMED)
        .bind(serde_json::to_value(&confirmed).map_err(anyhow::Error::from)?)
        .execute(&mut *tx)
        .await?;
    Ok(confirmed)
}

/// A booking that could not be made: a `rejected` row with its reason (so the fan following
/// the booking id learns the outcome) and the `booking.rejected` outbox row. `hold` is
/// recorded when given (pass `None` when another booking owns it); the idempotency key is not.
pub async fn write_rejected(
    tx: &mut PgConnection,
    rejected: &BookingRejected,
    hold: Option<HoldId>,
) -> Result<(), WriteError> {
    sqlx::query(
        "INSERT INTO bookings (id, event_id, user_id, status, reason, total_minor, currency,
                               hold_id)
         VALUES ($1, $2, $3, 'rejected', $4, 0,
                 COALESCE((SELECT currency FROM ticket_classes WHERE event_id = $2
                           ORDER BY position LIMIT 1), 'XXX'),
                 $5)",
    )
    .bind(rejected.booking_id)
    .bind(rejected.event_id)
    .bind(rejected.user_id)
    .bind(&rejected.reason)
    .bind(hold)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO outbox (routing_key, payload) VALUES ($1, $2)")
        .bind(routing::BOOKING_REJECTED)
        .bind(serde_json::to_value(rejected).map_err(anyhow::Error::from)?)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
