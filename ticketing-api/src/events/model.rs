//! What clients send (a new event, a patch) and what they get (an event, a list entry): the
//! request and response types of `/api/events`, with their OpenAPI schemas. No I/O here; the
//! checks live in `validate.rs`, the rows and SQL in `store.rs` and `search.rs`.

use serde::{Deserialize, Serialize};
use shared::ids::{ClassId, EventId, UserId, VenueId};
use time::OffsetDateTime;
use utoipa::ToSchema;

// --- what clients send -------------------------------------------------------------------

/// An event to create.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewEvent {
    /// 1 to 200 characters.
    pub title: String,
    /// At most 10,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// One of your venues (any venue for an admin; the event then belongs to its organizer).
    pub venue_id: VenueId,
    /// RFC 3339, in the future.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// RFC 3339, at or before `starts_at`; may be in the past (on sale at once).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub sale_opens_at: OffsetDateTime,
    /// 1 to 20 classes; every seat of the venue must end up in exactly one.
    pub classes: Vec<NewClass>,
    /// 30 to 3600, default 600.
    #[serde(default)]
    pub hold_seconds: Option<i64>,
    /// 1 to 50, default 6.
    #[serde(default)]
    pub max_seats_per_order: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NewClass {
    /// 1 to 100 characters, unique in the event.
    pub name: String,
    /// Minor units, 0 to 100,000,000.
    pub price: i64,
    /// ISO 4217, the same for every class of the event.
    pub currency: String,
    /// Venue sections this class takes, best first. Absent or empty: the seats left over.
    #[serde(default)]
    pub sections: Option<Vec<String>>,
}

/// What an organizer may change. Fields left out stay as they are; the venue, sections and
/// classes never change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_opens_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub hold_seconds: Option<i64>,
    #[serde(default)]
    pub max_seats_per_order: Option<i64>,
    /// New prices, only while nothing is sold.
    #[serde(default)]
    pub classes: Option<Vec<ClassPrice>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassPrice {
    pub id: ClassId,
    pub price: i64,
}

// --- what clients get --------------------------------------------------------------------

/// Computed from the times and `cancelled_at`, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Before `sale_opens_at`.
    Scheduled,
    /// Between `sale_opens_at` and `starts_at`.
    OnSale,
    Cancelled,
    /// After `starts_at`.
    Finished,
}

impl EventStatus {
    pub fn at(
        now: OffsetDateTime,
        sale_opens_at: OffsetDateTime,
        starts_at: OffsetDateTime,
        cancelled_at: Option<OffsetDateTime>,
    ) -> Self {
        if cancelled_at.is_some() {
            Self::Cancelled
        } else if now >= starts_at {
            Self::Finished
        } else if now >= sale_opens_at {
            Self::OnSale
        } else {
            Self::Scheduled
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VenueRef {
    pub id: VenueId,
    pub name: String,
    pub city: String,
    /// `grid` or `svg`: whether the venue has a drawing at `/api/venues/{id}/layout.svg`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketClass {
    pub id: ClassId,
    pub name: String,
    /// Minor units of `currency`.
    pub price: i64,
    pub currency: String,
    /// The venue sections this class got, best first.
    pub sections: Vec<String>,
    /// 0-based, request order; also the order of the classes' `idx` ranges.
    pub position: i32,
    /// How many seats the class has.
    pub capacity: i64,
}

/// Per-class seat counts. `capacity` is fixed at creation; the live counts (free, held,
/// sold) are added next to it by the inventory code, from Redis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClassAvailability {
    pub class_id: ClassId,
    pub class: String,
    pub capacity: i64,
    /// Live counts from the seat inventory; absent if it could not be read just now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sold: Option<u32>,
}

/// An event with its classes, as anyone may see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    pub id: EventId,
    pub organizer_id: UserId,
    pub title: String,
    pub description: String,
    pub venue_id: VenueId,
    pub venue: VenueRef,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub sale_opens_at: OffsetDateTime,
    pub status: EventStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancelled_at: Option<OffsetDateTime>,
    /// Seats in the event (the venue's capacity).
    pub capacity: i32,
    /// The one currency of every class.
    pub currency: String,
    pub hold_seconds: i32,
    pub max_seats_per_order: i32,
    pub high_demand: bool,
    pub admit_per_minute: i32,
    pub max_active: i32,
    pub classes: Vec<TicketClass>,
    /// One entry per class, in class order.
    pub availability: Vec<ClassAvailability>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// An event in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventSummary {
    pub id: EventId,
    pub title: String,
    pub venue: VenueRef,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub sale_opens_at: OffsetDateTime,
    pub status: EventStatus,
    pub capacity: i32,
    pub high_demand: bool,
    /// The cheapest class's price, minor units of `currency`.
    pub price_from: i64,
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    #[test]
    fn status_follows_the_clock_and_cancellation() {
        let now = OffsetDateTime::now_utc();
        let hour = Duration::hours(1);
        assert_eq!(
            EventStatus::at(now, now + hour, now + 2 * hour, None),
            EventStatus::Scheduled
        );
        assert_eq!(
            EventStatus::at(now, now - hour, now + hour, None),
            EventStatus::OnSale
        );
        assert_eq!(
            EventStatus::at(now, now - 2 * hour, now - hour, None),
            EventStatus::Finished
        );
        assert_eq!(
            EventStatus::at(now, now - hour, now + hour, Some(now)),
            EventStatus::Cancelled
        );
    }
}
