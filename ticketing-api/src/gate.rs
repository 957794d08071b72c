//! The high-demand gate: the organizer's demand mode, its Redis mirror for the waiting room,
//! and the admission check on holds and registrations. No axum types here.
//!
//! Postgres (`events.high_demand`, `admit_per_minute`, `max_active`) is the source of truth;
//! holds and registrations read `high_demand` from it on every request (`SaleRules::load`), so
//! a change takes effect on the very next request. The waiting room reads the mirror: a HASH at
//! `RedisKeys::queue_gate(event)` with the fields `high_demand` ("1"/"0"), `admit_per_minute`,
//! `max_active`, `sale_opens_at_ms` and `updated_at_ms` (Unix ms), written in one HSET.
//!
//! While the mode is on, a fan needs an admission token (signed by the waiting room, verified
//! here with its public key, no network hop) naming them and the event. Once their purchase is
//! accepted (the 202 of a queued registration) they leave the active set
//! (`RedisKeys::queue_active`) so the next fan can come in.

use serde::{Deserialize, Serialize};
use shared::{
    ids::{EventId, UserId},
    tokens::{AdmissionClaims, TokenError, TokenKeys},
};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{AppState, accounts::audit, events::EventError, venues::Actor};

/// The header that carries the admission token.
pub const ADMISSION_HEADER: &str = "x-admission-token";

/// Bounds of `admit_per_minute` and `max_active`.
pub const MAX_RATE: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("this event is in high demand: join the waiting room and send its admission token")]
    AdmissionRequired,
    /// The admission token was sent but cannot be used; the text says why.
    #[error("the admission token is {0}")]
    InvalidAdmission(&'static str),
}

/// May `fan` shop `event` with this admission token? Only called for high-demand events.
pub fn check(
    keys: &TokenKeys,
    token: Option<&str>,
    fan: UserId,
    event: EventId,
) -> Result<(), GateError> {
    let token = token
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(GateError::AdmissionRequired)?;
    let claims = keys
        .verify::<AdmissionClaims>(token)
        .map_err(|err| match err {
            TokenError::Expired => GateError::InvalidAdmission("expired"),
            _ => GateError::InvalidAdmission("not valid"),
        })?
        .claims;
    if claims.sub != fan {
        return Err(GateError::InvalidAdmission("issued to another fan"));
    }
    if claims.evt != event {
        return Err(GateError::InvalidAdmission("for another event"));
    }
    Ok(())
}

/// What the organizer sets with `PUT /api/events/{id}/demand-mode`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandMode {
    /// Fans need an admission token from the waiting room to hold and register.
    pub high_demand: bool,
    /// Fans the waiting room admits per minute, 1 to 1,000,000.
    pub admit_per_minute: i64,
    /// Fans shopping at once, at most; 1 to 1,000,000.
    pub max_active: i64,
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
    let admit_per_minute = rate("admit_per_minute", mode.admit_per_minute)?;
    let max_active = rate("max_active", mode.max_active)?;

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
    sqlx::query(
        "UPDATE events SET high_demand = $2, admit_per_minute = $3, max_active = $4,
                           updated_at = now()
         WHERE id = $1",
    )
    .bind(event)
    .bind(mode.high_demand)
    .bind(admit_per_minute)
    .bind(max_active)
    .execute(&mut *tx)
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
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    shared::cache::redis::cmd("HSET")
        .arg(state.redis_keys.queue_gate(event))
        .arg("high_demand")
        .arg(if mode.high_demand { "1" } else { "0" })
        .arg("admit_per_minute")
        .arg(admit_per_minute)
        .arg("max_active")
        .arg(max_active)
        .arg("sale_opens_at_ms")
        .arg(unix_ms(row.sale_opens_at))
        .arg("updated_at_ms")
        .arg(now_ms)
        .query_async::<()>(&mut state.redis.conn())
        .await
        .map_err(|err| anyhow::Error::new(err).context("writing the waiting room's gate"))?;
    tx.commit().await?;
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

/// The fan's purchase is done: free their place among the active shoppers. Best effort (the
/// admission expires anyway); a failure is logged, never returned.
pub async fn leave_active(state: &AppState, event: EventId, fan: UserId) {
    let removed = shared::cache::redis::cmd("ZREM")
        .arg(state.redis_keys.queue_active(event))
        .arg(fan.to_string())
        .query_async::<i64>(&mut state.redis.conn())
        .await;
    if let Err(err) = removed {
        tracing::warn!(event.id = %event, user.id = %fan, error = %err,
            "could not remove the fan from the active shoppers");
    }
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::tokens::{AccessClaims, KeyPurpose};
    use uuid::Uuid;

    use super::*;

    fn admission(keys: &TokenKeys, fan: UserId, event: EventId) -> String {
        keys.sign(
            AdmissionClaims {
                sub: fan,
                evt: event,
                jti: Uuid::new_v4(),
            },
            Duration::from_secs(60),
        )
        .expect("signs")
    }

    #[test]
    fn each_bad_token_says_why() {
        let keys = TokenKeys::generate(KeyPurpose::Admission);
        let (fan, event) = (UserId::new(), EventId::new());
        let good = admission(&keys, fan, event);
        assert_eq!(check(&keys, Some(&good), fan, event), Ok(()));
        assert_eq!(
            check(&keys, None, fan, event),
            Err(GateError::AdmissionRequired)
        );
        assert_eq!(
            check(&keys, Some("  "), fan, event),
            Err(GateError::AdmissionRequired)
        );
        assert_eq!(
            check(&keys, Some(&good), UserId::new(), event),
            Err(GateError::InvalidAdmission("issued to another fan"))
        );
        assert_eq!(
            check(&keys, Some(&good), fan, EventId::new()),
            Err(GateError::InvalidAdmission("for another event"))
        );
        let old = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let expired = keys
            .sign_at(
                AdmissionClaims {
                    sub: fan,
                    evt: event,
                    jti: Uuid::new_v4(),
                },
                old,
                Duration::from_secs(60),
            )
            .expect("signs");
        assert_eq!(
            check(&keys, Some(&expired), fan, event),
            Err(GateError::InvalidAdmission("expired"))
        );
        let other = TokenKeys::generate(KeyPurpose::Admission);
        assert_eq!(
            check(&keys, Some(&admission(&other, fan, event)), fan, event),
            Err(GateError::InvalidAdmission("not valid"))
        );
        // Same key, wrong audience.
        let access = keys
            .sign(
                AccessClaims {
                    sub: fan,
                    role: shared::domain::Role::Fan,
                },
                Duration::from_secs(60),
            )
            .expect("signs");
        assert_eq!(
            check(&keys, Some(&access), fan, event),
            Err(GateError::InvalidAdmission("not valid"))
        );
        assert_eq!(
            check(&keys, Some("garbage"), fan, event),
            Err(GateError::InvalidAdmission("not valid"))
        );
    }

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
