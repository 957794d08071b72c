//! RabbitMQ: the names of every exchange and queue, the message payloads, and the connection.
//!
//! Topology:
//! - `booking.commands` (direct exchange) → `booking.commands` (durable quorum queue): the
//!   queued registration path, consumed by competing registration workers. Messages that keep
//!   failing go through `booking.dlx` to `booking.commands.dead`, visible to admins.
//! - `booking.events` (topic exchange), routing keys `booking.confirmed` / `booking.rejected`,
//!   published from the outbox. `notifier.mail` (durable, shared by all notifier instances)
//!   gets each event once for email; each notifier instance also binds its own exclusive queue
//!   for WebSocket pushes, so every instance sees every push.
//!
//! `AMQP_PREFIX` is prepended to every name so tests can share one broker.

use anyhow::Context;
use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    config::AmqpConfig,
    domain::Money,
    ids::{BookingId, ClassId, EventId, HoldId, TicketId, UserId},
};

/// Connects with automatic recovery, so a broker restart does not need a process restart.
/// For consumers; a [`Publisher`] connects without it (see there).
pub async fn connect(config: &AmqpConfig, connection_name: &str) -> anyhow::Result<Connection> {
    connect_with(config, connection_name, true).await
}

async fn connect_with(
    config: &AmqpConfig,
    connection_name: &str,
    auto_recover: bool,
) -> anyhow::Result<Connection> {
    let mut properties =
        ConnectionProperties::default().with_connection_name(connection_name.into());
    if auto_recover {
        properties = properties.enable_auto_recover();
    }
    Connection::connect(config.url.expose(), properties)
        .await
        .context("connecting to RabbitMQ")
}

/// How many times a command is delivered before it is dead-lettered as poison.
pub const DELIVERY_LIMIT: i32 = 5;

/// Declares every durable exchange and queue (idempotent; each service calls it at start-up so
/// that none depends on another having started first).
pub async fn declare_topology(channel: &Channel, names: &Names) -> anyhow::Result<()> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let quorum = |extra: &[(&str, AMQPValue)]| {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        for (key, value) in extra {
            args.insert((*key).into(), value.clone());
        }
        args
    };

    for (exchange, kind) in [
        (names.commands_exchange(), ExchangeKind::Direct),
        (names.dead_letter_exchange(), ExchangeKind::Fanout),
        (names.events_exchange(), ExchangeKind::Topic),
    ] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                kind,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("declaring exchange {exchange}"))?;
    }

    // Commands: a quorum queue (replicated, durable) that dead-letters poison messages after
    // DELIVERY_LIMIT deliveries instead of redelivering them forever.
    let commands = names.commands_queue();
    channel
        .queue_declare(
            commands.as_str().into(),
            durable_queue,
            quorum(&[
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString(names.dead_letter_exchange().as_str().into()),
                ),
                ("x-delivery-limit", AMQPValue::LongInt(DELIVERY_LIMIT)),
            ]),
        )
        .await
        .with_context(|| format!("declaring queue {commands}"))?;
    let dead = names.dead_letter_queue();
    channel
        .queue_declare(dead.as_str().into(), durable_queue, quorum(&[]))
        .await
        .with_context(|| format!("declaring queue {dead}"))?;
    let mail = names.mail_queue();
    channel
        .queue_declare(mail.as_str().into(), durable_queue, quorum(&[]))
        .await
        .with_context(|| format!("declaring queue {mail}"))?;

    for (queue, exchange, key) in [
        (
            commands,
            names.commands_exchange(),
            routing::PROCESS_BOOKING,
        ),
        (dead, names.dead_letter_exchange(), ""),
        (
            mail.clone(),
            names.events_exchange(),
            routing::BOOKING_CONFIRMED,
        ),
        (mail, names.events_exchange(), routing::BOOKING_REJECTED),
    ] {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("binding {queue} to {exchange}"))?;
    }
    Ok(())
}

/// Is the broker connection up? For `/readyz`.
pub fn is_connected(connection: &Connection) -> bool {
    connection.status().connected()
}

