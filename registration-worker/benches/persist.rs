//! Tickets persisted per second with the worker's batches (100 commands per `persist`: one SQL
//! statement writes the batch's bookings, tickets and outbox rows) next to one command per
//! `persist`, same machine, same run; then the end-to-end latency from the API's 202 to
//! `confirmed` (the API and a worker in process).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p registration-worker --bench persist
//! ```
//!
//! Needs the dev services (Postgres, Redis, RabbitMQ; `REDIS_URL` and `AMQP_URL` or the dev
//! defaults). Makes its own database `bench_<uuid>` on the `DATABASE_URL` server and drops it at
//! the end; Redis keys and broker names carry a random prefix and are removed too.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::booking::{Bookings, Outcome, PendingBooking, Persisted};
use shared::{
    cache::{RedisKeys, redis},
    config::{AmqpConfig, LogFormat, PostgresConfig, RedisConfig, Secret, WorkerConfig},
    domain::Role,
    ids::{BookingId, EventId, HoldId, UserId},
    inventory::HoldOutcome,
    messaging::{Names, ProcessBookingCommand, routing},
};
use sqlx::{AssertSqlSafe, PgPool, postgres::PgPoolOptions};
use testkit::{
    api::{TestApp, create_event, event_body, event_id, grid_venue, simple_config},
    users::mint_many,
};
use uuid::Uuid;

/// Commands per batch: the worker's default `WORKER_BATCH_SIZE`.
const BATCH: usize = 100;
/// Bookings persisted in each mode, in rounds that alternate between the modes.
const PERSISTED: usize = 3_000;
const ROUNDS: usize = 3;
/// Registrations in the end-to-end run, and the HTTP clients sending them.
const REGISTRATIONS: usize = 1_000;
const CLIENTS: usize = 16;
/// The paced run's registrations per second.
const PACED_PER_SECOND: u32 = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("bench_{}", Uuid::new_v4().simple());
    let admin = PgPool::connect(&server)
        .await
        .context("connecting to DATABASE_URL")?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    let url = with_database(&server, &name);
    let redis = RedisConfig {
        url: Secret::new(
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        connections: 4,
        key_prefix: format!("bench:{}:", Uuid::new_v4().simple()),
    };
    let amqp = AmqpConfig {
        url: Secret::new(
            std::env::var("AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        ),
        prefix: format!("bench.{}.", Uuid::new_v4().simple()),
    };
    let outcome = run(&url, &redis, &amqp).await;

    testkit::broker::delete_topology(&amqp, &Names::new(amqp.prefix.clone())).await;
    if let Err(err) = delete_keys(&redis).await {
        eprintln!(
            "could not remove the Redis keys {}*: {err:#}",
            redis.key_prefix
        );
    }
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&admin)
        .await?;
    outcome
}

/// `server` with its database name replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let authority = match base.rsplit_once('/') {
        Some((authority, _))
            if authority.contains("//") && authority.len() > "postgres://".len() =>
        {
            authority
        }
        _ => base,
    };
    format!("{authority}/{name}{query}")
}

async fn delete_keys(config: &RedisConfig) -> anyhow::Result<()> {
    let client = redis::Client::open(config.url.expose().as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", config.key_prefix))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL")
            .arg(chunk)
            .query_async::<i64>(&mut conn)
            .await?;
    }
    Ok(())
}

