//! The high-demand gate: the organizer's demand mode, its Redis mirror for the waiting room,
//! and the admission check on holds and registrations. No axum types here.
//!
//! Postgres (`events.high_demand`, `admit_per_minute`, `max_active`) is the source of truth;
//! holds and registrations read `high_demand` from it on every request (`SaleRules::load`), so
//! a change takes effect on the very next request. The waiting room reads the mirror: the gate
//! hash of `shared::gate` (demand mode, rate, cap, sale opening), written in one HSET.
//!
//! While the mode is on, a fan needs a *live admission*, checked in two parts:
//!
//! - the admission token (signed by the waiting room, verified here with its public key, no
//!   network hop) must name them and the event: it says who is asking;
//! - the waiting room's set of admitted fans (`RedisKeys::queue_active`: user id scored by the
//!   end of their admission) must hold them *now*: it says whether they may. This set is the
//!   truth. Only the waiting room's admission tick adds to it, and only while the gate is on, so
//!   a token handed out while the gate was off (a join answers `admitted` at once then) buys
//!   nothing once it is on. A hold checks it inside the inventory script (one round trip, see
//!   `shared::inventory::HoldTerms`); a registration *spends* it ([`spend`]): the fan leaves
//!   the set in the same step that checks them, so one admission makes one order, and the room
//!   may let the next fan in. A retry of that registration finds its booking before any check.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use shared::{
    cache::redis::{self, Script},
    gate::GateSettings,
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
    /// The token is sound but the fan is not admitted now: their admission was spent on a
    /// purchase, has ended, or was handed out while the gate was off.
    #[error("your admission is used or over: take a place in the waiting room again")]
    NotAdmitted,
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

/// Takes the fan out of the admitted set if their admission is live, atomically: returns when
/// it would have ended (Unix ms), or `None` if there was none to spend.
static SPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local t = redis.call('TIME')
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
         local ends = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
         if not ends or ends <= now then return false end
         redis.call('ZREM', KEYS[1], ARGV[1])
         return string.format('%d', ends)",
    )
});

/// A spent admission, to give back if the purchase it paid for could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "give it back with `restore` if the purchase is not accepted"]
pub struct Spent {
    event: EventId,
    fan: UserId,
    ends_at_ms: i64,
}

/// Spends the fan's live admission to `event`: one admission, one order. `NotAdmitted` when
/// there is none (already spent, over, or never granted while the gate was on).
pub async fn spend(state: &AppState, event: EventId, fan: UserId) -> Result<Spent, SpendError> {
    let ends: Option<String> = SPEND
        .key(state.redis_keys.queue_active(event))
        .arg(fan.to_string())
        .invoke_async(&mut state.redis.conn())
        .await?;
    let ends_at_ms = ends
        .and_then(|ms| ms.parse().ok())
        .ok_or(SpendError::Gate(GateError::NotAdmitted))?;
    Ok(Spent {
        event,
        fan,
        ends_at_ms,
    })
}

/// Why an admission could not be spent.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Gives a spent admission back (the purchase it paid for was not accepted), unless it has
/// ended meanwhile. Best effort: on failure the fan rejoins the waiting room.
pub async fn restore(state: &AppState, spent: Spent) {
    let restored = redis::cmd("ZADD")
        .arg(state.redis_keys.queue_active(spent.event))
        .arg("NX")
        .arg(spent.ends_at_ms)
        .arg(spent.fan.to_string())
        .query_async::<i64>(&mut state.redis.conn())
        .await;
    if let Err(err) = restored {
        tracing::warn!(event.id = %spent.event, user.id = %spent.fan, error = %err,
            "could not give an unused admission back");
    }
}

/// The fan bought without the gate (it was off by the time they registered): an admission
/// they still hold is spent all the same, so it cannot buy again if the gate comes back on.
/// Best effort (an admission ends by itself); a failure is logged, never returned.
pub async fn spend_if_any(state: &AppState, event: EventId, fan: UserId) {
    if let Err(SpendError::Redis(err)) = spend(state, event, fan).await {
        tracing::warn!(event.id = %event, user.id = %fan, error = %err,
            "could not spend the fan's admission");
    }
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