/// The header that carries the HTTP request id along with a command or an event.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How long a publish may wait for the broker (connect, publish and confirm) before it fails.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Publishes persistent messages with publisher confirms over one connection and one
/// confirm-mode channel per process, reused by every publish and reopened after a failure
/// (the topology is declared each time it opens, so it never depends on another service).
/// A publish returns `Ok` only once the broker has confirmed the message.
#[derive(Clone)]
pub struct Publisher {
    inner: std::sync::Arc<PublisherInner>,
}

struct PublisherInner {
    config: AmqpConfig,
    names: Names,
    connection_name: String,
    open: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("names", &self.inner.names)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher that connects on its first publish.
    pub fn lazy(config: &AmqpConfig, connection_name: &str) -> Self {
        Self {
            inner: std::sync::Arc::new(PublisherInner {
                names: Names::new(config.prefix.clone()),
                config: config.clone(),
                connection_name: connection_name.to_string(),
                open: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// A publisher connected now (and the topology declared), so start-up fails loudly.
    pub async fn connect(config: &AmqpConfig, connection_name: &str) -> anyhow::Result<Self> {
        let publisher = Self::lazy(config, connection_name);
        publisher.channel().await?;
        Ok(publisher)
    }

    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// Is the publisher's connection up? (`false` before the first publish of a lazy one.)
    pub fn is_connected(&self) -> bool {
        self.inner
            .open
            .try_lock()
            .map(|open| open.as_ref().is_some_and(|(c, _)| c.status().connected()))
            .unwrap_or(true)
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        let mut open = self.inner.open.lock().await;
        if let Some((connection, channel)) = open.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *open = None;
        // No automatic recovery here: a recovering connection keeps a publish that timed out
        // (and was answered 503) and sends it once the broker is back, so a refused
        // registration would be booked after all. A failed publish drops the connection
        // instead, and the next one opens a new one.
        let connection =
            connect_with(&self.inner.config, &self.inner.connection_name, false).await?;
        let channel = connection
            .create_channel()
            .await
            .context("opening a channel")?;
        declare_topology(&channel, &self.inner.names).await?;
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        *open = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Publishes one persistent message and waits for the broker's confirm. A nack, an
    /// unroutable message, a closed channel or a timeout is an error (and the channel is
    /// reopened on the next publish).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        message_id: &str,
        request_id: Option<&str>,
    ) -> anyhow::Result<()> {
        self.publish_with(exchange, routing_key, payload, message_id, request_id, true)
            .await
    }

    /// Publishes a booking event (from the outbox) to the events exchange, confirmed. An event
    /// nobody is bound to is fine: it is not returned as unroutable.
    pub async fn publish_event(
        &self,
        routing_key: &str,
        payload: &[u8],
        message_id: &str,
    ) -> anyhow::Result<()> {
        let exchange = self.inner.names.events_exchange();
        self.publish_with(&exchange, routing_key, payload, message_id, None, false)
            .await
    }

    async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        message_id: &str,
        request_id: Option<&str>,
        mandatory: bool,
    ) -> anyhow::Result<()> {
        let attempt = async {
            let channel = self.channel().await?;
            let mut properties = lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message_id.into());
            if let Some(request_id) = request_id {
                let mut headers = FieldTable::default();
                headers.insert(
                    REQUEST_ID_HEADER.into(),
                    AMQPValue::LongString(request_id.into()),
                );
                properties = properties.with_headers(headers);
            }
            let confirmation = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    lapin::options::BasicPublishOptions {
                        mandatory,
                        ..Default::default()
                    },
                    payload,
                    properties,
                )
                .await
                .context("publishing")?
                .await
                .context("waiting for the broker's confirm")?;
            match confirmation {
                lapin::Confirmation::Ack(None) => Ok(()),
                lapin::Confirmation::Ack(Some(_)) => {
                    anyhow::bail!("the broker could not route the message to any queue")
                }
                lapin::Confirmation::Nack(_) => {
                    anyhow::bail!("the broker refused the message (nack)")
                }
                lapin::Confirmation::NotRequested => {
                    anyhow::bail!("the channel is not in confirm mode")
                }
            }
        };
        let (result, timed_out) = match tokio::time::timeout(PUBLISH_TIMEOUT, attempt).await {
            Ok(result) => (result, false),
            Err(_) => (
                Err(anyhow::anyhow!("the broker did not confirm in time")),
                true,
            ),
        };
        if result.is_err() {
            // Start afresh next time: a channel that failed once may be closed or stuck. A
            // stuck one is closed, so that nothing it still holds is sent after this answer.
            if let Ok(mut open) = self.inner.open.try_lock()
                && let Some((connection, _)) = open.take()
                && timed_out
            {
                tokio::spawn(async move {
                    let closing = connection.close(320, "publish timed out".into());
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), closing).await;
                });
            }
        }
        result
    }

    /// Publishes a booking command to the workers; `Ok` means the broker has stored it.
    pub async fn publish_command(
        &self,
        command: &ProcessBookingCommand,
        request_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(command).context("encoding the command")?;
        self.publish(
            &self.inner.names.commands_exchange(),
            routing::PROCESS_BOOKING,
            &payload,
            &command.booking_id.to_string(),
            request_id,
        )
        .await
    }
}

