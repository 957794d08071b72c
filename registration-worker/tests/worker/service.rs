//! The worker process against the real Postgres, Redis and RabbitMQ, on port 0; and the queued
//! registration path end to end: the ticketing API (in process) answers 202, the worker
//! persists, the outbox relay publishes — all on one private database, Redis prefix and
//! broker prefix per test.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::booking::{Bookings, Outcome, Rejection};
use shared::{
    config::{AmqpConfig, LogFormat, Secret, WorkerConfig},
    domain::Role,
    ids::{BookingId, EventId, HoldId, UserId},
    inventory::HoldOutcome,
    messaging::{Names, ProcessBookingCommand, Publisher, routing},
    tokens::{KeyPurpose, KeySet, TokenKeys},
};
use sqlx::PgPool;
use testkit::{
    api::{TestApp, scalar, simple_config},
    broker::{PrivateBroker, dead_letter_queue_is_empty},
    config::{http, no_keys_dir, postgres_for},
    outage::DbOutage,
    process::{KilledOnDrop, keys_dir},
};

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 2,
        batch_size: 50,
        batch_wait: Duration::from_millis(5),
        relay: true,
        outbox_poll: Duration::from_millis(20),
    }
}

fn ticket_keys() -> TokenKeys {
    TokenKeys::generate(KeyPurpose::Ticket)
}

