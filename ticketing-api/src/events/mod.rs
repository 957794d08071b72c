//! Events and their ticket classes: create (with the seat inventory, in one transaction),
//! read, search, update, cancel, delete. No axum types here; `routes::events` translates
//! [`EventError`] into HTTP.
//!
//! Rules this module keeps:
//! - Prices only come from ticket classes; one currency per event.
//! - Every seat of the venue belongs to exactly one class, and when `create` returns the seats
//!   exist, numbered in the order `seating` documents (a contract with the holds code).
//! - Only the event's organizer or an admin changes an event; anyone else is told it does not
//!   exist. Every change is audited in its own transaction.
//! - Class prices change only while nothing is sold; an event with bookings is never deleted
//!   (cancelled instead).
//! - The sale's opening moves only until the sale has opened, and a move reaches the waiting
//!   room's gate in the same step (a postponed sale neither shuffles nor admits at the old time).

pub mod seating;

use serde::{Deserialize, Serialize};
use shared::{
    domain::Currency,
    ids::{ClassId, EventId, SeatId, UserId, VenueId},
};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState,
    accounts::audit,
    venues::{self, Actor},
};
use seating::{ClassSpec, PlanError};

pub const MAX_CLASSES: usize = 20;
pub const MAX_PRICE: i64 = 100_000_000;
pub const DEFAULT_HOLD_SECONDS: i64 = 600;
pub const DEFAULT_MAX_SEATS_PER_ORDER: i64 = 6;
/// Seats per `INSERT ... SELECT FROM UNNEST(...)`: large enough to amortise the round trip,
/// small enough to keep each statement's arrays a few megabytes.
const SEAT_CHUNK: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    InvalidTime(String),
    #[error("{0}")]
    InvalidCurrency(String),
    #[error("all classes of an event use the same currency")]
    MixedCurrencies,
    #[error("two classes are called {0:?}; class names are unique in an event")]
    DuplicateClass(String),
    #[error("no such venue among yours")]
    UnknownVenue,
    #[error("{0}")]
    UnknownSection(String),
    #[error("{0}")]
    SeatsWithoutClass(String),
    #[error("{0}")]
    EmptyClass(String),
    #[error("this event has no class {0}")]
    UnknownClass(ClassId),
    #[error("no such event")]
    NotFound,
    #[error("{0}")]
    HasSales(&'static str),
    #[error("the sale has opened: its opening time can no longer move")]
    SaleOpened,
    #[error("this event is cancelled")]
    Cancelled,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<PlanError> for EventError {
    fn from(err: PlanError) -> Self {
        let message = err.to_string();
        match err {
            PlanError::UnknownSection { .. } => Self::UnknownSection(message),
            PlanError::RepeatedSection { .. } => Self::InvalidField(message),
            PlanError::SeatsWithoutClass(_) => Self::SeatsWithoutClass(message),
            PlanError::EmptyClass(_) => Self::EmptyClass(message),
        }
    }
}

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

// --- rows --------------------------------------------------------------------------------

macro_rules! event_columns {
    () => {
        "e.id, e.organizer_id, e.venue_id, v.name AS venue_name, v.city AS venue_city,
         v.layout->>'kind' AS venue_kind,
         e.title, e.description, e.starts_at, e.sale_opens_at, e.cancelled_at, e.capacity,
         e.hold_seconds, e.max_seats_per_order, e.high_demand, e.admit_per_minute,
         e.max_active, e.created_at, e.updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: EventId,
    organizer_id: UserId,
    venue_id: VenueId,
    venue_name: String,
    venue_city: String,
    venue_kind: String,
    title: String,
    description: String,
    starts_at: OffsetDateTime,
    sale_opens_at: OffsetDateTime,
    cancelled_at: Option<OffsetDateTime>,
    capacity: i32,
    hold_seconds: i32,
    max_seats_per_order: i32,
    high_demand: bool,
    admit_per_minute: i32,
    max_active: i32,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ClassRow {
    id: ClassId,
    name: String,
    price_minor: i64,
    currency: String,
    sections: Vec<String>,
    position: i32,
    capacity: i64,
}

/// The parts of an event that decide who may change it and how.
#[derive(sqlx::FromRow)]
struct EventLock {
    organizer_id: UserId,
    starts_at: OffsetDateTime,
    sale_opens_at: OffsetDateTime,
    cancelled_at: Option<OffsetDateTime>,
}

// --- validation --------------------------------------------------------------------------

fn text_field(what: &str, value: &str, min: usize, max: usize) -> Result<String, EventError> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    // Descriptions may have line breaks; nothing else may carry control characters.
    let bad_char = trimmed
        .chars()
        .any(|c| c.is_control() && !(what == "description" && matches!(c, '\n' | '\r' | '\t')));
    if length < min || length > max || bad_char {
        return Err(EventError::InvalidField(format!(
            "The {what} has {min} to {max} characters, none of them control characters."
        )));
    }
    Ok(trimmed.to_string())
}

fn ranged(what: &str, value: i64, min: i64, max: i64) -> Result<i32, EventError> {
    if !(min..=max).contains(&value) {
        return Err(EventError::InvalidField(format!(
            "{what} is {min} to {max}."
        )));
    }
    // Every range used here fits an i32.
    Ok(value as i32)
}

fn price(value: i64) -> Result<i64, EventError> {
    if !(0..=MAX_PRICE).contains(&value) {
        return Err(EventError::InvalidField(format!(
            "A price is 0 to {MAX_PRICE} minor units."
        )));
    }
    Ok(value)
}

fn check_times(
    now: OffsetDateTime,
    starts_at: OffsetDateTime,
    sale_opens_at: OffsetDateTime,
) -> Result<(), EventError> {
    if starts_at <= now {
        return Err(EventError::InvalidTime(
            "starts_at must be in the future.".into(),
        ));
    }
    if sale_opens_at > starts_at {
        return Err(EventError::InvalidTime(
            "sale_opens_at must be at or before starts_at.".into(),
        ));
    }
    Ok(())
}

/// A new event whose fields passed every check that needs no database.
struct CheckedEvent {
    title: String,
    description: String,
    venue_id: VenueId,
    starts_at: OffsetDateTime,
    sale_opens_at: OffsetDateTime,
    hold_seconds: i32,
    max_seats_per_order: i32,
    currency: Currency,
    classes: Vec<(NewClass, ClassSpec)>,
}

fn check_new(new: NewEvent, now: OffsetDateTime) -> Result<CheckedEvent, EventError> {
    let title = text_field("title", &new.title, 1, 200)?;
    let description = text_field(
        "description",
        new.description.as_deref().unwrap_or_default(),
        0,
        10_000,
    )?;
    check_times(now, new.starts_at, new.sale_opens_at)?;
    let hold_seconds = ranged(
        "hold_seconds",
        new.hold_seconds.unwrap_or(DEFAULT_HOLD_SECONDS),
        30,
        3600,
    )?;
    let max_seats_per_order = ranged(
        "max_seats_per_order",
        new.max_seats_per_order
            .unwrap_or(DEFAULT_MAX_SEATS_PER_ORDER),
        1,
        50,
    )?;
    if new.classes.is_empty() || new.classes.len() > MAX_CLASSES {
        return Err(EventError::InvalidField(format!(
            "An event has 1 to {MAX_CLASSES} ticket classes."
        )));
    }
    let mut currency: Option<Currency> = None;
    let mut names = std::collections::HashSet::new();
    let mut classes = Vec::with_capacity(new.classes.len());
    for mut class in new.classes {
        class.name = text_field("class name", &class.name, 1, 100)?;
        if !names.insert(class.name.clone()) {
            return Err(EventError::DuplicateClass(class.name));
        }
        price(class.price)?;
        let code = Currency::parse(&class.currency).map_err(EventError::InvalidCurrency)?;
        match currency {
            None => currency = Some(code),
            Some(first) if first != code => return Err(EventError::MixedCurrencies),
            Some(_) => {}
        }
        let sections = class.sections.clone().unwrap_or_default();
        if sections.len() > venues::layout::MAX_SVG_SECTIONS {
            return Err(EventError::InvalidField(
                "A class names at most 500 sections.".into(),
            ));
        }
        let spec = ClassSpec {
            name: class.name.clone(),
            sections,
        };
        classes.push((class, spec));
    }
    Ok(CheckedEvent {
        title,
        description,
        venue_id: new.venue_id,
        starts_at: new.starts_at,
        sale_opens_at: new.sale_opens_at,
        hold_seconds,
        max_seats_per_order,
        currency: currency.ok_or_else(|| EventError::InvalidField("No classes.".into()))?,
        classes,
    })
}

// --- create ------------------------------------------------------------------------------

/// The seats of a new event, column by column, in `idx` order, ready for `UNNEST`.
struct SeatColumns {
    id: Vec<Uuid>,
    class_id: Vec<Uuid>,
    label: Vec<String>,
    section: Vec<String>,
    row_no: Vec<i32>,
    seat_no: Vec<i32>,
    x: Vec<f32>,
    y: Vec<f32>,
    idx: Vec<i32>,
    row_rank: Vec<i32>,
}

struct Inventory {
    class_sections: Vec<Vec<String>>,
    seats: SeatColumns,
}

fn build_inventory(
    layout: &venues::Layout,
    classes: &[ClassSpec],
    class_ids: &[ClassId],
) -> Result<Inventory, PlanError> {
    let venue = layout.expand();
    let plan = seating::plan(&venue, classes)?;
    let n = plan.seats.len();
    let mut seats = SeatColumns {
        id: Vec::with_capacity(n),
        class_id: Vec::with_capacity(n),
        label: Vec::with_capacity(n),
        section: Vec::with_capacity(n),
        row_no: Vec::with_capacity(n),
        seat_no: Vec::with_capacity(n),
        x: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        idx: Vec::with_capacity(n),
        row_rank: Vec::with_capacity(n),
    };
    for planned in &plan.seats {
        let seat = &venue.seats[planned.seat];
        seats.id.push(SeatId::new().as_uuid());
        seats.class_id.push(class_ids[planned.class].as_uuid());
        seats.label.push(seat.label.clone());
        seats.section.push(venue.sections[seat.section].clone());
        seats.row_no.push(seat.row_no);
        seats.seat_no.push(seat.seat_no);
        seats.x.push(seat.x);
        seats.y.push(seat.y);
        seats.idx.push(planned.idx);
        seats.row_rank.push(planned.row_rank);
    }
    Ok(Inventory {
        class_sections: plan.class_sections,
        seats,
    })
}

/// Inserts the seats in chunks of [`SEAT_CHUNK`], each one `INSERT ... SELECT FROM UNNEST`.
async fn insert_seats(
    conn: &mut PgConnection,
    event: EventId,
    seats: &SeatColumns,
) -> Result<(), sqlx::Error> {
    let total = seats.id.len();
    let mut start = 0;
    while start < total {
        let end = (start + SEAT_CHUNK).min(total);
        let r = start..end;
        sqlx::query(
            "INSERT INTO seats (id, event_id, class_id, label, section, row_no, seat_no, x, y,
                                idx, row_rank)
             SELECT u.id, $1, u.class_id, u.label, u.section, u.row_no, u.seat_no, u.x, u.y,
                    u.idx, u.row_rank
             FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int4[],
                         $7::int4[], $8::float4[], $9::float4[], $10::int4[], $11::int4[])
                  AS u(id, class_id, label, section, row_no, seat_no, x, y, idx, row_rank)",
        )
        .bind(event)
        .bind(&seats.id[r.clone()])
        .bind(&seats.class_id[r.clone()])
        .bind(&seats.label[r.clone()])
        .bind(&seats.section[r.clone()])
        .bind(&seats.row_no[r.clone()])
        .bind(&seats.seat_no[r.clone()])
        .bind(&seats.x[r.clone()])
        .bind(&seats.y[r.clone()])
        .bind(&seats.idx[r.clone()])
        .bind(&seats.row_rank[r])
        .execute(&mut *conn)
        .await?;
        start = end;
    }
    Ok(())
}

