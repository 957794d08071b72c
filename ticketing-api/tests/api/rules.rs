//! The sale rules each instance keeps in memory (`holds::cache`): read from Postgres once, then
//! served from memory to holds and registrations; forgotten on every instance when a change
//! commits through another one, while a load is in flight, or while the listener was away.
//!
//! Two instances are two `TestApp`s on one database, Redis prefix and key set. The sale is
//! made through B before A starts listening, so every invalidation A sees is the test's.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use shared::{domain::Role, ids::EventId};
use sqlx::{PgPool, postgres::PgPoolOptions};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use testkit::{
    api::{
        TestApp, assert_error, create_event, event_body, event_id, grid_venue, rfc3339_in, spawn,
    },
    eventually,
    outage::DbOutage,
};
use ticketing_api::holds::{SaleRules, cache::APPLICATION_NAME};

/// Two instances of one platform, and an organizer's sale of 10 seats made through `b`.
struct Two {
    a: TestApp,
    b: TestApp,
    organizer: String,
    event: EventId,
}

/// The sale (opening `opens_in` from now) through `b`, then `a`, spawned on `a_db` and
/// listening.
async fn two_instances(db: PgPool, a_db: PgPool, opens_in: time::Duration) -> Two {
    let b = spawn(db).await;
    let (_, organizer) = b.mint(Role::Organizer).await;
    let venue = grid_venue(&b, &organizer, &[("A", 1, 10)]).await;
    let mut body = event_body(
        &venue,
        json!([{"name": "Normal", "price": 5000, "currency": "EUR"}]),
    );
    body["sale_opens_at"] = json!(rfc3339_in(opens_in));
    let event = event_id(&create_event(&b, &organizer, &body).await);
    let a = TestApp::init()
        .with_config(b.config.clone())
        .with_keys(b.keys.clone())
        .spawn(a_db)
        .await;
    listening(&a).await;
    Two {
        a,
        b,
        organizer,
        event,
    }
}

/// An on-sale event, A on the test's own pool.
async fn on_sale(db: PgPool) -> Two {
    two_instances(db.clone(), db, -time::Duration::hours(1)).await
}

/// Waits (bounded) until the app's listener is up: before, nothing is cached.
async fn listening(app: &TestApp) {
    assert!(
        eventually(Duration::from_secs(20), || async {
            app.rules.is_listening()
        })
        .await,
        "the sale rules listener came up"
    );
}

/// Switches the demand mode through B, and waits (bounded) until A heard of it, so that no
/// late notification empties A's cache in the middle of what the test counts next.
async fn switched(two: &Two, high_demand: bool) {
    let invalidations = two.a.rules.invalidations();
    two.demand_mode(high_demand).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            two.a.rules.invalidations() > invalidations
        })
        .await,
        "A heard of the switch"
    );
}

/// Waits (bounded) until `app` has forgotten the event's rules: the notification arrived.
async fn forgotten(app: &TestApp, event: EventId) {
    assert!(
        eventually(Duration::from_secs(5), || async {
            !app.rules.is_cached(event)
        })
        .await,
        "the change's notification reached the other instance"
    );
}

async fn hold(
    app: &TestApp,
    fan: &str,
    event: EventId,
    quantity: u32,
    admission: Option<&str>,
) -> Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/events/{event}/holds")))
        .bearer_auth(fan)
        .json(&json!({"class": "Normal", "quantity": quantity}));
    if let Some(admission) = admission {
        request = request.header("X-Admission-Token", admission);
    }
    request.send().await.expect("sent")
}

/// The 201's body of a hold.
async fn held(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).expect("json")
}

/// A fan of `app` (minted straight into the database).
async fn fan(app: &TestApp) -> String {
    app.mint(Role::Fan).await.1
}

impl Two {
    async fn patch(&self, body: Value) {
        self.b
            .json_as(
                Method::PATCH,
                &format!("/api/events/{}", self.event),
                &self.organizer,
                Some(&body),
                StatusCode::OK,
            )
            .await;
    }

