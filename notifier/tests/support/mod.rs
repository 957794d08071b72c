//! What the notifier's tests share, on top of the test kit: a fake SMTP server, the
//! notifier's config and instances, and fixture bookings in Postgres.

#![allow(dead_code)]

pub mod smtp;

use std::time::Duration;

use shared::{
    config::{LogFormat, PushConfig, SmtpConfig, SmtpTls},
    domain::Role,
    ids::{BookingId, TicketId},
    messaging::{BookingConfirmed, BookingRejected, Names, TicketSummary, routing},
    tokens::{KeySet, TicketClaims, TokenKeys},
};
use sqlx::PgPool;
// Every test binary compiles this module and uses a part of it.
#[allow(unused_imports)]
pub use testkit::{broker::publish_event as publish, eventually, users::address};
use testkit::{
    config::{amqp, http, no_keys_dir, postgres_for},
    sale::NewSale,
};

/// A notifier config on port 0 with a private broker prefix, sending to `smtp_port`.
pub fn config(db: &PgPool, smtp_port: u16) -> notifier::Config {
    notifier::Config {
        http: http(),
        postgres: postgres_for(db),
        amqp: amqp(),
        smtp: SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp_port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "Tickets <tickets@example.test>".into(),
        },
        // Unused: the tests hand `build_with` the access key they sign with.
        keys: no_keys_dir(),
        push: PushConfig {
            max_per_user: 8,
            max_sockets: 10_000,
        },
        log_format: LogFormat::Pretty,
    }
}

/// A notifier instance on `config`, verifying `access`'s tokens; its address once it is ready
/// (its push queue bound: events published after that reach its sockets).
pub async fn instance(
    config: &notifier::Config,
    access: &TokenKeys,
) -> (String, notifier::Stopper) {
    let server = notifier::build_with(config, access.verifying_only())
        .await
        .expect("builds");
    let addr = server.local_addr();
    let stopper = server.stopper();
    tokio::spawn(server.run_until(std::future::pending()));
    let url = format!("http://{addr}/readyz");
    assert!(
        eventually(Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
            }
        })
        .await,
        "the notifier became ready"
    );
    (addr.to_string(), stopper)
}

/// Stops the instances' consumers (or they would declare the topology again), then deletes the
/// test's broker names.
pub async fn finish(config: &notifier::Config, stoppers: &[&notifier::Stopper]) {
    for stopper in stoppers {
        stopper.stop();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    testkit::broker::delete_topology(&config.amqp, &Names::new(config.amqp.prefix.clone())).await;
}

/// A confirmed booking of `seats` seats written straight to Postgres; the event it announces.
pub async fn confirmed_booking(db: &PgPool, keys: &KeySet, seats: usize) -> BookingConfirmed {
    let sale = NewSale {
        class_price: Some(5000),
        ..NewSale::default()
    }
    .insert(db)
    .await;
    let (event, class) = (sale.event, sale.class.expect("a class"));
    let (fan, _) = testkit::users::mint_named(db, keys, Role::Fan, "Frida Fan").await;
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

/// A rejected booking's event for the fan and event of `confirmed` (no new rows needed).
pub fn rejected_for(confirmed: &BookingConfirmed) -> BookingRejected {
    BookingRejected {
        booking_id: BookingId::new(),
        event_id: confirmed.event_id,
        user_id: confirmed.user_id,
        reason: "seats_already_sold".into(),
    }
}

pub const CONFIRMED: &str = routing::BOOKING_CONFIRMED;
pub const REJECTED: &str = routing::BOOKING_REJECTED;
