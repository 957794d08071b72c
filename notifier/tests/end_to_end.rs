//! The whole path across the real services: a fan books through the ticketing API,
//! the booking's outbox event reaches the broker, the notifier pushes it to the fan's socket
//! and mails one email with the PDF; the PDF names the seat and event, its QR decodes, and the
//! organizer's scanner says `valid`, then `already_checked_in`.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use shared::{
    config::{AdminBootstrap, AuthConfig, KeysConfig, LogFormat, Secret, testing},
    domain::Role,
    ids::UserId,
    messaging::{Names, Publisher},
    ticket_pdf::testing as pdf,
    tokens::{AccessClaims, KeySet},
};
use sqlx::PgPool;
use support::smtp::FakeSmtp;

async fn api(db: &PgPool, amqp: &shared::config::AmqpConfig, keys: &KeySet) -> String {
    let redis = testing::redis();
    let config = ticketing_api::Config {
        http: testing::http(),
        postgres: testing::postgres_for(db),
        redis: redis.clone(),
        amqp: amqp.clone(),
        keys: KeysConfig {
            dir: "/nonexistent".into(),
        },
        auth: AuthConfig {
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            cookie_secure: false,
            limits: shared::config::testing::auth_limits(),
            admin: Some(AdminBootstrap {
                email: "admin@example.test".into(),
                password: Secret::new("admin-pass-123".into()),
            }),
        },
        web_root: "/nonexistent".into(),
        log_format: LogFormat::Pretty,
    };
    let state = ticketing_api::AppState::new(
        config.clone(),
        db.clone(),
        shared::cache::connect(&redis).expect("redis"),
        keys.clone(),
        Publisher::lazy(amqp, "api-under-test"),
    );
    let app = ticketing_api::Application::with_state(&config, state)
        .await
        .expect("app");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    base
}

async fn mint(db: &PgPool, keys: &KeySet, role: Role, name: &str) -> (UserId, String) {
    let id = UserId::new();
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, role) VALUES ($1, $2, $3, 'x', $4)",
    )
    .bind(id)
    .bind(support::address(id))
    .bind(name)
    .bind(role.as_str())
    .execute(db)
    .await
    .expect("user");
    let token = keys
        .access
        .sign(AccessClaims { sub: id, role }, Duration::from_secs(900))
        .expect("token");
    (id, token)
}

async fn post(base: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_booking_is_pushed_mailed_once_with_its_pdf_and_checked_in_once(db: PgPool) {
    shared::telemetry::init_tracing(LogFormat::Pretty);
    let keys = KeySet::generate();
    let smtp = FakeSmtp::start().await;
    let config = support::config(&db, smtp.port);
    let base = api(&db, &config.amqp, &keys).await;
    let notifier = notifier::build_with(&config, keys.access.verifying_only())
        .await
        .expect("notifier");
    let notifier_addr = notifier.local_addr();
    let stopper = notifier.stopper();
    tokio::spawn(notifier.run_until(std::future::pending()));
    let ready = format!("http://{notifier_addr}/readyz");
    assert!(
        support::eventually(Duration::from_secs(20), || {
            let ready = ready.clone();
            async move { reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) }
        })
        .await
    );

    // An organizer's event, and a fan with the page open.
    let (_, organizer) = mint(&db, &keys, Role::Organizer, "Olga Organizer").await;
    let (fan_id, fan) = mint(&db, &keys, Role::Fan, "Frida Fan").await;
    let (status, venue) = post(
        &base,
        "/api/venues",
        &organizer,
        &json!({"name": "Harbour Hall", "city": "Bergen",
                "layout": {"kind": "grid", "sections": [{"name": "A", "rows": 2, "seats_per_row": 5}]}}),
    )
    .await;
    assert_eq!(status, 201, "{venue}");
    let starts = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("date");
    let opens = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("date");
    let (status, event) = post(
        &base,
        "/api/events",
        &organizer,
        &json!({"title": "Fjord Strings", "venue_id": venue["id"], "starts_at": starts,
                "sale_opens_at": opens,
                "classes": [{"name": "Normal", "price": 4500, "currency": "EUR"}]}),
    )
    .await;
    assert_eq!(status, 201, "{event}");
    let event_id = event["id"].as_str().expect("id");
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{notifier_addr}/ws?access_token={fan}"))
            .await
            .expect("socket");

    // The fan books one seat (the simple path: confirmed at once, the event in the outbox).
    let (status, hold) = post(
        &base,
        &format!("/api/events/{event_id}/holds"),
        &fan,
        &json!({"class": "Normal", "quantity": 1}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let (status, booking) = post(
        &base,
        &format!("/api/events/{event_id}/registrations"),
        &fan,
        &json!({"hold_id": hold["hold_id"]}),
    )
    .await;
    assert_eq!(status, 201, "{booking}");
    let seat = booking["tickets"][0]["seat_label"]
        .as_str()
        .expect("seat")
        .to_string();

    // The outbox relay's part (it lives in the registration worker): publish what was written.
    let rows: Vec<(String, Value)> =
        sqlx::query_as("SELECT routing_key, payload FROM outbox ORDER BY id")
            .fetch_all(&db)
            .await
            .expect("outbox");
    assert_eq!(rows.len(), 1);
    for (key, payload) in &rows {
        support::publish(&config.amqp, key, payload).await;
    }

    // Pushed to the open socket.
    let pushed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    break serde_json::from_str::<Value>(&text).expect("json");
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("pushed in time");
    assert_eq!(pushed["type"], "booking.confirmed");
    assert_eq!(pushed["booking_id"], booking["booking_id"]);
    assert_eq!(pushed["tickets"][0]["seat_label"], seat.as_str());

    // One mail, the PDF attached; its text and QR.
    let to = support::address(fan_id);
    let mails = smtp.wait_for(&to, 1, Duration::from_secs(20)).await;
    assert_eq!(mails.len(), 1);
    let attachment = mails[0].part("application/pdf").expect("the PDF");
    let text = pdf::pdf_text(&attachment);
    for needle in [
        "Fjord Strings",
        seat.as_str(),
        "Harbour Hall, Bergen",
        "Frida Fan",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let codes = pdf::qr_codes(&attachment, 1);
    assert_eq!(codes.len(), 1);

    // The scanned QR at the door: valid once, then already checked in.
    let (status, first) = post(
        &base,
        "/api/checkin",
        &organizer,
        &json!({"code": codes[0]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(first["result"], "valid", "{first}");
    assert_eq!(first["ticket"]["seat_label"], seat.as_str());
    let (_, again) = post(
        &base,
        "/api/checkin",
        &organizer,
        &json!({"code": codes[0]}),
    )
    .await;
    assert_eq!(again["result"], "already_checked_in");

    // A redelivered event sends no second mail.
    for (key, payload) in &rows {
        support::publish(&config.amqp, key, payload).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails_to(&to).len(), 1);

    stopper.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    shared::messaging::testing::delete_topology(
        &config.amqp,
        &Names::new(config.amqp.prefix.clone()),
    )
    .await;
}
