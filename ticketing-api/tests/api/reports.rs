//! The figures organizers and admins watch: an organizer's events, the live dashboard of one
//! event (inventory, revenue, bookings, the waiting room), and the platform's figures.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{
    cache::{RedisKeys, redis},
    domain::Role,
    ids::EventId,
};
use sqlx::PgPool;
use time::OffsetDateTime;

use testkit::api::{
    TestApp, assert_error, create_event, event_body, grid_venue, send_as, simple_config, spawn,
    spawn_with,
};

/// Two classes: VIP = section A (1 × 4 at 100.00 EUR), Normal = section B (1 × 6 at 40.00).
async fn two_class_event(app: &TestApp, organizer: &str) -> String {
    let venue = grid_venue(app, organizer, &[("A", 1, 4), ("B", 1, 6)]).await;
    let body = event_body(
        &venue,
        json!([
            {"name": "VIP", "price": 10000, "currency": "EUR", "sections": ["A"]},
            {"name": "Normal", "price": 4000, "currency": "EUR", "sections": ["B"]},
        ]),
    );
    create_event(app, organizer, &body).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn hold_best(app: &TestApp, fan: &str, event: &str, class: &str, quantity: u32) -> Value {
    let response = app
        .post_as(
            &format!("/api/events/{event}/holds"),
            fan,
            &json!({"class": class, "quantity": quantity}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("hold")
}

async fn buy(app: &TestApp, fan: &str, event: &str, class: &str, quantity: u32) {
    let hold = hold_best(app, fan, event, class, quantity).await;
    let response = app
        .post_as(
            &format!("/api/events/{event}/registrations"),
            fan,
            &json!({"hold_id": hold["hold_id"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

fn class<'a>(dashboard: &'a Value, name: &str) -> &'a Value {
    dashboard["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .find(|c| c["class"] == name)
        .unwrap_or_else(|| panic!("no class {name} in {dashboard}"))
}

#[sqlx::test(migrations = "../shared/migrations")]
async fn the_dashboard_adds_up_the_live_sale(db: PgPool) {
    let config = simple_config();
    let redis = shared::cache::connect(&config.redis).expect("redis");
    let keys = RedisKeys::new(config.redis.key_prefix.clone());
    let app = spawn_with(db, config).await;
    let (_, organizer) = app.mint(Role::Organizer).await;
    let event = two_class_event(&app, &organizer).await;
    let path = format!("/api/events/{event}/dashboard");

    let empty = app.get_json_as(&path, &organizer).await;
    assert_eq!(empty["totals"]["free"], 10);
    assert_eq!(empty["totals"]["revenue"], 0);
    assert_eq!(empty["queue"], Value::Null, "no waiting room yet");

    let (_, first) = app.mint(Role::Fan).await;
    let (_, second) = app.mint(Role::Fan).await;
    let (_, browsing) = app.mint(Role::Fan).await;
    buy(&app, &first, &event, "VIP", 2).await;
    buy(&app, &second, &event, "Normal", 3).await;
    hold_best(&app, &browsing, &event, "Normal", 1).await;

    let live = app.get_json_as(&path, &organizer).await;
    let vip = class(&live, "VIP");
    assert_eq!(
        (&vip["free"], &vip["held"], &vip["sold"]),
        (&json!(2), &json!(0), &json!(2))
    );
    assert_eq!(
        (&vip["tickets"], &vip["revenue"]),
        (&json!(2), &json!(20000))
    );
    let normal = class(&live, "Normal");
    assert_eq!(
        (&normal["free"], &normal["held"], &normal["sold"]),
        (&json!(2), &json!(1), &json!(3))
    );
    assert_eq!(normal["revenue"], 12000);
    assert_eq!(live["totals"]["capacity"], 10);
    assert_eq!(live["totals"]["sold"], 5);
    assert_eq!(live["totals"]["held"], 1);
    assert_eq!(live["totals"]["revenue"], 32000);
    assert_eq!(live["bookings"]["confirmed"], 2);
    assert_eq!(live["currency"], "EUR");

    // The waiting room's keys, as the waiting room writes them: 3 waiting, 2 of 3 admissions
    // still running, 1.5 admissions/s lately.
    let id: EventId = event.parse().expect("event id");
    let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let _: () = redis::pipe()
        .hset_multiple(
            keys.queue_meta(id),
            &[("phase", "open"), ("outflow", "1.5"), ("soldout", "0")],
        )
        .zadd_multiple(keys.queue_waiting(id), &[(1, "a"), (2, "b"), (3, "c")])
        .zadd_multiple(
            keys.queue_active(id),
            &[
                (now_ms + 60_000, "x"),
                (now_ms + 90_000, "y"),
                (now_ms - 1, "gone"),
            ],
        )
        .query_async(&mut redis.conn())
        .await
        .expect("queue keys");
    let queued = app.get_json_as(&path, &organizer).await;
    assert_eq!(
        queued["queue"],
        json!({"phase": "open", "pre_queue": 0, "waiting": 3, "active": 2,
               "admitted_per_second": 1.5, "sold_out": false})
    );

    let admin = app.admin_token().await;
    assert_eq!(app.get_json_as(&path, &admin).await["totals"]["sold"], 5);
}

#[sqlx::test(migrations = "../shared/migrations")]
async fn only_the_events_organizer_or_an_admin_sees_its_dashboard(db: PgPool) {
    let app = spawn(db).await;
    let (_, organizer) = app.mint(Role::Organizer).await;
    let (_, rival) = app.mint(Role::Organizer).await;
    let (_, fan) = app.mint(Role::Fan).await;
    let event = two_class_event(&app, &organizer).await;
    let path = format!("/api/events/{event}/dashboard");

    assert_error(
        app.get(&path).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.get_as(&path, &fan).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.get_as(&path, &rival).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get_as(
            &format!("/api/events/{}/dashboard", EventId::new()),
            &organizer,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for bad in ["not-a-uuid", "1%27%20OR%201=1", "%00"] {
        assert_error(
            app.get_as(&format!("/api/events/{bad}/dashboard"), &organizer)
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        )
        .await;
    }
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIn0.";
    assert_eq!(
        app.get_as(&path, forged).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Reading changes nothing: the sale is as it was.
    assert_eq!(
        app.get_json_as(&path, &organizer).await["totals"]["free"],
        10
    );
}

#[sqlx::test(migrations = "../shared/migrations")]
async fn organizers_list_their_own_events_cancelled_ones_included(db: PgPool) {
    let app = spawn(db).await;
    let (_, organizer) = app.mint(Role::Organizer).await;
    let (_, rival) = app.mint(Role::Organizer).await;
    let (_, fan) = app.mint(Role::Fan).await;
    let kept = two_class_event(&app, &organizer).await;
    let cancelled = two_class_event(&app, &organizer).await;
    two_class_event(&app, &rival).await;
    let response = send_as(
        &app,
        Method::POST,
        &format!("/api/events/{cancelled}/cancel"),
        &organizer,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    let mine = app.get_json_as("/api/organizer/events", &organizer).await;
    assert_eq!(mine["total"], 2);
    let statuses: Vec<(&str, &str)> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().expect("id"),
                e["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(kept.as_str(), "on_sale")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(cancelled.as_str(), "cancelled")),
        "{statuses:?}"
    );
    // The public list hides the cancelled one.
    assert_eq!(app.get_json("/api/events").await["total"], 2);

    let paged = app
        .get_json_as("/api/organizer/events?per_page=1&page=2", &organizer)
        .await;
    assert_eq!(paged["items"].as_array().expect("items").len(), 1);

    assert_error(
        app.get_as("/api/organizer/events", &fan).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    for bad in ["per_page=0", "per_page=101", "page=0", "page=x", "page=-1"] {
        let response = app
            .get_as(&format!("/api/organizer/events?{bad}"), &organizer)
            .await;
        assert!(
            response.status().is_client_error(),
            "{bad}: {}",
            response.status()
        );
    }
}

#[sqlx::test(migrations = "../shared/migrations")]
async fn admins_see_the_platforms_figures(db: PgPool) {
    let app = spawn(db).await;
    let admin = app.admin_token().await;
    let (_, organizer) = app.mint(Role::Organizer).await;
    let (_, fan) = app.mint(Role::Fan).await;
    let event = two_class_event(&app, &organizer).await;
    buy(&app, &fan, &event, "VIP", 2).await;
    buy(&app, &fan, &event, "Normal", 1).await;

    let figures = app.get_json_as("/api/admin/stats", &admin).await;
    assert_eq!(figures["users"], 3, "{figures}");
    assert_eq!(
        (&figures["fans"], &figures["organizers"], &figures["admins"]),
        (&json!(1), &json!(1), &json!(1))
    );
    assert_eq!(figures["events"], 1);
    assert_eq!(figures["events_on_sale"], 1);
    assert_eq!(figures["tickets_sold"], 3);
    assert_eq!(figures["bookings_confirmed"], 2);
    assert_eq!(
        figures["revenue"],
        json!([{"currency": "EUR", "amount": 24000}])
    );

    for token in [&fan, &organizer] {
        assert_error(
            app.get_as("/api/admin/stats", token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
}
