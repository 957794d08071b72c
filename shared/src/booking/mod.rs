//! A booking's whole life, from a fan's hold to its end state: the one place to read it.
//!
//! The API and the registration worker are thin callers of [`Bookings`]; they bring the
//! request (or the message) and turn the answer into HTTP (or an ack). In order:
//!
//! 1. **Hold** — the fan holds seats in Redis (`crate::inventory`, not here), behind the gate
//!    in high demand (`crate::admission`).
//! 2. **Replay or register** — a retry of a registration answers with the booking its first
//!    attempt made, before any check ([`Bookings::find_previous`] in Postgres; in the queued
//!    path also the claims in Redis). Then the event's demand mode picks the path
//!    ([`register`]):
//!    - **simple** ([`Bookings::book_now`], low demand): the hold is checked and kept alive,
//!      the rows are written in the request ([`write`]), then the seats are marked sold; 201.
//!    - **queued** ([`Bookings::queue`], high demand): *claim* — the hold and the
//!      Idempotency-Key are claimed for a new booking id together with its pending marker, in
//!      one script call ([`claim`]); *keep and spend* — the hold is extended for the worker and
//!      the fan's admission spent, in one inventory call; *publish* — the
//!      `ProcessBookingCommand`, with the prices quoted now, under publisher confirms; then the
//!      marker says "published"; 202. Three Redis round trips. A failure after the claim
//!      releases it and gives the admission back, so a retry can succeed at once.
//! 3. **Persist** ([`Bookings::persist`], in the worker, [`persist`]) — commands in batches,
//!    one SQL statement each: it decides every command in batch order and writes the batch's
//!    bookings, tickets and outbox rows together; each becomes confirmed, [`Rejection`]-ed,
//!    already done (a redelivery), or dropped (the API took it back with a 503, or the event
//!    is gone). A statement beaten by another writer's commit is run again on a fresh
//!    snapshot.
//! 4. **Settle** ([`Bookings::settle`]) — after the commit and the ack: seats sold in Redis,
//!    markers gone. The outbox relay (the worker's `relay`) tells the notifier.
//! 5. **Dead letter** ([`persist::end_dead_lettered`]) — a command that failed on every
//!    delivery ends `rejected` with [`Rejection::ProcessingFailed`], in the same transaction
//!    as the dead letter's record; then [`Bookings::settle_dead_lettered`].
//!
//! Postgres is the final word throughout: `UNIQUE (event_id, seat_id)` on tickets refuses a
//! seat sold twice, whatever Redis said; Redis claims and markers only make retries cheap and
//! answers honest while a command is in flight.

pub mod claim;
pub mod persist;
pub mod register;
pub mod write;

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;

pub use self::{
    claim::{Claims, PendingBooking},
    persist::{Outcome, Persisted},
    register::{QueuedRequest, RegisterError, Registration, Request},
};
use crate::{
    cache::{Redis, RedisKeys},
    ids::{BookingId, EventId, HoldId, UserId},
    inventory::{CatalogCache, Inventory},
    tokens::TokenKeys,
};

/// How long a registration (in the API's request, or in the worker's batch) keeps the hold
/// alive while it writes the booking.
pub const WORK_GRACE: Duration = Duration::from_secs(30);

/// How long a queued registration keeps the hold alive, for a worker to re-check it.
pub const QUEUE_GRACE: Duration = Duration::from_secs(120);

/// Why a booking was rejected: the `reason` of a `rejected` booking and of its
/// `booking.rejected` event, and the error code of the API's 409 for the same cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The hold had expired, or was not the fan's, when the booking was written.
    HoldExpired,
    /// Postgres refused a seat as sold (`UNIQUE (event_id, seat_id)`).
    SeatsAlreadySold,
    EventCancelled,
    /// Another booking owns this hold or this Idempotency-Key.
    Duplicate,
    /// The command failed on every delivery and was dead-lettered.
    ProcessingFailed,
}

impl Rejection {
    /// The code fans and clients read.
    pub const fn code(self) -> &'static str {
        match self {
            Self::HoldExpired => "hold_expired",
            Self::SeatsAlreadySold => "seats_already_sold",
            Self::EventCancelled => "event_cancelled",
            Self::Duplicate => "duplicate_registration",
            Self::ProcessingFailed => "processing_failed",
        }
    }

    /// The rejection whose [`code`](Self::code) this is.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::HoldExpired,
            Self::SeatsAlreadySold,
            Self::EventCancelled,
            Self::Duplicate,
            Self::ProcessingFailed,
        ]
        .into_iter()
        .find(|why| why.code() == code)
    }
}

/// The resources a booking's life needs; cheap to clone (pools and `Arc`s inside).
#[derive(Clone)]
pub struct Bookings {
    pub db: PgPool,
    pub inventory: Inventory,
    pub catalogs: CatalogCache,
    pub claims: Claims,
    redis: Redis,
    keys: RedisKeys,
    ticket_keys: Arc<TokenKeys>,
    starts: persist::EventStarts,
}

impl std::fmt::Debug for Bookings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bookings").finish_non_exhaustive()
    }
}

impl Bookings {
    /// `inventory` and `catalogs` are the process's own (shared with its hold path);
    /// `ticket_keys` sign the tickets' QR codes.
    pub fn new(
        db: PgPool,
        redis: Redis,
        keys: RedisKeys,
        inventory: Inventory,
        catalogs: CatalogCache,
        ticket_keys: Arc<TokenKeys>,
    ) -> Self {
        Self {
            claims: Claims::new(redis.clone(), keys.clone()),
            db,
            inventory,
            catalogs,
            redis,
            keys,
            ticket_keys,
            starts: persist::EventStarts::default(),
        }
    }

    /// With an inventory handle and a catalog cache of its own: for a process without a hold
    /// path of its own (the registration worker, benchmarks).
    pub fn standalone(db: PgPool, redis: Redis, keys: RedisKeys, ticket_keys: TokenKeys) -> Self {
        let inventory = Inventory::new(db.clone(), redis.clone(), keys.clone());
        Self::new(
            db,
            redis,
            keys,
            inventory,
            CatalogCache::new(),
            Arc::new(ticket_keys),
        )
    }

    /// Whether Postgres and Redis answer: a failing batch waits out an outage without spending
    /// its messages' delivery attempts.
    pub async fn reachable(&self) -> bool {
        crate::db::ping(&self.db).await && crate::cache::ping(&self.redis).await
    }

    /// Marks a written booking's seats sold in Redis and drops its hold. Postgres has spoken:
    /// should this fail, the seats are still sold (Postgres refuses them to anyone else) and
    /// the inventory is corrected when it is next rebuilt. Failures are logged.
    async fn mark_sold(
        &self,
        booking: BookingId,
        event: EventId,
        hold: HoldId,
        fan: UserId,
        seats: &[u32],
    ) {
        let catalog = match self.catalogs.get(&self.db, event).await {
            Ok(Some(catalog)) => catalog,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(booking.id = %booking, error = %err,
                    "could not load the event's catalog");
                return;
            }
        };
        if let Err(err) = self.inventory.convert(&catalog, hold, fan, seats).await {
            tracing::error!(booking.id = %booking, error = %err,
                "could not mark seats sold in Redis");
        }
    }
}
