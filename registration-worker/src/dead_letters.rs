//! The dead-letter consumer: every message RabbitMQ dead-lettered from the command queue (a
//! poison message the consumer rejected, or a command that failed on every delivery up to the
//! delivery limit) is recorded in the `dead_letters` table, where admins see and resolve it,
//! and only then acked.
//!
//! A command that still parses names a booking whose fan holds a 202: unless that booking
//! exists, it is written `rejected` with reason `processing_failed` in the same transaction as
//! the record, so the fan's booking reaches an end state; after the commit the hold is
//! released and the pending marker dropped. Idempotent on redelivery: a message already
//! recorded (same booking id, or the same bytes when it names none) changes nothing.
//!
//! Never acks a message it has not recorded: a failing Postgres is retried with backoff.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::{
    Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
    types::{AMQPValue, FieldTable},
};
use shared::{
    backoff::Backoff,
    booking::{Bookings, persist::end_dead_lettered},
    ids::{BookingId, EventId},
    messaging::ProcessBookingCommand,
    shutdown::Shutdown,
};
use time::OffsetDateTime;

/// The most of a message body kept (the table's check says the same).
pub const PAYLOAD_CAP: usize = 16 * 1024;
/// Unacked dead letters per consumer.
const PREFETCH: u16 = 10;
/// The pauses between retries of a record, or between reopenings of the consumer.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// A dead-lettered message, read from its body and the broker's `x-death` headers.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The command, when the body parses as one.
    pub command: Option<ProcessBookingCommand>,
    /// The body as text (invalid UTF-8 replaced), capped at [`PAYLOAD_CAP`] bytes.
    pub payload: String,
    /// The broker's first death reason, and the parse error of a body that does not parse.
    pub reason: String,
    pub first_death_at: Option<OffsetDateTime>,
    /// Deaths the broker counted, at least 1.
    pub death_count: i32,
}

impl DeadLetter {
    pub fn read(data: &[u8], headers: Option<&FieldTable>) -> Self {
        let (command, parse_error) = match serde_json::from_slice::<ProcessBookingCommand>(data) {
            Ok(command) => (Some(command), None),
            Err(err) => (None, Some(err.to_string())),
        };
        let deaths = headers
            .and_then(|headers| headers.inner().get("x-death"))
            .and_then(|value| match value {
                AMQPValue::FieldArray(deaths) => Some(deaths.as_slice().to_vec()),
                _ => None,
            })
            .unwrap_or_default();
        let mut death_count: i64 = 0;
        let mut first_death_at: Option<OffsetDateTime> = None;
        let mut last_reason = None;
        for death in &deaths {
            let AMQPValue::FieldTable(death) = death else {
                continue;
            };
            let death = death.inner();
            death_count += death.get("count").and_then(integer).unwrap_or(1);
            if let Some(AMQPValue::Timestamp(at)) = death.get("time") {
                let at = i64::try_from(*at)
                    .ok()
                    .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok());
                first_death_at = match (first_death_at, at) {
                    (Some(first), Some(at)) => Some(first.min(at)),
                    (first, at) => first.or(at),
                };
            }
            if last_reason.is_none() {
                last_reason = death.get("reason").and_then(text);
            }
        }
        let broker_reason = headers
            .and_then(|headers| headers.inner().get("x-first-death-reason"))
            .and_then(text)
            .or(last_reason)
            .unwrap_or_else(|| "unknown".into());
        let reason = match parse_error {
            Some(err) => format!("{broker_reason}: not a booking command ({err})"),
            None => format!("{broker_reason}: failed on every delivery (see the worker's log)"),
        };
        Self {
            command,
            payload: capped_text(data),
            reason: truncate(&reason, 1000),
            first_death_at,
            death_count: i32::try_from(death_count.max(1)).unwrap_or(i32::MAX),
        }
    }

    pub fn booking_id(&self) -> Option<BookingId> {
        self.command.as_ref().map(|command| command.booking_id)
    }

    pub fn event_id(&self) -> Option<EventId> {
        self.command.as_ref().map(|command| command.event_id)
    }
}

fn integer(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// At most `max` characters.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The body as text, cut on a character boundary at most [`PAYLOAD_CAP`] bytes in.
fn capped_text(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    // Postgres text cannot hold NUL.
    let text = text.replace('\0', "\u{FFFD}");
    let mut end = text.len().min(PAYLOAD_CAP);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // `length()` in the table's check counts characters, never more than bytes.
    text[..end].to_string()
}

/// What recording a dead letter did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new row; `rejected` says whether the booking was ended `processing_failed` with it.
    New { id: i64, rejected: bool },
    /// Recorded before (a redelivery): nothing changed.
    Again,
}

