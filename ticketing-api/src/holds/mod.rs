//! Holds: a fan's short, exclusive claim on seats while they check out.
//!
//! The rules (sale window, seats per order, the event's hold length) are checked here, read
//! from memory and forgotten as soon as they change ([`cache`]); the claim itself is one
//! atomic, owner-checked step in the Redis inventory (`shared::inventory`). One live hold per
//! fan per event: a new hold replaces the previous one, so a fan can change their mind without
//! first releasing — and can never hoard.

pub mod cache;

use std::{collections::HashSet, time::Duration};

use serde::Serialize;
use shared::{
    ids::{ClassId, EventId, HoldId, SeatId, UserId},
    inventory::{Catalog, HoldOutcome, HoldState, HoldTerms, InventoryError},
    messaging::ClassPrice,
};
use sqlx::PgPool;
use time::OffsetDateTime;

pub use self::cache::RulesCache;
use crate::AppState;

/// What a fan asks to hold.
#[derive(Debug, Clone)]
pub enum HoldRequest {
    /// Exactly these seats, all or nothing.
    Seats(Vec<SeatId>),
    /// The best `quantity` seats of a class.
    Best { class: String, quantity: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("no such event")]
    EventNotFound,
    #[error("this event was cancelled")]
    EventCancelled,
    #[error("the sale has not opened yet")]
    SaleNotOpen,
    #[error("the sale is over")]
    SaleClosed,
    #[error("choose at least one seat")]
    NoSeats,
    #[error("at most {0} seats per order")]
    TooManySeats(i32),
    #[error("a seat is listed twice")]
    DuplicateSeats,
    #[error("these seats are not part of this event")]
    UnknownSeats(Vec<SeatId>),
    #[error("this event has no class named {0:?}")]
    UnknownClass(String),
    #[error("some of these seats were just taken")]
    SeatsUnavailable(Vec<SeatId>),
    #[error("only {free} seats of this class are free")]
    NotEnoughSeats { free: u64 },
    #[error("no such hold")]
    HoldNotFound,
    /// High-demand mode: no admission token, or one that cannot be used.
    #[error(transparent)]
    Gate(#[from] crate::gate::GateError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The event's rules for holds and registrations, with its classes' prices of the moment (a
/// queued registration's quote). Read through [`RulesCache`], which forgets them when the
/// organizer changes them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SaleRules {
    pub hold_seconds: i32,
    pub max_seats_per_order: i32,
    pub sale_opens_at: OffsetDateTime,
    pub starts_at: OffsetDateTime,
    pub cancelled_at: Option<OffsetDateTime>,
    pub high_demand: bool,
    class_ids: Vec<ClassId>,
    class_prices: Vec<i64>,
}

impl SaleRules {
    /// The rules as Postgres has them now (one query). Requests go through [`RulesCache::get`].
    pub async fn load(db: &PgPool, event: EventId) -> Result<Self, HoldError> {
        sqlx::query_as::<_, SaleRules>(
            "SELECT hold_seconds, max_seats_per_order, sale_opens_at, starts_at, cancelled_at,
                    high_demand,
                    ARRAY(SELECT id FROM ticket_classes WHERE event_id = e.id
                          ORDER BY position) AS class_ids,
                    ARRAY(SELECT price_minor FROM ticket_classes WHERE event_id = e.id
                          ORDER BY position) AS class_prices
             FROM events e WHERE id = $1",
        )
        .bind(event)
        .fetch_optional(db)
        .await?
        .ok_or(HoldError::EventNotFound)
    }

    /// Is the sale open right now?
    pub fn check_open(&self) -> Result<(), HoldError> {
        let now = OffsetDateTime::now_utc();
        if self.cancelled_at.is_some() {
            Err(HoldError::EventCancelled)
        } else if now < self.sale_opens_at {
            Err(HoldError::SaleNotOpen)
        } else if now >= self.starts_at {
            Err(HoldError::SaleClosed)
        } else {
            Ok(())
        }
    }

