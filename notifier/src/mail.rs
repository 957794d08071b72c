//! Booking emails: consumes `booking.confirmed` / `booking.rejected` from the shared mail queue
//! (competing consumers: each event goes to one notifier instance), sends one email per booking
//! over SMTP — the tickets' PDF attached to a confirmation — and acks only once the mail is out
//! and recorded.
//!
//! Exactly one mail per booking: `email_deliveries` (migration 0004) records each booking's mail
//! after the SMTP server accepted it; the check, the send and the record run in one transaction
//! under a per-booking advisory lock, so a redelivered event, or the same event at two
//! instances at once, finds the record and sends nothing. The only duplicate window is a crash
//! between the SMTP server's acceptance and the record's commit (see the migration).
//!
//! Nothing is dropped for an outage: a failed send (SMTP or Postgres down) is retried in place
//! with exponential backoff (up to 30 s) while the delivery stays unacked; the prefetch limit
//! then holds back the rest of the queue. A message that can never be sent (unparsable, or a
//! booking that does not exist) is logged and acked.
//!
//! # Off the sale's critical path
//!
//! Nothing a sale waits for waits for a mail or its PDF:
//! - The booking is confirmed when its row, its tickets and its `booking.confirmed` outbox row
//!   commit together (`shared::booking::write`); the outbox relay publishes the event to the
//!   events exchange with publisher confirms from the broker, never from a consumer
//!   (`registration-worker/src/relay.rs`).
//! - The exchange routes the event to this durable mail queue and, separately, to each
//!   instance's own push queue (`shared::messaging::declare_topology`). The mail consumer and
//!   the push consumer ([`crate::push`]) hold their own AMQP connections and channels, so
//!   mail's unacked deliveries, held while a send is retried, never hold back a push: the
//!   push consumer takes its messages without acks and hands them to the sockets' outboxes
//!   without waiting (`Hub::send`, `try_send`). `tests/push.rs` checks that a push arrives
//!   while the SMTP server is down.
//! - Rendering is CPU work, so it runs in `spawn_blocking`, off the runtime's worker threads
//!   that serve the sockets and the push consumer, and at most [`RENDERS_AT_ONCE`] at a time
//!   per instance (a semaphore), however many deliveries are in flight: on a two-core machine
//!   a burst of confirmations leaves a core to the runtime. A page takes ~0.6 ms
//!   (`shared/benches/ticket_pdf.rs`), so one render at a time is ~1,600 pages a second.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use futures_util::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Attachment, Mailbox, MultiPart, header::ContentType},
    transport::smtp::authentication::Credentials,
};
use shared::{
    backoff::Backoff,
    config::{AmqpConfig, SmtpConfig, SmtpTls},
    ids::BookingId,
    messaging::{self, BookingConfirmed, BookingRejected, Names, routing},
    shutdown::Shutdown,
    ticket_pdf::{self, BookingTickets},
};
use sqlx::PgPool;
use tokio::sync::Semaphore;

/// Deliveries in flight per notifier instance (and so SMTP sends at once).
const PREFETCH: u16 = 8;
/// PDFs rendered at once per notifier instance: one core's worth, whatever the prefetch.
pub const RENDERS_AT_ONCE: usize = 1;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The SMTP transport from the config: plain (dev sink), STARTTLS or implicit TLS, with
/// credentials when set.
pub fn transport(config: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = match config.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
            .context("setting up STARTTLS")?,
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).context("setting up TLS")?
        }
    };
    let mut builder = builder
        .port(config.port)
        .timeout(Some(Duration::from_secs(20)));
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
    }
    Ok(builder.build())
}

/// What the mail worker needs.
#[derive(Clone)]
pub struct Mailer {
    pub db: PgPool,
    pub smtp: AsyncSmtpTransport<Tokio1Executor>,
    pub from: Mailbox,
    /// [`RENDERS_AT_ONCE`] permits, shared by the instance's deliveries. A semaphore rather
    /// than a smaller prefetch: SMTP sends (I/O) still overlap, only the CPU work queues.
    renders: Arc<Semaphore>,
}

