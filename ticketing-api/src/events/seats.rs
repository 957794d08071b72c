//! A new event's seats: the venue expanded and planned by [`seating`](super::seating), laid
//! out column by column in `idx` order, and inserted in chunks of [`SEAT_CHUNK`] (up to
//! 200,000 seats an event).

use shared::ids::{ClassId, EventId, SeatId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::seating::{self, ClassSpec, PlanError};
use crate::venues;

/// Seats per `INSERT ... SELECT FROM UNNEST(...)`: large enough to amortise the round trip,
/// small enough to keep each statement's arrays a few megabytes.
const SEAT_CHUNK: usize = 20_000;

/// The seats of a new event, column by column, in `idx` order, ready for `UNNEST`.
pub(super) struct SeatColumns {
    pub(super) id: Vec<Uuid>,
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

pub(super) struct Inventory {
    pub(super) class_sections: Vec<Vec<String>>,
    pub(super) seats: SeatColumns,
}

pub(super) fn build_inventory(
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
pub(super) async fn insert_seats(
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