/// A worker's config on `db`, `redis` and `amqp`, port 0.
fn config(
    db: &PgPool,
    redis: shared::config::RedisConfig,
    amqp: AmqpConfig,
    worker: WorkerConfig,
) -> registration_worker::Config {
    registration_worker::Config {
        http: http(),
        postgres: postgres_for(db),
        redis,
        amqp,
        keys: no_keys_dir(),
        worker,
        log_format: LogFormat::Pretty,
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn it_declares_its_queues_and_reports_ready(db: PgPool) {
    // No consumers: the topology check below reads its own test message back.
    let config = config(
        &db,
        testkit::config::redis(),
        testkit::config::amqp(),
        WorkerConfig {
            concurrency: 0,
            relay: false,
            ..worker_config()
        },
    );
    let worker = registration_worker::build_with_keys(&config, ticket_keys())
        .await
        .expect("builds");
    let base = format!("http://{}", worker.local_addr());
    tokio::spawn(worker.run_until(std::future::pending()));

    let ready = testkit::get_json(&format!("{base}/readyz")).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    for check in ["postgres", "redis", "rabbitmq"] {
        assert_eq!(ready["checks"][check], true, "{check}");
    }
    let names = Names::new(config.amqp.prefix.clone());
    testkit::broker::assert_and_delete_topology(&config.amqp, &names).await;
}

// --- the queued path end to end -----------------------------------------------------------

/// The API (in process, from the kit) and an on-sale event in high-demand mode; what workers
/// need to join it: one database, Redis prefix and broker prefix.
struct Sale {
    app: TestApp,
    event: EventId,
    organizer: String,
}

impl Sale {
    /// The API on port 0, an organizer, and an on-sale event of `seats` seats (one class,
    /// 50.00 EUR) in high-demand mode.
    async fn open(db: PgPool, seats: i64) -> Self {
        Self::open_with_keys(db, seats, KeySet::generate()).await
    }

    /// [`Sale::open`] with these keys (those a worker process loads from `KEYS_DIR`).
    async fn open_with_keys(db: PgPool, seats: i64, keys: KeySet) -> Self {
        Self::open_on(db, seats, keys, testkit::config::amqp()).await
    }

    /// [`Sale::open_with_keys`] on this broker.
    async fn open_on(db: PgPool, seats: i64, keys: KeySet, amqp: AmqpConfig) -> Self {
        let mut config = simple_config();
        config.amqp = amqp;
        let app = TestApp::init()
            .with_config(config)
            .with_keys(keys)
            .with_broker_connected()
            .spawn(db)
            .await;
        let (organizer, event) = app.on_sale(seats).await;
        app.high_demand(&organizer, event, 600, 1000).await;
        Self {
            app,
            event,
            organizer,
        }
    }

    fn db(&self) -> &PgPool {
        &self.app.db
    }

    fn amqp(&self) -> &AmqpConfig {
        &self.app.config.amqp
    }

    fn names(&self) -> Names {
        Names::new(self.amqp().prefix.clone())
    }

    /// A worker on this sale's database, Redis and broker.
    async fn worker(&self, worker: WorkerConfig) -> registration_worker::Worker {
        let config = config(
            self.db(),
            self.app.config.redis.clone(),
            self.amqp().clone(),
            worker,
        );
        registration_worker::build_with_keys(&config, self.app.keys.ticket.clone())
            .await
            .expect("worker builds")
    }

    /// The persister of a worker built on this sale (the worker itself is not run).
    async fn persister(&self) -> Bookings {
        self.worker(worker_config()).await.bookings().clone()
    }

    /// A worker running until the returned sender fires (or is dropped).
    async fn spawn_worker(&self) -> tokio::sync::oneshot::Sender<()> {
        run_until_stopped(self.worker(worker_config()).await)
    }

    /// A command for `fan`'s `hold`, as the API would publish it under a fresh booking id.
    fn command(&self, fan: UserId, hold: HoldId) -> ProcessBookingCommand {
        testkit::broker::booking_command(self.event, fan, hold)
    }

    /// Sells the seats at `idx` to another fan in Postgres only (see the root's
    /// `sell_behind_redis`).
    async fn sell_behind_redis(&self, idx: &[u32]) {
        let (other, _) = self.app.mint(Role::Fan).await;
        let idx: Vec<i32> = idx
            .iter()
            .map(|&i| i32::try_from(i).expect("idx"))
            .collect();
        super::sell_behind_redis(self.db(), self.event, other, &idx).await;
    }

    /// The marker the API writes before it publishes a command, for commands a test sends to
    /// the broker or the persister itself (a worker drops a command whose marker is gone while
    /// its hold lives: the API took it back with a 503).
    async fn mark_pending(&self, command: &ProcessBookingCommand) {
        let marker = shared::booking::PendingBooking {
            user_id: command.user_id,
            event_id: command.event_id,
            hold_id: command.hold_id,
            created_at: command.requested_at,
            published: true,
        };
        shared::booking::Claims::new(self.app.redis.clone(), self.app.redis_keys.clone())
            .mark(command.booking_id, &marker)
            .await
            .expect("marker");
    }

    /// Lets `fan` in as the waiting room's admission tick would and hands them the admission
    /// token it signs.
    async fn admit(&self, fan: UserId) -> String {
        self.app.admit(self.event, fan).await
    }

    /// A fan with a one-seat hold (best available).
    async fn fan_with_hold(&self) -> (UserId, String, HoldId) {
        let (fan, token) = self.app.mint(Role::Fan).await;
        let admission = self.admit(fan).await;
        let hold = self
            .app
            .hold_one(&token, self.event, Some(&admission))
            .await;
        assert_eq!(hold.status(), StatusCode::CREATED);
        let hold: Value = hold.json().await.expect("json");
        let hold = hold["hold_id"].as_str().expect("hold").parse().expect("id");
        (fan, token, hold)
    }

    /// The registration request of `fan`'s `hold` to `api` (this sale's, or another on its
    /// database), admitted.
    async fn registration(
        &self,
        api: &TestApp,
        fan: UserId,
        token: &str,
        hold: HoldId,
    ) -> reqwest::RequestBuilder {
        let admission = self.admit(fan).await;
        api.registration(token, self.event, hold, Some(&admission))
    }

    /// Registers; returns the 202's booking id.
    async fn register(&self, fan: UserId, token: &str, hold: HoldId) -> BookingId {
        let response = self
            .registration(&self.app, fan, token, hold)
            .await
            .header("x-request-id", "req-e2e")
            .send()
            .await
            .expect("sent");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "pending");
        body["booking_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("id")
    }

    async fn booking(&self, token: &str, booking: BookingId) -> Value {
        self.app
            .json_as(
                Method::GET,
                &format!("/api/bookings/{booking}"),
                token,
                None,
                StatusCode::OK,
            )
            .await
    }

    /// Polls until the booking is no longer `pending`.
    async fn settled(&self, token: &str, booking: BookingId) -> Value {
        for _ in 0..200 {
            let view = self.booking(token, booking).await;
            if view["status"] != "pending" {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("booking {booking} still pending");
    }

    /// Status per booking id, from Postgres, once `expected` rows exist.
    async fn rows(&self, expected: usize) -> HashMap<BookingId, String> {
        for _ in 0..300 {
            let rows: Vec<(BookingId, String)> =
                sqlx::query_as("SELECT id, status FROM bookings WHERE event_id = $1")
                    .bind(self.event)
                    .fetch_all(self.db())
                    .await
                    .expect("rows");
            if rows.len() >= expected {
                return rows.into_iter().collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {expected} bookings were written");
    }

    /// One number from a query with the event's id as `$1`.
    async fn count(&self, sql: &'static str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql)
            .bind(self.event)
            .fetch_one(self.db())
            .await
            .expect("count");
        n
    }

    async fn assert_no_seat_twice(&self) {
        let (tickets, seats): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT seat_id) FROM tickets WHERE event_id = $1",
        )
        .bind(self.event)
        .fetch_one(self.db())
        .await
        .expect("counts");
        assert_eq!(tickets, seats, "a seat was sold twice");
    }

    async fn publish_raw(&self, payload: &[u8]) {
        let publisher = Publisher::lazy(self.amqp(), "test-raw");
        publisher
            .publish(
                &self.names().commands_exchange(),
                routing::PROCESS_BOOKING,
                payload,
                "raw",
                None,
            )
            .await
            .expect("published");
    }

    /// The `dead_letters` rows (booking id, payload, reason, death count), oldest first, once
    /// `expected` exist.
    async fn dead_letters(&self, expected: usize) -> Vec<(Option<BookingId>, String, String, i32)> {
        for _ in 0..600 {
            let rows: Vec<(Option<BookingId>, String, String, i32)> = sqlx::query_as(
                "SELECT booking_id, payload, reason, death_count FROM dead_letters ORDER BY id",
            )
            .fetch_all(self.db())
            .await
            .expect("dead letters");
            if rows.len() >= expected {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("fewer than {expected} dead letters were recorded in 60 s");
    }

    async fn cleanup(&self) {
        testkit::broker::delete_topology(self.amqp(), &self.names()).await;
    }
}

/// Runs `worker` until the returned sender fires (or is dropped).
fn run_until_stopped(worker: registration_worker::Worker) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    stop
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_queued_registration_ends_confirmed_and_its_event_is_published_once(db: PgPool) {
    let sale = Sale::open(db, 10).await;
    // Observe the events exchange through a temporary queue.
    let (_observer, mut consumer) = testkit::broker::observe_events(sale.amqp(), "booking.*")
        .await
        .expect("observes");

    let (fan, token, hold) = sale.fan_with_hold().await;
    let booking = sale.register(fan, &token, hold).await;
    // No worker yet: pending, read from the Redis marker; only its owner sees it.
    let pending = sale.booking(&token, booking).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    let (_, stranger) = sale.app.mint(Role::Fan).await;
    sale.app
        .json_as(
            Method::GET,
            &format!("/api/bookings/{booking}"),
            &stranger,
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
    // A retry answers with the same booking, and queues nothing new.
    assert_eq!(sale.register(fan, &token, hold).await, booking);

    let _worker = sale.spawn_worker().await;
    let confirmed = sale.settled(&token, booking).await;
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    assert_eq!(confirmed["total"], 5000);
    assert_eq!(confirmed["tickets"].as_array().map(Vec::len), Some(1));
    assert_eq!(sale.rows(1).await.len(), 1);

    // The relay publishes the confirmation, once.
    let first = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("an event within 10 s")
        .expect("a delivery")
        .expect("ok");
    assert_eq!(first.routing_key.as_str(), routing::BOOKING_CONFIRMED);
    let event: Value = serde_json::from_slice(&first.data).expect("json");
    assert_eq!(event["booking_id"], booking.to_string());
    let again = tokio::time::timeout(Duration::from_millis(700), consumer.next()).await;
    assert!(again.is_err(), "the event was published twice");
    let unpublished = scalar(
        &sale.app,
        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
    )
    .await;
    assert_eq!(unpublished, 0);
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn the_same_command_delivered_twice_makes_one_booking(db: PgPool) {
    let sale = Sale::open(db, 10).await;
    let (fan, token, hold) = sale.fan_with_hold().await;
    let booking = sale.register(fan, &token, hold).await;
    let command = ProcessBookingCommand {
        booking_id: booking,
        ..sale.command(fan, hold)
    };
    let payload = serde_json::to_vec(&command).expect("json");
    sale.publish_raw(&payload).await;
    let _worker = sale.spawn_worker().await;
    assert_eq!(sale.settled(&token, booking).await["status"], "confirmed");
    // And once more after it was written.
    sale.publish_raw(&payload).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (bookings, tickets, outbox): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bookings), (SELECT count(*) FROM tickets),
                (SELECT count(*) FROM outbox)",
    )
    .fetch_one(sale.db())
    .await
    .expect("counts");
    assert_eq!((bookings, tickets, outbox), (1, 1, 1));
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_price_changed_after_the_202_does_not_reach_that_booking(db: PgPool) {
    let sale = Sale::open(db, 10).await;
    let (fan, token, hold) = sale.fan_with_hold().await;
    let booking = sale.register(fan, &token, hold).await;
    // The organizer raises the price before any worker has written the booking: Postgres has
    // no row of it yet, so the change is allowed, and must not reach the fan who was accepted.
    let event: Value = sale
        .app
        .json_as(
            Method::GET,
            &format!("/api/events/{}", sale.event),
            &token,
            None,
            StatusCode::OK,
        )
        .await;
    let class = &event["classes"][0]["id"];
    let _: Value = sale
        .app
        .json_as(
            Method::PATCH,
            &format!("/api/events/{}", sale.event),
            &sale.organizer,
            Some(&json!({"classes": [{"id": class, "price": 9000}]})),
            StatusCode::OK,
        )
        .await;

    let _worker = sale.spawn_worker().await;
    let confirmed = sale.settled(&token, booking).await;
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    assert_eq!(confirmed["total"], 5000, "{confirmed}");
    assert_eq!(confirmed["tickets"][0]["price"], 5000, "{confirmed}");
    // The next fan pays the new price.
    let (fan, token, hold) = sale.fan_with_hold().await;
    let booking = sale.register(fan, &token, hold).await;
    assert_eq!(sale.settled(&token, booking).await["total"], 9000);
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_command_the_api_took_back_with_a_503_is_dropped_and_the_hold_still_registers(
    db: PgPool,
) {
    let sale = Sale::open(db, 10).await;
    let persister = sale.persister().await;
    let (fan, token, hold) = sale.fan_with_hold().await;
    // What a broker going down mid-publish can leave behind: the command stored, its confirm
    // lost, the API's 503 sent and its marker dropped.
    let disowned = sale.command(fan, hold);
    let results = persister
        .persist(std::slice::from_ref(&disowned))
        .await
        .expect("persisted");
    assert_eq!(results[0].outcome, Outcome::Dropped);
    persister.settle(&results).await;
    let bookings = scalar(&sale.app, "SELECT count(*) FROM bookings").await;
    assert_eq!(bookings, 0, "the fan was told nothing was queued");
    // The fan's retry of the same hold is queued and booked, once.
    let booking = sale.register(fan, &token, hold).await;
    let _worker = sale.spawn_worker().await;
    assert_eq!(sale.settled(&token, booking).await["status"], "confirmed");
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_seat_sold_meanwhile_rejects_that_booking_and_its_batch_mates_are_confirmed(db: PgPool) {
    let sale = Sale::open(db, 10).await;
    let persister = sale.persister().await;
    let mut commands = Vec::new();
    for _ in 0..3 {
        let (fan, _, hold) = sale.fan_with_hold().await;
        commands.push(sale.command(fan, hold));
    }
    for command in &commands {
        sale.mark_pending(command).await;
    }
    // The middle fan's seat is sold behind Redis' back (as after a lost Redis).
    let shared::inventory::HoldState::Live { seats, .. } = persister
        .inventory
        .extend(
            sale.event,
            commands[1].hold_id,
            commands[1].user_id,
            Duration::from_secs(60),
        )
        .await
        .expect("extend")
    else {
        panic!("the hold is live");
    };
    sale.sell_behind_redis(&[seats[0]]).await;

    let results = persister.persist(&commands).await.expect("persisted");
    let outcomes: Vec<&Outcome> = results.iter().map(|r| &r.outcome).collect();
    assert!(
        matches!(outcomes[0], Outcome::Confirmed { .. }),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], &Outcome::Rejected(Rejection::SeatsAlreadySold));
    assert!(
        matches!(outcomes[2], Outcome::Confirmed { .. }),
        "{outcomes:?}"
    );
    let rows = sale.rows(4).await;
    assert_eq!(rows[&commands[1].booking_id], "rejected");
    let (why,): (Option<String>,) = sqlx::query_as("SELECT reason FROM bookings WHERE id = $1")
        .bind(commands[1].booking_id)
        .fetch_one(sale.db())
        .await
        .expect("reason");
    assert_eq!(why.as_deref(), Some(Rejection::SeatsAlreadySold.code()));
    sale.assert_no_seat_twice().await;
    // Persisting the same batch again changes nothing.
    let again = persister.persist(&commands).await.expect("persisted");
    assert!(
        again
            .iter()
            .all(|r| matches!(r.outcome, Outcome::AlreadyDone { .. }))
    );
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_hold_that_expired_before_the_worker_gives_a_rejected_booking_with_its_reason(
    db: PgPool,
) {
    let sale = Sale::open(db, 10).await;
    let persister = sale.persister().await;
    let (fan, _) = sale.app.mint(Role::Fan).await;
    let catalog = persister
        .catalogs
        .get(sale.db(), sale.event)
        .await
        .expect("catalog")
        .expect("event");
    let hold = HoldId::new();
    let held = persister
        .inventory
        .hold_best(&catalog, hold, fan, Duration::from_millis(100), 0, 1)
        .await
        .expect("hold");
    assert!(matches!(held, HoldOutcome::Held { .. }), "{held:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let command = ProcessBookingCommand {
        idempotency_key: Some("key-1".into()),
        ..sale.command(fan, hold)
    };
    let results = persister
        .persist(std::slice::from_ref(&command))
        .await
        .expect("persisted");
    assert_eq!(
        results[0].outcome,
        Outcome::Rejected(Rejection::HoldExpired)
    );
    let (status, why, tickets): (String, Option<String>, i64) = sqlx::query_as(
        "SELECT status, reason, (SELECT count(*) FROM tickets) FROM bookings WHERE id = $1",
    )
    .bind(command.booking_id)
    .fetch_one(sale.db())
    .await
    .expect("row");
    assert_eq!(
        (status.as_str(), why.as_deref(), tickets),
        ("rejected", Some(Rejection::HoldExpired.code()), 0)
    );
    let (routing_key,): (String,) = sqlx::query_as("SELECT routing_key FROM outbox")
        .fetch_one(sale.db())
        .await
        .expect("outbox row");
    assert_eq!(routing_key, routing::BOOKING_REJECTED);
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_poison_message_is_dead_lettered_recorded_for_admins_and_the_rest_flow(db: PgPool) {
    let sale = Sale::open(db, 10).await;
    let _worker = sale.spawn_worker().await;
    sale.publish_raw(b"{\"not\": \"a command\"").await;
    let (fan, token, hold) = sale.fan_with_hold().await;
    let booking = sale.register(fan, &token, hold).await;
    assert_eq!(sale.settled(&token, booking).await["status"], "confirmed");

    let letters = sale.dead_letters(1).await;
    let (booking_id, payload, reason, count) = &letters[0];
    assert_eq!(*booking_id, None);
    assert_eq!(payload, "{\"not\": \"a command\"");
    assert!(
        reason.starts_with("rejected: not a booking command ("),
        "{reason}"
    );
    assert_eq!(*count, 1);
    // Recorded, then acked: the dead-letter queue is empty.
    assert!(
        dead_letter_queue_is_empty(sale.amqp(), &sale.names()).await,
        "a recorded dead letter is still queued"
    );
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn two_workers_on_one_queue_settle_every_202_once_and_sell_no_seat_twice(db: PgPool) {
    const FANS: usize = 40;
    let sale = Sale::open(db, FANS as i64).await;
    let mut accepted = Vec::new();
    for _ in 0..FANS {
        let (fan, token, hold) = sale.fan_with_hold().await;
        accepted.push(sale.register(fan, &token, hold).await);
    }
    // Some seats sold behind Redis' back: those bookings must end rejected, not oversold.
    sale.sell_behind_redis(&[0, 1, 2, 3, 4]).await;

    let first = sale.spawn_worker().await;
    let second = sale.spawn_worker().await;
    let rows = sale.rows(FANS + 1).await;
    let mut confirmed = 0;
    let mut rejected = 0;
    for booking in &accepted {
        match rows.get(booking).map(String::as_str) {
            Some("confirmed") => confirmed += 1,
            Some("rejected") => rejected += 1,
            other => panic!("booking {booking} ended {other:?}"),
        }
    }
    assert_eq!(rows.len(), FANS + 1, "a booking was written twice");
    assert_eq!((confirmed, rejected), (FANS - 5, 5));
    sale.assert_no_seat_twice().await;
    let ids: HashSet<_> = accepted.iter().collect();
    assert_eq!(ids.len(), FANS);
    drop((first, second));
    sale.cleanup().await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_broker_that_is_down_gives_503_and_queues_nothing(db: PgPool) {
    let sale = Sale::open(db, 10).await;
    let (fan, token, hold) = sale.fan_with_hold().await;
    // An API whose broker is unreachable, on the same database, Redis and keys.
    let mut config = simple_config();
    config.redis = sale.app.config.redis.clone();
    config.amqp = sale.amqp().clone();
    config.amqp.url = Secret::new("amqp://guest:guest@127.0.0.1:1/%2f".into());
    config.auth.admin = None;
    let without_broker = TestApp::init()
        .with_config(config)
        .with_keys(sale.app.keys.clone())
        .spawn(sale.db().clone())
        .await;
    let response = sale
        .registration(&without_broker, fan, &token, hold)
        .await
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "unavailable");
    // Nothing claimed: with the broker back, the same hold is queued and booked.
    let booking = sale.register(fan, &token, hold).await;
    let _worker = sale.spawn_worker().await;
    assert_eq!(sale.settled(&token, booking).await["status"], "confirmed");
    sale.cleanup().await;
}

// --- a real worker process, killed with SIGKILL mid-run -------------------------------------

/// A `registration-worker` process on the sale's database, Redis prefix and broker prefix
/// (SIGKILLed when dropped: a failing test leaves none behind); its output goes to
/// `<keys>/worker-<n>.log`.
fn worker_process(sale: &Sale, keys: &std::path::Path, n: usize) -> KilledOnDrop {
    let log = std::fs::File::create(keys.join(format!("worker-{n}.log"))).expect("log");
    let (redis, amqp) = (&sale.app.config.redis, sale.amqp());
    KilledOnDrop::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_registration-worker"))
            .env("DATABASE_URL", postgres_for(sale.db()).url.expose())
            .env("REDIS_URL", redis.url.expose())
            .env("REDIS_KEY_PREFIX", &redis.key_prefix)
            .env("AMQP_URL", amqp.url.expose())
            .env("AMQP_PREFIX", &amqp.prefix)
            .env("KEYS_DIR", keys)
            .env("WORKER_ADDR", "127.0.0.1:0")
            .env("WORKER_CONCURRENCY", "2")
            .env("WORKER_BATCH_SIZE", "20")
            .env("OUTBOX_RELAY", "true")
            .env("LOG_FORMAT", "json")
            .stdout(log.try_clone().expect("log"))
            .stderr(log),
    )
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_worker_process_killed_mid_run_loses_no_202_and_books_nothing_twice(db: PgPool) {
    const FANS: usize = 200;
    let keys = keys_dir("worker-keys");
    let key_set = KeySet::load(
        &keys,
        &[
            KeyPurpose::Access,
            KeyPurpose::Admission,
            KeyPurpose::Ticket,
        ],
    )
    .expect("the openssl keys load");
    let sale = Sale::open_with_keys(db, FANS as i64, key_set).await;
    // Every fan holds a distinct seat and gets a 202 before any worker runs.
    let mut accepted = Vec::new();
    for _ in 0..FANS {
        let (fan, token, hold) = sale.fan_with_hold().await;
        accepted.push(sale.register(fan, &token, hold).await);
    }

    let count = || async {
        let bookings = sale
            .count("SELECT count(*) FROM bookings WHERE event_id = $1")
            .await;
        usize::try_from(bookings).expect("count")
    };
    let mut first = worker_process(&sale, &keys, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while count().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first worker persisted nothing in 30 s (log in {})",
            keys.display()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.kill();
    let at_kill = count().await;
    assert!(
        at_kill < FANS,
        "the first worker finished all {FANS} before the kill; the test proves nothing"
    );

    let second = worker_process(&sale, &keys, 2);
    let rows = sale.rows(FANS).await;
    let mut confirmed = 0;
    for booking in &accepted {
        match rows.get(booking).map(String::as_str) {
            Some("confirmed") => confirmed += 1,
            Some("rejected") => {}
            other => panic!("booking {booking} ended {other:?}"),
        }
    }
    let ids: HashSet<_> = accepted.iter().collect();
    assert_eq!(ids.len(), FANS, "two 202s named one booking");
    assert_eq!(rows.len(), FANS, "a booking was written twice");
    // Every hold was live and every seat distinct: nothing had a reason to be rejected.
    assert_eq!(confirmed, FANS, "{at_kill} written at the kill");
    let (holds, tickets, seats, outbox): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(DISTINCT hold_id) FROM bookings WHERE event_id = $1),
                (SELECT count(*) FROM tickets WHERE event_id = $1),
                (SELECT count(DISTINCT seat_id) FROM tickets WHERE event_id = $1),
                (SELECT count(*) FROM outbox)",
    )
    .bind(sale.event)
    .fetch_one(sale.db())
    .await
    .expect("counts");
    assert_eq!(holds, FANS as i64, "one hold booked twice");
    assert_eq!(tickets, seats, "a seat was sold twice");
    assert_eq!(
        tickets, confirmed as i64,
        "tickets are not the confirmed seats"
    );
    assert_eq!(outbox, FANS as i64, "an outcome was recorded twice");
    tracing::info!(at_kill, "bookings written when the first worker was killed");
    drop(second);
    sale.cleanup().await;
    let _ = std::fs::remove_dir_all(&keys);
}

// --- Postgres unavailable for a while -------------------------------------------------------

/// The worker's `/readyz` answer: `(ready, postgres check)`.
async fn readiness(base: &str) -> (bool, bool) {
    let ready = testkit::get_json(&format!("{base}/readyz")).await;
    (
        ready["status"] == "ready",
        ready["checks"]["postgres"] == true,
    )
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn postgres_unavailable_for_a_while_loses_no_command_and_the_worker_recovers_by_itself(
    db: PgPool,
) {
    const BEFORE: usize = 20;
    const DURING: usize = 40;
    let sale = Sale::open(db, (BEFORE + DURING) as i64).await;
    let worker = sale.worker(worker_config()).await;
    let worker_base = format!("http://{}", worker.local_addr());
    let stop = run_until_stopped(worker);
    let mut fans = Vec::new();
    for _ in 0..BEFORE + DURING {
        fans.push(sale.fan_with_hold().await);
    }
    // Some through the API, the database cut while the worker is at them ...
    let mut accepted = Vec::new();
    for (fan, token, hold) in &fans[..BEFORE] {
        accepted.push(sale.register(*fan, token, *hold).await);
    }
    let outage = DbOutage::begin(sale.db()).await;
    let cut_at = tokio::time::Instant::now();
    // ... and more commands while it is down (the API needs Postgres to accept one, so these
    // go to the broker directly, as the API would send them).
    let publisher = Publisher::connect(sale.amqp(), "test-during-outage")
        .await
        .expect("broker");
    for (fan, _, hold) in &fans[BEFORE..] {
        let command = sale.command(*fan, *hold);
        sale.mark_pending(&command).await;
        publisher
            .publish_command(&command, None)
            .await
            .expect("published");
        accepted.push(command.booking_id);
    }
    // Down long enough for several retries with backoff; the worker says so.
    let mut seen_unready = false;
    while cut_at.elapsed() < Duration::from_secs(5) {
        let (ready, postgres) = readiness(&worker_base).await;
        if !ready && !postgres {
            seen_unready = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen_unready,
        "the worker's /readyz never noticed Postgres was gone"
    );
    outage.end().await;

    // The same worker, never restarted, settles every command exactly once.
    let rows = sale.rows(BEFORE + DURING).await;
    for booking in &accepted {
        assert_eq!(
            rows.get(booking).map(String::as_str),
            Some("confirmed"),
            "booking {booking}"
        );
    }
    assert_eq!(rows.len(), BEFORE + DURING, "a booking was written twice");
    let (tickets, seats, outbox): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tickets WHERE event_id = $1),
                (SELECT count(DISTINCT seat_id) FROM tickets WHERE event_id = $1),
                (SELECT count(*) FROM outbox)",
    )
    .bind(sale.event)
    .fetch_one(sale.db())
    .await
    .expect("counts");
    assert_eq!(tickets, seats, "a seat was sold twice");
    assert_eq!(tickets, (BEFORE + DURING) as i64);
    assert_eq!(
        outbox,
        (BEFORE + DURING) as i64,
        "an outcome was recorded twice"
    );
    // Nothing was dead-lettered: an outage is not the messages' fault.
    assert!(
        dead_letter_queue_is_empty(sale.amqp(), &sale.names()).await,
        "a command was dead-lettered during the outage"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while readiness(&worker_base).await != (true, true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker is not ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stop);
    sale.cleanup().await;
}

// --- a broker restart during a burst -------------------------------------------------------

/// What one registration of the burst got.
enum Answer {
    Accepted(BookingId),
    Unavailable {
        fan: UserId,
        token: String,
        hold: HoldId,
    },
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_broker_restart_during_a_burst_loses_no_202_and_a_503_leaves_nothing_behind(db: PgPool) {
    const SEATS: usize = 1_000;
    const AFTER: usize = 30;
    let broker = PrivateBroker::start().await;
    let sale = Sale::open_on(db, SEATS as i64, KeySet::generate(), broker.amqp()).await;
    let _worker = sale.spawn_worker().await;

    // The restart, once the burst is under way: stop_app, a pause, start_app (the durable
    // quorum queues and their messages survive it).
    let (started, burst_started) = tokio::sync::oneshot::channel::<()>();
    let back = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let restart = {
        let back = back.clone();
        let broker = &broker;
        async move {
            let _ = burst_started.await;
            broker.ctl("stop_app").await;
            // Longer than a publish waits for its confirm (5 s): some registrations get 503.
            tokio::time::sleep(Duration::from_secs(6)).await;
            broker.ctl("start_app").await;
            back.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    // The burst: a new fan every few milliseconds, each registering concurrently, until
    // AFTER registrations were sent after the broker came back.
    let burst = async {
        let mut started = Some(started);
        let mut tasks = Vec::new();
        let mut after = 0;
        while after < AFTER {
            assert!(tasks.len() < SEATS, "the burst ran out of seats");
            let (fan, token, hold) = sale.fan_with_hold().await;
            let request = sale.registration(&sale.app, fan, &token, hold).await;
            tasks.push(tokio::spawn(async move {
                let response = request.send().await.expect("sent");
                let status = response.status();
                let body: Value = response.json().await.expect("json");
                match status {
                    StatusCode::ACCEPTED => Answer::Accepted(
                        body["booking_id"]
                            .as_str()
                            .expect("id")
                            .parse()
                            .expect("id"),
                    ),
                    StatusCode::SERVICE_UNAVAILABLE => Answer::Unavailable { fan, token, hold },
                    other => panic!("a registration answered {other}: {body}"),
                }
            }));
            if tasks.len() == 20 {
                let _ = started.take().map(|started| started.send(()));
            }
            if back.load(std::sync::atomic::Ordering::SeqCst) {
                after += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("a registration task"));
        }
        answers
    };
    let ((), answers) = tokio::join!(restart, burst);

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for answer in answers {
        match answer {
            Answer::Accepted(booking) => accepted.push(booking),
            Answer::Unavailable { fan, token, hold } => refused.push((fan, token, hold)),
        }
    }
    assert!(
        !refused.is_empty(),
        "no registration met the restart; the test proves nothing"
    );
    // Every 202 ends in exactly one booking, by the same API and worker, never restarted.
    let rows = sale.rows(accepted.len()).await;
    for booking in &accepted {
        assert_eq!(
            rows.get(booking).map(String::as_str),
            Some("confirmed"),
            "booking {booking}"
        );
    }
    // A 503 left nothing behind: no booking for its hold, and the hold still registers.
    for (_, _, hold) in &refused {
        let (bookings,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM bookings WHERE hold_id = $1")
                .bind(hold)
                .fetch_one(sale.db())
                .await
                .expect("count");
        assert_eq!(
            bookings, 0,
            "a 503'd registration of hold {hold} left a booking"
        );
    }
    assert_eq!(rows.len(), accepted.len(), "a booking nobody was promised");
    let sale = &sale;
    for retries in refused.chunks(50) {
        let settled =
            futures_util::future::join_all(retries.iter().map(|(fan, token, hold)| async move {
                let booking = sale.register(*fan, token, *hold).await;
                sale.settled(token, booking).await
            }))
            .await;
        for view in settled {
            assert_eq!(view["status"], "confirmed", "{view}");
        }
    }
    let total = accepted.len() + refused.len();
    assert_eq!(
        sale.rows(total).await.len(),
        total,
        "a booking was written twice"
    );
    sale.assert_no_seat_twice().await;
    tracing::info!(
        accepted = accepted.len(),
        refused = refused.len(),
        "the burst across the broker restart"
    );
    sale.cleanup().await;
    drop(broker);
}

// --- dead letters, recorded for admins ------------------------------------------------------

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_command_that_keeps_failing_is_dead_lettered_its_booking_rejected_and_an_admin_resolves_it(
    db: PgPool,
) {
    let sale = Sale::open(db, 10).await;
    let worker = sale.worker(worker_config()).await;
    let worker_base = format!("http://{}", worker.local_addr());
    let persister = worker.bookings().clone();
    let stop = run_until_stopped(worker);

    // A command the database refuses on every delivery, while Postgres and Redis are fine: an
    // idempotency key longer than the schema allows (the API never sends one; a bug might).
    let (fan, token, hold) = sale.fan_with_hold().await;
    let doomed = ProcessBookingCommand {
        idempotency_key: Some("k".repeat(300)),
        ..sale.command(fan, hold)
    };
    sale.mark_pending(&doomed).await;
    sale.publish_raw(&serde_json::to_vec(&doomed).expect("json"))
        .await;
    // Poison beside it, and a good registration: the good one flows.
    sale.publish_raw(b"\xff\xfe not even text").await;
    let (good_fan, good_token, good_hold) = sale.fan_with_hold().await;
    let good = sale.register(good_fan, &good_token, good_hold).await;
    assert_eq!(sale.settled(&good_token, good).await["status"], "confirmed");

    // After the delivery limit: recorded, and the fan's booking ends rejected.
    let letters = sale.dead_letters(2).await;
    let dead = letters
        .iter()
        .find(|(booking, ..)| *booking == Some(doomed.booking_id))
        .expect("the failing command is recorded");
    // The broker's reason, then ours.
    assert_eq!(
        dead.2,
        "delivery_limit: failed on every delivery (see the worker's log)"
    );
    assert!(dead.3 >= 1, "death count {}", dead.3);
    assert_eq!(
        serde_json::from_str::<ProcessBookingCommand>(&dead.1).ok(),
        Some(doomed.clone())
    );
    let poison = letters
        .iter()
        .find(|(booking, ..)| booking.is_none())
        .expect("the poison is recorded");
    assert!(poison.1.ends_with(" not even text"), "{}", poison.1);
    let view = sale.booking(&token, doomed.booking_id).await;
    assert_eq!(
        (view["status"].as_str(), view["reason"].as_str()),
        (Some("rejected"), Some(Rejection::ProcessingFailed.code())),
        "{view}"
    );
    let (outbox,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM outbox WHERE routing_key = $1 AND payload->>'booking_id' = $2",
    )
    .bind(routing::BOOKING_REJECTED)
    .bind(doomed.booking_id.to_string())
    .fetch_one(sale.db())
    .await
    .expect("outbox");
    assert_eq!(outbox, 1, "the fan is told once");
    // The hold is released.
    let hold_now = persister
        .inventory
        .extend(sale.event, hold, fan, Duration::from_secs(1))
        .await
        .expect("extend");
    assert!(
        !matches!(hold_now, shared::inventory::HoldState::Live { .. }),
        "{hold_now:?}"
    );

    // A redelivery of the same dead letter changes nothing.
    let again =
        registration_worker::dead_letters::DeadLetter::read(&dead.1.clone().into_bytes(), None);
    assert_eq!(
        registration_worker::dead_letters::record(&persister, &again)
            .await
            .expect("recorded"),
        registration_worker::dead_letters::Recorded::Again
    );
    assert_eq!(sale.dead_letters(2).await.len(), 2);

    // The admin sees both and resolves one, through the API.
    let admin = sale.app.admin_token().await;
    let open_letters = || {
        sale.app.json_as(
            Method::GET,
            "/api/admin/dead-letters",
            &admin,
            None,
            StatusCode::OK,
        )
    };
    let open = open_letters().await;
    assert_eq!(open["total"], 2, "{open}");
    let listed = open["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["booking_id"] == doomed.booking_id.to_string())
        .expect("listed")
        .clone();
    assert_eq!(listed["booking_status"], "rejected");
    assert_eq!(listed["event_id"], sale.event.to_string());
    assert!(listed["death_count"].as_i64() >= Some(1), "{listed}");
    let resolved = sale
        .app
        .json_as(
            Method::POST,
            &format!("/api/admin/dead-letters/{}/resolve", listed["id"]),
            &admin,
            Some(&json!({"note": "key bug fixed; fan asked to buy again"})),
            StatusCode::OK,
        )
        .await;
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    let open = open_letters().await;
    assert_eq!(open["total"], 1, "{open}");

    let metrics = reqwest::get(format!("{worker_base}/metrics"))
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    for metric in [
        "worker_commands_consumed_total",
        "worker_bookings_persisted_total",
        "worker_commands_retried_total",
        "worker_dead_lettered_total",
        "worker_batch_size",
        "worker_queue_lag_seconds",
    ] {
        assert!(metrics.contains(metric), "no {metric} in /metrics");
    }
    drop(stop);
    sale.cleanup().await;
}
