//! Figures for the people who run sales: an organizer's live dashboard of one event, and the
//! platform-wide figures admins see. Read-only; no axum types.
//!
//! Seat counts come from the live inventory in Redis (what fans see); tickets and revenue from
//! Postgres (what is booked for good). During a queued sale the two differ by the bookings the
//! workers have yet to write: those seats are `held` until then.

use serde::Serialize;
use shared::{
    cache::redis,
    ids::{ClassId, EventId},
    inventory::{ClassCounts, InventoryError},
};
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    AppState,
    events::{self, EventError, EventStatus},
    venues::Actor,
};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such event, or another organizer's.
    #[error("no such event")]
    NotFound,
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One event's sale, live.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub event_id: EventId,
    pub title: String,
    pub status: EventStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub sale_opens_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    pub currency: String,
    pub high_demand: bool,
    pub admit_per_minute: i32,
    pub max_active: i32,
    /// In class order.
    pub classes: Vec<ClassSales>,
    pub totals: SalesTotals,
    pub bookings: BookingCounts,
    /// The waiting room, while the event has one in Redis.
    pub queue: Option<QueueFigures>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClassSales {
    pub class_id: ClassId,
    pub class: String,
    /// Minor units of the event's currency.
    pub price: i64,
    pub capacity: i64,
    /// Live seat counts from the inventory.
    pub free: u32,
    pub held: u32,
    pub sold: u32,
    /// Tickets of confirmed bookings in Postgres.
    pub tickets: i64,
    /// Sum of those tickets' prices, minor units.
    pub revenue: i64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SalesTotals {
    pub capacity: i64,
    pub free: u64,
    pub held: u64,
    pub sold: u64,
    pub tickets: i64,
    pub revenue: i64,
}

/// Bookings written to Postgres, by status (queued ones count once a worker wrote them).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BookingCounts {
    pub confirmed: i64,
    pub rejected: i64,
    pub cancelled: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueFigures {
    /// `pre` (before opening), `frozen` (being shuffled) or `open`.
    pub phase: String,
    /// Fans in the pre-queue, before the opening shuffle.
    pub pre_queue: u64,
    /// Fans waiting for admission.
    pub waiting: u64,
    /// Admitted fans whose admission has not expired: the active shoppers.
    pub active: u64,
    /// Admissions per second lately (smoothed), as measured by the waiting room.
    pub admitted_per_second: f64,
    pub sold_out: bool,
}

/// The dashboard of an event the actor may manage; others' events are "not found".
pub async fn dashboard(
    state: &AppState,
    actor: Actor,
    id: EventId,
) -> Result<Dashboard, ReportError> {
    let event = match events::get(&state.db, id).await {
        Ok(event) if actor.may_manage(event.organizer_id) => event,
        Ok(_) | Err(EventError::NotFound) => return Err(ReportError::NotFound),
        Err(err) => return Err(err.into()),
    };
    let catalog = state
        .catalogs
        .get(&state.db, id)
        .await?
        .ok_or(ReportError::NotFound)?;
    let counts: Vec<ClassCounts> = state.inventory.counts(&catalog).await?;
    let issued: Vec<(ClassId, i64, i64)> = sqlx::query_as(
        "SELECT t.class_id, count(*), coalesce(sum(t.price_minor), 0)::bigint
         FROM tickets t JOIN bookings b ON b.id = t.booking_id
         WHERE t.event_id = $1 AND b.status = 'confirmed'
         GROUP BY t.class_id",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await?;

    let mut totals = SalesTotals::default();
    let classes: Vec<ClassSales> = event
        .classes
        .iter()
        .zip(counts)
        .map(|(class, live)| {
            let (tickets, revenue) = issued
                .iter()
                .find(|(class_id, ..)| *class_id == class.id)
                .map_or((0, 0), |&(_, tickets, revenue)| (tickets, revenue));
            totals.capacity += class.capacity;
            totals.free += u64::from(live.free);
            totals.held += u64::from(live.held);
            totals.sold += u64::from(live.sold);
            totals.tickets += tickets;
            totals.revenue += revenue;
            ClassSales {
                class_id: class.id,
                class: class.name.clone(),
                price: class.price,
                capacity: class.capacity,
                free: live.free,
                held: live.held,
                sold: live.sold,
                tickets,
                revenue,
            }
        })
        .collect();

    Ok(Dashboard {
        event_id: event.id,
        title: event.title,
        status: event.status,
        sale_opens_at: event.sale_opens_at,
        starts_at: event.starts_at,
        currency: event.currency,
        high_demand: event.high_demand,
        admit_per_minute: event.admit_per_minute,
        max_active: event.max_active,
        classes,
        totals,
        bookings: booking_counts(&state.db, id).await?,
        queue: queue_figures(state, id).await?,
        generated_at: OffsetDateTime::now_utc(),
    })
}

async fn booking_counts(db: &PgPool, id: EventId) -> Result<BookingCounts, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM bookings WHERE event_id = $1 GROUP BY status")
            .bind(id)
            .fetch_all(db)
            .await?;
    let mut counts = BookingCounts::default();
    for (status, n) in rows {
        match status.as_str() {
            "confirmed" => counts.confirmed = n,
            "rejected" => counts.rejected = n,
            "cancelled" => counts.cancelled = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// The waiting room's own figures, read from its keys (see `waiting-room/src/queue.lua`).
async fn queue_figures(state: &AppState, id: EventId) -> Result<Option<QueueFigures>, ReportError> {
    let keys = &state.redis_keys;
    let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    type Meta = (Option<String>, Option<String>, Option<String>);
    let ((phase, outflow, sold_out), pre_queue, waiting, active): (Meta, u64, u64, u64) =
        redis::pipe()
            .cmd("HMGET")
            .arg(keys.queue_meta(id))
            .arg(&["phase", "outflow", "soldout"])
            .zcard(keys.queue_pre(id))
            .zcard(keys.queue_waiting(id))
            .zcount(keys.queue_active(id), format!("({now_ms}"), "+inf")
            .query_async(&mut state.redis.conn())
            .await?;
    Ok(phase.map(|phase| QueueFigures {
        phase,
        pre_queue,
        waiting,
        active,
        admitted_per_second: outflow.and_then(|o| o.parse().ok()).unwrap_or(0.0),
        sold_out: sold_out.as_deref() == Some("1"),
    }))
}

/// The whole platform at a glance, for admins.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformFigures {
    pub users: i64,
    pub fans: i64,
    pub organizers: i64,
    pub admins: i64,
    pub banned: i64,
    pub pending_applications: i64,
    pub events: i64,
    /// Events not cancelled whose sale is open and that have not started.
    pub events_on_sale: i64,
    pub tickets_sold: i64,
    pub bookings_confirmed: i64,
    /// Revenue of confirmed bookings, one entry per currency.
    pub revenue: Vec<Revenue>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Revenue {
    pub currency: String,
    /// Minor units.
    pub amount: i64,
}

pub async fn platform(db: &PgPool) -> Result<PlatformFigures, sqlx::Error> {
    #[allow(clippy::type_complexity)]
    let (users, fans, organizers, admins, banned, pending_applications): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE role = 'fan'),
                count(*) FILTER (WHERE role = 'organizer'),
                count(*) FILTER (WHERE role = 'admin'),
                count(*) FILTER (WHERE banned_at IS NOT NULL),
                (SELECT count(*) FROM organizer_applications WHERE status = 'pending')
         FROM users",
    )
    .fetch_one(db)
    .await?;
    let (events, events_on_sale): (i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE cancelled_at IS NULL
                                 AND sale_opens_at <= now() AND starts_at > now())
         FROM events",
    )
    .fetch_one(db)
    .await?;
    let (bookings_confirmed, tickets_sold): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bookings WHERE status = 'confirmed'),
                (SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
                 WHERE b.status = 'confirmed')",
    )
    .fetch_one(db)
    .await?;
    let revenue: Vec<Revenue> = sqlx::query_as(
        "SELECT currency, sum(total_minor)::bigint AS amount FROM bookings
         WHERE status = 'confirmed' GROUP BY currency ORDER BY currency",
    )
    .fetch_all(db)
    .await?;
    Ok(PlatformFigures {
        users,
        fans,
        organizers,
        admins,
        banned,
        pending_applications,
        events,
        events_on_sale,
        tickets_sold,
        bookings_confirmed,
        revenue,
    })
}
