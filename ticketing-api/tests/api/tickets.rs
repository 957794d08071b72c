//! Tickets after the sale: the owner's PDF (read back: text and QR) and check-in at the door,
//! raced by many scanners.

use std::collections::HashMap;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{domain::Role, tokens::TicketClaims};
use sqlx::PgPool;

use testkit::api::{TestApp, assert_error, create_event, event_body, grid_venue, spawn};

/// An on-sale event of one row of `seats` by a fresh organizer: (organizer token, event id).
async fn event(app: &TestApp, seats: i64) -> (String, String) {
    let (_, organizer) = app.mint(Role::Organizer).await;
    let venue = grid_venue(app, &organizer, &[("A", 1, seats)]).await;
    let mut body = event_body(
        &venue,
        json!([{"name": "Normal", "price": 5000, "currency": "EUR"}]),
    );
    body["title"] = json!("Midnight Orchestra");
    let event = create_event(app, &organizer, &body).await;
    (organizer, event["id"].as_str().expect("id").to_string())
}

/// A fan books `count` best-available seats; returns (fan token, the booking's JSON).
async fn book(app: &TestApp, event: &str, count: u32) -> (String, Value) {
    let (_, fan) = app.mint(Role::Fan).await;
    let held = app
        .post_as(
            &format!("/api/events/{event}/holds"),
            &fan,
            &json!({"class": "Normal", "quantity": count}),
        )
        .await;
    let status = held.status();
    let held: Value = held.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let booked = app
        .post_as(
            &format!("/api/events/{event}/registrations"),
            &fan,
            &json!({"hold_id": held["hold_id"]}),
        )
        .await;
    assert_eq!(booked.status(), StatusCode::CREATED);
    (fan, booked.json().await.expect("json"))
}

async fn check_in(app: &TestApp, token: &str, code: &str) -> Value {
    let response = app
        .post_as("/api/checkin", token, &json!({"code": code}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_owner_downloads_a_tickets_pdf_whose_qr_verifies(db: PgPool) {
    let app = spawn(db).await;
    let (_, event) = event(&app, 10).await;
    let (fan, booking) = book(&app, &event, 2).await;
    let ticket = &booking["tickets"][1];
    let ticket_id = ticket["id"].as_str().expect("id");

    let response = app
        .get_as(&format!("/api/tickets/{ticket_id}/pdf"), &fan)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.expect("body");
    let text = testkit::pdf::pdf_text(&pdf);
    assert_eq!(text.matches('\u{c}').count(), 1, "one page: {text}");
    let label = ticket["seat_label"].as_str().expect("label");
    for needle in [
        "Midnight Orchestra",
        label,
        "Normal",
        "Arena, Oslo",
        "Minted",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let other_label = booking["tickets"][0]["seat_label"].as_str().expect("label");
    assert!(!text.contains(other_label), "only the one ticket:\n{text}");
    let codes = testkit::pdf::qr_codes(&pdf, 1);
    assert_eq!(codes, [ticket["code"].as_str().expect("code")]);
    let claims = app
        .keys
        .ticket
        .verifying_only()
        .verify::<TicketClaims>(&codes[0])
        .expect("verifies")
        .claims;
    assert_eq!(claims.tid.to_string(), ticket_id);
    assert_eq!(claims.evt.to_string(), event);

    // Nobody else's, unknown tickets and anonymous callers get nothing.
    let (_, stranger) = app.mint(Role::Fan).await;
    let (_, admin) = app.mint(Role::Admin).await;
    for token in [&stranger, &admin] {
        let response = app
            .get_as(&format!("/api/tickets/{ticket_id}/pdf"), token)
            .await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let unknown = uuid::Uuid::now_v7();
    let response = app
        .get_as(&format!("/api/tickets/{unknown}/pdf"), &fan)
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let anonymous = app.get(&format!("/api/tickets/{ticket_id}/pdf")).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn check_in_is_valid_once_then_already_checked_in_and_refuses_forgeries(db: PgPool) {
    let app = spawn(db).await;
    let (organizer, event) = event(&app, 10).await;
    let (fan, booking) = book(&app, &event, 1).await;
    let code = booking["tickets"][0]["code"].as_str().expect("code");
    let label = booking["tickets"][0]["seat_label"].as_str().expect("label");

    // Another organizer's scanner, a tampered code, garbage: invalid; a fan: forbidden.
    let (_, rival) = app.mint(Role::Organizer).await;
    assert_eq!(
        check_in(&app, &rival, code).await,
        json!({"result": "invalid"})
    );
    // One character of the signature changed (not the last: its low bits are padding).
    let mut tampered: Vec<char> = code.chars().collect();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert_eq!(
        check_in(&app, &organizer, &tampered).await["result"],
        "invalid"
    );
    assert_eq!(
        check_in(&app, &organizer, "not-a-code").await["result"],
        "invalid"
    );
    let signed_elsewhere = shared::tokens::TokenKeys::generate(shared::tokens::KeyPurpose::Ticket)
        .sign(
            TicketClaims {
                tid: booking["tickets"][0]["id"]
                    .as_str()
                    .expect("id")
                    .parse()
                    .expect("ticket id"),
                evt: event.parse().expect("event id"),
            },
            std::time::Duration::from_secs(600),
        )
        .expect("signs");
    assert_eq!(
        check_in(&app, &organizer, &signed_elsewhere).await["result"],
        "invalid"
    );
    let response = app
        .post_as("/api/checkin", &fan, &json!({"code": code}))
        .await;
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;

    let first = check_in(&app, &organizer, code).await;
    assert_eq!(first["result"], "valid", "{first}");
    assert_eq!(first["ticket"]["seat_label"], label);
    assert_eq!(first["ticket"]["holder_name"], "Minted");
    let again = check_in(&app, &organizer, code).await;
    assert_eq!(again["result"], "already_checked_in", "{again}");
    assert_eq!(
        again["ticket"]["checked_in_at"],
        first["ticket"]["checked_in_at"]
    );
    let (_, admin) = app.mint(Role::Admin).await;
    assert_eq!(
        check_in(&app, &admin, code).await["result"],
        "already_checked_in"
    );
    let mine: Value = app.get_json_as("/api/me/bookings", &fan).await;
    assert!(mine[0]["tickets"][0]["checked_in_at"].is_string(), "{mine}");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fifty_scanners_racing_on_one_code_admit_it_exactly_once(db: PgPool) {
    let app = spawn(db).await;
    let (organizer, event) = event(&app, 4).await;
    let (_, booking) = book(&app, &event, 1).await;
    let code = booking["tickets"][0]["code"].as_str().expect("code");

    let results = join_all((0..50).map(|_| check_in(&app, &organizer, code))).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for result in &results {
        *counts
            .entry(result["result"].as_str().expect("result").to_string())
            .or_default() += 1;
    }
    assert_eq!(counts.get("valid"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("already_checked_in"), Some(&49), "{counts:?}");
}