/// Creates an event, its classes and every seat, in one transaction. Audited.
pub async fn create(db: &PgPool, actor: Actor, new: NewEvent) -> Result<Event, EventError> {
    let checked = check_new(new, OffsetDateTime::now_utc())?;
    // Venues never change after creation, so reading the layout outside the transaction is
    // safe; the transaction then only writes.
    let (organizer, layout) = venues::layout_for_event(db, actor, checked.venue_id)
        .await?
        .ok_or(EventError::UnknownVenue)?;
    let class_ids: Vec<ClassId> = checked.classes.iter().map(|_| ClassId::new()).collect();
    let specs: Vec<ClassSpec> = checked.classes.iter().map(|(_, s)| s.clone()).collect();
    let ids = class_ids.clone();
    // Expanding and sorting up to 200,000 seats is CPU work: off the async threads.
    let inventory = tokio::task::spawn_blocking(move || build_inventory(&layout, &specs, &ids))
        .await
        .map_err(|err| anyhow::anyhow!("seat planning panicked: {err}"))??;
    let capacity = i32::try_from(inventory.seats.id.len()).map_err(anyhow::Error::from)?;

    let id = EventId::new();
    let started = std::time::Instant::now();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO events (id, organizer_id, venue_id, title, description, starts_at,
                             sale_opens_at, capacity, hold_seconds, max_seats_per_order)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(organizer)
    .bind(checked.venue_id)
    .bind(&checked.title)
    .bind(&checked.description)
    .bind(checked.starts_at)
    .bind(checked.sale_opens_at)
    .bind(capacity)
    .bind(checked.hold_seconds)
    .bind(checked.max_seats_per_order)
    .execute(&mut *tx)
    .await?;
    for (position, ((class, _), sections)) in checked
        .classes
        .iter()
        .zip(&inventory.class_sections)
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO ticket_classes (id, event_id, name, price_minor, currency, sections,
                                         position)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(class_ids[position])
        .bind(id)
        .bind(&class.name)
        .bind(class.price)
        .bind(checked.currency.as_str())
        .bind(sections)
        .bind(position as i32)
        .execute(&mut *tx)
        .await?;
    }
    insert_seats(&mut tx, id, &inventory.seats).await?;
    let class_names: Vec<&str> = checked
        .classes
        .iter()
        .map(|(c, _)| c.name.as_str())
        .collect();
    audit::record(
        &mut tx,
        actor.id,
        "event.create",
        "event",
        &id.to_string(),
        serde_json::json!({
            "title": checked.title,
            "venue_id": checked.venue_id,
            "capacity": capacity,
            "classes": class_names,
        }),
    )
    .await?;
    tx.commit().await?;
    // Fresh planner statistics for the rows just added: without them (autovacuum analyzes up
    // to a minute later, in the middle of an on-sale, or never where it is off) Postgres reads
    // every seat of every event to fetch one booking's tickets — a load test saw 1.9 billion
    // rows scanned in one sale. Best effort: the event exists either way.
    if let Err(err) = sqlx::query("ANALYZE seats").execute(db).await {
        tracing::warn!(event.id = %id, error = %err, "could not analyze seats");
    }
    tracing::info!(
        event.id = %id,
        capacity,
        duration_ms = started.elapsed().as_millis() as u64,
        "event created with its seats"
    );
    get(db, id).await
}

