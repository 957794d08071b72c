//! The registration worker's tests, one binary: the process and the queued path end to end
//! (`service`), and the batch statement's outcomes and races (`persist`).

mod persist;
mod service;

use shared::ids::{BookingId, EventId, UserId};
use sqlx::PgPool;

/// Sells the seats at `idx` of `event` to `other` in Postgres only, as after a lost Redis: the
/// inventory still shows them free or held, so only the unique constraint stops a sale.
async fn sell_behind_redis(db: &PgPool, event: EventId, other: UserId, idx: &[i32]) {
    let sold = BookingId::new();
    sqlx::query(
        "INSERT INTO bookings (id, event_id, user_id, status, total_minor, currency)
         VALUES ($1, $2, $3, 'confirmed', 5000, 'EUR')",
    )
    .bind(sold)
    .bind(event)
    .bind(other)
    .execute(db)
    .await
    .expect("booking");
    sqlx::query(
        "INSERT INTO tickets (id, booking_id, event_id, seat_id, class_id, price_minor, code)
         SELECT gen_random_uuid(), $1, s.event_id, s.id, s.class_id, 5000, 'x'
         FROM seats s WHERE s.event_id = $2 AND s.idx = ANY($3)",
    )
    .bind(sold)
    .bind(event)
    .bind(idx)
    .execute(db)
    .await
    .expect("tickets");
}