async fn run(url: &str, redis: &RedisConfig, amqp: &AmqpConfig) -> anyhow::Result<()> {
    let db = PgPoolOptions::new()
        .max_connections(20)
        .connect(url)
        .await?;
    shared::db::MIGRATOR.run(&db).await?;
    let postgres = PostgresConfig {
        url: Secret::new(url.to_string()),
        max_connections: 20,
        auto_migrate: false,
    };
    let bench = Bench::open(db, postgres, redis.clone(), amqp.clone()).await?;
    println!(
        "registration-worker bench: {PERSISTED} bookings per mode in {ROUNDS} alternating \
         rounds, batch {BATCH}, one consumer, one persist at a time"
    );

    // --- persistence throughput --------------------------------------------------------
    let persister = Bookings::standalone(
        bench.app.db.clone(),
        shared::cache::connect(&bench.app.config.redis)?,
        RedisKeys::new(bench.app.config.redis.key_prefix.clone()),
        bench.app.keys.ticket.clone(),
    );
    // A warm-up on its own event: connections, prepared statements, the ticket key.
    let warm = bench.commands(&persister, 2 * BATCH).await?;
    for chunk in warm.chunks(BATCH) {
        persister.persist(chunk).await?;
    }
    for command in &warm[..BATCH] {
        persister.persist(std::slice::from_ref(command)).await?;
    }

    let batched = bench.commands(&persister, PERSISTED).await?;
    let single = bench.commands(&persister, PERSISTED).await?;
    // Rounds alternate between the modes, so a neighbour's load on this machine hits both.
    let mut batched_time = Duration::ZERO;
    let mut single_time = Duration::ZERO;
    let (mut batched_confirmed, mut single_confirmed) = (0, 0);
    let round = PERSISTED / ROUNDS;
    for (batched, single) in batched.chunks(round).zip(single.chunks(round)) {
        let started = Instant::now();
        for chunk in batched.chunks(BATCH) {
            batched_confirmed += count_confirmed(&persister.persist(chunk).await?);
        }
        batched_time += started.elapsed();
        let started = Instant::now();
        for command in single {
            single_confirmed +=
                count_confirmed(&persister.persist(std::slice::from_ref(command)).await?);
        }
        single_time += started.elapsed();
    }
    anyhow::ensure!(
        batched_confirmed == PERSISTED && single_confirmed == PERSISTED,
        "confirmed: {batched_confirmed} batched, {single_confirmed} single"
    );
    let rate = |time: Duration| PERSISTED as f64 / time.as_secs_f64();
    println!(
        "persist, batches of {BATCH}:        {:>8.0} tickets/s ({:.2} s)",
        rate(batched_time),
        batched_time.as_secs_f64()
    );
    println!(
        "persist, one command each:     {:>8.0} tickets/s ({:.2} s)",
        rate(single_time),
        single_time.as_secs_f64()
    );
    println!(
        "batching / one per booking:    {:>8.1}x",
        rate(batched_time) / rate(single_time)
    );

    // --- end to end: 202 -> confirmed ---------------------------------------------------
    bench.end_to_end(Load::Paced(PACED_PER_SECOND)).await?;
    bench.end_to_end(Load::Burst(CLIENTS)).await
}

/// How the end-to-end run sends its registrations.
#[derive(Clone, Copy)]
enum Load {
    /// This many per second, each on its own task (open loop).
    Paced(u32),
    /// As fast as this many clients go, one request each at a time.
    Burst(usize),
}

fn count_confirmed(results: &[Persisted]) -> usize {
    results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Confirmed { .. }))
        .count()
}

/// The API in process (the kit's), an organizer, and what it takes to make fans with holds.
struct Bench {
    app: TestApp,
    postgres: PostgresConfig,
    organizer: String,
}

impl Bench {
    async fn open(
        db: PgPool,
        postgres: PostgresConfig,
        redis: RedisConfig,
        amqp: AmqpConfig,
    ) -> anyhow::Result<Self> {
        let mut config = simple_config();
        config.http.request_timeout = Duration::from_secs(30);
        config.postgres = postgres.clone();
        config.redis = redis;
        config.amqp = amqp;
        config.auth.access_token_ttl = Duration::from_secs(3600);
        config.auth.admin = None;
        let app = TestApp::init()
            .with_config(config)
            .with_broker_connected()
            .spawn(db)
            .await;
        let (_, organizer) = app.mint(Role::Organizer).await;
        Ok(Self {
            app,
            postgres,
            organizer,
        })
    }

    /// An on-sale event of `seats` seats (one class, 50.00 EUR).
    async fn event(&self, seats: usize, high_demand: bool) -> anyhow::Result<EventId> {
        let rows = i64::try_from(seats.div_ceil(100))?;
        let venue = grid_venue(&self.app, &self.organizer, &[("A", rows, 100)]).await;
        let event = create_event(
            &self.app,
            &self.organizer,
            &event_body(
                &venue,
                json!([{"name": "Normal", "price": 5000, "currency": "EUR"}]),
            ),
        )
        .await;
        let event = event_id(&event);
        if high_demand {
            self.app
                .high_demand(&self.organizer, event, 60_000, 100_000)
                .await;
        }
        Ok(event)
    }