    /// The high-demand gate's first half: the token must name this fan and event (the mode
    /// comes with the rules, so a switch counts as soon as the cache forgot them). The second half, whether the fan
    /// is admitted now, is checked with the seats ([`Self::hold_terms`]). Low-demand events
    /// ignore the token entirely.
    pub fn check_admission(
        &self,
        state: &AppState,
        admission: Option<&str>,
        fan: UserId,
        event: EventId,
    ) -> Result<(), HoldError> {
        if self.high_demand {
            crate::gate::check(&state.keys.admission, admission, fan, event)?;
        }
        Ok(())
    }

    /// Every class's price as it is now: what a registration accepted now will charge.
    pub fn quote(&self) -> Vec<ClassPrice> {
        self.class_ids
            .iter()
            .zip(&self.class_prices)
            .map(|(&class_id, &price_minor)| ClassPrice {
                class_id,
                price_minor,
            })
            .collect()
    }

    /// The terms of a new hold: the event's hold length, behind the gate in high demand (the
    /// fan must be admitted at that moment, checked with the seats, in one step).
    pub fn hold_terms(&self) -> HoldTerms {
        let ttl = Duration::from_secs(u64::try_from(self.hold_seconds).unwrap_or(600));
        if self.high_demand {
            HoldTerms::gated(ttl)
        } else {
            HoldTerms::from(ttl)
        }
    }
}

/// A hold as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlacedHold {
    pub hold_id: HoldId,
    pub event_id: EventId,
    pub seat_ids: Vec<SeatId>,
    pub seats: Vec<HeldSeat>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeldSeat {
    pub id: SeatId,
    pub label: String,
    pub class: String,
}

fn describe(catalog: &Catalog, hold_id: HoldId, seats: &[u32], expires_at_ms: i64) -> PlacedHold {
    let seats: Vec<HeldSeat> = seats
        .iter()
        .filter_map(|&idx| catalog.seat(idx))
        .map(|seat| HeldSeat {
            id: seat.id,
            label: seat.label.clone(),
            class: catalog
                .classes
                .get(usize::from(seat.class))
                .map(|class| class.name.clone())
                .unwrap_or_default(),
        })
        .collect();
    PlacedHold {
        hold_id,
        event_id: catalog.event_id,
        seat_ids: seats.iter().map(|seat| seat.id).collect(),
        seats,
        expires_at: OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(expires_at_ms) * 1_000_000,
        )
        .unwrap_or_else(|_| OffsetDateTime::now_utc()),
    }
}

/// Places a hold for `fan`. In high-demand mode `admission` (the `X-Admission-Token`) must
/// admit this fan to this event; otherwise it is ignored.
pub async fn place(
    state: &AppState,
    event: EventId,
    fan: UserId,
    request: HoldRequest,
    admission: Option<&str>,
) -> Result<PlacedHold, HoldError> {
    let rules = state.rules.get(&state.db, event).await?;
    rules.check_open()?;
    rules.check_admission(state, admission, fan, event)?;
    let catalog = state
        .catalogs
        .get(&state.db, event)
        .await?
        .ok_or(HoldError::EventNotFound)?;
    let hold_id = HoldId::new();
    let terms = rules.hold_terms();
    let take = async {
        let outcome: Result<HoldOutcome, HoldError> = match request {
            HoldRequest::Seats(seat_ids) => {
                let seats = resolve_seats(&catalog, &seat_ids, rules.max_seats_per_order)?;
                Ok(state
                    .inventory
                    .hold_seats(&catalog, hold_id, fan, terms, &seats)
                    .await?)
            }
            HoldRequest::Best { class, quantity } => {
                check_count(quantity as usize, rules.max_seats_per_order)?;
                let class = catalog
                    .class_named(&class)
                    .ok_or(HoldError::UnknownClass(class))?
                    .position;
                Ok(state
                    .inventory
                    .hold_best(&catalog, hold_id, fan, terms, class, quantity)
                    .await?)
            }
        };
        outcome
    };
    // The hold's event index goes out with the hold itself (one round trip on the shared
    // connection, not two): an index entry for a hold that was refused names no hold and expires.
    let (outcome, indexed) = tokio::join!(take, remember_event(state, hold_id, event, terms.ttl));
    let outcome = outcome?;
    match outcome {
        HoldOutcome::Held {
            expires_at_ms,
            seats,
        } => {
            indexed?;
            metrics::counter!("holds_placed_total").increment(1);
            Ok(describe(&catalog, hold_id, &seats, expires_at_ms))
        }
        HoldOutcome::Taken(taken) => {
            metrics::counter!("holds_refused_total", "reason" => "taken").increment(1);
            Err(HoldError::SeatsUnavailable(
                taken
                    .iter()
                    .filter_map(|&idx| catalog.seat(idx))
                    .map(|seat| seat.id)
                    .collect(),
            ))
        }
        HoldOutcome::NotEnough { free } => {
            metrics::counter!("holds_refused_total", "reason" => "not_enough").increment(1);
            Err(HoldError::NotEnoughSeats { free })
        }
        HoldOutcome::NotAdmitted => {
            metrics::counter!("holds_refused_total", "reason" => "not_admitted").increment(1);
            Err(crate::gate::GateError::NotAdmitted.into())
        }
    }
}