impl Mailer {
    pub fn new(db: PgPool, config: &SmtpConfig) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            smtp: transport(config)?,
            from: config
                .from
                .parse()
                .with_context(|| format!("SMTP_FROM {:?} is not a mailbox", config.from))?,
            renders: Arc::new(Semaphore::new(RENDERS_AT_ONCE)),
        })
    }

    /// Renders the booking's PDF on the blocking pool, once a render permit is free. The
    /// permit moves into the blocking task, so it is held exactly as long as the render runs,
    /// even if this future is dropped meanwhile.
    async fn render(&self, booking: BookingTickets) -> anyhow::Result<Vec<u8>> {
        let permit = Arc::clone(&self.renders)
            .acquire_owned()
            .await
            .expect("the render semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let pdf = ticket_pdf::render(&booking);
            drop(permit);
            pdf
        })
        .await
        .map_err(|err| anyhow::anyhow!("rendering panicked: {err}"))?
    }
}

/// Consumes the mail queue forever, reconnecting after a broker outage.
/// Stops at `stop`.
pub async fn run(mailer: Mailer, amqp: AmqpConfig, mut stop: Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let result = tokio::select! {
            result = consume(&mailer, &amqp) => result,
            () = stop.recv() => return,
        };
        match result {
            Ok(()) => tracing::warn!("the mail consumer stopped; reconnecting"),
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "the mail consumer failed; reconnecting"
                );
            }
        }
        backoff.wait_or(&mut stop).await;
        if stop.is_shutdown() {
            return;
        }
    }
}

async fn consume(mailer: &Mailer, amqp: &AmqpConfig) -> anyhow::Result<()> {
    let connection = messaging::connect(amqp, "notifier-mail").await?;
    let channel = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    let names = Names::new(amqp.prefix.clone());
    messaging::declare_topology(&channel, &names).await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .context("setting the prefetch")?;
    let mut consumer = channel
        .basic_consume(
            names.mail_queue().as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("consuming the mail queue")?;
    tracing::info!(queue = %names.mail_queue(), "mail consumer started");
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.context("receiving a delivery")?;
        let mailer = mailer.clone();
        tokio::spawn(async move { handle(&mailer, delivery).await });
    }
    Ok(())
}

/// A booking event the mail worker understands.
#[derive(Debug, Clone)]
pub enum BookingEvent {
    Confirmed(BookingConfirmed),
    Rejected(BookingRejected),
}

impl BookingEvent {
    pub fn parse(routing_key: &str, payload: &[u8]) -> anyhow::Result<Self> {
        Ok(match routing_key {
            routing::BOOKING_CONFIRMED => Self::Confirmed(serde_json::from_slice(payload)?),
            routing::BOOKING_REJECTED => Self::Rejected(serde_json::from_slice(payload)?),
            other => anyhow::bail!("unexpected routing key {other}"),
        })
    }

    pub fn booking_id(&self) -> BookingId {
        match self {
            Self::Confirmed(event) => event.booking_id,
            Self::Rejected(event) => event.booking_id,
        }
    }
}

/// Whether a failure is worth retrying.
enum Failure {
    /// SMTP or Postgres trouble: retry with backoff, never drop.
    Transient(anyhow::Error),
    /// The message can never be sent: log and ack.
    Permanent(anyhow::Error),
}