    /// `n` commands for fans holding one seat each of a fresh event (holds made in Redis
    /// directly, as the API makes them).
    async fn commands(
        &self,
        persister: &Bookings,
        n: usize,
    ) -> anyhow::Result<Vec<ProcessBookingCommand>> {
        let event = self.event(n, false).await?;
        let catalog = persister
            .catalogs
            .get(&self.app.db, event)
            .await?
            .context("the event's catalog")?;
        let (fans, _) = mint_many(&self.app.db, &self.app.keys, Role::Fan, n).await;
        let mut commands = Vec::with_capacity(n);
        for fan in fans {
            let hold = HoldId::new();
            let held = persister
                .inventory
                .hold_best(&catalog, hold, fan, Duration::from_secs(600), 0, 1)
                .await?;
            anyhow::ensure!(matches!(held, HoldOutcome::Held { .. }), "{held:?}");
            let command = testkit::broker::booking_command(event, fan, hold);
            // The API's marker, as before every publish: a worker persists only marked commands.
            let marker = PendingBooking {
                user_id: fan,
                event_id: event,
                hold_id: hold,
                created_at: command.requested_at,
                published: true,
            };
            persister.claims.mark(command.booking_id, &marker).await?;
            commands.push(command);
        }
        Ok(commands)
    }

