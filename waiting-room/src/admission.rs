//! The admission loop: every `QUEUE_TICK_MS`, one atomic tick per event with a queue. Every
//! instance runs it; the tick is keyed by the last tick time in Redis, so instances share the
//! admission rate instead of multiplying it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use shared::{
    ids::EventId,
    inventory::{CatalogCache, Inventory},
};
use sqlx::PgPool;

use crate::queue::{QueueError, Queues};

/// How often the seat counts of an event are read to decide whether it is sold out.
const SOLD_OUT_CHECK: Duration = Duration::from_secs(1);

/// Is every seat of the event sold or held? (No free seat in any class.)
async fn sold_out(
    db: &PgPool,
    catalogs: &CatalogCache,
    inventory: &Inventory,
    event: EventId,
) -> anyhow::Result<bool> {
    let Some(catalog) = catalogs.get(db, event).await? else {
        return Ok(false);
    };
    let counts = inventory.counts(&catalog).await?;
    Ok(!counts.is_empty() && counts.iter().all(|c| c.free == 0))
}

/// Runs the loop until the process ends.
pub fn spawn(queues: Queues, db: PgPool) {
    let inventory = Inventory::new(db.clone(), queues.redis().clone(), queues.keys().clone());
    let catalogs = CatalogCache::new();
    let every = queues.config().tick;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seats: HashMap<EventId, (bool, Instant)> = HashMap::new();
        loop {
            tick.tick().await;
            let events = match queues.events().await {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!(error = %err, "admission loop: cannot list queues");
                    continue;
                }
            };
            for event in events {
                let cached = seats.get(&event).copied();
                let is_sold_out = match cached {
                    Some((value, at)) if at.elapsed() < SOLD_OUT_CHECK => value,
                    _ => {
                        let value = sold_out(&db, &catalogs, &inventory, event)
                            .await
                            .unwrap_or_else(|err| {
                                tracing::warn!(%event, error = %err, "cannot read seat counts");
                                cached.is_some_and(|(v, _)| v)
                            });
                        seats.insert(event, (value, Instant::now()));
                        value
                    }
                };
                match queues.tick(event, is_sold_out).await {
                    Ok(outcome) => {
                        let label = [("event", event.to_string())];
                        metrics::counter!("waiting_room_admissions_total")
                            .increment(outcome.admitted);
                        metrics::counter!("waiting_room_drops_total")
                            .increment(outcome.dropped + outcome.swept);
                        metrics::gauge!("waiting_room_queue_length", &label)
                            .set(outcome.waiting as f64);
                        metrics::gauge!("waiting_room_active_shoppers", &label)
                            .set(outcome.active as f64);
                    }
                    Err(QueueError::UnknownEvent) => {
                        let _ = queues.unregister(event).await;
                    }
                    Err(err) => tracing::warn!(%event, error = %err, "admission tick failed"),
                }
            }
        }
    });
}
