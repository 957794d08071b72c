//! The queued registration's claim: one booking per hold and per Idempotency-Key, decided in
//! Redis before anything is published, so that a retry answers with the booking the first
//! attempt made instead of queueing a second one (the idempotency decision: claim, or replay).
//!
//! Every step is one call of `claim.lua` on the fan's two keys (`RedisKeys::booking_claims`,
//! `RedisKeys::bookings_pending`, one hash tag): the claims and the booking's marker are
//! written together or not at all, and a registration that is not queued takes both back
//! ([`Claim::release`]), leaving nothing behind that would make a retry wait.

use std::sync::LazyLock;

use redis::Script;
use time::OffsetDateTime;

use crate::{
    cache::{Redis, RedisKeys, redis},
    ids::{BookingId, EventId, HoldId, UserId},
    reply::{Reply, ReplyError},
};

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("claim.lua")));

/// How long claims and markers live in Redis: far longer than any queue lag. A claim outlives
/// its marker, so that a retry a day later still finds the booking its first attempt made.
pub const PENDING_TTL_SECS: u64 = 86_400;

/// The Redis marker of a queued booking until a worker has written its row: whose it is, and
/// whether the broker has confirmed it yet. A worker persists a command only while its marker
/// exists (or its row does): the API takes the marker back when it answers 503.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingBooking {
    pub user_id: UserId,
    pub event_id: EventId,
    pub hold_id: HoldId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `false` while the API waits for the broker's confirm.
    pub published: bool,
}

impl PendingBooking {
    fn encode(&self) -> String {
        serde_json::to_string(self).expect("ids, a time and a flag always encode")
    }
}

/// What one registration claims: the fan's hold and, when sent, their Idempotency-Key.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub event: EventId,
    pub fan: UserId,
    pub hold: HoldId,
    pub idempotency_key: Option<String>,
}

impl ClaimRequest {
    /// The claim fields, in the order an earlier booking is looked up: by key first (the fan's
    /// own word for "this purchase"), then by hold.
    fn fields(&self) -> Vec<String> {
        let by_key = self
            .idempotency_key
            .as_ref()
            .map(|key| format!("key:{key}"));
        by_key
            .into_iter()
            .chain(std::iter::once(format!("hold:{}", self.hold)))
            .collect()
    }
}

/// A booking an earlier attempt of the same registration made, as Redis knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    pub booking: BookingId,
    /// Its marker: `None` once a worker wrote it (or Redis lost it).
    pub marker: Option<PendingBooking>,
}

/// What the claim script found.
#[derive(Debug)]
pub enum Claimed {
    /// This registration owns the hold (and key) now, as `booking`.
    New(Claim),
    /// Nothing was claimed before, and nothing was claimed now (a look-up).
    Nothing,
    /// Earlier bookings hold some of the claims: what each field holds, in look-up order.
    Taken(Vec<Option<Earlier>>),
}

/// A claim this registration made. Dropping it leaves it in place (the booking was queued);
/// [`Claim::release`] takes it back.
#[derive(Debug)]
#[must_use = "a claim that is not queued must be released"]
pub struct Claim {
    pub booking: BookingId,
    marker: PendingBooking,
    idempotency_key: Option<String>,
    fields: Vec<String>,
}

