//! The command consumer: manual acks, a prefetch window, batches bounded by size and a few
//! milliseconds of waiting. Acks only after the commit; poison is rejected to the dead-letter
//! queue; transient failures are retried with backoff and never acked as done; a command that
//! keeps failing while Postgres and Redis answer is requeued until the queue's delivery limit
//! dead-letters it (recorded by [`crate::dead_letters`]).

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use lapin::{
    Connection,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicQosOptions, BasicRejectOptions,
    },
    types::FieldTable,
};
use shared::{
    backoff::Backoff,
    booking::{Bookings, Outcome, Persisted},
    config::WorkerConfig,
    messaging::ProcessBookingCommand,
    shutdown::Shutdown,
};
use time::OffsetDateTime;

/// The pauses between retries of a failing batch, or between reopenings of a consumer.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// Retries of a batch while Postgres and Redis answer, before each command is tried alone.
const BATCH_ATTEMPTS: u32 = 3;

/// One consumer: its own channel and prefetch window, until `shutdown`. Reopens its
/// channel after a broker outage.
pub async fn run(
    slot: usize,
    connection: Arc<Connection>,
    queue: String,
    bookings: Bookings,
    config: WorkerConfig,
    mut shutdown: Shutdown,
) {
    let mut backoff = BACKOFF;
    while !shutdown.is_shutdown() {
        match consume(slot, &connection, &queue, &bookings, &config, &mut shutdown).await {
            Ok(()) => backoff.reset(),
            Err(err) => {
                tracing::warn!(
                    slot,
                    error = format!("{err:#}"),
                    "consumer stopped; reopening"
                );
                backoff.wait_or(&mut shutdown).await;
            }
        }
    }
    tracing::info!(slot, "consumer stopped");
}

async fn consume(
    slot: usize,
    connection: &Connection,
    queue: &str,
    bookings: &Bookings,
    config: &WorkerConfig,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    let (channel, mut consumer, tag) =
        subscribe(connection, queue, config.batch_size, &slot.to_string()).await?;
    loop {
        let first = tokio::select! {
            next = consumer.next() => next,
            () = shutdown.recv() => break,
        };
        let Some(first) = first else {
            anyhow::bail!("the consumer was cancelled by the broker");
        };
        let mut batch = vec![first?];
        let deadline = tokio::time::Instant::now() + config.batch_wait;
        while batch.len() < usize::from(config.batch_size) {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(delivery))) => batch.push(delivery),
                Ok(Some(Err(err))) => {
                    tracing::warn!(error = %err, "a delivery failed");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        handle_batch(bookings, batch, shutdown).await;
    }
    // Graceful: no new deliveries; the batch in hand is done and acked; closing the channel
    // returns anything prefetched but unprocessed to the queue.
    channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await?;
    channel.close(200, "shutting down".into()).await?;
    Ok(())
}

/// A consumer of `queue` on its own channel, with `prefetch` unacked deliveries at most; its
/// tag names this process and `role`.
pub(crate) async fn subscribe(
    connection: &Connection,
    queue: &str,
    prefetch: u16,
    role: &str,
) -> anyhow::Result<(lapin::Channel, lapin::Consumer, String)> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("registration-worker-{}-{role}", std::process::id());
    let consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer, tag))
}

/// Persists one batch and settles every delivery in it.
pub async fn handle_batch(bookings: &Bookings, batch: Vec<Delivery>, shutdown: &Shutdown) {
    metrics::counter!("worker_commands_consumed_total").increment(batch.len() as u64);
    metrics::histogram!("worker_batch_size").record(batch.len() as f64);
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut commands = Vec::with_capacity(batch.len());
    for delivery in batch {
        match serde_json::from_slice::<ProcessBookingCommand>(&delivery.data) {
            Ok(command) => {
                let lag = OffsetDateTime::now_utc() - command.requested_at;
                metrics::histogram!("worker_queue_lag_seconds").record(lag.as_seconds_f64());
                commands.push(command);
                deliveries.push(delivery);
            }
            Err(err) => {
                // Poison: it will never parse. Straight to the dead-letter queue.
                tracing::error!(error = %err, bytes = delivery.data.len(),
                    "an unparsable booking command: dead-lettered");
                metrics::counter!("worker_commands_unparsable_total").increment(1);
                if let Err(err) = delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                {
                    tracing::warn!(error = %err, "could not reject a poison message");
                }
            }
        }
    }
    if commands.is_empty() {
        return;
    }

    let mut backoff = BACKOFF;
    let mut attempts = 0;
    loop {
        match bookings.persist(&commands).await {
            Ok(results) => {
                settle(bookings, &deliveries, results).await;
                return;
            }
            Err(err) => {
                metrics::counter!("worker_commands_retried_total").increment(commands.len() as u64);
                tracing::warn!(
                    error = format!("{err:#}"),
                    batch = commands.len(),
                    "a batch failed; retrying"
                );
            }
        }
        if shutdown.is_shutdown() {
            // Never acked as done: back to the queue for the next worker.
            nack_all(&deliveries).await;
            return;
        }
        backoff.wait().await;
        // An outage (Postgres or Redis down) is not the messages' fault: wait it out without
        // spending their delivery attempts. Otherwise, after a few tries, find the culprit.
        if bookings.reachable().await {
            attempts += 1;
            if attempts >= BATCH_ATTEMPTS {
                one_by_one(bookings, deliveries, commands).await;
                return;
            }
        }
    }
}

/// Each command in a transaction of its own: the ones that fail go back to the queue (and
/// to the dead-letter queue once the delivery limit is reached), the others are done.
async fn one_by_one(
    bookings: &Bookings,
    deliveries: Vec<Delivery>,
    commands: Vec<ProcessBookingCommand>,
) {
    for (delivery, command) in deliveries.into_iter().zip(commands) {
        match bookings.persist(std::slice::from_ref(&command)).await {
            Ok(results) => settle(bookings, std::slice::from_ref(&delivery), results).await,
            Err(err) => {
                tracing::error!(booking.id = %command.booking_id, error = format!("{err:#}"),
                    "a booking command keeps failing; requeued");
                nack_all(std::slice::from_ref(&delivery)).await;
            }
        }
    }
}

/// Acks (the commit is done), counts, then updates Redis.
async fn settle(bookings: &Bookings, deliveries: &[Delivery], results: Vec<Persisted>) {
    for delivery in deliveries {
        if let Err(err) = delivery.acker.ack(BasicAckOptions::default()).await {
            // Redelivered later, and then found done: harmless.
            tracing::warn!(error = %err, "could not ack a persisted command");
        }
    }
    for result in &results {
        match result.outcome {
            Outcome::Confirmed { .. } => {
                metrics::counter!("worker_bookings_persisted_total").increment(1);
            }
            Outcome::Rejected(why) => {
                metrics::counter!("worker_bookings_rejected_total", "reason" => why.code())
                    .increment(1);
            }
            Outcome::AlreadyDone { .. } | Outcome::Dropped => {}
        }
    }
    bookings.settle(&results).await;
}

async fn nack_all(deliveries: &[Delivery]) {
    for delivery in deliveries {
        let options = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        if let Err(err) = delivery.acker.nack(options).await {
            tracing::warn!(error = %err, "could not nack a command (the broker requeues it anyway)");
        }
    }
}
