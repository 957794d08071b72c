//! Events: creation with the seat inventory and its order (a contract with the holds code),
//! the validation of every field, public reading and search, and the rules for changes.

use std::time::Instant;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::Duration;

use testkit::api::{
    TestApp, assert_error, create_event, create_venue, event_body, grid_venue, organizer,
    rfc3339_in, scalar, send_as, spawn,
};

/// Rows an event request could have touched.
async fn snapshot(app: &TestApp) -> [i64; 4] {
    [
        scalar(app, "SELECT count(*) FROM events").await,
        scalar(app, "SELECT count(*) FROM ticket_classes").await,
        scalar(app, "SELECT count(*) FROM seats").await,
        scalar(app, "SELECT count(*) FROM audit_log").await,
    ]
}

/// Every seat of the event in `idx` order: (idx, label, class name, section, row, seat, rank).
async fn seats_in_order(app: &TestApp, event: &str) -> Vec<(i32, String, String, i32)> {
    sqlx::query_as::<_, (i32, String, String, i32)>(
        "SELECT s.idx, s.label, c.name, s.row_rank FROM seats s
         JOIN ticket_classes c ON c.id = s.class_id
         WHERE s.event_id = $1::uuid ORDER BY s.idx",
    )
    .bind(event)
    .fetch_all(&app.db)
    .await
    .expect("seats")
}

/// Pretends a fan bought something: a booking row in `status`.
async fn fake_booking(app: &TestApp, event: &str, status: &str) {
    let (user,): (uuid::Uuid,) = sqlx::query_as(
        "INSERT INTO users (id, email, name, password_hash)
         VALUES ($1, $2, 'Buyer', 'x') RETURNING id",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(format!(
        "buyer-{}@example.test",
        uuid::Uuid::new_v4().simple()
    ))
    .fetch_one(&app.db)
    .await
    .expect("user");
    sqlx::query(
        "INSERT INTO bookings (id, event_id, user_id, status, total_minor, currency)
         VALUES ($1, $2::uuid, $3, $4, 5000, 'EUR')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(event)
    .bind(user)
    .bind(status)
    .execute(&app.db)
    .await
    .expect("booking");
}

/// One class "All" at 0.01 EUR for every seat.
fn one_class() -> Value {
    json!([{"name": "All", "price": 1, "currency": "EUR"}])
}

/// An event of `token`'s on a new one-seat venue; (venue id, the event's JSON).
async fn one_seat_event(app: &TestApp, token: &str) -> (String, Value) {
    let venue = grid_venue(app, token, &[("A", 1, 1)]).await;
    let event = create_event(app, token, &event_body(&venue, one_class())).await;
    (venue, event)
}

