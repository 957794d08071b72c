//! Bookings: turning a fan's hold into tickets.
//!
//! The simple path (low-demand events) does it in the request: the hold is checked (owner and
//! life) and extended for the length of the work; prices are read from the event's classes in
//! Postgres, never from the request; booking, tickets and the outbox event are written in one
//! transaction, where `UNIQUE (event_id, seat_id)` is the final word against selling a seat
//! twice. Only after the commit are the seats marked sold in Redis and the hold dropped.
//!
//! Retries are safe: the same `Idempotency-Key` (per fan) or the same hold returns the booking
//! already made.

use std::time::Duration;

use serde::Serialize;
use shared::{
    ids::{BookingId, EventId, HoldId, SeatId, TicketId, UserId},
    inventory::{HoldState, InventoryError},
    sales::{self, NewBooking, WriteError},
};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    AppState,
    holds::{HoldError, SaleRules},
};

/// How long a registration keeps the hold alive while it works.
const WORK_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error("the hold has expired or is not yours")]
    HoldExpired,
    #[error("some of these seats were sold meanwhile")]
    SeatsAlreadySold,
    #[error("no such booking")]
    NotFound,
    #[error("the Idempotency-Key must be 1 to 200 visible characters")]
    InvalidIdempotencyKey,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<InventoryError> for BookingError {
    fn from(err: InventoryError) -> Self {
        Self::Hold(HoldError::Inventory(err))
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    pub id: TicketId,
    pub seat_id: SeatId,
    pub seat_label: String,
    pub class: String,
    pub price: i64,
    /// The signed code in the ticket's QR.
    pub code: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_in_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BookingView {
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub event_title: String,
    /// `pending`, `confirmed`, `rejected` or `cancelled`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Minor units of `currency`, computed by the server from the classes.
    pub total: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub tickets: Vec<TicketView>,
}

/// A checked `Idempotency-Key` header value.
pub fn parse_idempotency_key(raw: &str) -> Result<String, BookingError> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 200 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(BookingError::InvalidIdempotencyKey);
    }
    Ok(key.to_string())
}

/// The simple path: book the fan's hold now. In high-demand mode `admission` (the
/// `X-Admission-Token`) must admit this fan to this event, and the fan leaves the active
/// shoppers once the booking is confirmed.
pub async fn register_simple(
    state: &AppState,
    event: EventId,
    fan: UserId,
    hold: HoldId,
    idempotency_key: Option<String>,
    admission: Option<&str>,
) -> Result<BookingView, BookingError> {
    // A retry of a booking already made answers with it, even once the admission has expired.
    if let Some(existing) = find_previous(&state.db, fan, hold, idempotency_key.as_deref()).await? {
        return Ok(existing);
    }
    let rules = SaleRules::load(&state.db, event).await?;
    rules.check_open()?;
    rules.check_admission(state, admission, fan, event)?;
    // queued path: issue 5 — high-demand registrations will go to the workers over RabbitMQ
    // here (202 pending); until then they take the simple path below.
    let catalog = state
        .catalogs
        .get(&state.db, event)
        .await?
        .ok_or(HoldError::EventNotFound)?;
    // Owner-checked, and kept alive while we write.
    let seats = match state.inventory.extend(event, hold, fan, WORK_GRACE).await? {
        HoldState::Live { seats, .. } => seats,
        // A concurrent retry of this very request may have just booked the hold (and so
        // consumed it): then its booking is the answer.
        HoldState::Expired | HoldState::NotFound => {
            return find_previous(&state.db, fan, hold, idempotency_key.as_deref())
                .await?
                .ok_or(BookingError::HoldExpired);
        }
    };

    let booking_id = BookingId::new();
    let mut tx = state.db.begin().await?;
    let written = sales::write_booking(
        &mut tx,
        &state.keys.ticket,
        NewBooking {
            id: booking_id,
            event,
            fan,
            hold,
            idempotency_key: idempotency_key.as_deref(),
            seat_idx: &seats,
        },
    )
    .await;
    match written {
        Ok(_) => tx.commit().await?,
        Err(err) => {
            drop(tx);
            return match err {
                WriteError::SeatSold => {
                    metrics::counter!("bookings_rejected_total", "reason" => "seat_sold")
                        .increment(1);
                    Err(BookingError::SeatsAlreadySold)
                }
                // A concurrent retry of the same request won the race: answer with its booking.
                WriteError::Duplicate(constraint) => {
                    find_previous(&state.db, fan, hold, idempotency_key.as_deref())
                        .await?
                        .ok_or_else(|| {
                            anyhow::anyhow!("{constraint} tripped, yet no booking found").into()
                        })
                }
                WriteError::EventNotFound => Err(HoldError::EventNotFound.into()),
                WriteError::EventCancelled => Err(HoldError::EventCancelled.into()),
                WriteError::Database(err) => Err(BookingError::Database(err)),
                WriteError::Internal(err) => Err(BookingError::Internal(err)),
            };
        }
    }
    metrics::counter!("bookings_confirmed_total", "path" => "simple").increment(1);

    // Postgres has spoken; now tell Redis. If this fails the seats are still sold (Postgres
    // refuses them to anyone else) and the inventory is corrected when it is next rebuilt.
    if let Err(err) = state.inventory.convert(&catalog, hold, fan, &seats).await {
        tracing::error!(booking.id = %booking_id, error = %err, "could not mark seats sold in Redis");
    }
    if rules.high_demand {
        // The purchase is done: make room for the next fan in the waiting room.
        crate::gate::leave_active(state, event, fan).await;
    }
    get(&state.db, booking_id, fan, false).await
}

