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
    cache::redis,
    ids::{BookingId, EventId, HoldId, SeatId, TicketId, UserId},
    inventory::{HoldState, InventoryError},
    messaging::ProcessBookingCommand,
    sales::{self, NewBooking, PENDING_TTL_SECS, PendingBooking, WriteError},
};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    AppState,
    gate::SpendError,
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
    #[error("this registration is still being queued; retry in a moment")]
    InProgress,
    #[error("registrations cannot be queued right now; try again shortly")]
    QueueUnavailable,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
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

/// How long a queued registration keeps the hold alive, for the worker to re-check it.
const QUEUE_GRACE: Duration = Duration::from_secs(120);

/// Registers the fan's hold. In high-demand mode the fan must hold a live admission (the
/// `X-Admission-Token` names them; the waiting room's admitted set says they are admitted now),
/// which the registration spends, and the registration is queued to the workers
/// ([`register_queued`]); otherwise it is booked now (the simple path).
pub async fn register(
    state: &AppState,
    event: EventId,
    fan: UserId,
    hold: HoldId,
    idempotency_key: Option<String>,
    admission: Option<&str>,
    request_id: Option<&str>,
) -> Result<Registration, BookingError> {
    // A retry of a booking already made answers with it, even once the admission is spent.
    if let Some(existing) = find_previous(&state.db, fan, hold, idempotency_key.as_deref()).await? {
        return Ok(Registration::Booked(existing));
    }
    let rules = SaleRules::load(&state.db, event).await?;
    rules.check_open()?;
    if rules.high_demand {
        let request = QueuedRequest {
            event,
            fan,
            hold,
            idempotency_key,
            admission,
            request_id,
        };
        return register_queued(state, &rules, request).await;
    }
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
                .map(Registration::Booked)
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
            quote: None,
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
                        .map(Registration::Booked)
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
    // An admission the fan still holds (the gate was turned off after they were let in) is
    // spent too, in the same round trip.
    let (converted, ()) = tokio::join!(
        state.inventory.convert(&catalog, hold, fan, &seats),
        crate::gate::spend_if_any(state, event, fan),
    );
    if let Err(err) = converted {
        tracing::error!(booking.id = %booking_id, error = %err, "could not mark seats sold in Redis");
    }
    Ok(Registration::Booked(
        get(&state.db, booking_id, fan, false).await?,
    ))
}

/// Deletes `key` if it still holds `value` (another request's claim is left alone).
const COMPARE_AND_DELETE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// A registration on the queued path, as the request made it.
struct QueuedRequest<'a> {
    event: EventId,
    fan: UserId,
    hold: HoldId,
    idempotency_key: Option<String>,
    admission: Option<&'a str>,
    request_id: Option<&'a str>,
}