async fn handle(mailer: &Mailer, delivery: Delivery) {
    let event = match BookingEvent::parse(delivery.routing_key.as_str(), &delivery.data) {
        Ok(event) => event,
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "unreadable booking event; dropped"
            );
            ack(&delivery).await;
            return;
        }
    };
    let booking_id = event.booking_id();
    let mut backoff = Backoff::new(Duration::from_millis(500), MAX_BACKOFF);
    loop {
        match send_once(mailer, &event).await {
            Ok(sent) => {
                if sent {
                    tracing::info!(booking.id = %booking_id, "booking email sent");
                } else {
                    tracing::info!(booking.id = %booking_id, "booking email already sent; skipped");
                }
                ack(&delivery).await;
                return;
            }
            Err(Failure::Permanent(err)) => {
                tracing::error!(booking.id = %booking_id, error = format!("{err:#}"), "booking email cannot be sent; dropped");
                ack(&delivery).await;
                return;
            }
            Err(Failure::Transient(err)) => {
                let pause = backoff.next_pause();
                tracing::warn!(booking.id = %booking_id, error = format!("{err:#}"), retry_in_ms = pause.as_millis() as u64, "booking email failed; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn ack(delivery: &Delivery) {
    if let Err(err) = delivery.acker.ack(BasicAckOptions::default()).await {
        // The channel is gone: the broker redelivers, and the record makes it a no-op.
        tracing::warn!(error = %err, "ack failed");
    }
}

/// Sends the booking's mail unless it was sent before. `Ok(false)`: already sent.
async fn send_once(mailer: &Mailer, event: &BookingEvent) -> Result<bool, Failure> {
    let transient = |err: anyhow::Error| Failure::Transient(err);
    let booking_id = event.booking_id();
    let mut tx = mailer
        .db
        .begin()
        .await
        .context("starting a transaction")
        .map_err(transient)?;
    // One sender per booking at a time, across instances; released at commit or rollback.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('email:' || $1::text, 0))")
        .bind(booking_id)
        .execute(&mut *tx)
        .await
        .context("locking the booking's mail")
        .map_err(transient)?;
    let done: Option<(String,)> =
        sqlx::query_as("SELECT kind FROM email_deliveries WHERE booking_id = $1")
            .bind(booking_id)
            .fetch_optional(&mut *tx)
            .await
            .context("reading the delivery record")
            .map_err(transient)?;
    if done.is_some() {
        return Ok(false);
    }

    let (kind, message) = match event {
        BookingEvent::Confirmed(confirmed) => {
            // Through the transaction's connection: a delivery holds one connection, never
            // waits for a second while holding the first, so the prefetch cannot exhaust the
            // pool it shares with the push side's ban reloads.
            let booking = ticket_pdf::load_on(&mut tx, confirmed.booking_id)
                .await
                .map_err(transient)?
                .ok_or_else(|| Failure::Permanent(anyhow::anyhow!("the booking has no tickets")))?;
            let pdf = mailer
                .render(booking.clone())
                .await
                .map_err(Failure::Permanent)?;
            (
                "confirmed",
                confirmation(&mailer.from, &booking, pdf).map_err(Failure::Permanent)?,
            )
        }
        BookingEvent::Rejected(rejected) => {
            let who: Option<(String, String, String)> = sqlx::query_as(
                "SELECT u.email, u.name, e.title FROM users u, events e
                  WHERE u.id = $1 AND e.id = $2",
            )
            .bind(rejected.user_id)
            .bind(rejected.event_id)
            .fetch_optional(&mut *tx)
            .await
            .context("reading the fan and the event")
            .map_err(transient)?;
            let (email, name, title) =
                who.ok_or_else(|| Failure::Permanent(anyhow::anyhow!("no such fan or event")))?;
            (
                "rejected",
                rejection(&mailer.from, rejected, &email, &name, &title)
                    .map_err(Failure::Permanent)?,
            )
        }
    };
    let recipient = message
        .envelope()
        .to()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let message_id = message_id(booking_id);
    mailer
        .smtp
        .send(message)
        .await
        .context("sending over SMTP")
        .map_err(transient)?;
    // Accepted by the SMTP server: record it. A crash before this commit is the one window in
    // which a redelivery sends the mail again.
    sqlx::query(
        "INSERT INTO email_deliveries (booking_id, kind, recipient, message_id)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(booking_id)
    .bind(kind)
    .bind(&recipient)
    .bind(&message_id)
    .execute(&mut *tx)
    .await
    .context("recording the delivery")
    .map_err(transient)?;
    tx.commit()
        .await
        .context("committing the delivery record")
        .map_err(transient)?;
    Ok(true)
}

/// One Message-ID per booking: a duplicate (the crash window) carries the same id.
fn message_id(booking_id: BookingId) -> String {
    format!("<booking-{booking_id}@tickets.notifier>")
}

fn mailbox(name: &str, email: &str) -> anyhow::Result<Mailbox> {
    Ok(Mailbox::new(
        Some(name.to_string()),
        email
            .parse()
            .with_context(|| format!("{email:?} is not an address"))?,
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The confirmation: plain text and HTML, the tickets' PDF attached.
pub fn confirmation(
    from: &Mailbox,
    booking: &BookingTickets,
    pdf: Vec<u8>,
) -> anyhow::Result<Message> {
    let reference = booking.reference();
    let when = booking
        .starts_at
        .format(time::macros::format_description!(
            "[weekday repr:long] [day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
        ))
        .context("formatting the date")?;
    let venue = if booking.venue_city.is_empty() {
        booking.venue_name.clone()
    } else {
        format!("{}, {}", booking.venue_name, booking.venue_city)
    };
    let seats: Vec<String> = booking
        .tickets
        .iter()
        .map(|t| format!("{} ({})", t.seat_label, t.class))
        .collect();
    let count = booking.tickets.len();
    let plural = if count == 1 { "ticket" } else { "tickets" };
    let text = format!(
        "Hello {name},\n\nyour booking is confirmed: {count} {plural} for {title}.\n\n\
         When:    {when}\nWhere:   {venue}\nSeats:   {seats}\nBooking: {reference}\n\n\
         Your {plural} are attached as a PDF, one page per ticket. Show the QR code at the \
         entrance, on paper or on your phone; each code admits once.\n\nEnjoy the show!\n",
        name = booking.holder_name,
        title = booking.event_title,
        seats = seats.join(", "),
    );
    let rows: String = booking
        .tickets
        .iter()
        .map(|t| {
            format!(
                "<tr><td style=\"padding:4px 12px 4px 0\"><b>{}</b></td><td>{}</td></tr>",
                html_escape(&t.seat_label),
                html_escape(&t.class)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html><html><body style=\"font-family:Helvetica,Arial,sans-serif;color:#1c1f29\">\
         <div style=\"background:#1a3a73;color:#fff;padding:16px 20px\">\
         <div style=\"font-size:12px;opacity:.8\">BOOKING CONFIRMED</div>\
         <div style=\"font-size:22px;font-weight:bold\">{title}</div></div>\
         <div style=\"padding:16px 20px\"><p>Hello {name},</p>\
         <p>your booking is confirmed: {count} {plural}.</p>\
         <p><b>When:</b> {when}<br><b>Where:</b> {venue}<br><b>Booking:</b> {reference}</p>\
         <table>{rows}</table>\
         <p>Your {plural} are attached as a PDF, one page per ticket. Show the QR code at the \
         entrance; each code admits once.</p><p>Enjoy the show!</p></div></body></html>",
        title = html_escape(&booking.event_title),
        name = html_escape(&booking.holder_name),
        when = html_escape(&when),
        venue = html_escape(&venue),
    );
    let attachment = Attachment::new(format!("tickets-{reference}.pdf"))
        .body(pdf, ContentType::parse("application/pdf")?);
    Message::builder()
        .from(from.clone())
        .to(mailbox(&booking.holder_name, &booking.holder_email)?)
        .subject(format!("Your {plural} for {}", booking.event_title))
        .message_id(Some(message_id(booking.booking_id)))
        .multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(text, html))
                .singlepart(attachment),
        )
        .context("building the confirmation")
}

/// The rejection: a short note with the reason.
pub fn rejection(
    from: &Mailbox,
    rejected: &BookingRejected,
    email: &str,
    name: &str,
    title: &str,
) -> anyhow::Result<Message> {
    let text = format!(
        "Hello {name},\n\nsorry: your booking for {title} did not go through ({reason}). \
         Nothing was charged, and no seat is held for you. You can try again while \
         seats remain.\n",
        reason = rejected.reason,
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:Helvetica,Arial,sans-serif\">\
         <p>Hello {name},</p><p>sorry: your booking for <b>{title}</b> did not go through \
         ({reason}). Nothing was charged, and no seat is held for you. You can try again \
         while seats remain.</p></body></html>",
        name = html_escape(name),
        title = html_escape(title),
        reason = html_escape(&rejected.reason),
    );
    Message::builder()
        .from(from.clone())
        .to(mailbox(name, email)?)
        .subject(format!("Your booking for {title} did not go through"))
        .message_id(Some(message_id(rejected.booking_id)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .context("building the rejection")
}
