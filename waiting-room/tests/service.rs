//! The waiting-room process against the real Postgres and Redis, on port 0.

#[path = "service/instances.rs"]
mod instances;

use std::{collections::HashSet, time::Duration};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use shared::{
    cache::{RedisKeys, redis},
    ids::{EventId, HoldId, UserId},
    inventory::{CatalogCache, HoldOutcome, Inventory},
    tokens::{AdmissionClaims, KeySet, QueueClaims},
};
use sqlx::PgPool;
use testkit::{
    sale::NewSale,
    waiting_room::{TestApp as App, queue_config, queue_token as token_of, spawn, spawn_on},
};
use time::OffsetDateTime;
use uuid::Uuid;
use waiting_room::queue::QueueState;

/// An event (and its organizer and venue) straight in Postgres, of two seats.
async fn create_event(
    db: &PgPool,
    high_demand: bool,
    admit_per_minute: i32,
    max_active: i32,
    opens_in: time::Duration,
) -> EventId {
    NewSale {
        title: "Show",
        capacity: 2,
        opens_in,
        high_demand,
        admit_per_minute,
        max_active,
        ..NewSale::default()
    }
    .insert(db)
    .await
    .event
}

fn open_now() -> time::Duration {
    time::Duration::seconds(-60)
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn it_is_healthy_ready_and_answers_unknown_paths_with_json(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let base = &app.base;
    for path in ["/healthz", "/api/queue/healthz", "/metrics"] {
        let response = reqwest::get(format!("{base}{path}")).await.expect("sent");
        assert_eq!(response.status(), 200, "{path}");
    }
    let ready = testkit::get_json(&format!("{base}/readyz")).await;
    assert_eq!(ready["checks"]["postgres"], true);
    assert_eq!(ready["checks"]["redis"], true);
    let missing = reqwest::get(format!("{base}/api/queue/nope"))
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("a JSON error body");
    assert_eq!(body["error"], "not_found");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn concurrent_joins_get_unique_dense_positions_and_rejoining_keeps_the_place(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, true, 1, 1, open_now()).await;
    const FANS: usize = 2_000;
    let users: Vec<UserId> = (0..FANS).map(|_| UserId::new()).collect();
    let results = futures_util::stream::iter(users.iter().copied())
        .map(|user| {
            let app = &app;
            async move { (user, app.join(event, user).await) }
        })
        .buffer_unordered(200)
        .collect::<Vec<_>>()
        .await;
    let mut positions = HashSet::new();
    let mut by_user = std::collections::HashMap::new();
    for (user, (status, body)) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        // At most one fan (max_active = 1) may have been admitted meanwhile.
        if body["state"] == "waiting" {
            let position = body["position"].as_u64().expect("position");
            assert!(positions.insert(position), "position {position} twice");
            by_user.insert(*user, position);
            let poll = body["poll_after_ms"].as_u64().expect("poll");
            assert!((800..=6_000).contains(&poll), "{poll}");
        }
    }
    assert!(positions.len() >= FANS - 1);
    let max = *positions.iter().max().expect("some");
    assert_eq!(max as usize, positions.len(), "positions are dense 1..N");
    // Rejoining returns the same place (or a better one if someone ahead was admitted).
    for user in users.iter().take(50) {
        let (status, body) = app.join(event, *user).await;
        assert_eq!(status, StatusCode::OK);
        if let Some(before) = by_user.get(user) {
            let now = body["position"].as_u64().expect("position");
            assert!(now == *before || now + 1 == *before, "{before} -> {now}");
        }
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_pre_queue_is_shuffled_reproducibly_at_opening_and_later_fans_queue_fifo(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, true, 1, 1, time::Duration::seconds(3)).await;
    const EARLY: usize = 300;
    let mut early = Vec::new();
    for _ in 0..EARLY {
        let user = UserId::new();
        let (status, body) = app.join(event, user).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "pre_queue", "{body}");
        early.push((user, token_of(&body)));
    }
    // Wait for the opening and the shuffle.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = app.status(event, &early[0].1).await;
        if body["state"] != "pre_queue" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never opened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One fan may have been admitted at once (max_active 1); read places from Redis scores.
    let keys = app.redis_keys();
    let mut conn = app.conn().await;
    let mut numbers = Vec::new();
    for (user, _) in &early {
        let number: Option<i64> = redis::cmd("ZSCORE")
            .arg(keys.queue_waiting(event))
            .arg(user.as_uuid().as_bytes().as_slice())
            .query_async(&mut conn)
            .await
            .expect("zscore");
        numbers.push(number);
    }
    let placed: Vec<i64> = numbers.iter().flatten().copied().collect();
    assert!(placed.len() >= EARLY - 1);
    let distinct: HashSet<i64> = placed.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        placed.len(),
        "a permutation: no number twice"
    );
    assert!(placed.iter().all(|n| (1..=EARLY as i64).contains(n)));
    let identity = numbers
        .iter()
        .enumerate()
        .filter(|(i, n)| **n == Some(*i as i64 + 1))
        .count();
    assert!(
        identity < EARLY / 10,
        "{identity} fans kept their arrival place"
    );

    // Reproducible from the recorded seed (Redis and the audit log agree).
    let (details,): (Value,) = sqlx::query_as(
        "SELECT details FROM audit_log WHERE action = 'queue.shuffle' AND target_id = $1",
    )
    .bind(event.to_string())
    .fetch_one(&db)
    .await
    .expect("audited");
    assert_eq!(details["count"], EARLY);
    let seed: u64 = details["seed"]
        .as_str()
        .expect("seed")
        .parse()
        .expect("u64");
    let in_redis: String = redis::cmd("HGET")
        .arg(keys.queue_meta(event))
        .arg("seed")
        .query_async(&mut conn)
        .await
        .expect("seed in redis");
    assert_eq!(in_redis, seed.to_string());
    let mut order: Vec<usize> = (0..EARLY).collect();
    waiting_room::queue::fisher_yates(&mut order, seed);
    for (place, fan) in order.iter().enumerate() {
        if let Some(number) = numbers[*fan] {
            assert_eq!(number, place as i64 + 1, "fan {fan}");
        }
    }

    // Every instance derives a pre-queue fan's number from the seed: their status says the
    // place the shuffle gave them (behind the one fan admitted, if any).
    let serving: Option<u64> = redis::cmd("GET")
        .arg(format!("{}serving", keys.queue_base(event)))
        .query_async(&mut conn)
        .await
        .expect("serving");
    let serving = serving.unwrap_or(0) as i64;
    for ((_, token), number) in early.iter().zip(&numbers) {
        let (_, body) = app.status(event, token).await;
        match number {
            Some(number) if *number > serving => {
                assert_eq!(body["position"], number - serving, "{body}");
            }
            _ => assert_eq!(body["state"], "admitted", "{body}"),
        }
    }

    // After opening: first come, first served, behind the pre-queue.
    let mut last = 0;
    for _ in 0..20 {
        let (_, body) = app.join(event, UserId::new()).await;
        assert_eq!(body["state"], "waiting");
        let position = body["position"].as_u64().expect("position");
        assert!(
            position > last && position >= (EARLY - 1) as u64,
            "{position}"
        );
        last = position;
    }
}

