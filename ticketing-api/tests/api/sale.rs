//! The core that must never oversell, over HTTP: holds, best-available, the simple
//! registration path, bookings — raced, expired, forged, flushed and fed garbage.

use std::{collections::HashSet, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{
    domain::Role,
    ids::{HoldId, UserId},
    inventory::HoldState,
};
use sqlx::PgPool;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use testkit::api::{TestApp, assert_error, create_event, event_body, grid_venue, scalar, spawn};

async fn mint(app: &TestApp, role: Role) -> (UserId, String) {
    app.mint(role).await
}

async fn mint_fans(app: &TestApp, n: usize) -> Vec<(UserId, String)> {
    let mut fans = Vec::with_capacity(n);
    for _ in 0..n {
        fans.push(app.mint(Role::Fan).await);
    }
    fans
}

/// An on-sale event: a grid venue of `sections` (name, rows, seats per row) and `classes`.
async fn on_sale(app: &TestApp, sections: &[(&str, i64, i64)], classes: Value) -> Value {
    let (_, organizer) = app.mint(Role::Organizer).await;
    let venue = grid_venue(app, &organizer, sections).await;
    let mut body = event_body(&venue, classes);
    body["max_seats_per_order"] = json!(6);
    body["hold_seconds"] = json!(600);
    create_event(app, &organizer, &body).await
}

/// One section "A" of 1 row × `seats`, one class "Normal" at 50.00 EUR.
async fn small_sale(app: &TestApp, seats: u32) -> String {
    let event = on_sale(
        app,
        &[("A", 1, i64::from(seats))],
        json!([{"name": "Normal", "price": 5000, "currency": "EUR"}]),
    )
    .await;
    event["id"].as_str().expect("id").to_string()
}

async fn seat_map(app: &TestApp, event: &str) -> Vec<Value> {
    let map = app.get_json(&format!("/api/events/{event}/seats")).await;
    map["seats"].as_array().expect("seats").clone()
}

fn seat_id(seats: &[Value], label: &str) -> String {
    seats
        .iter()
        .find(|seat| seat["label"] == label)
        .and_then(|seat| seat["id"].as_str())
        .unwrap_or_else(|| panic!("no seat {label}"))
        .to_string()
}

async fn hold(app: &TestApp, token: &str, event: &str, body: &Value) -> reqwest::Response {
    app.post_as(&format!("/api/events/{event}/holds"), token, body)
        .await
}

async fn register(app: &TestApp, token: &str, event: &str, hold_id: &str) -> reqwest::Response {
    app.post_as(
        &format!("/api/events/{event}/registrations"),
        token,
        &json!({"hold_id": hold_id}),
    )
    .await
}

async fn tickets_sold(app: &TestApp) -> i64 {
    scalar(app, "SELECT count(*) FROM tickets").await
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_fan_holds_a_seat_books_it_and_reads_the_booking(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 10).await;
    let seats = seat_map(&app, &event).await;
    assert_eq!(seats.len(), 10);
    assert!(seats.iter().all(|seat| seat["state"] == "free"));
    let (_, fan) = mint(&app, Role::Fan).await;

    let held = hold(
        &app,
        &fan,
        &event,
        &json!({"seat_ids": [seat_id(&seats, "A-1-3"), seat_id(&seats, "A-1-4")]}),
    )
    .await;
    assert_eq!(held.status(), StatusCode::CREATED);
    let held: Value = held.json().await.expect("json");
    let hold_id = held["hold_id"].as_str().expect("hold id");
    let expires = OffsetDateTime::parse(held["expires_at"].as_str().expect("expiry"), &Rfc3339)
        .expect("rfc3339");
    let left = expires - OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::seconds(590) && left <= time::Duration::seconds(600),
        "{left}"
    );
    let states: Vec<String> = seat_map(&app, &event)
        .await
        .iter()
        .map(|seat| seat["state"].as_str().expect("state").to_string())
        .collect();
    assert_eq!(states[2], "held");
    assert_eq!(states[3], "held");

    let booked = register(&app, &fan, &event, hold_id).await;
    assert_eq!(booked.status(), StatusCode::CREATED);
    let booking: Value = booked.json().await.expect("json");
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["total"], 10_000);
    assert_eq!(booking["currency"], "EUR");
    let labels: Vec<&str> = booking["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|ticket| ticket["seat_label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["A-1-3", "A-1-4"]);

    let id = booking["booking_id"].as_str().expect("id");
    let read: Value = app.get_json_as(&format!("/api/bookings/{id}"), &fan).await;
    assert_eq!(read["booking_id"], id);
    let mine: Value = app.get_json_as("/api/me/bookings", &fan).await;
    assert_eq!(mine[0]["booking_id"], id);
    assert_eq!(seat_map(&app, &event).await[2]["state"], "sold");

    let availability: Value = app
        .get_json(&format!("/api/events/{event}/availability"))
        .await;
    assert_eq!(availability[0]["sold"], 2);
    assert_eq!(availability[0]["free"], 8);
    let detail: Value = app.get_json(&format!("/api/events/{event}")).await;
    assert_eq!(detail["availability"][0]["capacity"], 10);
    assert_eq!(detail["availability"][0]["sold"], 2);
    assert_eq!(detail["availability"][0]["held"], 0);

    // The confirmation waits in the outbox for the notifier.
    let (outbox,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM outbox WHERE routing_key = 'booking.confirmed'")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(outbox, 1);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn three_hundred_fans_racing_for_one_seat_exactly_one_wins(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 5).await;
    let seat = seat_id(&seat_map(&app, &event).await, "A-1-1");
    let fans = mint_fans(&app, 300).await;
    let attempts = fans.iter().map(|(_, token)| {
        let client = app.client.clone();
        let url = app.url(&format!("/api/events/{event}/holds"));
        let body = json!({"seat_ids": [seat]});
        let token = token.clone();
        async move {
            let response = client
                .post(url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("sent");
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            (status, body, token)
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let winners: Vec<&(StatusCode, Value, String)> = results
        .iter()
        .filter(|(status, ..)| *status == StatusCode::CREATED)
        .collect();
    assert_eq!(winners.len(), 1);
    for (status, body, _) in &results {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::CONFLICT);
            assert_eq!(body["error"], "seats_unavailable");
            assert_eq!(body["seat_ids"][0], seat.as_str());
        }
    }
    // And all 300 racing to register the one hold: only its owner can.
    let (_, winner_body, winner_token) = winners[0];
    let hold_id = winner_body["hold_id"].as_str().expect("hold");
    let registrations = results
        .iter()
        .map(|(_, _, token)| register(&app, token, &event, hold_id));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(registrations)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT)
    );
    assert_eq!(tickets_sold(&app).await, 1);
    let again = register(&app, winner_token, &event, hold_id).await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the owner's retry returns the same booking"
    );
    assert_eq!(tickets_sold(&app).await, 1);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn overlapping_multi_seat_holds_and_bookings_never_share_a_seat(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 30).await;
    let seats: Vec<String> = seat_map(&app, &event)
        .await
        .iter()
        .map(|seat| seat["id"].as_str().expect("id").to_string())
        .collect();
    let fans = mint_fans(&app, 120).await;
    let attempts = fans.iter().enumerate().map(|(i, (_, token))| {
        let start = (i * 7) % 27;
        let wanted: Vec<&String> = seats[start..start + 2 + i % 3].iter().collect();
        let app = &app;
        let event = &event;
        async move {
            let response = hold(app, token, event, &json!({"seat_ids": wanted})).await;
            if response.status() != StatusCode::CREATED {
                return None;
            }
            let body: Value = response.json().await.expect("json");
            let hold_id = body["hold_id"].as_str().expect("hold").to_string();
            let booked = register(app, token, event, &hold_id).await;
            (booked.status() == StatusCode::CREATED).then_some(body)
        }
    });
    let booked: Vec<Value> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut sold = HashSet::new();
    for hold in &booked {
        for seat in hold["seat_ids"].as_array().expect("seats") {
            assert!(
                sold.insert(seat.as_str().expect("id").to_string()),
                "{seat} sold twice"
            );
        }
    }
    assert!(!booked.is_empty());
    assert_eq!(
        tickets_sold(&app).await,
        i64::try_from(sold.len()).expect("fits")
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn best_available_holds_adjacent_seats_in_the_best_row(db: PgPool) {
    let app = spawn(db).await;
    let event = on_sale(
        &app,
        &[("A", 3, 8), ("B", 2, 8)],
        json!([
            {"name": "VIP", "price": 15000, "currency": "EUR", "sections": ["B"]},
            {"name": "Normal", "price": 5000, "currency": "EUR"}
        ]),
    )
    .await;
    let event = event["id"].as_str().expect("id").to_string();
    let (_, ada) = mint(&app, Role::Fan).await;
    let (_, bob) = mint(&app, Role::Fan).await;

    let vip: Value = hold(&app, &ada, &event, &json!({"class": "VIP", "quantity": 3}))
        .await
        .json()
        .await
        .expect("json");
    let labels: Vec<&str> = vip["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| s["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["B-1-1", "B-1-2", "B-1-3"]);
    assert!(
        vip["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .all(|s| s["class"] == "VIP")
    );

    let normal: Value = hold(
        &app,
        &bob,
        &event,
        &json!({"class": "Normal", "quantity": 6}),
    )
    .await
    .json()
    .await
    .expect("json");
    let labels: Vec<&str> = normal["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| s["label"].as_str().expect("label"))
        .collect();
    assert_eq!(
        labels,
        ["A-1-1", "A-1-2", "A-1-3", "A-1-4", "A-1-5", "A-1-6"]
    );

    // Bob asks again for 4: his new hold replaces the old one, so row 1 is his again.
    let again: Value = hold(
        &app,
        &bob,
        &event,
        &json!({"class": "Normal", "quantity": 4}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(again["seats"][0]["label"], "A-1-1");
    let gone = app
        .get_as(
            &format!("/api/holds/{}", normal["hold_id"].as_str().expect("id")),
            &bob,
        )
        .await;
    assert_error(gone, StatusCode::NOT_FOUND, "not_found").await;

    let too_many = hold(&app, &ada, &event, &json!({"class": "VIP", "quantity": 17})).await;
    assert_error(too_many, StatusCode::UNPROCESSABLE_ENTITY, "too_many_seats").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn nobody_can_release_read_or_book_another_fans_hold(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 4).await;
    let seat = seat_id(&seat_map(&app, &event).await, "A-1-2");
    let (_, ada) = mint(&app, Role::Fan).await;
    let (_, mallory) = mint(&app, Role::Fan).await;
    let held: Value = hold(&app, &ada, &event, &json!({"seat_ids": [seat]}))
        .await
        .json()
        .await
        .expect("json");
    let hold_id = held["hold_id"].as_str().expect("id");

    let release = app
        .client
        .delete(app.url(&format!("/api/holds/{hold_id}")))
        .bearer_auth(&mallory)
        .send()
        .await
        .expect("sent");
    assert_error(release, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.get_as(&format!("/api/holds/{hold_id}"), &mallory).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        register(&app, &mallory, &event, hold_id).await,
        StatusCode::CONFLICT,
        "hold_expired",
    )
    .await;
    assert_eq!(tickets_sold(&app).await, 0);
    assert_eq!(seat_map(&app, &event).await[1]["state"], "held");

    // The owner can: release frees the seat at once.
    let release = app
        .client
        .delete(app.url(&format!("/api/holds/{hold_id}")))
        .bearer_auth(&ada)
        .send()
        .await
        .expect("sent");
    assert_eq!(release.status(), StatusCode::NO_CONTENT);
    assert_eq!(seat_map(&app, &event).await[1]["state"], "free");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_expired_hold_frees_its_seat_and_cannot_be_booked(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 3).await;
    let seats = seat_map(&app, &event).await;
    let (ada, ada_token) = mint(&app, Role::Fan).await;
    // The API's shortest hold is 30 s; take a 300 ms one through the same inventory.
    let catalog = app
        .catalogs
        .get(&app.db, event.parse().expect("id"))
        .await
        .expect("ok")
        .expect("event");
    let hold_id = HoldId::new();
    app.inventory
        .hold_seats(&catalog, hold_id, ada, Duration::from_millis(300), &[0])
        .await
        .expect("held");
    tokio::time::sleep(Duration::from_millis(400)).await;

    assert_eq!(seat_map(&app, &event).await[0]["state"], "free");
    assert_error(
        register(&app, &ada_token, &event, &hold_id.to_string()).await,
        StatusCode::CONFLICT,
        "hold_expired",
    )
    .await;
    let (_, bob) = mint(&app, Role::Fan).await;
    let taken = hold(
        &app,
        &bob,
        &event,
        &json!({"seat_ids": [seat_id(&seats, "A-1-1")]}),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::CREATED);
    assert_eq!(tickets_sold(&app).await, 0);
    assert!(matches!(
        app.inventory
            .extend(catalog.event_id, hold_id, ada, Duration::ZERO)
            .await
            .expect("ok"),
        HoldState::Expired | HoldState::NotFound
    ));
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn prices_come_from_the_server_whatever_the_client_sends(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 3).await;
    let seat = seat_id(&seat_map(&app, &event).await, "A-1-1");
    let (_, fan) = mint(&app, Role::Fan).await;
    let held: Value = hold(
        &app,
        &fan,
        &event,
        &json!({"seat_ids": [seat], "price": 1, "total": 1, "currency": "XXX"}),
    )
    .await
    .json()
    .await
    .expect("json");
    let booked: Value = app
        .post_as(
            &format!("/api/events/{event}/registrations"),
            &fan,
            &json!({"hold_id": held["hold_id"], "total": 1, "price": 1, "currency": "XXX"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(booked["total"], 5000);
    assert_eq!(booked["currency"], "EUR");
    let (stored,): (i64,) = sqlx::query_as("SELECT total_minor FROM bookings")
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert_eq!(stored, 5000);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_idempotency_key_makes_retries_return_the_same_booking(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 3).await;
    let seat = seat_id(&seat_map(&app, &event).await, "A-1-1");
    let (_, fan) = mint(&app, Role::Fan).await;
    let held: Value = hold(&app, &fan, &event, &json!({"seat_ids": [seat]}))
        .await
        .json()
        .await
        .expect("json");
    let attempt = || {
        app.client
            .post(app.url(&format!("/api/events/{event}/registrations")))
            .bearer_auth(&fan)
            .header("Idempotency-Key", "checkout-42")
            .json(&json!({"hold_id": held["hold_id"]}))
            .send()
    };
    let answers = futures_util::future::join_all((0..10).map(|_| attempt())).await;
    let mut ids = HashSet::new();
    for answer in answers {
        let answer = answer.expect("sent");
        assert_eq!(answer.status(), StatusCode::CREATED);
        let body: Value = answer.json().await.expect("json");
        ids.insert(body["booking_id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids.len(), 1, "ten concurrent retries, one booking");
    assert_eq!(tickets_sold(&app).await, 1);
    let bad = app
        .client
        .post(app.url(&format!("/api/events/{event}/registrations")))
        .bearer_auth(&fan)
        .header("Idempotency-Key", "   ")
        .json(&json!({"hold_id": held["hold_id"]}))
        .send()
        .await
        .expect("sent");
    assert_error(
        bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_idempotency_key",
    )
    .await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn bookings_are_private_to_their_owner_and_admins(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 3).await;
    let seat = seat_id(&seat_map(&app, &event).await, "A-1-1");
    let (_, fan) = mint(&app, Role::Fan).await;
    let (_, other) = mint(&app, Role::Fan).await;
    let (_, admin) = mint(&app, Role::Admin).await;
    let held: Value = hold(&app, &fan, &event, &json!({"seat_ids": [seat]}))
        .await
        .json()
        .await
        .expect("json");
    let booking: Value = register(&app, &fan, &event, held["hold_id"].as_str().expect("id"))
        .await
        .json()
        .await
        .expect("json");
    let path = format!(
        "/api/bookings/{}",
        booking["booking_id"].as_str().expect("id")
    );
    assert_error(
        app.get_as(&path, &other).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.get_as(&path, &admin).await.status(), StatusCode::OK);
    let theirs: Value = app.get_json_as("/api/me/bookings", &other).await;
    assert_eq!(theirs, json!([]));
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn redis_losing_everything_mid_sale_still_sells_no_seat_twice(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 6).await;
    let seats = seat_map(&app, &event).await;
    let (_, ada) = mint(&app, Role::Fan).await;
    let (_, bob) = mint(&app, Role::Fan).await;
    let sold: Value = hold(
        &app,
        &ada,
        &event,
        &json!({"seat_ids": [seat_id(&seats, "A-1-1")]}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        register(&app, &ada, &event, sold["hold_id"].as_str().expect("id"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let bobs: Value = hold(
        &app,
        &bob,
        &event,
        &json!({"seat_ids": [seat_id(&seats, "A-1-2")]}),
    )
    .await
    .json()
    .await
    .expect("json");

    // Redis loses the event's inventory (a flush, a failover).
    let redis = shared::cache::connect(&shared::config::RedisConfig {
        url: shared::config::Secret::new(
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        connections: 1,
        key_prefix: String::new(),
    })
    .expect("pool");
    let mut conn = redis.conn();
    let base = app.inventory.keys().inventory(event.parse().expect("id"));
    let keys: Vec<String> = shared::cache::redis::cmd("KEYS")
        .arg(format!("{base}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    let _: i64 = shared::cache::redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("del");

    // Bob's hold died with it; the sold seat is still sold (rebuilt from Postgres).
    assert_error(
        register(&app, &bob, &event, bobs["hold_id"].as_str().expect("id")).await,
        StatusCode::CONFLICT,
        "hold_expired",
    )
    .await;
    let map = seat_map(&app, &event).await;
    assert_eq!(map[0]["state"], "sold");
    assert_eq!(map[1]["state"], "free");

    // Even if Redis wrongly believed the sold seat free, Postgres refuses to sell it again.
    let _: i64 = shared::cache::redis::cmd("HDEL")
        .arg(format!("{base}seats"))
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("hdel");
    let _: i64 = shared::cache::redis::cmd("ZADD")
        .arg(format!("{base}free:0"))
        .arg(1)
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("zadd");
    let (_, carol) = mint(&app, Role::Fan).await;
    let fooled = hold(
        &app,
        &carol,
        &event,
        &json!({"seat_ids": [seat_id(&seats, "A-1-1")]}),
    )
    .await;
    assert_eq!(
        fooled.status(),
        StatusCode::CREATED,
        "Redis was fooled into a hold"
    );
    let fooled: Value = fooled.json().await.expect("json");
    assert_error(
        register(
            &app,
            &carol,
            &event,
            fooled["hold_id"].as_str().expect("id"),
        )
        .await,
        StatusCode::CONFLICT,
        "seats_already_sold",
    )
    .await;
    assert_eq!(tickets_sold(&app).await, 1);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn bad_hold_and_registration_requests_are_4xx_and_change_nothing(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 10).await;
    let seats = seat_map(&app, &event).await;
    let a1 = seat_id(&seats, "A-1-1");
    let (_, fan) = mint(&app, Role::Fan).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let seven: Vec<String> = seats
        .iter()
        .take(7)
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    let cases = [
        (
            json!({"seat_ids": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_seats",
        ),
        (
            json!({"seat_ids": seven}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_seats",
        ),
        (
            json!({"seat_ids": [a1, a1]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_seats",
        ),
        (
            json!({"seat_ids": [unknown]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_seats",
        ),
        (
            json!({"seat_ids": ["not-a-uuid"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"seat_ids": "A-1-1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"class": "Gold", "quantity": 2}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_class",
        ),
        (
            json!({"class": "Normal", "quantity": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_seats",
        ),
        (
            json!({"class": "Normal", "quantity": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"class": "Normal", "quantity": 1.5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"class": "Normal"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_hold_request",
        ),
        (
            json!({"seat_ids": [a1], "class": "Normal", "quantity": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_hold_request",
        ),
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_hold_request",
        ),
    ];
    for (body, status, code) in cases {
        let response = hold(&app, &fan, &event, &body).await;
        assert_eq!(response.status(), status, "{body}");
        assert_error(response, status, code).await;
    }
    let malformed = app
        .client
        .post(app.url(&format!("/api/events/{event}/holds")))
        .bearer_auth(&fan)
        .header("content-type", "application/json")
        .body("{\"seat_ids\": [")
        .send()
        .await
        .expect("sent");
    assert_error(malformed, StatusCode::BAD_REQUEST, "malformed_json").await;
    let no_event = hold(
        &app,
        &fan,
        &uuid::Uuid::now_v7().to_string(),
        &json!({"seat_ids": [a1]}),
    )
    .await;
    assert_error(no_event, StatusCode::NOT_FOUND, "not_found").await;
    let bad_id = hold(&app, &fan, "42", &json!({"seat_ids": [a1]})).await;
    assert_error(bad_id, StatusCode::BAD_REQUEST, "invalid_path").await;
    let anonymous = app
        .post(
            &format!("/api/events/{event}/holds"),
            &json!({"seat_ids": [a1]}),
        )
        .await;
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;

    for body in [json!({}), json!({"hold_id": "nope"}), json!({"hold_id": 7})] {
        let response = app
            .post_as(&format!("/api/events/{event}/registrations"), &fan, &body)
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    }
    let unknown_hold = register(&app, &fan, &event, &uuid::Uuid::now_v7().to_string()).await;
    assert_error(unknown_hold, StatusCode::CONFLICT, "hold_expired").await;
    for path in ["/api/holds/nope", "/api/bookings/nope"] {
        assert_error(
            app.get_as(path, &fan).await,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        )
        .await;
    }
    let format = app
        .get(&format!("/api/events/{event}/seats?format=xml"))
        .await;
    assert_error(format, StatusCode::UNPROCESSABLE_ENTITY, "invalid_format").await;

    assert!(
        seat_map(&app, &event)
            .await
            .iter()
            .all(|seat| seat["state"] == "free")
    );
    assert_eq!(tickets_sold(&app).await, 0);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_compact_and_state_seat_maps_agree_with_the_json_one(db: PgPool) {
    let app = spawn(db).await;
    let event = small_sale(&app, 5).await;
    let seats = seat_map(&app, &event).await;
    let (_, fan) = mint(&app, Role::Fan).await;
    hold(
        &app,
        &fan,
        &event,
        &json!({"seat_ids": [seat_id(&seats, "A-1-2")]}),
    )
    .await;
    let compact: Value = app
        .get_json(&format!("/api/events/{event}/seats?format=compact"))
        .await;
    assert_eq!(compact["state"], "fhfff");
    assert_eq!(compact["labels"][1], "A-1-2");
    assert_eq!(compact["ids"][1], seats[1]["id"]);
    assert_eq!(compact["classes"], json!(["Normal"]));
    let state = app
        .get(&format!("/api/events/{event}/seats?format=state"))
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(state, "fhfff");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_opening_rush_loads_an_events_catalog_once(db: PgPool) {
    let app = spawn(db).await;
    let event: shared::ids::EventId = small_sale(&app, 500).await.parse().expect("event id");
    // A fresh process's cache, and 300 fans asking for the same event at the same moment.
    let cache = shared::inventory::CatalogCache::new();
    let rush = (0..300).map(|_| {
        let (cache, db) = (cache.clone(), app.db.clone());
        tokio::spawn(async move { cache.get(&db, event).await })
    });
    let catalogs: Vec<_> = futures_util::future::join_all(rush)
        .await
        .into_iter()
        .map(|joined| {
            joined
                .expect("task")
                .expect("loaded")
                .expect("the event exists")
        })
        .collect();
    assert_eq!(cache.loads(), 1, "one read of Postgres served the rush");
    assert!(
        catalogs
            .iter()
            .all(|c| std::sync::Arc::ptr_eq(c, &catalogs[0]))
    );
    assert_eq!(catalogs[0].seats.len(), 500);

    // Ids that name no event are not cached (an event could never be found later otherwise)
    // and leave nothing behind: each ask reads again.
    let nowhere = shared::ids::EventId::new();
    for _ in 0..3 {
        assert!(cache.get(&app.db, nowhere).await.expect("read").is_none());
    }
    assert_eq!(cache.loads(), 4);
}
