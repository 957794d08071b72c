//! Changing an event: [`update`], [`cancel`], [`delete`]. Each one locks the event's row
//! first (`lock`: someone else's event is "not found"), and is audited in the same
//! transaction. After the commit each one forgets the event's sale rules in this process
//! before it answers; the other instances hear of it from Postgres (`holds::cache`).

use shared::ids::{ClassId, EventId, UserId};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{Event, EventError, EventPatch, get, validate};
use crate::{AppState, accounts::audit, venues::Actor};

/// The parts of an event that decide who may change it and how.
#[derive(sqlx::FromRow)]
struct EventLock {
    organizer_id: UserId,
    starts_at: OffsetDateTime,
    sale_opens_at: OffsetDateTime,
    cancelled_at: Option<OffsetDateTime>,
}

/// Locks the event for a change by `actor`; others' events are "not found".
async fn lock(conn: &mut PgConnection, actor: Actor, id: EventId) -> Result<EventLock, EventError> {
    sqlx::query_as::<_, EventLock>(
        "SELECT organizer_id, starts_at, sale_opens_at, cancelled_at
         FROM events WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .filter(|event| actor.may_manage(event.organizer_id))
    .ok_or(EventError::NotFound)
}

/// Has the event sold anything, or is a sale on its way (a pending booking)?
async fn has_live_bookings(conn: &mut PgConnection, id: EventId) -> Result<bool, sqlx::Error> {
    let (sold,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM bookings
                        WHERE event_id = $1 AND status IN ('pending', 'confirmed'))",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(sold)
}

/// Changes what may change. Audited with the fields that were sent.
pub async fn update(
    state: &AppState,
    actor: Actor,
    id: EventId,
    patch: EventPatch,
) -> Result<Event, EventError> {
    let db = &state.db;
    let now = OffsetDateTime::now_utc();
    let validate::CheckedPatch {
        title,
        description,
        hold_seconds,
        max_seats_per_order,
        prices,
    } = validate::check_patch(&patch, now)?;

    let mut tx = db.begin().await?;
    let current = lock(&mut tx, actor, id).await?;
    if current.cancelled_at.is_some() {
        return Err(EventError::Cancelled);
    }
    let starts_at = patch.starts_at.unwrap_or(current.starts_at);
    let sale_opens_at = patch.sale_opens_at.unwrap_or(current.sale_opens_at);
    validate::opens_by_start(sale_opens_at, starts_at)?;
    // Fans already in an opened sale cannot be sent back to a pre-queue.
    let opening_moves = sale_opens_at != current.sale_opens_at;
    if opening_moves && current.sale_opens_at <= now {
        return Err(EventError::SaleOpened);
    }
    if !prices.is_empty() {
        let known: Vec<(ClassId,)> =
            sqlx::query_as("SELECT id FROM ticket_classes WHERE event_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        if let Some(unknown) = prices.iter().find(|p| !known.contains(&(p.id,))) {
            return Err(EventError::UnknownClass(unknown.id));
        }
        if has_live_bookings(&mut tx, id).await? {
            return Err(EventError::HasSales(
                "Prices cannot change once tickets are sold.",
            ));
        }
        for class in &prices {
            sqlx::query("UPDATE ticket_classes SET price_minor = $2 WHERE id = $1")
                .bind(class.id)
                .bind(class.price)
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query(
        "UPDATE events SET
             title = COALESCE($2, title),
             description = COALESCE($3, description),
             starts_at = COALESCE($4, starts_at),
             sale_opens_at = COALESCE($5, sale_opens_at),
             hold_seconds = COALESCE($6, hold_seconds),
             max_seats_per_order = COALESCE($7, max_seats_per_order),
             updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&title)
    .bind(&description)
    .bind(patch.starts_at)
    .bind(patch.sale_opens_at)
    .bind(hold_seconds)
    .bind(max_seats_per_order)
    .execute(&mut *tx)
    .await?;
    if opening_moves {
        // While the row is locked, as the demand mode does: moves reach Redis in order.
        crate::gate::move_opening(state, id, sale_opens_at).await?;
    }
    let prices_json: Vec<serde_json::Value> = prices
        .iter()
        .map(|p| serde_json::json!({"id": p.id, "price": p.price}))
        .collect();
    audit::record(
        &mut tx,
        actor.id,
        "event.update",
        "event",
        &id.to_string(),
        serde_json::json!({
            "title": title,
            "description_changed": description.is_some(),
            "starts_at": patch.starts_at.map(|t| t.unix_timestamp()),
            "sale_opens_at": patch.sale_opens_at.map(|t| t.unix_timestamp()),
            "hold_seconds": hold_seconds,
            "max_seats_per_order": max_seats_per_order,
            "prices": prices_json,
        }),
    )
    .await?;
    tx.commit().await?;
    state.rules.forget(id);
    tracing::info!(event.id = %id, actor.id = %actor.id, "event updated");
    get(db, id).await
}

/// Cancels the event; cancelling again changes nothing (and is not audited again).
pub async fn cancel(state: &AppState, actor: Actor, id: EventId) -> Result<Event, EventError> {
    let db = &state.db;
    let mut tx = db.begin().await?;
    let current = lock(&mut tx, actor, id).await?;
    if current.cancelled_at.is_none() {
        sqlx::query(
            "UPDATE events SET cancelled_at = now(), status = 'cancelled', updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            actor.id,
            "event.cancel",
            "event",
            &id.to_string(),
            serde_json::json!({}),
        )
        .await?;
        tracing::info!(event.id = %id, actor.id = %actor.id, "event cancelled");
    }
    tx.commit().await?;
    state.rules.forget(id);
    get(db, id).await
}

/// Deletes an event that never had a booking, with its classes and seats. Audited.
pub async fn delete(state: &AppState, actor: Actor, id: EventId) -> Result<(), EventError> {
    let mut tx = state.db.begin().await?;
    lock(&mut tx, actor, id).await?;
    let (any,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM bookings WHERE event_id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if any {
        return Err(EventError::HasSales(
            "An event with bookings cannot be deleted; cancel it instead.",
        ));
    }
    let (title,): (String,) = sqlx::query_as("DELETE FROM events WHERE id = $1 RETURNING title")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor.id,
        "event.delete",
        "event",
        &id.to_string(),
        serde_json::json!({"title": title}),
    )
    .await?;
    tx.commit().await?;
    state.rules.forget(id);
    tracing::info!(event.id = %id, actor.id = %actor.id, "event deleted");
    Ok(())
}
