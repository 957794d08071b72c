//! Writing a new event and reading one back: [`create`] (the event, its classes and every seat
//! in one transaction) and [`get`]. The seats themselves are built and inserted by `seats.rs`.

use shared::ids::{ClassId, EventId, UserId, VenueId};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{
    ClassAvailability, Event, EventError, EventStatus, NewEvent, TicketClass, VenueRef,
    seating::ClassSpec,
    seats::{build_inventory, insert_seats},
    validate::check_new,
};
use crate::{
    accounts::audit,
    venues::{self, Actor},
};

/// The [`VenueRow`] columns, over `events e JOIN venues v`.
macro_rules! venue_columns {
    () => {
        "e.venue_id, v.name AS venue_name, v.city AS venue_city, v.layout->>'kind' AS venue_kind"
    };
}
pub(super) use venue_columns;

/// The [`EventRow`] columns, over `events e JOIN venues v`.
macro_rules! event_columns {
    () => {
        concat!(
            "e.id, e.organizer_id, ",
            venue_columns!(),
            ", e.title, e.description, e.starts_at, e.sale_opens_at, e.cancelled_at, e.capacity,
             e.hold_seconds, e.max_seats_per_order, e.high_demand, e.admit_per_minute,
             e.max_active, e.created_at, e.updated_at"
        )
    };
}

/// The venue of an event or a list entry, as [`venue_columns!`] reads it.
#[derive(sqlx::FromRow)]
pub(super) struct VenueRow {
    venue_id: VenueId,
    venue_name: String,
    venue_city: String,
    venue_kind: String,
}

impl From<VenueRow> for VenueRef {
    fn from(row: VenueRow) -> Self {
        Self {
            id: row.venue_id,
            name: row.venue_name,
            city: row.venue_city,
            kind: row.venue_kind,
        }
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: EventId,
    organizer_id: UserId,
    #[sqlx(flatten)]
    venue: VenueRow,
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

// --- create ------------------------------------------------------------------------------

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
        venue_id: row.venue.venue_id,
        venue: row.venue.into(),
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
