//! The high-demand gate: the organizer's demand mode, its Redis mirror for the waiting room,
//! and the admission check on holds and registrations. No axum types here.
//!
//! Postgres (`events.high_demand`, `admit_per_minute`, `max_active`) is the source of truth.
//! Holds and registrations read `high_demand` with the sale rules, kept in memory
//! (`holds::cache`): a switch forgets them in this instance before it answers, so the next
//! request here obeys it, and in the others when Postgres' notification of the change arrives
//! (well under a millisecond on one host). The waiting room reads the mirror: the gate hash
//! of `shared::gate` (demand mode, rate, cap, sale opening), written in one HSET.
//!
//! While the mode is on, a fan needs a *live admission* (`shared::admission`): a token that
//! names them and the event, and a place in the waiting room's admitted set now. A hold checks
//! it inside the inventory script; a queued registration spends it (`shared::booking`).

use serde::{Deserialize, Serialize};
pub use shared::admission::{GateError, check};
use shared::{
    gate::GateSettings,
    ids::{EventId, UserId},
};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{AppState, accounts::audit, events::EventError, venues::Actor};

/// The header that carries the admission token.
pub const ADMISSION_HEADER: &str = "x-admission-token";

/// Bounds of `admit_per_minute` and `max_active`.
pub const MAX_RATE: i64 = 1_000_000;

/// What the organizer sets with `PUT /api/events/{id}/demand-mode`. The rate and the cap
/// keep their last values (600 a minute and 1,000 at first) when not sent, so turning the gate
/// off, or on again, needs nothing else.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandMode {
    /// Fans need an admission from the waiting room to hold and register.
    pub high_demand: bool,
    /// Fans the waiting room admits per minute, 1 to 1,000,000; unchanged when absent.
    #[serde(default)]
    pub admit_per_minute: Option<i64>,
    /// Fans shopping at once, at most; 1 to 1,000,000; unchanged when absent.
    #[serde(default)]
    pub max_active: Option<i64>,
}

/// The event's demand mode as it now is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DemandModeView {
    pub event_id: EventId,
    pub high_demand: bool,
    pub admit_per_minute: i32,
    pub max_active: i32,
}

fn rate(field: &str, value: i64) -> Result<i32, EventError> {
    if (1..=MAX_RATE).contains(&value) {
        i32::try_from(value).map_err(|_| EventError::InvalidField(format!("{field} is too large")))
    } else {
        Err(EventError::InvalidField(format!(
            "{field} must be 1 to {MAX_RATE}."
        )))
    }
}

#[derive(sqlx::FromRow)]
struct GateRow {
    organizer_id: UserId,
    cancelled_at: Option<OffsetDateTime>,
    sale_opens_at: OffsetDateTime,
}

/// Sets the event's demand mode (its organizer or an admin; others see "not found"), audits
/// it, and mirrors it to the waiting room's gate hash.
pub async fn set_demand_mode(
    state: &AppState,
    actor: Actor,
    event: EventId,
    mode: DemandMode,
) -> Result<DemandModeView, EventError> {
    let admit_per_minute = mode
        .admit_per_minute
        .map(|value| rate("admit_per_minute", value))
        .transpose()?;
    let max_active = mode
        .max_active
        .map(|value| rate("max_active", value))
        .transpose()?;

    let mut tx = state.db.begin().await?;
    let row = sqlx::query_as::<_, GateRow>(
        "SELECT organizer_id, cancelled_at, sale_opens_at FROM events WHERE id = $1 FOR UPDATE",
    )
    .bind(event)
    .fetch_optional(&mut *tx)
    .await?
    .filter(|row| actor.may_manage(row.organizer_id))
    .ok_or(EventError::NotFound)?;
    if row.cancelled_at.is_some() {
        return Err(EventError::Cancelled);
    }
    let (admit_per_minute, max_active): (i32, i32) = sqlx::query_as(
        "UPDATE events SET high_demand = $2,
                           admit_per_minute = COALESCE($3, admit_per_minute),
                           max_active = COALESCE($4, max_active),
                           updated_at = now()
         WHERE id = $1
         RETURNING admit_per_minute, max_active",
    )
    .bind(event)
    .bind(mode.high_demand)
    .bind(admit_per_minute)
    .bind(max_active)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor.id,
        "event.demand_mode",
        "event",
        &event.to_string(),
        serde_json::json!({
            "high_demand": mode.high_demand,
            "admit_per_minute": admit_per_minute,
            "max_active": max_active,
        }),
    )
    .await?;
    // Written while the row is locked, so concurrent changes reach Redis in the order they
    // reach Postgres; a failed write rolls the change back (the organizer retries the PUT).
    GateSettings {
        high_demand: mode.high_demand,
        admit_per_minute,
        max_active,
        sale_opens_at: row.sale_opens_at,
    }
    .write(&state.redis, &state.redis_keys, event)
    .await
    .map_err(|err| anyhow::Error::new(err).context("writing the waiting room's gate"))?;
    tx.commit().await?;
    state.rules.forget(event);
    tracing::info!(
        event.id = %event,
        actor.id = %actor.id,
        high_demand = mode.high_demand,
        admit_per_minute,
        max_active,
        "demand mode set"
    );
    Ok(DemandModeView {
        event_id: event,
        high_demand: mode.high_demand,
        admit_per_minute,
        max_active,
    })
}

/// The sale's opening moved (an organizer's PATCH, before the sale opened): the waiting room's
/// gate follows, so the pre-queue is shuffled and admissions start at the new time. Called
/// while the event row is locked, like [`set_demand_mode`]'s write. A gate hash the waiting room
/// has not written yet gets this field now and the rest from Postgres when it is first needed.
pub async fn move_opening(
    state: &AppState,
    event: EventId,
    opens_at: OffsetDateTime,
) -> anyhow::Result<()> {
    shared::gate::move_opening(&state.redis, &state.redis_keys, event, opens_at)
        .await
        .map_err(|err| anyhow::Error::new(err).context("moving the waiting room's opening"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_bounded() {
        assert_eq!(rate("x", 1).ok(), Some(1));
        assert_eq!(rate("x", MAX_RATE).ok(), Some(1_000_000));
        assert!(rate("x", 0).is_err());
        assert!(rate("x", -5).is_err());
        assert!(rate("x", MAX_RATE + 1).is_err());
        assert!(rate("x", i64::MAX).is_err());
    }
}