/// The names of every exchange and queue.
#[derive(Debug, Clone, Default)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    pub fn commands_exchange(&self) -> String {
        self.name("booking.commands")
    }

    pub fn commands_queue(&self) -> String {
        self.name("booking.commands")
    }

    pub fn dead_letter_exchange(&self) -> String {
        self.name("booking.dlx")
    }

    pub fn dead_letter_queue(&self) -> String {
        self.name("booking.commands.dead")
    }

    pub fn events_exchange(&self) -> String {
        self.name("booking.events")
    }

    pub fn mail_queue(&self) -> String {
        self.name("notifier.mail")
    }

    /// One notifier instance's own push queue.
    pub fn push_queue(&self, instance: Uuid) -> String {
        self.name(&format!("notifier.push.{instance}"))
    }
}

/// Routing keys: the command to the workers, and the two booking events.
pub mod routing {
    pub const PROCESS_BOOKING: &str = "booking.process";
    pub const BOOKING_CONFIRMED: &str = "booking.confirmed";
    pub const BOOKING_REJECTED: &str = "booking.rejected";
}

/// Asks a registration worker to persist a booking from a hold (the queued path). The hold's
/// seats are the worker's to read from the hold itself (commands from before that still carry
/// `seat_ids`, which parse: unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessBookingCommand {
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub user_id: UserId,
    pub hold_id: HoldId,
    pub idempotency_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Each class's price when the registration was accepted (the 202): what the fan pays,
    /// whatever the organizer changes before a worker writes the booking. Empty in commands
    /// published before quotes existed; the worker then charges the prices of the moment.
    #[serde(default)]
    pub prices: Vec<ClassPrice>,
}

/// A class's price in minor units of the event's currency, as quoted to a fan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassPrice {
    pub class_id: ClassId,
    pub price_minor: i64,
}

/// One ticket as the notifier needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSummary {
    pub ticket_id: TicketId,
    pub seat_label: String,
    pub class: String,
}

/// A booking was persisted: tickets exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingConfirmed {
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub user_id: UserId,
    pub total: Money,
    pub tickets: Vec<TicketSummary>,
}

/// A booking could not be made (seat sold meanwhile, hold expired, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRejected {
    pub booking_id: BookingId,
    pub event_id: EventId,
    pub user_id: UserId,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let names = Names::new("t9.");
        assert_eq!(names.commands_queue(), "t9.booking.commands");
        assert_eq!(names.dead_letter_queue(), "t9.booking.commands.dead");
        assert!(
            names
                .push_queue(Uuid::nil())
                .starts_with("t9.notifier.push.")
        );
    }
}
