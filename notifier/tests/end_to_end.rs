//! The whole path across the real services: a fan books through the ticketing API,
//! the booking's outbox event reaches the broker, the notifier pushes it to the fan's socket
//! and mails one email with the PDF; the PDF names the seat and event, its QR decodes, and the
//! organizer's scanner says `valid`, then `already_checked_in`.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use shared::{config::LogFormat, domain::Role};
use sqlx::PgPool;
use support::smtp::FakeSmtp;
use testkit::{
    api::{TestApp, rfc3339_in, simple_config},
    pdf,
    users::mint_named,
};

/// A POST as `token`: the status and the JSON body (`null` when there is none).
async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = app.post_as(path, token, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_booking_is_pushed_mailed_once_with_its_pdf_and_checked_in_once(db: PgPool) {
    shared::telemetry::init_tracing(LogFormat::Pretty);
    let smtp = FakeSmtp::start().await;
    let config = support::config(&db, smtp.port);
    // The API on the notifier's broker names; the notifier checks the API's access tokens.
    let mut api_config = simple_config();
    api_config.amqp = config.amqp.clone();
    let app = TestApp::init()
        .with_config(api_config)
        .spawn(db.clone())
        .await;
    let keys = &app.keys;
    let (notifier_addr, stopper) = support::instance(&config, &keys.access).await;

    // An organizer's event, and a fan with the page open.
    let (_, organizer) = mint_named(&db, keys, Role::Organizer, "Olga Organizer").await;
    let (fan_id, fan) = mint_named(&db, keys, Role::Fan, "Frida Fan").await;
    let (status, venue) = post(
        &app,
        "/api/venues",
        &organizer,
        &json!({"name": "Harbour Hall", "city": "Bergen",
                "layout": {"kind": "grid", "sections": [{"name": "A", "rows": 2, "seats_per_row": 5}]}}),
    )
    .await;
    assert_eq!(status, 201, "{venue}");
    let starts = rfc3339_in(time::Duration::days(30));
    let opens = rfc3339_in(-time::Duration::hours(1));
    let (status, event) = post(
        &app,
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
        &app,
        &format!("/api/events/{event_id}/holds"),
        &fan,
        &json!({"class": "Normal", "quantity": 1}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let (status, booking) = post(
        &app,
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
    let (status, first) = post(&app, "/api/checkin", &organizer, &json!({"code": codes[0]})).await;
    assert_eq!(status, 200);
    assert_eq!(first["result"], "valid", "{first}");
    assert_eq!(first["ticket"]["seat_label"], seat.as_str());
    let (_, again) = post(&app, "/api/checkin", &organizer, &json!({"code": codes[0]})).await;
    assert_eq!(again["result"], "already_checked_in");

    // A redelivered event sends no second mail.
    for (key, payload) in &rows {
        support::publish(&config.amqp, key, payload).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.mails_to(&to).len(), 1);

    support::finish(&config, &[&stopper]).await;
}
