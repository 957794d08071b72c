//! The high-demand gate's admission, as the purchase path meets it: who may shop an event in
//! high demand, and spending that right on an order. The waiting room grants admissions; the
//! ticketing API checks them on holds and registrations; a booking spends one.
//!
//! A fan's *live admission* is checked in two parts:
//!
//! - the admission token (signed by the waiting room, verified with its public key, no network
//!   hop) must name them and the event: it says who is asking ([`check`]);
//! - the waiting room's set of admitted fans (`RedisKeys::queue_active`: user id scored by the
//!   end of their admission, Unix ms) must hold them *now*: it says whether they may. This set
//!   is the truth: only the waiting room's admission tick adds to it, and only while the gate is
//!   on, so a token handed out while the gate was off buys nothing once it is on. A hold checks
//!   it inside the inventory script; a queued registration spends it in the same script call
//!   that extends its hold (`Inventory::extend_spending`): one admission makes one order.

use std::sync::LazyLock;

use redis::Script;

use crate::{
    cache::{Redis, RedisKeys, redis},
    ids::{EventId, UserId},
    tokens::{AdmissionClaims, TokenError, TokenKeys},
};

/// Why a fan may not shop a high-demand event now.
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

/// Does this admission token name `fan` and `event`? The token half of the gate; the admitted
/// set says whether they may shop now.
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

/// A spent admission, to give back with [`restore`] if the order it paid for was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "give it back with `restore` if the order is not accepted"]
pub struct Spent {
    pub event: EventId,
    pub fan: UserId,
    /// When the admission would have ended (Unix ms).
    pub ends_at_ms: i64,
}

/// Takes the fan out of the admitted set if their admission is live, atomically: returns when
/// it would have ended (Unix ms), or nothing if there was none to spend.
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

/// The fan bought without the gate (it was off by the time they registered): an admission they
/// still hold is spent all the same, so it cannot buy again if the gate comes back on. Best
/// effort (an admission ends by itself): a failure is logged, never returned.
pub async fn spend_if_any(redis: &Redis, keys: &RedisKeys, event: EventId, fan: UserId) {
    let spent: Result<Option<String>, _> = SPEND
        .key(keys.queue_active(event))
        .arg(fan.to_string())
        .invoke_async(&mut redis.conn())
        .await;
    if let Err(err) = spent {
        tracing::warn!(event.id = %event, user.id = %fan, error = %err,
            "could not spend the fan's admission");
    }
}

/// Gives a spent admission back (the order it paid for was not accepted), unless it has ended
/// meanwhile. Best effort: on failure the fan rejoins the waiting room.
pub async fn restore(redis: &Redis, keys: &RedisKeys, spent: Spent) {
    let restored = redis::cmd("ZADD")
        .arg(keys.queue_active(spent.event))
        .arg("NX")
        .arg(spent.ends_at_ms)
        .arg(spent.fan.to_string())
        .query_async::<i64>(&mut redis.conn())
        .await;
    if let Err(err) = restored {
        tracing::warn!(event.id = %spent.event, user.id = %spent.fan, error = %err,
            "could not give an unused admission back");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::tokens::{AccessClaims, KeyPurpose};

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
                    role: crate::domain::Role::Fan,
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
}
