//! Lists of events: [`search`] (public: not cancelled, title contains the query) and
//! [`organized_by`] (an organizer's own, everything included). Both answer one page of
//! [`EventSummary`] and the total.

use shared::ids::{EventId, UserId, VenueId};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{EventError, EventStatus, EventSummary, VenueRef};

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