impl Claim {
    /// The booking's marker as written: owner, event, hold, when the claim was made.
    pub fn marker(&self) -> &PendingBooking {
        &self.marker
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

/// The claims and markers of queued bookings in Redis.
#[derive(Debug, Clone)]
pub struct Claims {
    redis: Redis,
    keys: RedisKeys,
}

impl Claims {
    pub fn new(redis: Redis, keys: RedisKeys) -> Self {
        Self { redis, keys }
    }

    fn call(&self, fan: UserId) -> redis::ScriptInvocation<'static> {
        let mut invocation = SCRIPT.key(self.keys.booking_claims(fan));
        invocation.key(self.keys.bookings_pending(fan));
        invocation
    }

    /// Claims the request's hold and key for a new booking if each still holds what the caller
    /// saw there (`seen`, in look-up order; nothing when empty), or, with `look_only`, only
    /// says what holds them.
    pub async fn claim(
        &self,
        request: &ClaimRequest,
        look_only: bool,
        seen: &[Option<BookingId>],
    ) -> Result<Claimed, redis::RedisError> {
        let booking = BookingId::new();
        let marker = PendingBooking {
            user_id: request.fan,
            event_id: request.event,
            hold_id: request.hold,
            created_at: OffsetDateTime::now_utc(),
            published: false,
        };
        let fields = request.fields();
        let mut invocation = self.call(request.fan);
        invocation.arg("claim");
        // A look-up writes nothing: no booking id, no marker.
        if look_only {
            invocation.arg("").arg("");
        } else {
            invocation.arg(booking.to_string()).arg(marker.encode());
        }
        invocation.arg(PENDING_TTL_SECS);
        for (i, field) in fields.iter().enumerate() {
            let seen = seen.get(i).copied().flatten();
            invocation
                .arg(field)
                .arg(seen.map(|id| id.to_string()).unwrap_or_default());
        }
        let value: redis::Value = invocation.invoke_async(&mut self.redis.conn()).await?;
        let mut reply = Reply::new(&value).map_err(protocol)?;
        match reply.text().map_err(protocol)?.as_str() {
            "claimed" => Ok(Claimed::New(Claim {
                booking,
                marker,
                idempotency_key: request.idempotency_key.clone(),
                fields,
            })),
            "free" => Ok(Claimed::Nothing),
            "taken" => {
                let mut found = Vec::with_capacity(fields.len());
                while !reply.is_empty() {
                    let (held, marker) = (
                        reply.text().map_err(protocol)?,
                        reply.text().map_err(protocol)?,
                    );
                    found.push(held.parse().ok().map(|booking| Earlier {
                        booking,
                        marker: serde_json::from_str(&marker).ok(),
                    }));
                }
                Ok(Claimed::Taken(found))
            }
            _ => Err(protocol(reply.error("unexpected"))),
        }
    }

    /// The broker confirmed the claim's command: retries now answer "accepted", not "in
    /// progress". Harmless if it fails (retries say "in progress" until the worker is done).
    pub async fn mark_published(&self, claim: Claim) {
        let marker = PendingBooking {
            published: true,
            ..claim.marker
        };
        let done: Result<redis::Value, _> = self
            .call(marker.user_id)
            .arg("published")
            .arg(claim.booking.to_string())
            .arg(marker.encode())
            .invoke_async(&mut self.redis.conn())
            .await;
        if let Err(err) = done {
            tracing::warn!(booking.id = %claim.booking, error = %err,
                "could not mark the booking queued");
        }
    }

    /// Takes back a claim whose booking was not queued, so that a retry can queue it at once.
    /// Best effort: should Redis fail here too, the claim names a booking that is neither
    /// queued nor written, which the next attempt recognises as stale and takes over.
    pub async fn release(&self, claim: Claim) {
        let mut invocation = self.call(claim.marker.user_id);
        invocation.arg("release").arg(claim.booking.to_string());
        for field in &claim.fields {
            invocation.arg(field);
        }
        let released: Result<redis::Value, _> =
            invocation.invoke_async(&mut self.redis.conn()).await;
        if let Err(err) = released {
            tracing::warn!(booking.id = %claim.booking, error = %err,
                "could not release the claim of an unqueued registration");
        }
    }

    /// Writes the marker of a command published without a claim (benchmarks and tests that
    /// feed the workers directly): a worker persists a command only while its marker exists.
    pub async fn mark(
        &self,
        booking: BookingId,
        marker: &PendingBooking,
    ) -> Result<(), redis::RedisError> {
        let mut pipe = redis::pipe();
        let pending = self.keys.bookings_pending(marker.user_id);
        pipe.hset(&pending, booking.to_string(), marker.encode())
            .ignore()
            .expire(&pending, PENDING_TTL_SECS as i64)
            .ignore();
        pipe.query_async(&mut self.redis.conn()).await
    }

    /// The marker of `fan`'s queued `booking`, while a worker has yet to write it.
    pub async fn pending(
        &self,
        fan: UserId,
        booking: BookingId,
    ) -> Result<Option<PendingBooking>, redis::RedisError> {
        let raw: Option<String> = redis::cmd("HGET")
            .arg(self.keys.bookings_pending(fan))
            .arg(booking.to_string())
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(raw.and_then(|raw| serde_json::from_str(&raw).ok()))
    }
}

impl Claims {
    /// Whether each queued booking (fan, booking) still has its marker: one round trip.
    pub async fn are_pending(
        &self,
        queued: &[(UserId, BookingId)],
    ) -> Result<Vec<bool>, redis::RedisError> {
        let mut pipe = redis::pipe();
        for (fan, booking) in queued {
            pipe.hexists(self.keys.bookings_pending(*fan), booking.to_string());
        }
        pipe.query_async(&mut self.redis.conn()).await
    }

    /// Drops the markers of bookings a worker has written (or ended): one round trip. The
    /// claims stay, so that retries still find the booking. Failures are logged: a marker
    /// left behind expires with the fan's others, and its row answers first.
    pub async fn forget(&self, written: &[(UserId, BookingId)]) {
        if written.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (fan, booking) in written {
            pipe.hdel(self.keys.bookings_pending(*fan), booking.to_string())
                .ignore();
        }
        if let Err(err) = pipe.query_async::<()>(&mut self.redis.conn()).await {
            tracing::warn!(bookings = written.len(), error = %err,
                "could not drop the pending markers");
        }
    }
}

/// A `claim.lua` answer that does not fit, as the Redis error it amounts to.
fn protocol(err: ReplyError) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "claim.lua answered",
        err.to_string(),
    ))
}