/// Joins `n` fans and keeps them seen; returns their queue tokens.
async fn join_many(app: &App, event: EventId, n: usize) -> Vec<String> {
    futures_util::stream::iter(0..n)
        .map(|_| async move {
            let (status, body) = app.join(event, UserId::new()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            token_of(&body)
        })
        .buffer_unordered(50)
        .collect()
        .await
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn admissions_follow_the_rate_even_with_two_instances_on_one_redis(db: PgPool) {
    let first = spawn(&db, Duration::from_secs(60)).await;
    let second = spawn_on(
        &db,
        first.redis_config.clone(),
        first.keys.clone(),
        queue_config(Duration::from_secs(60)),
    )
    .await;
    // 600 a minute = 10 a second.
    let event = create_event(&db, true, 600, 10_000, open_now()).await;
    let half = join_many(&first, event, 150).await;
    let other = join_many(&second, event, 150).await;
    assert_eq!(half.len() + other.len(), 300);
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let admitted = first.active_count(event).await;
    let secs = started.elapsed().as_secs_f64();
    // Up to one second's credit may be owed from before `started` (the joins took time).
    let expected = 10.0 * secs;
    assert!(
        (admitted as f64) >= expected - 8.0 && (admitted as f64) <= expected + 12.0,
        "{admitted} admitted in {secs:.1}s at 10/s"
    );
    // An admitted fan's status carries an admission token that the API can verify.
    let mut seen_admitted = false;
    for token in half.iter().chain(&other) {
        let (_, body) = first.status(event, token).await;
        if body["state"] == "admitted" {
            let admission = body["admission_token"].as_str().expect("token");
            let verified = first
                .keys
                .admission
                .verifying_only()
                .verify::<AdmissionClaims>(admission)
                .expect("verifies");
            assert_eq!(verified.claims.evt, event);
            seen_admitted = true;
            break;
        }
    }
    assert!(seen_admitted);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_admission_log_lists_fans_in_the_order_they_were_admitted(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    // 600 a minute: 10 a second, so the 25 fans below are admitted over several ticks.
    let event = create_event(&db, true, 600, 10_000, open_now()).await;
    let mut joined = Vec::new();
    for _ in 0..25 {
        let user = UserId::new();
        let (status, body) = app.join(event, user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        joined.push(user.to_string());
    }
    let key = format!("{}admitted", app.redis_keys().queue_base(event));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let logged: Vec<String> = loop {
        let logged: Vec<String> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut app.conn().await)
            .await
            .expect("lrange");
        if logged.len() >= joined.len() {
            break logged;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} admitted",
            logged.len(),
            joined.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // FIFO after the opening: the log is the join order, each fan once.
    assert_eq!(logged, joined);
    assert_eq!(app.active_count(event).await, joined.len() as u64);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut app.conn().await)
        .await
        .expect("ttl");
    assert!((1..=86_400).contains(&ttl), "the log expires: ttl {ttl}");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn never_more_than_max_active_shoppers(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, true, 6_000, 5, open_now()).await;
    join_many(&app, event, 50).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(app.active_count(event).await <= 5);
    }
    assert_eq!(app.active_count(event).await, 5);
    // Two purchases complete (the API removes them): two more come in, still 5.
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(app.redis_keys().queue_active(event))
        .arg(0)
        .arg(1)
        .query_async(&mut app.conn().await)
        .await
        .expect("zrange");
    let _: i64 = redis::cmd("ZREM")
        .arg(app.redis_keys().queue_active(event))
        .arg(&members)
        .query_async(&mut app.conn().await)
        .await
        .expect("zrem");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.active_count(event).await, 5);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fans_who_stop_polling_are_dropped_and_those_who_poll_keep_their_place(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(1)).await;
    let event = create_event(&db, true, 6_000, 1, open_now()).await;
    let mut tokens = Vec::new();
    let mut users = Vec::new();
    for _ in 0..4 {
        let user = UserId::new();
        let (_, body) = app.join(event, user).await;
        tokens.push(token_of(&body));
        users.push(user);
    }
    // Fan 0 is admitted; fan 1 keeps polling for longer than the grace, fans 2 and 3 do not.
    for _ in 0..8 {
        let (_, body) = app.status(event, &tokens[1]).await;
        assert_eq!(body["state"], "waiting", "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, body) = app.status(event, &tokens[0]).await;
    assert_eq!(body["state"], "admitted");
    let active = app.redis_keys().queue_active(event);
    let mut conn = app.conn().await;
    let _: i64 = redis::cmd("ZREM")
        .arg(&active)
        .arg(users[0].to_string())
        .query_async(&mut conn)
        .await
        .expect("zrem");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = app.status(event, &tokens[1]).await;
    assert_eq!(body["state"], "admitted", "fan 1 kept their place: {body}");
    let _: i64 = redis::cmd("ZREM")
        .arg(&active)
        .arg(users[1].to_string())
        .query_async(&mut conn)
        .await
        .expect("zrem");
    tokio::time::sleep(Duration::from_millis(400)).await;
    for token in &tokens[2..] {
        let (_, body) = app.status(event, token).await;
        assert_eq!(body["state"], "expired", "{body}");
    }
    assert_eq!(app.active_count(event).await, 0);
    // Coming back means joining again, at the back (here: the front, the line is empty).
    let (_, body) = app.join(event, users[2]).await;
    assert_eq!(body["state"], "waiting", "{body}");
    assert_eq!(body["position"], 1, "{body}");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn sold_out_stops_admissions_and_they_resume_when_seats_return(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, true, 6_000, 100, open_now()).await;
    // A tiny catalog: one class, two seats.
    let class = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO ticket_classes (id, event_id, name, price_minor, currency, position)
         VALUES ($1, $2, 'A', 1000, 'EUR', 0)",
    )
    .bind(class)
    .bind(event)
    .execute(&db)
    .await
    .expect("class");
    for idx in 0..2 {
        sqlx::query(
            "INSERT INTO seats (id, event_id, class_id, label, section, row_no, seat_no, idx,
                                row_rank)
             VALUES ($1, $2, $3, $4, 'S', 1, $5, $5, 0)",
        )
        .bind(Uuid::new_v4())
        .bind(event)
        .bind(class)
        .bind(format!("S-1-{idx}"))
        .bind(idx)
        .execute(&db)
        .await
        .expect("seat");
    }
    let redis = shared::cache::connect(&app.redis_config).expect("redis");
    let inventory = Inventory::new(db.clone(), redis, app.redis_keys());
    let catalog = CatalogCache::new()
        .get(&db, event)
        .await
        .expect("db")
        .expect("catalog");
    let (holder, hold) = (UserId::new(), HoldId::new());
    let held = inventory
        .hold_seats(&catalog, hold, holder, Duration::from_secs(60), &[0, 1])
        .await
        .expect("holds");
    assert!(matches!(held, HoldOutcome::Held { .. }));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let tokens = join_many(&app, event, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for token in &tokens {
        let (_, body) = app.status(event, token).await;
        assert_eq!(body["state"], "sold_out", "{body}");
    }
    assert_eq!(app.active_count(event).await, 0);
    assert!(
        inventory
            .release(event, hold, holder)
            .await
            .expect("releases")
    );
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(app.active_count(event).await, 3);
    for token in &tokens {
        let (_, body) = app.status(event, token).await;
        assert_eq!(body["state"], "admitted", "{body}");
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn every_bad_token_and_hostile_input_gets_a_clear_4xx(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, true, 1, 1, open_now()).await;
    let other = create_event(&db, true, 1, 1, open_now()).await;
    let user = UserId::new();
    let (_, body) = app.join(event, user).await;
    let good = token_of(&body);
    let (_, body) = app.join(other, user).await;
    let other_token = token_of(&body);

    let url = |e: &str| format!("{}/api/queue/{e}/status", app.base);
    let get = |e: String, token: Option<String>| {
        let mut request = app.client.get(url(&e));
        if let Some(token) = token {
            request = request.header("X-Queue-Token", token);
        }
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            (
                status,
                body["error"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    let e = event.to_string();
    let claims = QueueClaims {
        sub: user,
        evt: event,
        place: None,
    };
    let expired = app
        .keys
        .admission
        .seal_at(
            claims.clone(),
            OffsetDateTime::now_utc() - time::Duration::hours(2),
            Duration::from_secs(60),
        )
        .expect("seals");
    let foreign = KeySet::generate()
        .admission
        .seal(claims.clone(), Duration::from_secs(60))
        .expect("seals");
    // Signed with the right private key, but queue tokens are sealed: not one of ours.
    let signed = app
        .keys
        .admission
        .sign(claims, Duration::from_secs(60))
        .expect("signs");
    let cases = [
        (e.clone(), None, 401, "queue_token_required"),
        (
            e.clone(),
            Some("garbage".into()),
            401,
            "invalid_queue_token",
        ),
        (e.clone(), Some(foreign), 401, "invalid_queue_token"),
        (e.clone(), Some(signed), 401, "invalid_queue_token"),
        (e.clone(), Some(expired), 401, "queue_token_expired"),
        (
            e.clone(),
            Some(app.access(user)),
            401,
            "invalid_queue_token",
        ),
        (e.clone(), Some(other_token), 403, "wrong_event"),
        ("not-a-uuid".into(), Some(good.clone()), 400, "invalid_path"),
        (e.clone(), Some(good.clone()), 200, ""),
    ];
    for (path_event, token, status, code) in cases {
        let (got, error) = get(path_event, token).await;
        assert_eq!((got.as_u16(), error.as_str()), (status, code));
    }
    // Non-ASCII header bytes.
    let response = app
        .client
        .get(url(&e))
        .header(
            "X-Queue-Token",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").expect("header"),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);

    // Join: no token, a queue token as access token, Basic auth, unknown and cancelled events.
    let join = |e: String, auth: Option<String>| {
        let mut request = app.client.post(format!("{}/api/queue/{e}/join", app.base));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            (
                status,
                body["error"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    let cancelled = create_event(&db, true, 1, 1, open_now()).await;
    sqlx::query("UPDATE events SET cancelled_at = now() WHERE id = $1")
        .bind(cancelled)
        .execute(&db)
        .await
        .expect("cancel");
    let bearer = format!("Bearer {}", app.access(user));
    let cases = [
        (e.clone(), None, 401, "unauthorized"),
        (e.clone(), Some("Basic abc".into()), 401, "unauthorized"),
        (
            e.clone(),
            Some(format!("Bearer {good}")),
            401,
            "invalid_token",
        ),
        (
            EventId::new().to_string(),
            Some(bearer.clone()),
            404,
            "not_found",
        ),
        (
            cancelled.to_string(),
            Some(bearer.clone()),
            409,
            "event_cancelled",
        ),
        ("123".into(), Some(bearer.clone()), 400, "invalid_path"),
    ];
    for (path_event, auth, status, code) in cases {
        assert_eq!(join(path_event, auth).await, (status, code.to_string()));
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn without_high_demand_everyone_is_admitted_at_once(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, false, 1, 1, open_now()).await;
    let user = UserId::new();
    let (status, body) = app.join(event, user).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "admitted", "{body}");
    let token = body["admission_token"].as_str().expect("admission token");
    let verified = app
        .keys
        .admission
        .verifying_only()
        .verify::<AdmissionClaims>(token)
        .expect("verifies with the public admission key");
    assert_eq!(verified.claims.sub, user);
    assert_eq!(verified.claims.evt, event);

    // Turning high demand on queues newcomers; turning it off lets everyone waiting in.
    let gate = app.redis_keys().queue_gate(event);
    let mut conn = app.conn().await;
    let _: () = redis::cmd("HSET")
        .arg(&gate)
        .arg("high_demand")
        .arg("1")
        .query_async(&mut conn)
        .await
        .expect("hset");
    // Status reads answer from the instance's summary: the switch reaches them with a tick.
    let tokens = join_many(&app, event, 3).await;
    let body = app.status_within_a_tick(event, &tokens[2], "waiting").await;
    assert!(
        (1..=3).contains(&body["position"].as_u64().expect("position")),
        "{body}"
    );
    let _: () = redis::cmd("HSET")
        .arg(&gate)
        .arg("high_demand")
        .arg("0")
        .query_async(&mut conn)
        .await
        .expect("hset");
    let body = app
        .status_within_a_tick(event, &tokens[2], "admitted")
        .await;
    assert!(body["admission_token"].is_string());
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_push_stream_sends_the_status_and_its_changes(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, true, 6_000, 1, open_now()).await;
    let tokens = join_many(&app, event, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Whichever fan waits gets "waiting" first, then "admitted" when the other leaves.
    let mut waiting_token = None;
    for token in &tokens {
        let (_, body) = app.status(event, token).await;
        if body["state"] == "waiting" {
            waiting_token = Some(token.clone());
        }
    }
    let token = waiting_token.expect("one waits");
    let response = app
        .client
        .get(format!(
            "{}/api/queue/{event}/events?queue_token={token}",
            app.base
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event")
        .expect("a chunk")
        .expect("bytes");
    seen.push_str(&String::from_utf8_lossy(&first));
    assert!(seen.contains("event: status"), "{seen}");
    assert!(seen.contains("\"waiting\""), "{seen}");
    // Ticks come every 100 ms; with nothing changed for the fan, the stream stays quiet.
    let quiet = tokio::time::timeout(Duration::from_millis(800), stream.next()).await;
    assert!(quiet.is_err(), "sent without a change: {quiet:?}");
    // Free the active slot: the stream reports the admission.
    let _: i64 = redis::cmd("DEL")
        .arg(app.redis_keys().queue_active(event))
        .query_async(&mut app.conn().await)
        .await
        .expect("del");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while !seen.contains("admitted") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("admitted in time: {seen}"))
            .expect("a chunk")
            .expect("bytes");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("admission_token"));
    // Without a token: 401.
    let response = app
        .client
        .get(format!("{}/api/queue/{event}/events", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_openapi_document_describes_the_queue(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let doc: Value = reqwest::get(format!("{}/api/queue/openapi.json", app.base))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    for (path, method) in [
        ("/api/queue/{event_id}/join", "post"),
        ("/api/queue/{event_id}/status", "get"),
        ("/api/queue/{event_id}/events", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert!(doc["components"]["schemas"]["StatusBody"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn joins_racing_the_switch_count_only_fans_the_line_admitted(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, false, 600, 10_000, open_now()).await;
    // A fan who joins while the gate is off is let in at once (and the gate hash is loaded).
    let early = UserId::new();
    let (status, body) = app.join(event, early).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("admitted"))
    );

    // Sixty fans join at once while the organizer turns the gate on (the API's HSET).
    let fans: Vec<UserId> = (0..60).map(|_| UserId::new()).collect();
    let app = &app;
    let joins = fans
        .iter()
        .map(|&fan| async move { (fan, app.join(event, fan).await) });
    let flip = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _: () = redis::cmd("HSET")
            .arg(app.redis_keys().queue_gate(event))
            .arg("high_demand")
            .arg("1")
            .query_async(&mut app.conn().await)
            .await
            .expect("hset");
    };
    let (answers, ()) = tokio::join!(futures_util::future::join_all(joins), flip);
    let mut admitted_while_off = vec![early.to_string()];
    for (fan, (status, body)) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        match body["state"].as_str() {
            Some("admitted") => admitted_while_off.push(fan.to_string()),
            Some("waiting") => {}
            other => panic!("{other:?}: {body}"),
        }
    }
    // Fans who join after the switch queue; the tick lets the line move.
    join_many(app, event, 5).await;
    let base = app.redis_keys().queue_base(event);
    let mut conn = app.conn().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redis::cmd("LLEN")
        .arg(format!("{base}admitted"))
        .query_async::<u64>(&mut conn)
        .await
        .expect("llen")
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the line never moved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let active: Vec<String> = redis::cmd("ZRANGE")
        .arg(app.redis_keys().queue_active(event))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("zrange");
    let logged: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{base}admitted"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("lrange");
    // The truth the ticketing API checks holds only fans the line let in, each logged.
    for fan in &active {
        assert!(
            logged.contains(fan),
            "{fan} is active but was never admitted"
        );
        assert!(
            !admitted_while_off.contains(fan),
            "{fan} was let in by a join while the gate was off"
        );
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_nul_character_in_a_query_is_422_invalid_text(db: PgPool) {
    let app = spawn(&db, Duration::from_secs(60)).await;
    let event = create_event(&db, true, 1, 1, open_now()).await;
    let response = app
        .client
        .get(format!(
            "{}/api/queue/{event}/events?queue_token=a%00b",
            app.base
        ))
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "invalid_text", "{body}");
    // Nobody joined: the queue's counter was never made.
    let joined: bool = redis::cmd("EXISTS")
        .arg(app.redis_keys().queue_seq(event))
        .query_async(&mut app.conn().await)
        .await
        .expect("redis");
    assert!(!joined);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn status_reads_are_answered_from_memory_once_a_tick_has_run(db: PgPool) {
    let redis = testkit::config::redis();
    let queues = waiting_room::Queues::new(
        db.clone(),
        shared::cache::connect(&redis).expect("redis"),
        RedisKeys::new(redis.key_prefix.clone()),
        queue_config(Duration::from_secs(60)),
    );
    // 1 a minute: nobody is admitted while the test runs.
    let event = create_event(&db, true, 1, 1, open_now()).await;
    let mut fans = Vec::new();
    for _ in 0..300 {
        let user = UserId::new();
        let joined = queues.join(event, user).await.expect("joins");
        assert_eq!(joined.standing.state, QueueState::Waiting);
        fans.push((user, joined.place));
    }
    queues.tick(event, false).await.expect("ticks");
    let calls = queues.script_calls();
    for (place, (user, token_place)) in (1..).zip(&fans) {
        let standing = queues
            .standing(event, *user, *token_place)
            .await
            .expect("status");
        assert_eq!(
            (standing.state, standing.position),
            (QueueState::Waiting, place)
        );
    }
    assert_eq!(
        queues.script_calls(),
        calls,
        "300 status reads made no Redis call"
    );
    // A token without a place (from before places were sealed) is looked up: one call.
    let standing = queues
        .standing(event, fans[9].0, None)
        .await
        .expect("status");
    assert_eq!(standing.position, 10);
    assert_eq!(queues.script_calls(), calls + 1);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn fans_who_left_the_middle_of_the_line_stop_counting_in_the_places_behind_them(db: PgPool) {
    // Grace 1 s: a fan unseen for 1 to 1.5 s leaves the line, wherever they stand.
    let app = spawn(&db, Duration::from_secs(1)).await;
    let event = create_event(&db, true, 1, 1, open_now()).await;
    let tokens = join_many(&app, event, 10).await;
    let mut by_position = vec![String::new(); 10];
    for token in &tokens {
        let (_, body) = app.status(event, token).await;
        by_position[body["position"].as_u64().expect("position") as usize - 1] = token.clone();
    }
    // Fans 3, 5 and 7 stop polling; the others keep at it for 2.5 s.
    let leavers = [2, 4, 6];
    for _ in 0..10 {
        for (i, token) in by_position.iter().enumerate() {
            if !leavers.contains(&i) {
                let (_, body) = app.status(event, token).await;
                assert_eq!(body["state"], "waiting", "{body}");
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, last) = app.status(event, &by_position[9]).await;
    assert_eq!(
        last["position"], 7,
        "three left from ahead of the last: {last}"
    );
    let (_, fourth) = app.status(event, &by_position[3]).await;
    assert_eq!(fourth["position"], 3, "{fourth}");
    for i in leavers {
        let (_, body) = app.status(event, &by_position[i]).await;
        assert_eq!(body["state"], "expired", "fan {i} left: {body}");
    }
}