fn two_classes() -> Value {
    json!([
        {"name": "VIP", "price": 15000, "currency": "EUR", "sections": ["B"]},
        {"name": "Normal", "price": 5000, "currency": "EUR"},
    ])
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_organizer_creates_an_event_whose_seats_are_ready_at_once(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 2, 3), ("B", 1, 2), ("C", 1, 1)]).await;
    let mut body = event_body(&venue, two_classes());
    body["description"] = json!("Loud.\nVery loud.");
    body["hold_seconds"] = json!(300);
    let event = create_event(&app, &token, &body).await;
    assert_eq!(event["status"], "on_sale");
    assert_eq!(event["capacity"], 9);
    assert_eq!(event["high_demand"], false);
    assert_eq!(event["title"], "Band live");
    assert_eq!(event["description"], "Loud.\nVery loud.");
    assert_eq!(event["venue_id"], venue.as_str());
    assert_eq!(event["venue"]["name"], "Arena");
    assert_eq!(event["venue"]["city"], "Oslo");
    assert_eq!(event["venue"]["kind"], "grid");
    assert_eq!(event["hold_seconds"], 300);
    assert_eq!(event["max_seats_per_order"], 6);
    assert_eq!(event["currency"], "EUR");
    assert_eq!(event["classes"][0]["name"], "VIP");
    assert_eq!(event["classes"][0]["price"], 15000);
    assert_eq!(event["classes"][0]["currency"], "EUR");
    assert_eq!(event["classes"][0]["sections"], json!(["B"]));
    assert_eq!(event["classes"][0]["capacity"], 2);
    assert_eq!(event["classes"][1]["sections"], json!(["A", "C"]));
    assert_eq!(event["classes"][1]["capacity"], 7);
    assert_eq!(event["availability"][1]["class"], "Normal");
    assert_eq!(event["availability"][1]["capacity"], 7);
    let id = event["id"].as_str().expect("id");

    // The inventory exists the moment the 201 is out.
    let seats = seats_in_order(&app, id).await;
    assert_eq!(seats.len(), 9);
    let (x, y): (f32, f32) =
        sqlx::query_as("SELECT x, y FROM seats WHERE event_id = $1::uuid AND label = 'C-1-1'")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .expect("seat");
    // C sits below A (2 rows + gap 2) and B (1 row + gap 2).
    assert_eq!((x, y), (1.0, 8.0));

    // Public read, no token.
    let public: Value = app.get_json(&format!("/api/events/{id}")).await;
    // The public read adds live counts from the inventory: nothing is held or sold yet.
    let mut public = public;
    for class in public["availability"].as_array_mut().expect("availability") {
        assert_eq!(class["free"], class["capacity"]);
        assert_eq!(
            (class["held"].clone(), class["sold"].clone()),
            (json!(0), json!(0))
        );
        let class = class.as_object_mut().expect("object");
        for count in ["free", "held", "sold"] {
            class.remove(count);
        }
    }
    assert_eq!(public, event);

    let (positions,): (Vec<i32>,) = sqlx::query_as(
        "SELECT array_agg(position ORDER BY name DESC) FROM ticket_classes WHERE event_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .expect("classes");
    assert_eq!(positions, [0, 1]);
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'event.create'"
        )
        .await,
        1
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn seats_are_numbered_class_by_class_best_first_with_row_ranks(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 2, 2), ("B", 2, 2), ("C", 1, 2)]).await;
    let event = create_event(&app, &token, &event_body(&venue, two_classes())).await;
    let seats = seats_in_order(&app, event["id"].as_str().expect("id")).await;
    let expected: Vec<(i32, String, String, i32)> = [
        ("B-1-1", "VIP", 0),
        ("B-1-2", "VIP", 0),
        ("B-2-1", "VIP", 1),
        ("B-2-2", "VIP", 1),
        ("A-1-1", "Normal", 0),
        ("A-1-2", "Normal", 0),
        ("A-2-1", "Normal", 1),
        ("A-2-2", "Normal", 1),
        ("C-1-1", "Normal", 2),
        ("C-1-2", "Normal", 2),
    ]
    .iter()
    .enumerate()
    .map(|(idx, (label, class, rank))| (idx as i32, label.to_string(), class.to_string(), *rank))
    .collect();
    assert_eq!(seats, expected);

    // A class walks its sections in its own order, not the venue's.
    let reordered = create_event(
        &app,
        &token,
        &event_body(
            &venue,
            json!([
                {"name": "Side", "price": 100, "currency": "NOK", "sections": ["C", "A"]},
                {"name": "Middle", "price": 200, "currency": "NOK", "sections": ["B"]},
            ]),
        ),
    )
    .await;
    let labels: Vec<(String, i32)> = seats_in_order(&app, reordered["id"].as_str().expect("id"))
        .await
        .into_iter()
        .map(|(_, label, _, rank)| (label, rank))
        .collect();
    let expected: Vec<(String, i32)> = [
        ("C-1-1", 0),
        ("C-1-2", 0),
        ("A-1-1", 1),
        ("A-1-2", 1),
        ("A-2-1", 2),
        ("A-2-2", 2),
        ("B-1-1", 0),
        ("B-1-2", 0),
        ("B-2-1", 1),
        ("B-2-2", 1),
    ]
    .iter()
    .map(|(l, r)| (l.to_string(), *r))
    .collect();
    assert_eq!(labels, expected);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn svg_seats_get_rows_from_their_labels_or_their_position(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = create_venue(
        &app,
        &token,
        &json!({"name": "Hall", "layout": {"kind": "svg",
        "svg": "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        "seats": [
            {"label": "FLOOR-2-1", "x": 1, "y": 2},
            {"label": "FLOOR-1-2", "x": 2, "y": 1},
            {"label": "FLOOR-1-1", "x": 1, "y": 1},
            {"label": "BOX-b", "x": 5, "y": 9, "section": "BOX"},
            {"label": "BOX-a", "x": 9, "y": 3},
        ]}}),
    )
    .await;
    let event = create_event(
        &app,
        &token,
        &event_body(
            venue["id"].as_str().expect("id"),
            json!([{"name": "All", "price": 1000, "currency": "EUR"}]),
        ),
    )
    .await;
    // The UI fetches the drawing of SVG venues only.
    assert_eq!(event["venue"]["kind"], "svg");
    let rows = sqlx::query_as::<_, (String, String, i32, i32, i32)>(
        "SELECT label, section, row_no, seat_no, row_rank FROM seats
         WHERE event_id = $1::uuid ORDER BY idx",
    )
    .bind(event["id"].as_str().expect("id"))
    .fetch_all(&app.db)
    .await
    .expect("seats");
    let expected = [
        ("FLOOR-1-1", "FLOOR", 1, 1, 0),
        ("FLOOR-1-2", "FLOOR", 1, 2, 0),
        ("FLOOR-2-1", "FLOOR", 2, 1, 1),
        // No numbers in the label: row 0, numbered by (y, x).
        ("BOX-a", "BOX", 0, 1, 2),
        ("BOX-b", "BOX", 0, 2, 2),
    ]
    .map(|(l, s, r, n, k)| (l.to_string(), s.to_string(), r, n, k));
    assert_eq!(rows, expected);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn creating_an_event_gives_the_planner_statistics_of_its_seats(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 2, 3), ("B", 1, 2), ("C", 1, 1)]).await;
    create_event(&app, &token, &event_body(&venue, two_classes())).await;
    // Only ANALYZE (or VACUUM) counts the rows into pg_class: without it the planner guesses,
    // and it chose to scan every seat to read one booking's tickets.
    let (reltuples,): (f32,) =
        sqlx::query_as("SELECT reltuples FROM pg_class WHERE relname = 'seats'")
            .fetch_one(&app.db)
            .await
            .expect("pg_class");
    assert_eq!(reltuples, 9.0);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_hundred_thousand_seat_event_is_created_in_one_request(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let sections: Vec<(String, i64, i64)> = (0..10).map(|i| (format!("S{i}"), 100, 100)).collect();
    let sections: Vec<(&str, i64, i64)> = sections
        .iter()
        .map(|(n, r, s)| (n.as_str(), *r, *s))
        .collect();
    let venue = grid_venue(&app, &token, &sections).await;
    let body = event_body(
        &venue,
        json!([
            {"name": "Front", "price": 9900, "currency": "EUR", "sections": ["S0", "S1"]},
            {"name": "Rest", "price": 4900, "currency": "EUR"},
        ]),
    );
    let started = Instant::now();
    let event = create_event(&app, &token, &body).await;
    // Informational only (a debug build on a shared machine); never asserted.
    eprintln!(
        "created a 100,000-seat event in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(event["capacity"], 100_000);
    assert_eq!(event["classes"][0]["capacity"], 20_000);
    assert_eq!(event["classes"][1]["capacity"], 80_000);
    let (count, distinct, min, max): (i64, i64, i32, i32) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT idx), min(idx), max(idx) FROM seats WHERE event_id = $1::uuid",
    )
    .bind(event["id"].as_str().expect("id"))
    .fetch_one(&app.db)
    .await
    .expect("counts");
    assert_eq!((count, distinct, min, max), (100_000, 100_000, 0, 99_999));
    let (front_max_rank, rest_first): (i32, String) = sqlx::query_as(
        "SELECT (SELECT max(row_rank) FROM seats WHERE event_id = $1::uuid AND idx < 20000),
                (SELECT label FROM seats WHERE event_id = $1::uuid AND idx = 20000)",
    )
    .bind(event["id"].as_str().expect("id"))
    .fetch_one(&app.db)
    .await
    .expect("order");
    assert_eq!((front_max_rank, rest_first.as_str()), (199, "S2-1-1"));
}