    /// A worker in process (the production defaults: 2 consumers, batches of 100 or 5 ms, the
    /// outbox polled every 50 ms), `REGISTRATIONS` fans with holds made through the API, then
    /// their registrations from `CLIENTS` concurrent clients. Latency from each 202 to the
    /// booking confirmed in Postgres (what `GET /api/bookings/{id}` answers; polled every 2 ms)
    /// and to its `BookingConfirmed` on the events exchange (after the outbox relay).
    async fn end_to_end(&self, load: Load) -> anyhow::Result<()> {
        let event = self.event(REGISTRATIONS, true).await?;
        let (fans, tokens) =
            mint_many(&self.app.db, &self.app.keys, Role::Fan, REGISTRATIONS).await;
        let mut registrations = Vec::with_capacity(REGISTRATIONS);
        for (fan, token) in fans.iter().zip(&tokens) {
            // Let in as the waiting room's tick does: a gated hold and the registration that
            // spends the admission both need the fan in the admitted set, not only a token.
            let admission = self.app.admit(event, *fan).await;
            let response = self.app.hold_one(token, event, Some(&admission)).await;
            anyhow::ensure!(response.status() == StatusCode::CREATED, "hold");
            let hold: Value = response.json().await?;
            let hold: HoldId = hold["hold_id"].as_str().context("hold id")?.parse()?;
            registrations.push((*fan, token.clone(), hold, admission));
        }

        // The persistence runs above left outbox rows: out of the relay's way.
        sqlx::query("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
            .execute(&self.app.db)
            .await?;
        let worker_config = registration_worker::Config {
            http: testkit::config::http(),
            postgres: self.postgres.clone(),
            redis: self.app.config.redis.clone(),
            amqp: self.app.config.amqp.clone(),
            keys: testkit::config::no_keys_dir(),
            worker: WorkerConfig {
                concurrency: 2,
                batch_size: BATCH as u16,
                batch_wait: Duration::from_millis(5),
                relay: true,
                outbox_poll: Duration::from_millis(50),
            },
            log_format: LogFormat::Pretty,
        };
        let worker =
            registration_worker::build_with_keys(&worker_config, self.app.keys.ticket.clone())
                .await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
        }));

        // Published confirmations, as a subscriber of the events exchange sees them.
        let published: Arc<Mutex<HashMap<BookingId, Instant>>> = Arc::default();
        let (_observer, mut consumer) =
            testkit::broker::observe_events(&self.app.config.amqp, routing::BOOKING_CONFIRMED)
                .await?;
        let seen = published.clone();
        let event_id = event.to_string();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let at = Instant::now();
                let Ok(message) = serde_json::from_slice::<Value>(&delivery.data) else {
                    continue;
                };
                if message["event_id"].as_str() != Some(event_id.as_str()) {
                    continue;
                }
                if let Some(Ok(id)) = message["booking_id"].as_str().map(str::parse::<BookingId>) {
                    seen.lock().expect("lock").entry(id).or_insert(at);
                }
            }
        });

        // Confirmed in Postgres, polled.
        let committed: Arc<Mutex<HashMap<BookingId, Instant>>> = Arc::default();
        let (poll_stop, mut poll_stopped) = shared::shutdown::channel();
        let poller = {
            let committed = committed.clone();
            let db = self.app.db.clone();
            tokio::spawn(async move {
                while !poll_stopped.is_shutdown() {
                    let rows: Vec<(BookingId,)> = sqlx::query_as(
                        "SELECT id FROM bookings WHERE event_id = $1 AND status = 'confirmed'",
                    )
                    .bind(event)
                    .fetch_all(&db)
                    .await
                    .unwrap_or_default();
                    let at = Instant::now();
                    {
                        let mut committed = committed.lock().expect("lock");
                        for (id,) in rows {
                            committed.entry(id).or_insert(at);
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(2)) => {}
                        () = poll_stopped.recv() => {}
                    }
                }
            })
        };

        let accepted: Arc<Mutex<HashMap<BookingId, Instant>>> = Arc::default();
        let url = self.app.url(&format!("/api/events/{event}/registrations"));
        let (client, sink) = (self.app.client.clone(), accepted.clone());
        let register = move |(_, token, hold, admission): (UserId, String, HoldId, String)| {
            let accepted = sink.clone();
            let client = client.clone();
            let url = url.clone();
            async move {
                let response = client
                    .post(&url)
                    .bearer_auth(token)
                    .header("X-Admission-Token", admission)
                    .json(&json!({"hold_id": hold}))
                    .send()
                    .await?;
                let at = Instant::now();
                anyhow::ensure!(
                    response.status() == StatusCode::ACCEPTED,
                    "registration: {}",
                    response.status()
                );
                let body: Value = response.json().await?;
                let id: BookingId = body["booking_id"].as_str().context("id")?.parse()?;
                accepted.lock().expect("lock").insert(id, at);
                anyhow::Ok(())
            }
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        match load {
            Load::Paced(per_second) => {
                let every = Duration::from_secs(1) / per_second;
                let start = tokio::time::Instant::now();
                for (i, registration) in registrations.into_iter().enumerate() {
                    tokio::time::sleep_until(start + every * u32::try_from(i)?).await;
                    tasks.push(tokio::spawn(register(registration)));
                }
            }
            Load::Burst(clients) => {
                let queue = Arc::new(Mutex::new(registrations));
                for _ in 0..clients {
                    let queue = queue.clone();
                    let register = register.clone();
                    tasks.push(tokio::spawn(async move {
                        loop {
                            let next = queue.lock().expect("lock").pop();
                            let Some(registration) = next else {
                                return anyhow::Ok(());
                            };
                            register(registration).await?;
                        }
                    }));
                }
            }
        }
        for task in tasks {
            task.await??;
        }
        let sent = started.elapsed();

        let deadline = Instant::now() + Duration::from_secs(60);
        while published.lock().expect("lock").len() < REGISTRATIONS
            || committed.lock().expect("lock").len() < REGISTRATIONS
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "not every registration confirmed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        poll_stop.stop();
        let _ = poller.await;
        let _ = stop.send(());
        let _ = worker.await;

        let accepted = accepted.lock().expect("lock").clone();
        let latencies = |confirmed: &HashMap<BookingId, Instant>| {
            let mut millis: Vec<f64> = accepted
                .iter()
                .map(|(id, at)| {
                    confirmed.get(id).map_or(f64::NAN, |done| {
                        done.saturating_duration_since(*at).as_secs_f64() * 1e3
                    })
                })
                .collect();
            millis.sort_by(f64::total_cmp);
            let pick = |p: usize| millis[(millis.len() * p / 100).min(millis.len() - 1)];
            (pick(50), pick(99))
        };
        let how = match load {
            Load::Paced(per_second) => format!("paced at {per_second}/s"),
            Load::Burst(clients) => format!("as fast as {clients} clients go"),
        };
        println!(
            "end to end, {how}: {REGISTRATIONS} registrations in {:.2} s ({:.0}/s), \
             2 consumers, batch {BATCH} / 5 ms, outbox polled every 50 ms",
            sent.as_secs_f64(),
            REGISTRATIONS as f64 / sent.as_secs_f64()
        );
        let (p50, p99) = latencies(&committed.lock().expect("lock"));
        println!(
            "  202 -> confirmed in Postgres (GET /api/bookings/{{id}}): p50 {p50:.1} ms, p99 {p99:.1} ms"
        );
        let (p50, p99) = latencies(&published.lock().expect("lock"));
        println!(
            "  202 -> BookingConfirmed on the events exchange:          p50 {p50:.1} ms, p99 {p99:.1} ms"
        );
        Ok(())
    }
}