/// Records `letter` (and ends its booking) in one transaction; see the module doc.
pub async fn record(bookings: &Bookings, letter: &DeadLetter) -> anyhow::Result<Recorded> {
    let mut tx = bookings.db.begin().await?;
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO dead_letters
             (dedup_key, booking_id, event_id, payload, reason, first_death_at, death_count)
         VALUES (COALESCE('booking:' || $1::text, 'md5:' || md5($3)), $1, $2, $3, $4, $5, $6)
         ON CONFLICT (dedup_key) DO NOTHING
         RETURNING id",
    )
    .bind(letter.booking_id())
    .bind(letter.event_id())
    .bind(&letter.payload)
    .bind(&letter.reason)
    .bind(letter.first_death_at)
    .bind(letter.death_count)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id,)) = inserted else {
        return Ok(Recorded::Again);
    };
    let rejected = match &letter.command {
        Some(command) => end_dead_lettered(&mut tx, command).await?,
        None => false,
    };
    tx.commit().await?;
    metrics::counter!("worker_dead_lettered_total",
        "kind" => if letter.command.is_some() { "command" } else { "unparsable" })
    .increment(1);
    if let Some(command) = letter.command.as_ref().filter(|_| rejected) {
        bookings.settle_dead_lettered(command).await;
    }
    Ok(Recorded::New { id, rejected })
}

/// Consumes the dead-letter queue until `shutdown`; reopens its channel after a
/// broker outage.
pub async fn run(
    connection: std::sync::Arc<Connection>,
    queue: String,
    bookings: Bookings,
    mut shutdown: Shutdown,
) {
    let mut backoff = BACKOFF;
    while !shutdown.is_shutdown() {
        match consume(&connection, &queue, &bookings, &mut shutdown).await {
            Ok(()) => backoff.reset(),
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "dead-letter consumer stopped; reopening"
                );
                backoff.wait_or(&mut shutdown).await;
            }
        }
    }
}

async fn consume(
    connection: &Connection,
    queue: &str,
    bookings: &Bookings,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    let (channel, mut consumer, _tag) =
        crate::consumer::subscribe(connection, queue, PREFETCH, "dead").await?;
    loop {
        let next = tokio::select! {
            next = consumer.next() => next,
            () = shutdown.recv() => break,
        };
        let Some(delivery) = next else {
            anyhow::bail!("the dead-letter consumer was cancelled by the broker");
        };
        handle(bookings, delivery?, shutdown).await;
    }
    channel.close(200, "shutting down".into()).await?;
    Ok(())
}

/// Records one dead letter, retrying while Postgres fails, then acks it.
async fn handle(bookings: &Bookings, delivery: Delivery, shutdown: &Shutdown) {
    let letter = DeadLetter::read(&delivery.data, delivery.properties.headers().as_ref());
    let mut backoff = BACKOFF;
    loop {
        match record(bookings, &letter).await {
            Ok(recorded) => {
                tracing::error!(booking.id = ?letter.booking_id(), reason = %letter.reason,
                    ?recorded, "a booking command was dead-lettered");
                if let Err(err) = delivery.acker.ack(BasicAckOptions::default()).await {
                    tracing::warn!(error = %err, "could not ack a recorded dead letter");
                }
                return;
            }
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "could not record a dead letter; retrying"
                );
            }
        }
        if shutdown.is_shutdown() {
            let requeue = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if let Err(err) = delivery.acker.nack(requeue).await {
                tracing::warn!(error = %err, "could not nack a dead letter");
            }
            return;
        }
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{FieldArray, LongString};

    use super::*;

    fn death(reason: &str, count: i64, time: u64) -> AMQPValue {
        let mut death = FieldTable::default();
        death.insert(
            "reason".into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        death.insert("count".into(), AMQPValue::LongLongInt(count));
        death.insert("time".into(), AMQPValue::Timestamp(time));
        AMQPValue::FieldTable(death)
    }

    #[test]
    fn an_unparsable_message_keeps_its_bytes_reason_and_deaths() {
        let mut headers = FieldTable::default();
        let mut deaths = FieldArray::default();
        deaths.push(death("rejected", 2, 1_700_000_100));
        deaths.push(death("delivery_limit", 1, 1_700_000_000));
        headers.insert("x-death".into(), AMQPValue::FieldArray(deaths));
        headers.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString(LongString::from("delivery_limit")),
        );
        let letter = DeadLetter::read(b"{\"not\": 1", Some(&headers));
        assert!(letter.command.is_none());
        assert_eq!(letter.payload, "{\"not\": 1");
        assert!(
            letter
                .reason
                .starts_with("delivery_limit: not a booking command ("),
            "{}",
            letter.reason
        );
        assert_eq!(letter.death_count, 3);
        assert_eq!(
            letter.first_death_at.map(OffsetDateTime::unix_timestamp),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn a_huge_or_binary_body_is_capped_on_a_character_boundary_without_nul() {
        let mut body = vec![0u8, 0xff];
        body.extend("é".repeat(PAYLOAD_CAP).as_bytes());
        let letter = DeadLetter::read(&body, None);
        assert!(letter.payload.len() <= PAYLOAD_CAP);
        assert!(!letter.payload.contains('\0'));
        assert_eq!(letter.death_count, 1);
        assert!(letter.reason.starts_with("unknown: "), "{}", letter.reason);
    }
}
