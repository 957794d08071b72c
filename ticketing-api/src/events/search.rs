//! Lists of events: [`search`] (public: not cancelled, title contains the query) and
//! [`organized_by`] (an organizer's own, everything included). Both answer one page of
//! [`EventSummary`] and the total.

use shared::ids::{EventId, UserId};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{
    EventError, EventStatus, EventSummary,
    store::{VenueRow, venue_columns},
};
use crate::sql;

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: EventId,
    title: String,
    #[sqlx(flatten)]
    venue: VenueRow,
    starts_at: OffsetDateTime,
    sale_opens_at: OffsetDateTime,
    cancelled_at: Option<OffsetDateTime>,
    capacity: i32,
    high_demand: bool,
    price_from: Option<i64>,
    currency: Option<String>,
}

/// The list entries of `rows`, their status as of now.
fn summaries(rows: Vec<SummaryRow>) -> Vec<EventSummary> {
    let now = OffsetDateTime::now_utc();
    rows.into_iter().map(|row| row.into_summary(now)).collect()
}

impl SummaryRow {
    fn into_summary(self, now: OffsetDateTime) -> EventSummary {
        EventSummary {
            id: self.id,
            title: self.title,
            venue: self.venue.into(),
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

/// `SELECT` the [`SummaryRow`] columns `FROM events e JOIN venues v`; the caller adds the
/// filter (`$1`), the order and `LIMIT $2 OFFSET $3`.
macro_rules! select_summaries {
    () => {
        concat!(
            "SELECT e.id, e.title, ",
            venue_columns!(),
            ", e.starts_at, e.sale_opens_at, e.cancelled_at, e.capacity, e.high_demand,
             (SELECT min(c.price_minor) FROM ticket_classes c WHERE c.event_id = e.id)
                 AS price_from,
             (SELECT c.currency FROM ticket_classes c WHERE c.event_id = e.id
              ORDER BY c.position LIMIT 1) AS currency
             FROM events e JOIN venues v ON v.id = e.venue_id"
        )
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
    let (rows, total) = sql::page(
        db,
        concat!(
            select_summaries!(),
            " WHERE e.cancelled_at IS NULL AND e.title ILIKE $1
              ORDER BY e.starts_at, e.id LIMIT $2 OFFSET $3"
        ),
        "SELECT count(*) FROM events WHERE cancelled_at IS NULL AND title ILIKE $1",
        sql::contains(q),
        limit,
        offset,
    )
    .await?;
    Ok((summaries(rows), total))
}

/// One organizer's own events, cancelled and past ones included, the latest first: what
/// their dashboard lists.
pub async fn organized_by(
    db: &PgPool,
    organizer: UserId,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventSummary>, i64), EventError> {
    let (rows, total) = sql::page(
        db,
        concat!(
            select_summaries!(),
            " WHERE e.organizer_id = $1 ORDER BY e.starts_at DESC, e.id LIMIT $2 OFFSET $3"
        ),
        "SELECT count(*) FROM events WHERE organizer_id = $1",
        organizer,
        limit,
        offset,
    )
    .await?;
    Ok((summaries(rows), total))
}