// --- read --------------------------------------------------------------------------------

/// Any event, cancelled ones included; public.
pub async fn get(db: &PgPool, id: EventId) -> Result<Event, EventError> {
    let row = sqlx::query_as::<_, EventRow>(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events e JOIN venues v ON v.id = e.venue_id WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(EventError::NotFound)?;
    // Each count is an index-only range scan of `seats_class_order_idx`.
    let classes = sqlx::query_as::<_, ClassRow>(
        "SELECT c.id, c.name, c.price_minor, c.currency, c.sections, c.position,
                (SELECT count(*) FROM seats s
                 WHERE s.event_id = c.event_id AND s.class_id = c.id) AS capacity
         FROM ticket_classes c WHERE c.event_id = $1 ORDER BY c.position",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    Ok(assemble(row, classes, OffsetDateTime::now_utc()))
}

fn assemble(row: EventRow, classes: Vec<ClassRow>, now: OffsetDateTime) -> Event {
    let classes: Vec<TicketClass> = classes
        .into_iter()
        .map(|c| TicketClass {
            id: c.id,
            name: c.name,
            price: c.price_minor,
            currency: c.currency,
            sections: c.sections,
            position: c.position,
            capacity: c.capacity,
        })
        .collect();
    let availability = classes
        .iter()
        .map(|c| ClassAvailability {
            class_id: c.id,
            class: c.name.clone(),
            capacity: c.capacity,
            free: None,
            held: None,
            sold: None,
        })
        .collect();
    Event {
        id: row.id,
        organizer_id: row.organizer_id,
        title: row.title,
        description: row.description,
        venue_id: row.venue_id,
        venue: VenueRef {
            id: row.venue_id,
            name: row.venue_name,
            city: row.venue_city,
            kind: row.venue_kind,
        },
        status: EventStatus::at(now, row.sale_opens_at, row.starts_at, row.cancelled_at),
        starts_at: row.starts_at,
        sale_opens_at: row.sale_opens_at,
        cancelled_at: row.cancelled_at,
        capacity: row.capacity,
        currency: classes
            .first()
            .map(|c| c.currency.clone())
            .unwrap_or_default(),
        hold_seconds: row.hold_seconds,
        max_seats_per_order: row.max_seats_per_order,
        high_demand: row.high_demand,
        admit_per_minute: row.admit_per_minute,
        max_active: row.max_active,
        classes,
        availability,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: EventId,
    title: String,
    venue_id: VenueId,
    venue_name: String,
    venue_city: String,
    venue_kind: String,
    starts_at: OffsetDateTime,
    sale_opens_at: OffsetDateTime,
    cancelled_at: Option<OffsetDateTime>,
    capacity: i32,
    high_demand: bool,
    price_from: Option<i64>,
    currency: Option<String>,
}

impl SummaryRow {
    fn into_summary(self, now: OffsetDateTime) -> EventSummary {
        EventSummary {
            id: self.id,
            title: self.title,
            venue: VenueRef {
                id: self.venue_id,
                name: self.venue_name,
                city: self.venue_city,
                kind: self.venue_kind,
            },
            status: EventStatus::at(now, self.sale_opens_at, self.starts_at, self.cancelled_at),
            starts_at: self.starts_at,
            sale_opens_at: self.sale_opens_at,
            capacity: self.capacity,
            high_demand: self.high_demand,
            price_from: self.price_from.unwrap_or_default(),
            currency: self.currency.unwrap_or_default(),
        }
    }
}

/// The `SummaryRow` columns, over `events e JOIN venues v`.
macro_rules! summary_columns {
    () => {
        "e.id, e.title, e.venue_id, v.name AS venue_name, v.city AS venue_city,
         v.layout->>'kind' AS venue_kind,
         e.starts_at, e.sale_opens_at, e.cancelled_at, e.capacity, e.high_demand,
         (SELECT min(c.price_minor) FROM ticket_classes c WHERE c.event_id = e.id)
             AS price_from,
         (SELECT c.currency FROM ticket_classes c WHERE c.event_id = e.id
          ORDER BY c.position LIMIT 1) AS currency"
    };
}

/// Events that are not cancelled and whose title contains `q` literally (case-insensitive),
/// soonest first.
pub async fn search(
    db: &PgPool,
    q: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventSummary>, i64), EventError> {
    // `q` is a literal substring: escape LIKE's wildcards.
    let pattern = format!(
        "%{}%",
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = sqlx::query_as::<_, SummaryRow>(concat!(
        "SELECT ",
        summary_columns!(),
        " FROM events e JOIN venues v ON v.id = e.venue_id
          WHERE e.cancelled_at IS NULL AND e.title ILIKE $1
          ORDER BY e.starts_at, e.id LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE cancelled_at IS NULL AND title ILIKE $1")
            .bind(&pattern)
            .fetch_one(db)
            .await?;
    let now = OffsetDateTime::now_utc();
    let items = rows.into_iter().map(|row| row.into_summary(now)).collect();
    Ok((items, total))
}

/// One organizer's own events, cancelled and past ones included, the latest first: what
/// their dashboard lists.
pub async fn organized_by(
    db: &PgPool,
    organizer: UserId,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventSummary>, i64), EventError> {
    let rows = sqlx::query_as::<_, SummaryRow>(concat!(
        "SELECT ",
        summary_columns!(),
        " FROM events e JOIN venues v ON v.id = e.venue_id
          WHERE e.organizer_id = $1
          ORDER BY e.starts_at DESC, e.id LIMIT $2 OFFSET $3"
    ))
    .bind(organizer)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE organizer_id = $1")
        .bind(organizer)
        .fetch_one(db)
        .await?;
    let now = OffsetDateTime::now_utc();
    let items = rows.into_iter().map(|row| row.into_summary(now)).collect();
    Ok((items, total))
}

// --- change ------------------------------------------------------------------------------

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
    let title = patch
        .title
        .as_deref()
        .map(|t| text_field("title", t, 1, 200))
        .transpose()?;
    let description = patch
        .description
        .as_deref()
        .map(|d| text_field("description", d, 0, 10_000))
        .transpose()?;
    let hold_seconds = patch
        .hold_seconds
        .map(|v| ranged("hold_seconds", v, 30, 3600))
        .transpose()?;
    let max_seats_per_order = patch
        .max_seats_per_order
        .map(|v| ranged("max_seats_per_order", v, 1, 50))
        .transpose()?;
    let prices = patch.classes.clone().unwrap_or_default();
    if prices.len() > MAX_CLASSES {
        return Err(EventError::InvalidField(format!(
            "An event has at most {MAX_CLASSES} classes."
        )));
    }
    for class in &prices {
        price(class.price)?;
    }
    if let Some(starts_at) = patch.starts_at
        && starts_at <= now
    {
        return Err(EventError::InvalidTime(
            "starts_at must be in the future.".into(),
        ));
    }

    let mut tx = db.begin().await?;
    let current = lock(&mut tx, actor, id).await?;
    if current.cancelled_at.is_some() {
        return Err(EventError::Cancelled);
    }
    let starts_at = patch.starts_at.unwrap_or(current.starts_at);
    let sale_opens_at = patch.sale_opens_at.unwrap_or(current.sale_opens_at);
    if sale_opens_at > starts_at {
        return Err(EventError::InvalidTime(
            "sale_opens_at must be at or before starts_at.".into(),
        ));
    }
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
    tracing::info!(event.id = %id, actor.id = %actor.id, "event updated");
    get(db, id).await
}

/// Cancels the event; cancelling again changes nothing (and is not audited again).
pub async fn cancel(db: &PgPool, actor: Actor, id: EventId) -> Result<Event, EventError> {
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
    get(db, id).await
}

/// Deletes an event that never had a booking, with its classes and seats. Audited.
pub async fn delete(db: &PgPool, actor: Actor, id: EventId) -> Result<(), EventError> {
    let mut tx = db.begin().await?;
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
    tracing::info!(event.id = %id, actor.id = %actor.id, "event deleted");
    Ok(())
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