fn check_count(count: usize, max: i32) -> Result<(), HoldError> {
    if count == 0 {
        return Err(HoldError::NoSeats);
    }
    if count > usize::try_from(max).unwrap_or(0) {
        return Err(HoldError::TooManySeats(max));
    }
    Ok(())
}

/// The requested seats as idx, after the per-order limit, duplicates and membership checks.
fn resolve_seats(catalog: &Catalog, seat_ids: &[SeatId], max: i32) -> Result<Vec<u32>, HoldError> {
    check_count(seat_ids.len(), max)?;
    let distinct: HashSet<&SeatId> = seat_ids.iter().collect();
    if distinct.len() != seat_ids.len() {
        return Err(HoldError::DuplicateSeats);
    }
    let unknown: Vec<SeatId> = seat_ids
        .iter()
        .filter(|id| catalog.idx_of(**id).is_none())
        .copied()
        .collect();
    if !unknown.is_empty() {
        return Err(HoldError::UnknownSeats(unknown));
    }
    Ok(seat_ids
        .iter()
        .filter_map(|id| catalog.idx_of(*id))
        .collect())
}

/// `DELETE /api/holds/{id}` names no event: keep the hold's event beside it, as long as it lives.
async fn remember_event(
    state: &AppState,
    hold: HoldId,
    event: EventId,
    ttl: Duration,
) -> Result<(), HoldError> {
    shared::cache::redis::cmd("SET")
        .arg(state.redis_keys.hold_event(hold))
        .arg(event.to_string())
        .arg("PX")
        // Past the hold's own life, so a registration that extends it still finds it.
        .arg((ttl + Duration::from_secs(3600)).as_millis().to_string())
        .query_async::<()>(&mut state.redis.conn())
        .await
        .map_err(InventoryError::from)?;
    Ok(())
}

/// The event a hold belongs to, if the hold is known.
pub async fn event_of(state: &AppState, hold: HoldId) -> Result<Option<EventId>, HoldError> {
    let event: Option<String> = shared::cache::redis::cmd("GET")
        .arg(state.redis_keys.hold_event(hold))
        .query_async(&mut state.redis.conn())
        .await
        .map_err(InventoryError::from)?;
    Ok(event.and_then(|id| id.parse().ok()))
}

/// Releases the fan's own live hold; anyone else's is "not found".
pub async fn release(state: &AppState, hold: HoldId, fan: UserId) -> Result<(), HoldError> {
    let event = event_of(state, hold)
        .await?
        .ok_or(HoldError::HoldNotFound)?;
    if state.inventory.release(event, hold, fan).await? {
        Ok(())
    } else {
        Err(HoldError::HoldNotFound)
    }
}

/// The fan's own live hold.
pub async fn get(state: &AppState, hold: HoldId, fan: UserId) -> Result<PlacedHold, HoldError> {
    let event = event_of(state, hold)
        .await?
        .ok_or(HoldError::HoldNotFound)?;
    let catalog = state
        .catalogs
        .get(&state.db, event)
        .await?
        .ok_or(HoldError::HoldNotFound)?;
    // Extending by zero never shortens: it reads the hold, owner-checked.
    match state
        .inventory
        .extend(event, hold, fan, Duration::ZERO)
        .await?
    {
        HoldState::Live {
            expires_at_ms,
            seats,
        } => Ok(describe(&catalog, hold, &seats, expires_at_ms)),
        HoldState::Expired | HoldState::NotFound => Err(HoldError::HoldNotFound),
    }
}
