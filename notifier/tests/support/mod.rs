//! What the notifier's tests share: a fake SMTP server, fixture bookings in Postgres, and
//! publishing booking events to the broker.

#![allow(dead_code)]

pub mod smtp;

use std::time::Duration;

use lapin::{BasicProperties, options::BasicPublishOptions, options::ConfirmSelectOptions};
use shared::{
    config::{AmqpConfig, KeysConfig, LogFormat, PushConfig, SmtpConfig, SmtpTls, testing},
    ids::{BookingId, EventId, TicketId, UserId},
    messaging::{self, BookingConfirmed, BookingRejected, Names, TicketSummary, routing},
    tokens::{KeySet, TicketClaims},
};
use sqlx::PgPool;

/// A notifier config on port 0 with a private broker prefix, sending to `smtp_port`.
pub fn config(db: &PgPool, smtp_port: u16) -> notifier::Config {
    notifier::Config {
        http: testing::http(),
        postgres: testing::postgres_for(db),
        amqp: testing::amqp(),
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp_port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Tickets <tickets@example.test>".into(),
        },
        // Unused: the tests hand `build_with` the access key they sign with.
        keys: KeysConfig {
            dir: "/nonexistent".into(),
        },
        push: PushConfig {
            max_per_user: 8,
            max_sockets: 10_000,
        },
        log_format: LogFormat::Pretty,
    }
}

/// A confirmed booking of `seats` seats written straight to Postgres; the event it announces.
pub async fn confirmed_booking(db: &PgPool, keys: &KeySet, seats: usize) -> BookingConfirmed {
    let organizer = UserId::new();
    let fan = UserId::new();
    for (id, name, role) in [
        (organizer, "Olga Organizer", "organizer"),
        (fan, "Frida Fan", "fan"),
    ] {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role)
             VALUES ($1, $2, $3, 'x', $4)",
        )
        .bind(id)
        .bind(format!("{id}@example.test"))
        .bind(name)
        .bind(role)
        .execute(db)
        .await
        .expect("user");
    }
    let venue = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO venues (id, organizer_id, name, city, layout, capacity)
         VALUES ($1, $2, 'Arena', 'Oslo', '{\"kind\": \"grid\", \"sections\": []}', 100)",
    )
    .bind(venue)
    .bind(organizer)
    .execute(db)
    .await
    .expect("venue");
    let event = EventId::new();
    sqlx::query(
        "INSERT INTO events (id, organizer_id, venue_id, title, starts_at, sale_opens_at, capacity)
         VALUES ($1, $2, $3, 'Harbour Jazz Night', now() + interval '30 days', now(), 100)",
    )
    .bind(event)
    .bind(organizer)
    .bind(venue)
    .execute(db)
    .await
    .expect("event");
    let class = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO ticket_classes (id, event_id, name, price_minor, currency, position)
         VALUES ($1, $2, 'Normal', 5000, 'EUR', 0)",
    )
    .bind(class)
    .bind(event)
    .execute(db)
    .await
    .expect("class");
    let booking = BookingId::new();
    sqlx::query(
        "INSERT INTO bookings (id, event_id, user_id, status, total_minor, currency)
         VALUES ($1, $2, $3, 'confirmed', $4, 'EUR')",
    )
    .bind(booking)
    .bind(event)
    .bind(fan)
    .bind(5000 * i64::try_from(seats).expect("small"))
    .execute(db)
    .await
    .expect("booking");
    let mut tickets = Vec::new();
    for n in 1..=seats {
        let seat = uuid::Uuid::now_v7();
        let label = format!("A-1-{n}");
        let n = i32::try_from(n).expect("small");
        sqlx::query(
            "INSERT INTO seats (id, event_id, class_id, label, section, row_no, seat_no, idx, row_rank)
             VALUES ($1, $2, $3, $4, 'A', 1, $5, $5, 0)",
        )
        .bind(seat)
        .bind(event)
        .bind(class)
        .bind(&label)
        .bind(n)
        .execute(db)
        .await
        .expect("seat");
        let ticket = TicketId::new();
        let code = keys
            .ticket
            .sign(
                TicketClaims {
                    tid: ticket,
                    evt: event,
                },
                Duration::from_secs(3600),
            )
            .expect("signs");
        sqlx::query(
            "INSERT INTO tickets (id, booking_id, event_id, seat_id, class_id, price_minor, code)
             VALUES ($1, $2, $3, $4, $5, 5000, $6)",
        )
        .bind(ticket)
        .bind(booking)
        .bind(event)
        .bind(seat)
        .bind(class)
        .bind(&code)
        .execute(db)
        .await
        .expect("ticket");
        tickets.push(TicketSummary {
            ticket_id: ticket,
            seat_label: label,
            class: "Normal".into(),
        });
    }
    BookingConfirmed {
        booking_id: booking,
        event_id: event,
        user_id: fan,
        total: shared::domain::Money {
            amount: 5000 * i64::try_from(seats).expect("small"),
            currency: shared::domain::Currency::parse("EUR").expect("currency"),
        },
        tickets,
    }
}

/// The fan's address in a fixture booking.
pub fn address(user: UserId) -> String {
    format!("{user}@example.test")
}

/// A rejected booking's event for the fan and event of `confirmed` (no new rows needed).
pub fn rejected_for(confirmed: &BookingConfirmed) -> BookingRejected {
    BookingRejected {
        booking_id: BookingId::new(),
        event_id: confirmed.event_id,
        user_id: confirmed.user_id,
        reason: "seats_already_sold".into(),
    }
}

/// Publishes a booking event to the events exchange, as the outbox relay does.
pub async fn publish(amqp: &AmqpConfig, routing_key: &str, payload: &impl serde::Serialize) {
    let connection = messaging::connect(amqp, "test-publisher")
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    let names = Names::new(amqp.prefix.clone());
    messaging::declare_topology(&channel, &names)
        .await
        .expect("topology");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    channel
        .basic_publish(
            names.events_exchange().as_str().into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(payload).expect("json"),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("published")
        .await
        .expect("confirmed");
    let _ = connection.close(200, "done".into()).await;
}

pub const CONFIRMED: &str = routing::BOOKING_CONFIRMED;
pub const REJECTED: &str = routing::BOOKING_REJECTED;

/// Polls `check` every 50 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