    async fn demand_mode(&self, high_demand: bool) {
        self.b
            .json_as(
                Method::PUT,
                &format!("/api/events/{}/demand-mode", self.event),
                &self.organizer,
                Some(&json!({"high_demand": high_demand})),
                StatusCode::OK,
            )
            .await;
    }

    async fn class_id(&self) -> String {
        let event = self
            .b
            .get_json(&format!("/api/events/{}", self.event))
            .await;
        event["classes"][0]["id"]
            .as_str()
            .expect("a class id")
            .to_string()
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn holds_and_registrations_read_the_rules_once_then_from_memory(db: PgPool) {
    let two = on_sale(db).await;
    let a = &two.a;
    // High demand, so a registration is queued (and quoted from the rules); switched through
    // B, and heard by A before its first request.
    switched(&two, true).await;
    let loads = a.rules.loads();

    let mut holds = Vec::new();
    for _ in 0..4 {
        let (fan_id, fan) = a.mint(Role::Fan).await;
        let admission = a.admit(two.event, fan_id).await;
        let placed = held(hold(a, &fan, two.event, 1, Some(&admission)).await).await;
        holds.push((fan, admission, placed["hold_id"].clone()));
    }
    for (fan, admission, hold_id) in &holds {
        let response = a
            .registration(fan, two.event, hold_id, Some(admission))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(
        a.rules.loads() - loads,
        1,
        "four holds and four queued registrations read the rules from Postgres once"
    );
    assert!(a.rules.is_cached(two.event));
    testkit::broker::delete_topology_of(&a.config.amqp).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_patch_through_one_instance_holds_at_the_other_from_its_next_request(db: PgPool) {
    // Not open yet: A refuses, and keeps the rules it refused with.
    let two = two_instances(db.clone(), db, time::Duration::hours(1)).await;
    let (a, event) = (&two.a, two.event);
    let first = fan(a).await;
    assert_error(
        hold(a, &first, event, 1, None).await,
        StatusCode::CONFLICT,
        "sale_not_open",
    )
    .await;
    assert!(a.rules.is_cached(event));

    // The sale window: B opens the sale now.
    two.patch(json!({"sale_opens_at": rfc3339_in(-time::Duration::minutes(1))}))
        .await;
    forgotten(a, event).await;
    held(hold(a, &first, event, 1, None).await).await;
    assert!(a.rules.is_cached(event));

    // Seats per order and the hold's length.
    two.patch(json!({"max_seats_per_order": 2, "hold_seconds": 60}))
        .await;
    forgotten(a, event).await;
    let second = fan(a).await;
    assert_error(
        hold(a, &second, event, 3, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_seats",
    )
    .await;
    let placed = held(hold(a, &second, event, 2, None).await).await;
    let expires_at =
        OffsetDateTime::parse(placed["expires_at"].as_str().expect("expiry"), &Rfc3339)
            .expect("RFC 3339");
    let left = expires_at - OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::seconds(50) && left <= time::Duration::seconds(61),
        "a 60 s hold, not the old 600 s: {left}"
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_price_and_a_demand_switch_through_one_instance_hold_at_the_other(db: PgPool) {
    let two = on_sale(db).await;
    let (a, event) = (&two.a, two.event);
    let (fan_id, fan) = a.mint(Role::Fan).await;
    held(hold(a, &fan, event, 1, None).await).await;
    assert!(a.rules.is_cached(event));

    // A new price, then the gate on: A asks for an admission, and quotes the new price.
    let class = two.class_id().await;
    two.patch(json!({"classes": [{"id": class, "price": 7000}]}))
        .await;
    forgotten(a, event).await;
    held(hold(a, &fan, event, 1, None).await).await;
    assert!(a.rules.is_cached(event));
    two.demand_mode(true).await;
    forgotten(a, event).await;
    assert_error(
        hold(a, &fan, event, 1, None).await,
        StatusCode::FORBIDDEN,
        "admission_required",
    )
    .await;
    let admission = a.admit(event, fan_id).await;
    let placed = held(hold(a, &fan, event, 1, Some(&admission)).await).await;
    let queued = a
        .registration(&fan, event, &placed["hold_id"], Some(&admission))
        .send()
        .await
        .expect("sent");
    assert_eq!(queued.status(), StatusCode::ACCEPTED);
    let command = testkit::broker::take_command(&a.config.amqp)
        .await
        .expect("the queued command");
    assert_eq!(command.prices.len(), 1);
    assert_eq!(command.prices[0].class_id.to_string(), class);
    assert_eq!(
        command.prices[0].price_minor, 7000,
        "the new price is quoted"
    );

    // The gate off again: A lets a fan hold without an admission.
    assert!(a.rules.is_cached(event));
    two.demand_mode(false).await;
    forgotten(a, event).await;
    let (_, other) = a.mint(Role::Fan).await;
    held(hold(a, &other, event, 1, None).await).await;
    testkit::broker::delete_topology_of(&a.config.amqp).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_cancellation_through_one_instance_makes_the_other_refuse_holds(db: PgPool) {
    let two = on_sale(db).await;
    let (a, event) = (&two.a, two.event);
    let fan = fan(a).await;
    let placed = held(hold(a, &fan, event, 1, None).await).await;
    assert!(a.rules.is_cached(event));

    two.b
        .json_as(
            Method::POST,
            &format!("/api/events/{event}/cancel"),
            &two.organizer,
            Some(&json!({})),
            StatusCode::OK,
        )
        .await;
    forgotten(a, event).await;
    assert_error(
        hold(a, &fan, event, 1, None).await,
        StatusCode::CONFLICT,
        "event_cancelled",
    )
    .await;
    assert_error(
        a.registration(&fan, event, &placed["hold_id"], None)
            .send()
            .await
            .expect("sent"),
        StatusCode::CONFLICT,
        "event_cancelled",
    )
    .await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_load_in_flight_while_a_change_commits_is_not_kept(db: PgPool) {
    let two = on_sale(db).await;
    let (a, event) = (&two.a, two.event);
    let invalidations = a.rules.invalidations();

    // A miss reads the rules, then, before it keeps them, a change commits through B and its
    // notification reaches A: the worst order for a cache, held here on purpose.
    let served = a
        .rules
        .get_or_load(event, || async {
            let before_the_change = SaleRules::load(&a.db, event).await;
            two.patch(json!({"max_seats_per_order": 1})).await;
            assert!(
                eventually(Duration::from_secs(5), || async {
                    a.rules.invalidations() > invalidations
                })
                .await,
                "A heard of the change while its load was in flight"
            );
            before_the_change
        })
        .await
        .expect("the rules");
    assert_ne!(
        served.max_seats_per_order, 1,
        "the load read the rules before the change"
    );
    assert!(
        !a.rules.is_cached(event),
        "rules read before a change are served once, never kept"
    );

    let fan = fan(a).await;
    assert_error(
        hold(a, &fan, event, 2, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_seats",
    )
    .await;
    assert!(a.rules.is_cached(event), "the next load is kept");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn while_the_listener_is_away_rules_come_from_postgres_and_then_from_memory_again(
    db: PgPool,
) {
    // A's own pool, its connections opened now: they stay usable while new connections to the
    // database are refused (the test's pool closes idle ones after a second).
    let a_db = PgPoolOptions::new()
        .max_connections(3)
        .idle_timeout(None)
        .connect_with((*db.connect_options()).clone())
        .await
        .expect("A's pool");
    let opened = futures_util::future::join_all((0..3).map(|_| a_db.acquire())).await;
    drop(opened);
    let two = two_instances(db.clone(), a_db.clone(), -time::Duration::hours(1)).await;
    let (a, event) = (&two.a, two.event);
    let first = fan(a).await;
    held(hold(a, &first, event, 2, None).await).await;
    assert!(a.rules.is_cached(event));

    // The listeners' connections end, and cannot come back yet.
    let cut = DbOutage::refuse_new_connections(&db).await;
    assert!(cut.terminate(APPLICATION_NAME).await >= 1);
    assert!(
        eventually(Duration::from_secs(5), || async { !a.rules.is_listening() }).await,
        "A saw its listener go"
    );
    assert!(!a.rules.is_cached(event), "the cache was cleared");

    // A change nobody hears of: A reads Postgres for every request meanwhile.
    sqlx::query("UPDATE events SET max_seats_per_order = 1 WHERE id = $1")
        .bind(event)
        .execute(&a_db)
        .await
        .expect("updated");
    let loads = a.rules.loads();
    let second = fan(a).await;
    for _ in 0..2 {
        assert_error(
            hold(a, &second, event, 2, None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_seats",
        )
        .await;
    }
    assert_eq!(
        a.rules.loads() - loads,
        2,
        "nothing kept while not listening"
    );
    assert!(!a.rules.is_cached(event));

    // Back: the listener reconnects, and the cache is used again.
    cut.end().await;
    listening(a).await;
    let loads = a.rules.loads();
    held(hold(a, &second, event, 1, None).await).await;
    held(hold(a, &second, event, 1, None).await).await;
    assert_eq!(a.rules.loads() - loads, 1, "kept again once listening");
    assert!(a.rules.is_cached(event));
    // A's listener stops with its pool, so the test's database can be dropped.
    a_db.close().await;
}

/// What a hold and a queued registration cost in Postgres statements, counted by
/// `pg_stat_statements` in this test's database, with the rules read on every request (as
/// before the cache: forgotten first) and from memory. Needs the extension preloaded
/// (`shared_preload_libraries`), as `infra/dev` makes it.
#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn statements_of_a_hold_and_a_queued_registration(db: PgPool) {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&db)
        .await
        .expect("pg_stat_statements: preloaded by `infra/dev up` or `infra/dev test`");
    let two = on_sale(db.clone()).await;
    let (a, event) = (&two.a, two.event);
    switched(&two, true).await;
    let mut fans = Vec::new();
    for _ in 0..3 {
        let (fan_id, fan) = a.mint(Role::Fan).await;
        fans.push((fan.clone(), a.admit(event, fan_id).await));
    }
    // Warm everything else (the catalog, the inventory, the broker).
    let (fan, admission) = &fans[0];
    let placed = held(hold(a, fan, event, 1, Some(admission)).await).await;
    let response = a
        .registration(fan, event, &placed["hold_id"], Some(admission))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let mut report = Vec::new();
    for (label, (fan, admission), from_memory) in [
        ("rules read every time", &fans[1], false),
        ("rules in memory", &fans[2], true),
    ] {
        if !from_memory {
            a.rules.forget(event);
        }
        reset_statements(&db).await;
        let placed = held(hold(a, fan, event, 1, Some(admission)).await).await;
        report.push((format!("hold, {label}"), statements(&db).await));
        if !from_memory {
            a.rules.forget(event);
        }
        reset_statements(&db).await;
        let response = a
            .registration(fan, event, &placed["hold_id"], Some(admission))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        report.push((
            format!("queued registration, {label}"),
            statements(&db).await,
        ));
    }
    for (what, statements) in &report {
        let total: i64 = statements.iter().map(|(_, calls)| calls).sum();
        eprintln!("{what}: {total} statements");
        for (query, calls) in statements {
            eprintln!(
                "  {calls} × {}",
                query.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
    let rules_reads = |statements: &[(String, i64)]| -> i64 {
        statements
            .iter()
            .filter(|(query, _)| query.contains("max_seats_per_order"))
            .map(|(_, calls)| calls)
            .sum()
    };
    assert_eq!(rules_reads(&report[0].1), 1);
    assert_eq!(rules_reads(&report[1].1), 1);
    assert_eq!(rules_reads(&report[2].1), 0);
    assert_eq!(rules_reads(&report[3].1), 0);
    testkit::broker::delete_topology_of(&a.config.amqp).await;
}

async fn reset_statements(db: &PgPool) {
    sqlx::query(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database
                                             WHERE datname = current_database()), 0)",
    )
    .execute(db)
    .await
    .expect("reset");
}

/// This database's statements since the reset, but the test's own and the background loops'
/// (the ban list's reload, the listener's pings).
async fn statements(db: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT query, calls FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%pg_stat_statements%'
           AND query NOT LIKE '%banned_at >%'
           AND query <> 'SELECT $1'
         ORDER BY query",
    )
    .fetch_all(db)
    .await
    .expect("statements")
}