/// The queued path. A retry (the same key, or the same hold) answers with the booking it made,
/// before any check. Otherwise: the admission token must name this fan and event; the hold is
/// checked (owner, life) and kept alive for the worker; the booking id is claimed in Redis for
/// the hold and the idempotency key (so retries answer with the same booking, without a
/// Postgres write); the fan's admission is spent (one admission, one order); the command, with
/// the prices as quoted now, is published with publisher confirms, and only then is the
/// registration accepted. If anything fails after the claims, they are dropped and the
/// admission given back, so a retry can succeed at once.
async fn register_queued(
    state: &AppState,
    rules: &SaleRules,
    request: QueuedRequest<'_>,
) -> Result<Registration, BookingError> {
    let QueuedRequest {
        event,
        fan,
        hold,
        idempotency_key,
        admission,
        request_id,
    } = request;
    let keys = &state.redis_keys;
    let mut conn = state.redis.conn();
    let key_slot = idempotency_key
        .as_deref()
        .map(|key| keys.booking_by_key(fan, key));
    if let Some(previous) = queued_previous(state, fan, hold, key_slot.as_deref()).await? {
        return Ok(previous);
    }
    crate::gate::check(&state.keys.admission, admission, fan, event).map_err(HoldError::from)?;
    // Owner-checked, and kept alive until a worker has re-checked it.
    let seats = match state
        .inventory
        .extend(event, hold, fan, QUEUE_GRACE)
        .await?
    {
        HoldState::Live { seats, .. } => seats,
        HoldState::Expired | HoldState::NotFound => {
            return queued_previous(state, fan, hold, key_slot.as_deref())
                .await?
                .ok_or(BookingError::HoldExpired);
        }
    };

    let booking_id = BookingId::new();
    let id = booking_id.to_string();
    let pending_key = keys.booking_pending(booking_id);
    let mut marker = PendingBooking {
        user_id: fan,
        event_id: event,
        hold_id: hold,
        created_at: OffsetDateTime::now_utc(),
        published: false,
    };
    marker.write(&state.redis, keys, booking_id).await?;
    // One booking per hold, and per key: whoever claims first owns them.
    let mut claimed = Vec::new();
    for slot in std::iter::once(keys.booking_by_hold(hold)).chain(key_slot.clone()) {
        let won: Result<Option<String>, _> = redis::cmd("SET")
            .arg(&slot)
            .arg(&id)
            .arg("NX")
            .arg("EX")
            .arg(PENDING_TTL_SECS)
            .query_async(&mut conn)
            .await;
        match won {
            Ok(Some(_)) => claimed.push(slot),
            // A concurrent retry claimed it first: answer with its booking.
            Ok(None) => {
                undo_claims(state, &pending_key, &claimed, &id).await;
                return queued_previous(state, fan, hold, key_slot.as_deref())
                    .await?
                    .ok_or(BookingError::InProgress);
            }
            Err(err) => {
                undo_claims(state, &pending_key, &claimed, &id).await;
                return Err(err.into());
            }
        }
    }

    // This registration owns the hold now: spend the admission that paid for it.
    let spent = match crate::gate::spend(state, event, fan).await {
        Ok(spent) => spent,
        Err(err) => {
            undo_claims(state, &pending_key, &claimed, &id).await;
            return Err(match err {
                SpendError::Gate(err) => HoldError::from(err).into(),
                SpendError::Redis(err) => err.into(),
            });
        }
    };
    let published = async {
        let catalog = state
            .catalogs
            .get(&state.db, event)
            .await?
            .ok_or(HoldError::EventNotFound)?;
        let command = ProcessBookingCommand {
            booking_id,
            event_id: event,
            user_id: fan,
            hold_id: hold,
            seat_ids: seats
                .iter()
                .filter_map(|&idx| catalog.seat(idx).map(|seat| seat.id))
                .collect(),
            idempotency_key,
            requested_at: marker.created_at,
            prices: rules.quote(),
        };
        state
            .publisher
            .publish_command(&command, request_id)
            .await
            .map_err(|err| {
                tracing::error!(booking.id = %booking_id, error = format!("{err:#}"),
                    "the broker did not take the booking command");
                metrics::counter!("bookings_queue_failures_total").increment(1);
                BookingError::QueueUnavailable
            })
    };
    if let Err(err) = published.await {
        undo_claims(state, &pending_key, &claimed, &id).await;
        crate::gate::restore(state, spent).await;
        return Err(err);
    }
    // The broker has it. XX: a fast worker may have written the booking and dropped the marker.
    marker.published = true;
    let updated: Result<Option<String>, _> = redis::cmd("SET")
        .arg(&pending_key)
        .arg(serde_json::to_string(&marker).map_err(anyhow::Error::from)?)
        .arg("XX")
        .arg("KEEPTTL")
        .query_async(&mut conn)
        .await;
    if let Err(err) = updated {
        // Harmless: a retry meanwhile answers "in progress" until the worker is done.
        tracing::warn!(booking.id = %booking_id, error = %err, "could not mark the booking queued");
    }
    metrics::counter!("bookings_queued_total").increment(1);
    Ok(Registration::Queued(booking_id))
}

/// Drops the claims of a registration that was not queued, so that a retry can queue it.
async fn undo_claims(state: &AppState, pending_key: &str, claimed: &[String], id: &str) {
    let mut conn = state.redis.conn();
    let mut pipe = redis::pipe();
    pipe.del(pending_key).ignore();
    for slot in claimed {
        pipe.cmd("EVAL")
            .arg(COMPARE_AND_DELETE)
            .arg(1)
            .arg(slot)
            .arg(id)
            .ignore();
    }
    if let Err(err) = pipe.query_async::<()>(&mut conn).await {
        tracing::warn!(error = %err, "could not drop the claims of an unqueued registration");
    }
}

/// The queued booking an earlier attempt made (by key first, then by hold): its row if a
/// worker wrote it, else accepted if the broker confirmed it; `InProgress` while the earlier
/// attempt still waits for the broker.
async fn queued_previous(
    state: &AppState,
    fan: UserId,
    hold: HoldId,
    key_slot: Option<&str>,
) -> Result<Option<Registration>, BookingError> {
    let mut conn = state.redis.conn();
    let mut slots = Vec::new();
    slots.extend(key_slot.map(str::to_string));
    slots.push(state.redis_keys.booking_by_hold(hold));
    for slot in slots {
        let found: Option<String> = redis::cmd("GET").arg(&slot).query_async(&mut conn).await?;
        let Some(booking_id) = found.and_then(|id| id.parse::<BookingId>().ok()) else {
            continue;
        };
        match pending(state, booking_id).await? {
            Some(marker) if marker.user_id != fan => continue,
            Some(marker) if marker.published => return Ok(Some(Registration::Queued(booking_id))),
            Some(_) => return Err(BookingError::InProgress),
            None => match get(&state.db, booking_id, fan, false).await {
                Ok(view) => return Ok(Some(Registration::Booked(view))),
                Err(BookingError::NotFound) => continue,
                Err(err) => return Err(err),
            },
        }
    }
    Ok(None)
}

async fn pending(
    state: &AppState,
    booking: BookingId,
) -> Result<Option<PendingBooking>, BookingError> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(state.redis_keys.booking_pending(booking))
        .query_async(&mut state.redis.conn())
        .await?;
    Ok(raw.and_then(|raw| serde_json::from_str(&raw).ok()))
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
    let Some(marker) = pending(state, id).await? else {
        // The worker may have written it and dropped the marker in between.
        return get(&state.db, id, caller, as_admin).await;
    };
    if !(as_admin || marker.user_id == caller) {
        return Err(BookingError::NotFound);
    }
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