/// Times the creation of large events. Run it on a release build:
/// `cargo test --release -p ticketing-api --test api -- --ignored --nocapture bench_`
#[sqlx::test(migrator = "shared::db::MIGRATOR")]
#[ignore = "a measurement, not a test"]
async fn bench_creating_large_events(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    for (name, sections, rows, seats) in [
        ("10 x 100 x 100", 10, 100, 100),
        ("50 x 40 x 50", 50, 40, 50),
        ("10 x 100 x 100 again", 10, 100, 100),
        ("200,000 seats", 20, 100, 100),
    ] {
        let names: Vec<String> = (0..sections).map(|i| format!("S{i}")).collect();
        let grid: Vec<(&str, i64, i64)> = names.iter().map(|n| (n.as_str(), rows, seats)).collect();
        let venue = grid_venue(&app, &token, &grid).await;
        let body = event_body(
            &venue,
            json!([
                {"name": "Front", "price": 9900, "currency": "EUR", "sections": ["S0"]},
                {"name": "Rest", "price": 4900, "currency": "EUR"},
            ]),
        );
        let started = Instant::now();
        let event = create_event(&app, &token, &body).await;
        println!(
            "bench: {name}: {} seats created in {} ms",
            event["capacity"],
            started.elapsed().as_millis()
        );
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn invalid_events_are_422_with_a_precise_code_and_change_nothing(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let (other, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 2, 2), ("B", 1, 2)]).await;
    let foreign = grid_venue(&app, &other, &[("A", 1, 1)]).await;
    let before = snapshot(&app).await;

    let base = || event_body(&venue, two_classes());
    let with = |key: &str, value: Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    let class = |name: &str, price: Value, currency: &str, sections: Value| json!({"name": name, "price": price, "currency": currency, "sections": sections});
    let classes = |list: Value| with("classes", list);
    let twenty_one: Vec<Value> = (0..21)
        .map(|i| class(&format!("C{i}"), json!(1), "EUR", json!([])))
        .collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("empty title", with("title", json!("  ")), "invalid_field"),
        (
            "long title",
            with("title", json!("t".repeat(201))),
            "invalid_field",
        ),
        (
            "long description",
            with("description", json!("d".repeat(10_001))),
            "invalid_field",
        ),
        (
            "starts in the past",
            with("starts_at", json!(rfc3339_in(-Duration::minutes(1)))),
            "invalid_time",
        ),
        (
            "sale opens after the show",
            with("sale_opens_at", json!(rfc3339_in(Duration::days(31)))),
            "invalid_time",
        ),
        (
            "hold too short",
            with("hold_seconds", json!(29)),
            "invalid_field",
        ),
        (
            "hold too long",
            with("hold_seconds", json!(3601)),
            "invalid_field",
        ),
        (
            "order limit 0",
            with("max_seats_per_order", json!(0)),
            "invalid_field",
        ),
        (
            "order limit 51",
            with("max_seats_per_order", json!(51)),
            "invalid_field",
        ),
        ("no classes", classes(json!([])), "invalid_field"),
        ("21 classes", classes(json!(twenty_one)), "invalid_field"),
        (
            "empty class name",
            classes(json!([class(" ", json!(1), "EUR", json!([]))])),
            "invalid_field",
        ),
        (
            "long class name",
            classes(json!([class(&"c".repeat(101), json!(1), "EUR", json!([]))])),
            "invalid_field",
        ),
        (
            "negative price",
            classes(json!([class("All", json!(-1), "EUR", json!([]))])),
            "invalid_field",
        ),
        (
            "price too high",
            classes(json!([class("All", json!(100_000_001), "EUR", json!([]))])),
            "invalid_field",
        ),
        (
            "duplicate class",
            classes(json!([
                class("Same", json!(1), "EUR", json!(["A"])),
                class("Same", json!(2), "EUR", json!([]))
            ])),
            "duplicate_class",
        ),
        (
            "lower-case currency",
            classes(json!([class("All", json!(1), "eur", json!([]))])),
            "invalid_currency",
        ),
        (
            "not a currency",
            classes(json!([class("All", json!(1), "EURO", json!([]))])),
            "invalid_currency",
        ),
        (
            "mixed currencies",
            classes(json!([
                class("VIP", json!(1), "EUR", json!(["A"])),
                class("Rest", json!(1), "USD", json!([]))
            ])),
            "mixed_currencies",
        ),
        (
            "unknown section",
            classes(json!([
                class("VIP", json!(1), "EUR", json!(["Z"])),
                class("Rest", json!(1), "EUR", json!([]))
            ])),
            "unknown_section",
        ),
        (
            "section named twice in a class",
            classes(json!([class(
                "All",
                json!(1),
                "EUR",
                json!(["A", "A", "B"])
            )])),
            "invalid_field",
        ),
        (
            "seats without class",
            classes(json!([class("VIP", json!(1), "EUR", json!(["A"]))])),
            "seats_without_class",
        ),
        (
            "class shadowed by an earlier one",
            classes(json!([
                class("All", json!(1), "EUR", json!(["A", "B"])),
                class("Late", json!(1), "EUR", json!(["B"]))
            ])),
            "empty_class",
        ),
        (
            "catch-all with nothing left",
            classes(json!([
                class("All", json!(1), "EUR", json!(["A", "B"])),
                class("Rest", json!(1), "EUR", json!([]))
            ])),
            "empty_class",
        ),
        (
            "another organizer's venue",
            with("venue_id", json!(foreign)),
            "unknown_venue",
        ),
        (
            "no such venue",
            with("venue_id", json!(uuid::Uuid::new_v4())),
            "unknown_venue",
        ),
        (
            "venue id not a uuid",
            with("venue_id", json!("v1")),
            "invalid_body",
        ),
        (
            "time not RFC 3339",
            with("starts_at", json!("tomorrow")),
            "invalid_body",
        ),
        (
            "time as a number",
            with("starts_at", json!(1_900_000_000)),
            "invalid_body",
        ),
        (
            "fractional price",
            classes(json!([class("All", json!(1.5), "EUR", json!([]))])),
            "invalid_body",
        ),
        (
            "price as a string",
            classes(json!([class("All", json!("1"), "EUR", json!([]))])),
            "invalid_body",
        ),
        (
            "classes not a list",
            classes(json!({"name": "x"})),
            "invalid_body",
        ),
        (
            "title missing",
            {
                let mut body = base();
                body.as_object_mut().expect("object").remove("title");
                body
            },
            "invalid_body",
        ),
    ];
    for (what, body, code) in cases {
        let response = app.post_as("/api/events", &token, &body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {text}");
        let error: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(error["error"], code, "{what}: {text}");
    }
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn prices_come_only_from_classes(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 1, 2)]).await;
    let mut body = event_body(
        &venue,
        json!([{"name": "All", "price": 2500, "currency": "EUR", "total": 1, "price_minor": 1}]),
    );
    body["price"] = json!(1);
    body["total_minor"] = json!(0);
    body["capacity"] = json!(5);
    let event = create_event(&app, &token, &body).await;
    assert_eq!(event["classes"][0]["price"], 2500);
    assert_eq!(event["capacity"], 2);
    assert!(event.get("price").is_none());
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fans_get_403_and_strangers_401_on_event_changes(db: PgPool) {
    let app = spawn(db).await;
    let (org, _) = organizer(&app).await;
    let (venue, event) = one_seat_event(&app, &org).await;
    let id = event["id"].as_str().expect("id");
    let (_, fan, _) = app.fan("fan@example.test").await;
    let before = snapshot(&app).await;
    let path = format!("/api/events/{id}");
    let cancel = format!("/api/events/{id}/cancel");
    let calls: [(Method, &str, Option<Value>); 4] = [
        (
            Method::POST,
            "/api/events",
            Some(event_body(&venue, one_class())),
        ),
        (Method::PATCH, &path, Some(json!({"title": "Mine now"}))),
        (Method::POST, &cancel, None),
        (Method::DELETE, &path, None),
    ];
    for (method, path, body) in calls {
        let response = send_as(&app, method.clone(), path, &fan, body.as_ref()).await;
        assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        let mut anonymous = app.client.request(method, app.url(path));
        if let Some(body) = &body {
            anonymous = anonymous.json(body);
        }
        let response = anonymous.send().await.expect("sent");
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn another_organizer_cannot_see_or_touch_my_event_but_an_admin_can(db: PgPool) {
    let app = spawn(db).await;
    let (mine, _) = organizer(&app).await;
    let (theirs, _) = organizer(&app).await;
    let (venue, event) = one_seat_event(&app, &mine).await;
    let id = event["id"].as_str().expect("id");
    let before = snapshot(&app).await;
    let path = format!("/api/events/{id}");
    for (method, path, body) in [
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"title": "Stolen"})),
        ),
        (Method::POST, format!("{path}/cancel"), None),
        (Method::DELETE, path.clone(), None),
    ] {
        let response = send_as(&app, method, &path, &theirs, body.as_ref()).await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(snapshot(&app).await, before);

    let admin = app.admin_token().await;
    let patched = send_as(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(&json!({"title": "Fixed by support"})),
    )
    .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.expect("json");
    assert_eq!(patched["title"], "Fixed by support");
    // The event stays the organizer's.
    assert_eq!(patched["organizer_id"], event["organizer_id"]);

    // An admin may create an event in any venue; it belongs to the venue's organizer.
    let by_admin = create_event(&app, &admin, &event_body(&venue, one_class())).await;
    assert_eq!(by_admin["organizer_id"], event["organizer_id"]);
    let (actor,): (String,) = sqlx::query_as(
        "SELECT u.email FROM audit_log a JOIN users u ON u.id = a.actor_id
         WHERE a.action = 'event.create' AND a.target_id = $1",
    )
    .bind(by_admin["id"].as_str().expect("id"))
    .fetch_one(&app.db)
    .await
    .expect("audit");
    assert_eq!(actor, testkit::api::ADMIN_EMAIL);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_public_list_searches_titles_literally_soonest_first_and_paginates(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 1, 1)]).await;
    let classes = json!([{"name": "All", "price": 700, "currency": "EUR"}]);
    let mut ids = Vec::new();
    for day in (1..=12).rev() {
        let mut body = event_body(&venue, classes.clone());
        body["title"] = json!(format!("Rock night {day}"));
        body["starts_at"] = json!(rfc3339_in(Duration::days(day)));
        ids.push(create_event(&app, &token, &body).await["id"].clone());
    }
    let mut odd = event_body(&venue, classes.clone());
    odd["title"] = json!("100% Jazz_club");
    odd["sale_opens_at"] = json!(rfc3339_in(Duration::days(2)));
    odd["starts_at"] = json!(rfc3339_in(Duration::days(20)));
    create_event(&app, &token, &odd).await;
    let mut gone = event_body(&venue, classes);
    gone["title"] = json!("Rock night cancelled");
    let gone = create_event(&app, &token, &gone).await;
    let cancelled = app
        .post_as(
            &format!("/api/events/{}/cancel", gone["id"].as_str().expect("id")),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);

    let get = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.get(&format!("/api/events?{query}")).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("json")
        }
    };
    let all = get("").await;
    assert_eq!(all["total"], 13);
    assert_eq!(all["per_page"], 20);
    let titles: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles[0], "Rock night 1");
    assert_eq!(titles[11], "Rock night 12");
    assert_eq!(titles[12], "100% Jazz_club");
    assert_eq!(all["items"][0]["status"], "on_sale");
    assert_eq!(all["items"][12]["status"], "scheduled");
    assert_eq!(all["items"][0]["price_from"], 700);
    assert_eq!(all["items"][0]["currency"], "EUR");
    assert_eq!(all["items"][0]["venue"]["name"], "Arena");

    let page = get("q=rock&page=2&per_page=5").await;
    assert_eq!(page["total"], 12);
    assert_eq!(page["page"], 2);
    let titles: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["title"].as_str().expect("title"))
        .collect();
    assert_eq!(
        titles,
        [
            "Rock night 6",
            "Rock night 7",
            "Rock night 8",
            "Rock night 9",
            "Rock night 10"
        ]
    );
    // `%` and `_` are searched for literally.
    assert_eq!(get("q=100%25").await["total"], 1);
    assert_eq!(get("q=z_c").await["total"], 1);
    assert_eq!(get("q=k%25n").await["total"], 0);
    assert_eq!(get("q=_").await["total"], 1);
    assert_eq!(get("q=nothing-like-this").await["total"], 0);
    assert_eq!(get("page=4&per_page=5").await["items"], json!([]));

    for (query, status, code) in [
        (
            "page=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pagination",
        ),
        (
            "per_page=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pagination",
        ),
        ("page=x", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let response = app.get(&format!("/api/events?{query}")).await;
        assert_error(response, status, code).await;
    }
    let long = app.get(&format!("/api/events?q={}", "q".repeat(201))).await;
    assert_error(long, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_event_reads_as_scheduled_before_its_sale_and_unknown_ids_are_404(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 1, 1)]).await;
    let mut body = event_body(
        &venue,
        json!([{"name": "All", "price": 1, "currency": "SEK"}]),
    );
    body["sale_opens_at"] = json!(rfc3339_in(Duration::days(1)));
    let event = create_event(&app, &token, &body).await;
    assert_eq!(event["status"], "scheduled");
    assert_eq!(event["admit_per_minute"], 600);
    assert_eq!(event["max_active"], 1000);
    assert_eq!(event["cancelled_at"], Value::Null);

    let unknown = app
        .get(&format!("/api/events/{}", uuid::Uuid::new_v4()))
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    for id in ["nope", "1", "%27%20OR%201%3D1--"] {
        let response = app.get(&format!("/api/events/{id}")).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn updates_change_what_may_change_and_prices_only_before_a_sale(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 1, 2), ("B", 1, 2)]).await;
    let event = create_event(&app, &token, &event_body(&venue, two_classes())).await;
    let id = event["id"].as_str().expect("id");
    let path = format!("/api/events/{id}");
    let vip = event["classes"][0]["id"].as_str().expect("class id");
    let starts = rfc3339_in(Duration::days(40));

    let patch = |body: Value| {
        let (app, token, path) = (&app, &token, &path);
        async move { send_as(app, Method::PATCH, path, token, Some(&body)).await }
    };
    let response = patch(json!({
        "title": "Band live (moved)",
        "description": "New date",
        "starts_at": starts,
        "hold_seconds": 120,
        "max_seats_per_order": 4,
        "classes": [{"id": vip, "price": 17500}],
    }))
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.expect("json");
    assert_eq!(updated["title"], "Band live (moved)");
    assert_eq!(updated["description"], "New date");
    assert_eq!(updated["hold_seconds"], 120);
    assert_eq!(updated["max_seats_per_order"], 4);
    assert_eq!(updated["classes"][0]["price"], 17500);
    assert_eq!(updated["classes"][1]["price"], 5000);
    assert_eq!(updated["capacity"], 4);
    let (stored_starts,): (time::OffsetDateTime,) =
        sqlx::query_as("SELECT starts_at FROM events WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .expect("event");
    assert_eq!(
        stored_starts.unix_timestamp(),
        time::OffsetDateTime::parse(&starts, &time::format_description::well_known::Rfc3339)
            .expect("parses")
            .unix_timestamp()
    );
    // An empty patch changes nothing and is fine.
    assert_eq!(patch(json!({})).await.status(), StatusCode::OK);

    let before = snapshot(&app).await;
    let other_class = uuid::Uuid::new_v4().to_string();
    for (what, body, code) in [
        ("empty title", json!({"title": ""}), "invalid_field"),
        (
            "hold too long",
            json!({"hold_seconds": 4000}),
            "invalid_field",
        ),
        (
            "order limit 0",
            json!({"max_seats_per_order": 0}),
            "invalid_field",
        ),
        (
            "negative price",
            json!({"classes": [{"id": vip, "price": -5}]}),
            "invalid_field",
        ),
        (
            "starts in the past",
            json!({"starts_at": rfc3339_in(-Duration::hours(1))}),
            "invalid_time",
        ),
        (
            "sale after the show",
            json!({"sale_opens_at": rfc3339_in(Duration::days(41))}),
            "invalid_time",
        ),
        (
            "show before the sale",
            json!({"sale_opens_at": rfc3339_in(Duration::days(5)), "starts_at": rfc3339_in(Duration::days(4))}),
            "invalid_time",
        ),
        (
            "another event's class",
            json!({"classes": [{"id": other_class, "price": 1}]}),
            "unknown_class",
        ),
        (
            "moving the venue",
            json!({"venue_id": venue}),
            "invalid_body",
        ),
        (
            "changing sections",
            json!({"classes": [{"id": vip, "price": 1, "sections": ["A"]}]}),
            "invalid_body",
        ),
        ("title as a number", json!({"title": 5}), "invalid_body"),
    ] {
        let response = patch(body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {text}");
        let error: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(error["error"], code, "{what}: {text}");
    }
    assert_eq!(snapshot(&app).await, before);

    // A rejected booking sold nothing: prices may still change.
    fake_booking(&app, id, "rejected").await;
    let response = patch(json!({"classes": [{"id": vip, "price": 18000}]})).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Once something is sold (or on its way), prices are frozen; other fields are not.
    fake_booking(&app, id, "confirmed").await;
    let before = snapshot(&app).await;
    let frozen = patch(json!({"title": "Changed too", "classes": [{"id": vip, "price": 1}]})).await;
    assert_error(frozen, StatusCode::CONFLICT, "event_has_sales").await;
    assert_eq!(snapshot(&app).await, before);
    let (price, title): (i64, String) = sqlx::query_as(
        "SELECT c.price_minor, e.title FROM ticket_classes c JOIN events e ON e.id = c.event_id
         WHERE c.id = $1::uuid",
    )
    .bind(vip)
    .fetch_one(&app.db)
    .await
    .expect("class");
    assert_eq!((price, title.as_str()), (18000, "Band live (moved)"));
    let renamed = patch(json!({"title": "Still fine"})).await;
    assert_eq!(renamed.status(), StatusCode::OK);

    let audited = scalar(
        &app,
        "SELECT count(*) FROM audit_log WHERE action = 'event.update'",
    )
    .await;
    assert_eq!(audited, 4);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn cancelling_is_idempotent_hides_the_event_and_freezes_it(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let (_, event) = one_seat_event(&app, &token).await;
    let id = event["id"].as_str().expect("id");
    let cancel = format!("/api/events/{id}/cancel");
    let first: Value = app
        .post_as(&cancel, &token, &json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["status"], "cancelled");
    let second = app.post_as(&cancel, &token, &json!({})).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.expect("json");
    assert_eq!(second["status"], "cancelled");
    assert_eq!(second["cancelled_at"], first["cancelled_at"]);
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'event.cancel'"
        )
        .await,
        1
    );

    let public: Value = app.get_json(&format!("/api/events/{id}")).await;
    assert_eq!(public["status"], "cancelled");
    let list: Value = app.get_json("/api/events").await;
    assert_eq!(list["total"], 0);

    let patched = send_as(
        &app,
        Method::PATCH,
        &format!("/api/events/{id}"),
        &token,
        Some(&json!({"title": "Back on"})),
    )
    .await;
    assert_error(patched, StatusCode::CONFLICT, "event_cancelled").await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_event_is_deleted_only_while_it_has_no_booking(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let venue = grid_venue(&app, &token, &[("A", 3, 3)]).await;
    let body = event_body(&venue, one_class());
    let kept = create_event(&app, &token, &body).await;
    let doomed = create_event(&app, &token, &body).await;
    let kept_id = kept["id"].as_str().expect("id");
    let doomed_id = doomed["id"].as_str().expect("id");

    // Even a rejected booking is history worth keeping: cancel instead.
    fake_booking(&app, kept_id, "rejected").await;
    let before = snapshot(&app).await;
    let refused = send_as(
        &app,
        Method::DELETE,
        &format!("/api/events/{kept_id}"),
        &token,
        None,
    )
    .await;
    assert_error(refused, StatusCode::CONFLICT, "event_has_sales").await;
    assert_eq!(snapshot(&app).await, before);

    let deleted = send_as(
        &app,
        Method::DELETE,
        &format!("/api/events/{doomed_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after = snapshot(&app).await;
    // One event, its class and its 9 seats are gone; one audit row is new.
    assert_eq!(
        after,
        [before[0] - 1, before[1] - 1, before[2] - 9, before[3] + 1]
    );
    let gone = app.get(&format!("/api/events/{doomed_id}")).await;
    assert_error(gone, StatusCode::NOT_FOUND, "not_found").await;
    let again = send_as(
        &app,
        Method::DELETE,
        &format!("/api/events/{doomed_id}"),
        &token,
        None,
    )
    .await;
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM audit_log WHERE action = 'event.delete'"
        )
        .await,
        1
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn malformed_requests_on_event_endpoints_are_4xx_and_change_nothing(db: PgPool) {
    let app = spawn(db).await;
    let (token, _) = organizer(&app).await;
    let (_, event) = one_seat_event(&app, &token).await;
    let id = event["id"].as_str().expect("id");
    let before = snapshot(&app).await;
    let patch_path = format!("/api/events/{id}");
    for (method, path) in [
        (Method::POST, "/api/events"),
        (Method::PATCH, patch_path.as_str()),
    ] {
        for (body, content_type, status, code) in [
            (
                &b"{\"title\": "[..],
                Some("application/json"),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                &b"title=x"[..],
                Some("application/json"),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                &b"[1]"[..],
                Some("application/json"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                &br#"{"title": null, "hold_seconds": "600", "classes": 3}"#[..],
                Some("application/json"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                &br#"{"title": "x"}"#[..],
                None,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
        ] {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(&token)
                .body(body.to_vec());
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let response = request.send().await.expect("sent");
            assert_error(response, status, code).await;
        }
    }
    for bad in ["x", "1", "00000000-0000-0000-0000"] {
        for (method, path) in [
            (Method::PATCH, format!("/api/events/{bad}")),
            (Method::DELETE, format!("/api/events/{bad}")),
            (Method::POST, format!("/api/events/{bad}/cancel")),
        ] {
            let response = send_as(&app, method, &path, &token, Some(&json!({}))).await;
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
        }
    }
    assert_eq!(snapshot(&app).await, before);
}
