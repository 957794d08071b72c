//! The outbox relay: publishes the booking events written with the bookings, in order, with
//! publisher confirms, and marks them sent. Safe with several relays: each batch of rows is
//! locked `FOR UPDATE SKIP LOCKED`, so two relays never take the same row at once. At least
//! once: a relay that dies after publishing and before its commit publishes again (the
//! notifier de-duplicates by booking id).

use std::time::Duration;

use futures_util::future::join_all;
use shared::{backoff::Backoff, messaging::Publisher, shutdown::Shutdown};
use sqlx::PgPool;

/// Rows per relay transaction.
pub const RELAY_BATCH: i64 = 100;

/// Relays until `shutdown`; sleeps `poll` whenever the outbox is empty.
pub async fn run(db: PgPool, publisher: Publisher, poll: Duration, mut shutdown: Shutdown) {
    // 200 ms after the first failure: the pause has always doubled before its first use.
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    while !shutdown.is_shutdown() {
        let pause = match relay_once(&db, &publisher).await {
            Ok(0) => poll,
            Ok(_) => {
                backoff.reset();
                continue;
            }
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "outbox relay failed; retrying");
                backoff.next_pause()
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.recv() => {}
        }
    }
}

/// Publishes one batch of unpublished rows and marks them; returns how many.
pub async fn relay_once(db: &PgPool, publisher: &Publisher) -> anyhow::Result<usize> {
    let mut tx = db.begin().await?;
    let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
        "SELECT id, routing_key, payload FROM outbox WHERE published_at IS NULL
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(RELAY_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let published = join_all(rows.iter().map(|(id, routing_key, payload)| async move {
        let message_id = payload
            .get("booking_id")
            .and_then(|id| id.as_str())
            .map_or_else(|| format!("outbox-{id}"), str::to_string);
        let bytes = serde_json::to_vec(payload)?;
        publisher
            .publish_event(routing_key, &bytes, &message_id)
            .await
    }))
    .await;
    let ids: Vec<i64> = rows.iter().map(|(id, _, _)| *id).collect();
    if let Some(err) = published.into_iter().find_map(Result::err) {
        // Nothing marked: every row of the batch is published again (at least once).
        drop(tx);
        sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1)")
            .bind(&ids)
            .execute(db)
            .await?;
        return Err(err);
    }
    sqlx::query(
        "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1)",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("worker_outbox_published_total").increment(ids.len() as u64);
    Ok(ids.len())
}