/// The booking an earlier attempt of this request made, by idempotency key or by hold.
async fn find_previous(
    db: &PgPool,
    fan: UserId,
    hold: HoldId,
    idempotency_key: Option<&str>,
) -> Result<Option<BookingView>, BookingError> {
    let id: Option<(BookingId,)> = sqlx::query_as(
        "SELECT id FROM bookings
         WHERE user_id = $1 AND (hold_id = $2 OR ($3::text IS NOT NULL AND idempotency_key = $3))
         ORDER BY (idempotency_key = $3) DESC NULLS LAST
         LIMIT 1",
    )
    .bind(fan)
    .bind(hold)
    .bind(idempotency_key)
    .fetch_optional(db)
    .await?;
    match id {
        Some((id,)) => Ok(Some(get(db, id, fan, false).await?)),
        None => Ok(None),
    }
}

#[derive(sqlx::FromRow)]
struct BookingRow {
    id: BookingId,
    event_id: EventId,
    event_title: String,
    user_id: UserId,
    status: String,
    reason: Option<String>,
    total_minor: i64,
    currency: String,
    created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    booking_id: BookingId,
    id: TicketId,
    seat_id: SeatId,
    seat_label: String,
    class_name: String,
    price_minor: i64,
    code: String,
    checked_in_at: Option<OffsetDateTime>,
}

macro_rules! booking_select {
    () => {
        "SELECT b.id, b.event_id, e.title AS event_title, b.user_id, b.status, b.reason,
                b.total_minor, b.currency, b.created_at
         FROM bookings b JOIN events e ON e.id = b.event_id "
    };
}

/// One booking; only its owner may read it, unless `as_admin`. Others get "not found", so a
/// booking id reveals nothing.
pub async fn get(
    db: &PgPool,
    id: BookingId,
    caller: UserId,
    as_admin: bool,
) -> Result<BookingView, BookingError> {
    let row = sqlx::query_as::<_, BookingRow>(concat!(booking_select!(), "WHERE b.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .filter(|row| as_admin || row.user_id == caller)
        .ok_or(BookingError::NotFound)?;
    let mut views = with_tickets(db, vec![row]).await?;
    views.pop().ok_or(BookingError::NotFound)
}

/// The fan's bookings, newest first.
pub async fn list_for(db: &PgPool, fan: UserId) -> Result<Vec<BookingView>, BookingError> {
    let rows: Vec<BookingRow> = sqlx::query_as(concat!(
        booking_select!(),
        "WHERE b.user_id = $1 ORDER BY b.created_at DESC LIMIT 200"
    ))
    .bind(fan)
    .fetch_all(db)
    .await?;
    with_tickets(db, rows).await
}

async fn with_tickets(
    db: &PgPool,
    rows: Vec<BookingRow>,
) -> Result<Vec<BookingView>, BookingError> {
    let ids: Vec<BookingId> = rows.iter().map(|row| row.id).collect();
    let tickets: Vec<TicketRow> = sqlx::query_as(
        "SELECT t.booking_id, t.id, t.seat_id, s.label AS seat_label, c.name AS class_name,
                t.price_minor, t.code, t.checked_in_at
         FROM tickets t
         JOIN seats s ON s.event_id = t.event_id AND s.id = t.seat_id
         JOIN ticket_classes c ON c.id = t.class_id
         WHERE t.booking_id = ANY($1) ORDER BY s.idx",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| BookingView {
            tickets: tickets
                .iter()
                .filter(|ticket| ticket.booking_id == row.id)
                .map(|ticket| TicketView {
                    id: ticket.id,
                    seat_id: ticket.seat_id,
                    seat_label: ticket.seat_label.clone(),
                    class: ticket.class_name.clone(),
                    price: ticket.price_minor,
                    code: ticket.code.clone(),
                    checked_in_at: ticket.checked_in_at,
                })
                .collect(),
            booking_id: row.id,
            event_id: row.event_id,
            event_title: row.event_title,
            status: row.status,
            reason: row.reason,
            total: row.total_minor,
            currency: row.currency,
            created_at: row.created_at,
        })
        .collect())
}
