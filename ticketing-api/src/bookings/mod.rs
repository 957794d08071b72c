//! Bookings as the API serves them: registering a hold (a thin caller of `shared::booking`,
//! which owns a booking's whole life: claim or replay, both paths, persist, settle), and the
//! booking and ticket views fans and admins read.
//!
//! Retries are safe: the same `Idempotency-Key` (per fan) or the same hold returns the booking
//! already made.

use serde::Serialize;
use shared::{
    admission,
    booking::{QueuedRequest, RegisterError, Request},
    cache::redis,
    ids::{BookingId, EventId, HoldId, SeatId, TicketId, UserId},
};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{AppState, holds::HoldError};

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error("no such booking")]
    NotFound,
    #[error("the Idempotency-Key must be 1 to 200 visible characters")]
    InvalidIdempotencyKey,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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

/// What a registration came to.
#[derive(Debug)]
pub enum Registration {
    /// Written in Postgres (the simple path, or a retry of a booking already written): 201.
    Booked(BookingView),
    /// Queued to the workers and confirmed by the broker (high-demand mode): 202.
    Queued(BookingId),
}

/// The 202 of a queued registration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueuedView {
    pub booking_id: BookingId,
    /// Always `pending`: follow it at `GET /api/bookings/{booking_id}`.
    pub status: &'static str,
}

/// Registers the fan's hold. A retry of a booking already made answers with it, even once the
/// admission is spent. Otherwise the event's rules decide: in high-demand mode the fan must
/// hold a live admission (the `X-Admission-Token` names them; the waiting room's admitted set
/// says they are admitted now), which the registration spends, and it is queued to the workers;
/// otherwise it is booked now.
pub async fn register(
    state: &AppState,
    event: EventId,
    fan: UserId,
    hold: HoldId,
    idempotency_key: Option<String>,
    admission: Option<&str>,
    request_id: Option<&str>,
) -> Result<Registration, BookingError> {
    let bookings = &state.bookings;
    let idempotency_key = idempotency_key.as_deref();
    if let Some(existing) = bookings.find_previous(fan, hold, idempotency_key).await? {
        return Ok(Registration::Booked(
            get(&state.db, existing, fan, false).await?,
        ));
    }
    let rules = state.rules.get(&state.db, event).await?;
    rules.check_open()?;
    let request = Request {
        event,
        fan,
        hold,
        idempotency_key,
    };
    let registration = if rules.high_demand {
        let queued = QueuedRequest {
            admission: admission::check(&state.keys.admission, admission, fan, event),
            prices: rules.quote(),
            request_id,
        };
        bookings.queue(&state.publisher, request, queued).await?
    } else {
        bookings.book_now(request).await?
    };
    Ok(match registration {
        shared::booking::Registration::Booked(id) => {
            Registration::Booked(get(&state.db, id, fan, false).await?)
        }
        shared::booking::Registration::Queued(id) => Registration::Queued(id),
    })
}

/// A booking as its owner (or an admin) sees it: the row, or `pending` while a worker has
/// yet to write it.
pub async fn get_any(
    state: &AppState,
    id: BookingId,
    caller: UserId,
    as_admin: bool,
) -> Result<BookingView, BookingError> {
    match get(&state.db, id, caller, as_admin).await {
        Err(BookingError::NotFound) => {}
        other => return other,
    }
    // A queued booking's marker is the owner's: an admin sees it once a worker wrote it.
    let Some(marker) = state.bookings.claims.pending(caller, id).await? else {
        // The worker may have written it and dropped the marker in between.
        return get(&state.db, id, caller, as_admin).await;
    };
    let event: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT e.title, (SELECT c.currency FROM ticket_classes c WHERE c.event_id = e.id
                          ORDER BY c.position LIMIT 1)
         FROM events e WHERE e.id = $1",
    )
    .bind(marker.event_id)
    .fetch_optional(&state.db)
    .await?;
    let (event_title, currency) = event.ok_or(BookingError::NotFound)?;
    Ok(BookingView {
        booking_id: id,
        event_id: marker.event_id,
        event_title,
        status: "pending".into(),
        reason: None,
        total: 0,
        currency: currency.unwrap_or_default(),
        created_at: marker.created_at,
        tickets: Vec::new(),
    })
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
