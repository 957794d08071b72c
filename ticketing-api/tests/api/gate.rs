//! High-demand mode: the organizer's switch (Postgres, the waiting room's Redis gate hash, the
//! audit log) and the admission gate on holds and registrations — fed forged, expired,
//! borrowed and garbage tokens.

use std::{collections::HashMap, time::Duration};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use shared::{
    cache::{Redis, RedisKeys, redis},
    domain::Role,
    ids::{EventId, UserId},
    tokens::{AccessClaims, AdmissionClaims, KeyPurpose, TokenKeys},
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use testkit::api::{
    TestApp, assert_error, create_event, event_body, grid_venue, send_as, simple_config, spawn_with,
};

/// The app, whose Redis the gate lives in (same private prefix).
struct Gated {
    app: TestApp,
}

async fn spawn_gated(db: PgPool) -> Gated {
    spawn_gated_with(db, simple_config()).await
}

async fn spawn_gated_with(db: PgPool, config: ticketing_api::Config) -> Gated {
    Gated {
        app: spawn_with(db, config).await,
    }
}

impl Gated {
    async fn gate_hash(&self, event: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(self.app.redis_keys.queue_gate(event_id(event)))
            .query_async(&mut self.app.redis.conn())
            .await
            .expect("HGETALL")
    }

    async fn active_score(&self, event: &str, fan: UserId) -> Option<f64> {
        redis::cmd("ZSCORE")
            .arg(self.app.redis_keys.queue_active(event_id(event)))
            .arg(fan.to_string())
            .query_async(&mut self.app.redis.conn())
            .await
            .expect("ZSCORE")
    }
}

fn event_id(event: &str) -> EventId {
    event.parse().expect("an event id")
}

/// An organizer and their on-sale event of 1 row × 10 seats.
async fn sale(app: &TestApp) -> (String, String) {
    let (organizer, event) = app.on_sale(10).await;
    (organizer, event.to_string())
}

async fn set_mode(app: &TestApp, token: &str, event: &str, body: &Value) -> Response {
    send_as(
        app,
        Method::PUT,
        &format!("/api/events/{event}/demand-mode"),
        token,
        Some(body),
    )
    .await
}

async fn turn(app: &TestApp, token: &str, event: &str, on: bool) {
    let response = set_mode(
        app,
        token,
        event,
        &json!({"high_demand": on, "admit_per_minute": 120, "max_active": 50}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Mode {
    high_demand: bool,
    admit_per_minute: i32,
    max_active: i32,
}

async fn row(app: &TestApp, event: &str) -> Mode {
    sqlx::query_as("SELECT high_demand, admit_per_minute, max_active FROM events WHERE id = $1")
        .bind(event_id(event))
        .fetch_one(&app.db)
        .await
        .expect("event row")
}

async fn audits(app: &TestApp, event: &str) -> Vec<Value> {
    let rows: Vec<(Value,)> = sqlx::query_as(
        "SELECT details FROM audit_log WHERE action = 'event.demand_mode' AND target_id = $1
         ORDER BY id",
    )
    .bind(event)
    .fetch_all(&app.db)
    .await
    .expect("audit rows");
    rows.into_iter().map(|(details,)| details).collect()
}

fn admission_with(keys: &TokenKeys, fan: UserId, event: EventId) -> String {
    testkit::users::admission_token(keys, fan, event)
}

fn admission(app: &TestApp, fan: UserId, event: &str) -> String {
    admission_with(&app.keys.admission, fan, event_id(event))
}

async fn hold_with(app: &TestApp, fan: &str, event: &str, admission: Option<&str>) -> Response {
    app.hold_one(fan, event, admission).await
}

async fn register_with(
    app: &TestApp,
    fan: &str,
    event: &str,
    hold_id: &str,
    admission: Option<&str>,
) -> Response {
    app.registration(fan, event, hold_id, admission)
        .send()
        .await
        .expect("sent")
}

async fn held(response: Response) -> String {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    body["hold_id"].as_str().expect("hold id").to_string()
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_organizer_turns_demand_mode_on_and_off_in_postgres_redis_and_the_audit_log(
    db: PgPool,
) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    assert!(gated.gate_hash(&event).await.is_empty());
    let opens_ms: i64 = {
        let (at,): (OffsetDateTime,) =
            sqlx::query_as("SELECT sale_opens_at FROM events WHERE id = $1")
                .bind(event_id(&event))
                .fetch_one(&app.db)
                .await
                .expect("row");
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("ms")
    };

    let before_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let response = set_mode(
        app,
        &organizer,
        &event,
        &json!({"high_demand": true, "admit_per_minute": 300, "max_active": 40}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"event_id": event, "high_demand": true, "admit_per_minute": 300, "max_active": 40})
    );
    assert_eq!(
        row(app, &event).await,
        Mode {
            high_demand: true,
            admit_per_minute: 300,
            max_active: 40
        }
    );
    let hash = gated.gate_hash(&event).await;
    assert_eq!(hash.len(), 5, "{hash:?}");
    assert_eq!(hash["high_demand"], "1");
    assert_eq!(hash["admit_per_minute"], "300");
    assert_eq!(hash["max_active"], "40");
    assert_eq!(hash["sale_opens_at_ms"], opens_ms.to_string());
    let updated: i64 = hash["updated_at_ms"].parse().expect("ms");
    assert!(
        updated >= before_ms && updated < before_ms + 60_000,
        "{updated}"
    );
    assert_eq!(
        audits(app, &event).await,
        [json!({"high_demand": true, "admit_per_minute": 300, "max_active": 40})]
    );
    let shown = app.get_json(&format!("/api/events/{event}")).await;
    assert_eq!(shown["high_demand"], true, "{shown}");

    let response = set_mode(
        app,
        &organizer,
        &event,
        &json!({"high_demand": false, "admit_per_minute": 1, "max_active": 1_000_000}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        row(app, &event).await,
        Mode {
            high_demand: false,
            admit_per_minute: 1,
            max_active: 1_000_000
        }
    );
    let hash = gated.gate_hash(&event).await;
    assert_eq!(hash["high_demand"], "0");
    assert_eq!(hash["admit_per_minute"], "1");
    assert_eq!(hash["max_active"], "1000000");
    assert_eq!(audits(app, &event).await.len(), 2);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fans_are_forbidden_other_organizers_see_nothing_admins_may(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    let on = json!({"high_demand": true, "admit_per_minute": 60, "max_active": 10});

    let (_, fan) = app.mint(Role::Fan).await;
    assert_error(
        set_mode(app, &fan, &event, &on).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (_, rival) = app.mint(Role::Organizer).await;
    assert_error(
        set_mode(app, &rival, &event, &on).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        set_mode(app, &organizer, &EventId::new().to_string(), &on).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let anonymous = app
        .client
        .put(app.url(&format!("/api/events/{event}/demand-mode")))
        .json(&on)
        .send()
        .await
        .expect("sent");
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(!row(app, &event).await.high_demand);
    assert!(gated.gate_hash(&event).await.is_empty());
    assert!(audits(app, &event).await.is_empty());

    let (_, admin) = app.mint(Role::Admin).await;
    assert_eq!(
        set_mode(app, &admin, &event, &on).await.status(),
        StatusCode::OK
    );
    assert!(row(app, &event).await.high_demand);
    assert_eq!(gated.gate_hash(&event).await["high_demand"], "1");

    // A cancelled event keeps its mode.
    let cancelled = send_as(
        app,
        Method::POST,
        &format!("/api/events/{event}/cancel"),
        &organizer,
        None,
    )
    .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_error(
        set_mode(
            app,
            &organizer,
            &event,
            &json!({"high_demand": false, "admit_per_minute": 60, "max_active": 10}),
        )
        .await,
        StatusCode::CONFLICT,
        "event_cancelled",
    )
    .await;
    assert!(row(app, &event).await.high_demand);
    assert_eq!(gated.gate_hash(&event).await["high_demand"], "1");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn bad_bodies_are_refused_and_change_nothing(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    turn(app, &organizer, &event, true).await;
    let row_before = row(app, &event).await;
    let hash_before = gated.gate_hash(&event).await;

    let invalid_field = [
        json!({"high_demand": false, "admit_per_minute": 0, "max_active": 10}),
        json!({"high_demand": false, "admit_per_minute": 10, "max_active": 0}),
        json!({"high_demand": false, "admit_per_minute": -1, "max_active": 10}),
        json!({"high_demand": false, "admit_per_minute": 10, "max_active": -100}),
        json!({"high_demand": false, "admit_per_minute": 1_000_001, "max_active": 10}),
        json!({"high_demand": false, "admit_per_minute": 10, "max_active": 2_147_483_648_i64}),
        json!({"high_demand": false, "admit_per_minute": i64::MAX, "max_active": 10}),
    ];
    for body in &invalid_field {
        let response = set_mode(app, &organizer, &event, body).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    }
    let invalid_body = [
        json!({}),
        json!({"admit_per_minute": 10, "max_active": 10}),
        json!({"high_demand": "false", "admit_per_minute": 10, "max_active": 10}),
        json!({"high_demand": 0, "admit_per_minute": 10, "max_active": 10}),
        json!({"high_demand": null, "admit_per_minute": 10, "max_active": 10}),
        json!({"high_demand": false, "admit_per_minute": "10", "max_active": 10}),
        json!({"high_demand": false, "admit_per_minute": 1.5, "max_active": 10}),
        json!({"high_demand": false, "admit_per_minute": 10, "max_active": [10]}),
        json!({"high_demand": false, "admit_per_minute": 1e30, "max_active": 10}),
        json!({"high_demand": false, "admit_per_minute": 10, "max_active": 10, "extra": 1}),
        json!("high_demand"),
    ];
    for body in &invalid_body {
        let response = set_mode(app, &organizer, &event, body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {text}");
    }
    // Beyond i64, and not JSON at all.
    for raw in [
        r#"{"high_demand": false, "admit_per_minute": 99999999999999999999999, "max_active": 1}"#,
        r#"{"high_demand": false, "admit_per_minute": 10, "max_active": 10"#,
        "high_demand=false",
        "",
    ] {
        let response = app
            .client
            .put(app.url(&format!("/api/events/{event}/demand-mode")))
            .bearer_auth(&organizer)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("sent");
        let status = response.status();
        assert!(status.is_client_error(), "{raw}: {status}");
    }

    assert_eq!(row(app, &event).await, row_before);
    assert_eq!(gated.gate_hash(&event).await, hash_before);
    assert_eq!(audits(app, &event).await.len(), 1);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn in_high_demand_a_hold_needs_this_fans_valid_admission_for_this_event(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    let (_, other_event) = sale(app).await;
    turn(app, &organizer, &event, true).await;
    let (fan_id, fan) = app.mint(Role::Fan).await;
    let (other_fan, _) = app.mint(Role::Fan).await;

    assert_error(
        hold_with(app, &fan, &event, None).await,
        StatusCode::FORBIDDEN,
        "admission_required",
    )
    .await;
    assert_error(
        hold_with(app, &fan, &event, Some("")).await,
        StatusCode::FORBIDDEN,
        "admission_required",
    )
    .await;

    let foreign_key = TokenKeys::generate(KeyPurpose::Admission);
    let expired = app
        .keys
        .admission
        .sign_at(
            AdmissionClaims {
                sub: fan_id,
                evt: event_id(&event),
                jti: Uuid::new_v4(),
            },
            OffsetDateTime::now_utc() - time::Duration::hours(1),
            Duration::from_secs(300),
        )
        .expect("signs");
    // This fan's claims with another fan's signature.
    let mine = admission(app, fan_id, &event);
    let theirs = admission(app, other_fan, &event);
    let mine_parts: Vec<&str> = mine.split('.').collect();
    let their_signature = theirs.rsplit('.').next().expect("signature");
    let tampered = format!("{}.{}.{their_signature}", mine_parts[0], mine_parts[1]);
    let unsigned = format!("{}.{}.", mine_parts[0], mine_parts[1]);
    // An access token signed with the admission key: right key, wrong audience.
    let access_as_admission = app
        .keys
        .admission
        .sign(
            AccessClaims {
                sub: fan_id,
                role: Role::Fan,
            },
            Duration::from_secs(300),
        )
        .expect("signs");
    let cases = [
        (
            "another key",
            admission_with(&foreign_key, fan_id, event_id(&event)),
            "not valid",
        ),
        ("expired", expired, "expired"),
        ("another fan's", theirs.clone(), "another fan"),
        (
            "another event's",
            admission(app, fan_id, &other_event),
            "another event",
        ),
        ("tampered", tampered, "not valid"),
        ("unsigned", unsigned, "not valid"),
        ("garbage", "not.a.token".to_string(), "not valid"),
        ("the access token", fan.clone(), "not valid"),
        ("access claims", access_as_admission, "not valid"),
    ];
    for (what, token, why) in &cases {
        let body = assert_error(
            hold_with(app, &fan, &event, Some(token)).await,
            StatusCode::FORBIDDEN,
            "invalid_admission",
        )
        .await;
        let message = body["message"].as_str().expect("message");
        assert!(message.contains(why), "{what}: {message}");
    }
    // A header that is not even text.
    let binary = app
        .client
        .post(app.url(&format!("/api/events/{event}/holds")))
        .bearer_auth(&fan)
        .header(
            "X-Admission-Token",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").expect("header"),
        )
        .json(&json!({"class": "Normal", "quantity": 1}))
        .send()
        .await
        .expect("sent");
    assert_error(binary, StatusCode::FORBIDDEN, "invalid_admission").await;
    let map = app.get_json(&format!("/api/events/{event}/seats")).await;
    assert!(
        map["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .all(|seat| seat["state"] == "free"),
        "a refused request held a seat"
    );

    // A sound token, but the waiting room has not let the fan in: nothing.
    assert_error(
        hold_with(app, &fan, &event, Some(&mine)).await,
        StatusCode::FORBIDDEN,
        "invalid_admission",
    )
    .await;
    gated.app.let_in(event_id(&event), fan_id).await;
    held(hold_with(app, &fan, &event, Some(&mine)).await).await;
    // The other event is not in high demand: no token needed there.
    held(hold_with(app, &fan, &other_event, None).await).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn in_high_demand_a_registration_needs_admission_and_is_queued(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    turn(app, &organizer, &event, true).await;
    let (fan_id, fan) = app.mint(Role::Fan).await;
    let (bystander, _) = app.mint(Role::Fan).await;
    gated.app.let_in(event_id(&event), fan_id).await;
    gated.app.let_in(event_id(&event), bystander).await;
    let token = admission(app, fan_id, &event);

    let hold_id = held(hold_with(app, &fan, &event, Some(&token)).await).await;
    assert_error(
        register_with(app, &fan, &event, &hold_id, None).await,
        StatusCode::FORBIDDEN,
        "admission_required",
    )
    .await;
    assert_error(
        register_with(
            app,
            &fan,
            &event,
            &hold_id,
            Some(&admission(app, bystander, &event)),
        )
        .await,
        StatusCode::FORBIDDEN,
        "invalid_admission",
    )
    .await;
    assert_error(
        register_with(app, &fan, &event, &hold_id, Some("garbage")).await,
        StatusCode::FORBIDDEN,
        "invalid_admission",
    )
    .await;
    let (bookings,): (i64,) = sqlx::query_as("SELECT count(*) FROM bookings")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(bookings, 0);
    assert!(gated.active_score(&event, fan_id).await.is_some());

    // In high demand the registration is queued: 202 pending, and the fan, done shopping
    // (their seats stay held for the worker), leaves the active shoppers for the next fan.
    let booked = register_with(app, &fan, &event, &hold_id, Some(&token)).await;
    assert_eq!(booked.status(), StatusCode::ACCEPTED);
    let booking: Value = booked.json().await.expect("json");
    assert_eq!(booking["status"], "pending");
    assert!(gated.active_score(&event, fan_id).await.is_none());
    assert!(
        gated.active_score(&event, bystander).await.is_some(),
        "the bystander keeps their place"
    );
    drop_topology(app).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn low_demand_ignores_the_header_and_switching_counts_on_the_next_request(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    let (fan_id, fan) = app.mint(Role::Fan).await;
    gated.app.let_in(event_id(&event), fan_id).await;

    // Off (the default): no header needed, a garbage one ignored.
    let hold_id = held(hold_with(app, &fan, &event, Some("garbage")).await).await;
    let booked = register_with(app, &fan, &event, &hold_id, Some("garbage")).await;
    assert_eq!(booked.status(), StatusCode::CREATED);
    // An admission the fan held (from an earlier high-demand spell) is spent by the purchase,
    // so it cannot buy again if the gate comes back on.
    assert!(gated.active_score(&event, fan_id).await.is_none());

    turn(app, &organizer, &event, true).await;
    gated.app.let_in(event_id(&event), fan_id).await;
    assert_error(
        hold_with(app, &fan, &event, None).await,
        StatusCode::FORBIDDEN,
        "admission_required",
    )
    .await;
    // A hold taken with admission, then the mode is turned off: the registration needs no token.
    let hold_id =
        held(hold_with(app, &fan, &event, Some(&admission(app, fan_id, &event))).await).await;
    turn(app, &organizer, &event, false).await;
    assert_eq!(
        register_with(app, &fan, &event, &hold_id, None)
            .await
            .status(),
        StatusCode::CREATED
    );
    held(hold_with(app, &fan, &event, None).await).await;

    // And on again: the very next request is gated.
    turn(app, &organizer, &event, true).await;
    assert_error(
        hold_with(app, &fan, &event, Some("garbage")).await,
        StatusCode::FORBIDDEN,
        "invalid_admission",
    )
    .await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_openapi_document_describes_the_gate(db: PgPool) {
    let gated = spawn_gated(db).await;
    let doc = gated.app.get_json("/api/openapi.json").await;
    let put = &doc["paths"]["/api/events/{id}/demand-mode"]["put"];
    assert!(put.is_object(), "no demand-mode route");
    for path in [
        "/api/events/{event_id}/holds",
        "/api/events/{event_id}/registrations",
    ] {
        let post = &doc["paths"][path]["post"];
        assert!(
            post["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .any(|p| p["name"] == "X-Admission-Token" && p["in"] == "header"),
            "{path} does not document X-Admission-Token"
        );
        assert!(post["responses"]["403"].is_object(), "{path} lacks its 403");
    }
}

async fn register_keyed(
    app: &TestApp,
    fan: &str,
    event: &str,
    hold_id: &str,
    admission: &str,
    key: &str,
) -> Response {
    app.registration(fan, event, hold_id, Some(admission))
        .header("Idempotency-Key", key)
        .send()
        .await
        .expect("sent")
}

async fn booking_count(app: &TestApp) -> i64 {
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM bookings")
        .fetch_one(&app.db)
        .await
        .expect("count");
    count
}

async fn held_seats(app: &TestApp, event: &str) -> usize {
    let map = app.get_json(&format!("/api/events/{event}/seats")).await;
    map["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .filter(|seat| seat["state"] == "held")
        .count()
}

async fn accepted(response: Response) -> String {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    body["booking_id"].as_str().expect("booking id").to_string()
}

/// A high-demand sale and one fan the waiting room has let in: the app, the event, the fan's
/// id and access token, and the admission token the waiting room signed them.
type AdmittedFan = (Gated, String, UserId, String, String);

async fn admitted_fan(db: PgPool) -> AdmittedFan {
    admitted_fan_with(db, simple_config()).await
}

async fn admitted_fan_with(db: PgPool, config: ticketing_api::Config) -> AdmittedFan {
    let gated = spawn_gated_with(db, config).await;
    let (organizer, event) = sale(&gated.app).await;
    turn(&gated.app, &organizer, &event, true).await;
    let (fan_id, fan) = gated.app.mint(Role::Fan).await;
    let token = gated.app.admit(event_id(&event), fan_id).await;
    (gated, event, fan_id, fan, token)
}

/// Deletes the app's private exchanges and queues (a test that queued registrations).
async fn drop_topology(app: &TestApp) {
    testkit::broker::delete_topology_of(&app.config.amqp).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_token_from_before_the_switch_buys_nothing_once_the_gate_is_on(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    let (fan_id, fan) = app.mint(Role::Fan).await;
    // While the gate is off the waiting room answers a join with an admission token at once,
    // valid for ten minutes; a bot collects one before the organizer flips the switch.
    let early = admission(app, fan_id, &event);
    let hold_before = held(hold_with(app, &fan, &event, Some(&early)).await).await;

    turn(app, &organizer, &event, true).await;
    assert_error(
        hold_with(app, &fan, &event, Some(&early)).await,
        StatusCode::FORBIDDEN,
        "invalid_admission",
    )
    .await;
    assert_error(
        register_with(app, &fan, &event, &hold_before, Some(&early)).await,
        StatusCode::FORBIDDEN,
        "invalid_admission",
    )
    .await;
    assert_eq!(booking_count(app).await, 0);
    assert_eq!(
        held_seats(app, &event).await,
        1,
        "the refused hold took a seat"
    );
    assert!(gated.active_score(&event, fan_id).await.is_none());
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn one_admission_buys_one_order_and_a_retry_still_answers_it(db: PgPool) {
    let (gated, event, fan_id, fan, token) = admitted_fan(db).await;
    let app = &gated.app;

    let hold_id = held(hold_with(app, &fan, &event, Some(&token)).await).await;
    let booking =
        accepted(register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await).await;
    assert!(
        gated.active_score(&event, fan_id).await.is_none(),
        "not spent"
    );

    // Retries of that registration, by key and by hold, answer the same booking.
    let again =
        accepted(register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await).await;
    assert_eq!(again, booking);
    let by_hold = accepted(register_with(app, &fan, &event, &hold_id, Some(&token)).await).await;
    assert_eq!(by_hold, booking);

    // A second order with the same (still unexpired) token: no hold, no registration.
    assert_error(
        hold_with(app, &fan, &event, Some(&token)).await,
        StatusCode::FORBIDDEN,
        "invalid_admission",
    )
    .await;
    assert_eq!(
        held_seats(app, &event).await,
        1,
        "only the first order's seat"
    );
    drop_topology(app).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn two_registrations_racing_on_one_admission_make_one_order(db: PgPool) {
    let (gated, event, fan_id, fan, token) = admitted_fan(db).await;
    let app = &gated.app;
    let hold_id = held(hold_with(app, &fan, &event, Some(&token)).await).await;

    // Twenty tabs register the same hold under twenty keys at once: one order is accepted, the
    // others are told it is in progress or answered with it, or find the admission spent.
    let attempts = (0..20).map(|n| {
        let (fan, event, hold_id, token) = (&fan, &event, &hold_id, &token);
        async move { register_keyed(app, fan, event, hold_id, token, &format!("tab-{n}")).await }
    });
    let mut bookings = std::collections::HashSet::new();
    for response in futures_util::future::join_all(attempts).await {
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        match status {
            StatusCode::ACCEPTED => {
                bookings.insert(body["booking_id"].as_str().expect("id").to_string());
            }
            StatusCode::CONFLICT => assert_eq!(body["error"], "registration_in_progress"),
            StatusCode::FORBIDDEN => assert_eq!(body["error"], "invalid_admission"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    assert!(gated.active_score(&event, fan_id).await.is_none());
    drop_topology(app).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn tokens_minted_while_the_switch_flips_buy_nothing_after_it(db: PgPool) {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    let mut fans = Vec::new();
    for _ in 0..10 {
        fans.push(app.mint(Role::Fan).await);
    }
    let flipped = Arc::new(AtomicBool::new(false));
    // Every fan keeps minting tokens (as the waiting room does while the gate is off) and
    // asking for holds, before, during and after the organizer turns the gate on.
    let shoppers = fans.iter().map(|(fan_id, fan)| {
        let (flipped, event) = (flipped.clone(), event.clone());
        async move {
            let mut after_flip = Vec::new();
            let mut held_before = None;
            let mut rounds_after = 0;
            while rounds_after < 5 {
                let sent_after_flip = flipped.load(Ordering::SeqCst);
                let token = admission(app, *fan_id, &event);
                let response = hold_with(app, fan, &event, Some(&token)).await;
                let status = response.status();
                let body: Value = response.json().await.expect("json");
                if sent_after_flip {
                    after_flip.push((status, body));
                    rounds_after += 1;
                } else if status == StatusCode::CREATED {
                    held_before = Some((body["hold_id"].as_str().expect("id").to_string(), token));
                }
            }
            (after_flip, held_before)
        }
    });
    let flip = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        turn(app, &organizer, &event, true).await;
        flipped.store(true, Ordering::SeqCst);
    };
    let (outcomes, ()) = tokio::join!(futures_util::future::join_all(shoppers), flip);

    let mut holds_before = 0;
    for ((_, fan), (after_flip, held_before)) in fans.iter().zip(outcomes) {
        for (status, body) in after_flip {
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(body["error"], "invalid_admission", "{body}");
        }
        // A hold from before the switch cannot be bought after it.
        if let Some((hold_id, token)) = held_before {
            holds_before += 1;
            assert_error(
                register_with(app, fan, &event, &hold_id, Some(&token)).await,
                StatusCode::FORBIDDEN,
                "invalid_admission",
            )
            .await;
        }
    }
    assert!(holds_before > 0, "the race never ran before the switch");
    assert_eq!(booking_count(app).await, 0);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_registration_the_broker_refuses_gives_the_admission_back(db: PgPool) {
    let mut config = simple_config();
    // Nothing listens on port 1: every publish fails at once.
    config.amqp.url = shared::config::Secret::new("amqp://guest:guest@127.0.0.1:1/%2f".into());
    let (gated, event, fan_id, fan, token) = admitted_fan_with(db, config).await;
    let app = &gated.app;
    let admitted_until = gated.active_score(&event, fan_id).await;
    let hold_id = held(hold_with(app, &fan, &event, Some(&token)).await).await;

    for _ in 0..2 {
        assert_error(
            register_keyed(app, &fan, &event, &hold_id, &token, "k").await,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        )
        .await;
        // Nothing was queued: the admission and the claims are back, so the retry is not
        // refused as spent or in progress.
        assert_eq!(gated.active_score(&event, fan_id).await, admitted_until);
    }
    assert_eq!(booking_count(app).await, 0);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn turning_the_gate_off_and_on_keeps_the_rate_and_cap_when_not_sent(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (organizer, event) = sale(app).await;
    let on = set_mode(app, &organizer, &event, &json!({"high_demand": true})).await;
    assert_eq!(on.status(), StatusCode::OK);
    // The defaults until someone sets them.
    let expect = |high_demand, admit_per_minute, max_active| Mode {
        high_demand,
        admit_per_minute,
        max_active,
    };
    assert_eq!(row(app, &event).await, expect(true, 600, 1000));
    turn(app, &organizer, &event, true).await;
    assert_eq!(row(app, &event).await, expect(true, 120, 50));

    let off = set_mode(app, &organizer, &event, &json!({"high_demand": false})).await;
    let body: Value = off.json().await.expect("json");
    assert_eq!(
        body,
        json!({"event_id": event, "high_demand": false, "admit_per_minute": 120, "max_active": 50})
    );
    assert_eq!(row(app, &event).await, expect(false, 120, 50));
    let hash = gated.gate_hash(&event).await;
    assert_eq!(hash["high_demand"], "0");
    assert_eq!(hash["admit_per_minute"], "120");
    assert_eq!(hash["max_active"], "50");

    let cap_only = json!({"high_demand": true, "max_active": 7, "admit_per_minute": null});
    assert_eq!(
        set_mode(app, &organizer, &event, &cap_only).await.status(),
        StatusCode::OK
    );
    assert_eq!(row(app, &event).await, expect(true, 120, 7));
    // A value that is sent is still checked.
    assert_error(
        set_mode(
            app,
            &organizer,
            &event,
            &json!({"high_demand": false, "max_active": 0}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(row(app, &event).await, expect(true, 120, 7));
    assert_eq!(
        audits(app, &event).await.last(),
        Some(&json!({"high_demand": true, "admit_per_minute": 120, "max_active": 7}))
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn moving_the_sale_opening_reaches_the_waiting_room_until_the_sale_opens(db: PgPool) {
    let gated = spawn_gated(db).await;
    let app = &gated.app;
    let (_, organizer) = app.mint(Role::Organizer).await;
    let venue = grid_venue(app, &organizer, &[("A", 1, 10)]).await;
    let mut body = event_body(
        &venue,
        json!([{"name": "Normal", "price": 5000, "currency": "EUR"}]),
    );
    body["sale_opens_at"] = json!(testkit::api::rfc3339_in(time::Duration::hours(1)));
    let event = create_event(app, &organizer, &body).await;
    let event = event["id"].as_str().expect("id").to_string();
    turn(app, &organizer, &event, true).await;
    let patch = |sale_opens_at: OffsetDateTime| {
        let (event, organizer) = (&event, &organizer);
        let body = json!({"sale_opens_at": sale_opens_at
            .format(&time::format_description::well_known::Rfc3339)
            .expect("formats")});
        async move {
            send_as(
                app,
                Method::PATCH,
                &format!("/api/events/{event}"),
                organizer,
                Some(&body),
            )
            .await
        }
    };
    let opens_ms = |at: OffsetDateTime| (at.unix_timestamp_nanos() / 1_000_000).to_string();

    // Postponed by a day: the waiting room's gate opens a day later too.
    let later = OffsetDateTime::now_utc() + time::Duration::days(1);
    assert_eq!(patch(later).await.status(), StatusCode::OK);
    assert_eq!(
        gated.gate_hash(&event).await["sale_opens_at_ms"],
        opens_ms(later)
    );
    // Brought forward to now: the sale opens at once.
    let now = OffsetDateTime::now_utc();
    assert_eq!(patch(now).await.status(), StatusCode::OK);
    assert_eq!(
        gated.gate_hash(&event).await["sale_opens_at_ms"],
        opens_ms(now)
    );

    // Once open, fans are in line and shopping: the opening cannot move back.
    assert_error(patch(later).await, StatusCode::CONFLICT, "sale_opened").await;
    assert_eq!(
        gated.gate_hash(&event).await["sale_opens_at_ms"],
        opens_ms(now)
    );
    let (opens,): (OffsetDateTime,) =
        sqlx::query_as("SELECT sale_opens_at FROM events WHERE id = $1")
            .bind(event_id(&event))
            .fetch_one(&app.db)
            .await
            .expect("row");
    assert_eq!(opens_ms(opens), opens_ms(now));
    // Other changes still go through.
    let renamed = send_as(
        app,
        Method::PATCH,
        &format!("/api/events/{event}"),
        &organizer,
        Some(&json!({"title": "Still on"})),
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
}

/// Narrows what the app's own Redis user may touch to `patterns` (below the app's key prefix):
/// a Redis that fails a step of a registration for real (NOPERM), the way an outage or a
/// failover mid-request does.
async fn allow_keys(admin: &Redis, user: &str, prefix: &str, patterns: &[&str]) {
    let mut acl = redis::cmd("ACL");
    acl.arg("SETUSER")
        .arg(user)
        .arg("on")
        .arg(">app-password")
        .arg("resetkeys")
        .arg("+@all");
    for pattern in patterns {
        acl.arg(format!("~{prefix}{pattern}"));
    }
    acl.query_async::<()>(&mut admin.conn())
        .await
        .expect("ACL SETUSER");
}

/// The fan's claims and queued-booking markers in Redis, as (claims, markers).
async fn claim_state(admin: &Redis, keys: &RedisKeys, fan: UserId) -> (usize, usize) {
    let mut conn = admin.conn();
    let claims: usize = redis::cmd("HLEN")
        .arg(keys.booking_claims(fan))
        .query_async(&mut conn)
        .await
        .expect("HLEN");
    let markers: usize = redis::cmd("HLEN")
        .arg(keys.bookings_pending(fan))
        .query_async(&mut conn)
        .await
        .expect("HLEN");
    (claims, markers)
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_queued_registration_that_fails_midway_leaves_nothing_and_its_retry_succeeds_at_once(
    db: PgPool,
) {
    // The app talks to Redis as a user of its own; the test, as the default user, narrows that
    // user's keys so that one step of the registration fails, then widens them again.
    let mut config = simple_config();
    let prefix = config.redis.key_prefix.clone();
    let user = format!("app-{}", Uuid::new_v4().simple());
    let admin = shared::cache::connect(&config.redis).expect("redis");
    allow_keys(&admin, &user, &prefix, &["*"]).await;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let authenticated = url.replacen("redis://", &format!("redis://{user}:app-password@"), 1);
    config.redis.url = shared::config::Secret::new(authenticated);
    let (gated, event, fan_id, fan, token) = admitted_fan_with(db, config).await;
    let app = &gated.app;
    let keys = &app.redis_keys;
    let admitted_until = gated.active_score(&event, fan_id).await;
    let hold_id = held(hold_with(app, &fan, &event, Some(&token)).await).await;

    // 1. The claim itself fails (the fan's booking keys are out of reach): nothing is claimed,
    //    nothing spent.
    allow_keys(&admin, &user, &prefix, &["inv:*", "wr:*"]).await;
    let failed = register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    allow_keys(&admin, &user, &prefix, &["*"]).await;
    assert_eq!(claim_state(&admin, keys, fan_id).await, (0, 0));
    assert_eq!(gated.active_score(&event, fan_id).await, admitted_until);

    // 2. The claim is made, then the step after it fails (the event's inventory and admitted
    //    set are out of reach): the claim and its marker are taken back, the admission kept.
    allow_keys(&admin, &user, &prefix, &["bk:*"]).await;
    let failed = register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    allow_keys(&admin, &user, &prefix, &["*"]).await;
    assert_eq!(claim_state(&admin, keys, fan_id).await, (0, 0));
    assert_eq!(gated.active_score(&event, fan_id).await, admitted_until);

    // The retry, at once: accepted, not "in progress" — and it is the one order.
    let booking =
        accepted(register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await).await;
    assert_eq!(
        claim_state(&admin, keys, fan_id).await,
        (2, 1),
        "claimed by hold and key, marked"
    );
    assert!(gated.active_score(&event, fan_id).await.is_none(), "spent");
    let again =
        accepted(register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await).await;
    assert_eq!(again, booking);

    redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async::<()>(&mut admin.conn())
        .await
        .expect("ACL DELUSER");
    drop_topology(app).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_claim_whose_booking_redis_lost_is_taken_over_by_the_retry(db: PgPool) {
    let (gated, event, fan_id, fan, token) = admitted_fan(db).await;
    let app = &gated.app;
    let hold_id = held(hold_with(app, &fan, &event, Some(&token)).await).await;
    let first = accepted(register_with(app, &fan, &event, &hold_id, Some(&token)).await).await;

    // Redis loses the marker (a failover that kept the claim): the booking is neither queued
    // (a worker drops its command: the API no longer stands by it) nor written. The fan's
    // retry is not told "in progress" forever; it queues the hold again.
    redis::cmd("DEL")
        .arg(app.redis_keys.bookings_pending(fan_id))
        .query_async::<()>(&mut app.redis.conn())
        .await
        .expect("DEL");
    app.let_in(event_id(&event), fan_id).await;
    let retried = accepted(register_with(app, &fan, &event, &hold_id, Some(&token)).await).await;
    assert_ne!(retried, first, "the stale booking was answered");
    let again = accepted(register_with(app, &fan, &event, &hold_id, Some(&token)).await).await;
    assert_eq!(again, retried);
    drop_topology(app).await;
}

/// The Redis commands sent for `fan` (its id in a key or an argument) while `work` runs, as
/// `MONITOR` reports them: round trips from clients, not the commands a script runs inside.
async fn redis_calls_for<F: std::future::Future>(fan: UserId, work: F) -> Vec<String> {
    use futures_util::StreamExt;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).expect("client");
    let mut monitor = client
        .get_async_monitor()
        .await
        .expect("MONITOR")
        .into_on_message::<String>();
    // MONITOR sees every client of the shared Redis: the fan's id and an end mark pick ours.
    let end = format!("end-of-{fan}");
    work.await;
    redis::cmd("ECHO")
        .arg(&end)
        .query_async::<String>(
            &mut client
                .get_multiplexed_async_connection()
                .await
                .expect("conn"),
        )
        .await
        .expect("ECHO");
    let mut calls = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(10), monitor.next())
        .await
        .expect("monitor")
    {
        if line.contains(&end) {
            return calls;
        }
        if line.contains(&fan.to_string()) && !line.contains(" lua]") {
            calls.push(line);
        }
    }
    panic!("MONITOR ended before the end mark");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_queued_registration_costs_three_redis_round_trips_and_its_retry_one(db: PgPool) {
    let (gated, event, fan_id, fan, token) = admitted_fan(db).await;
    let app = &gated.app;
    // Another fan's order first: a script Redis has not seen yet costs a reload (NOSCRIPT,
    // then the call again), once per Redis, which is not what is counted here.
    let (other_id, other) = app.mint(Role::Fan).await;
    let other_token = app.admit(event_id(&event), other_id).await;
    let other_hold = held(hold_with(app, &other, &event, Some(&other_token)).await).await;
    accepted(register_keyed(app, &other, &event, &other_hold, &other_token, "warm").await).await;
    let hold_id = held(hold_with(app, &fan, &event, Some(&token)).await).await;

    let calls = redis_calls_for(fan_id, async {
        accepted(register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await).await;
    })
    .await;
    // Claim (claims and marker), keep the hold and spend the admission, mark published.
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(
        calls.iter().all(|call| call.contains("\"EVALSHA\"")),
        "{calls:#?}"
    );

    let calls = redis_calls_for(fan_id, async {
        accepted(register_keyed(app, &fan, &event, &hold_id, &token, "order-1").await).await;
    })
    .await;
    assert_eq!(
        calls.len(),
        1,
        "the retry is answered by its claim: {calls:#?}"
    );
    drop_topology(app).await;
}
