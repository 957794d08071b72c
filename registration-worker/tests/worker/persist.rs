//! The worker's batch statement (`shared::booking::persist`) against the real Postgres and
//! Redis, without the API or the broker: every outcome a command can have, in one mixed batch,
//! with its rows, reason and outbox payload; a batch's cost in statements; and the races it
//! must win — a conflicting row another writer commits after its snapshot, a cancellation or a
//! price change it waited for, two batches over the same seats at once.
//!
//! Holds are made in Redis as the API makes them (`Inventory::hold_seats`), with the API's
//! pending marker. Two live holds on one seat — what the batch must still sell once — exist only
//! when Redis drifted from Postgres; [`Sale::forget_in_redis`] and a second Redis prefix (two
//! workers whose Redis disagree) make them.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, PoisonError},
    thread::ThreadId,
    time::Duration,
};

use serde_json::Value;
use shared::{
    booking::{Bookings, Outcome, PendingBooking, Persisted, Rejection},
    cache::{RedisKeys, redis},
    domain::{Currency, Money, Role},
    ids::{BookingId, ClassId, EventId, HoldId, TicketId, UserId},
    inventory::{Catalog, HoldOutcome},
    messaging::{
        BookingConfirmed, BookingRejected, ClassPrice, ProcessBookingCommand, TicketSummary,
        routing,
    },
    tokens::{KeyPurpose, KeySet, TicketClaims, TokenKeys},
};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing_subscriber::layer::SubscriberExt;

/// An event on sale with two classes: seats 0–9 "Normal" (50.00 EUR), 10–19 "Balcony"
/// (80.00 EUR), labelled `<section>-<row>-<seat>`.
struct Sale {
    db: PgPool,
    event: EventId,
    normal: ClassId,
    balcony: ClassId,
}

/// A worker's persister on its own Redis prefix.
struct Worker {
    bookings: Bookings,
    redis: shared::cache::Redis,
    keys: RedisKeys,
}

const SEATS: i32 = 20;

impl Sale {
    async fn open(db: &PgPool) -> Self {
        let sale = testkit::sale::NewSale {
            class_price: Some(5000),
            ..testkit::sale::NewSale::default()
        }
        .insert(db)
        .await;
        let normal = ClassId::from(sale.class.expect("a class"));
        let balcony = ClassId::new();
        sqlx::query(
            "INSERT INTO ticket_classes (id, event_id, name, price_minor, currency, position)
             VALUES ($1, $2, 'Balcony', 8000, 'EUR', 1)",
        )
        .bind(balcony)
        .bind(sale.event)
        .execute(db)
        .await
        .expect("class");
        sqlx::query(
            "INSERT INTO seats (id, event_id, class_id, label, section, row_no, seat_no, idx,
                                row_rank)
             SELECT gen_random_uuid(), $1, CASE WHEN i < 10 THEN $2 ELSE $3 END,
                    CASE WHEN i < 10 THEN 'A' ELSE 'B' END || '-1-' || (i % 10 + 1),
                    CASE WHEN i < 10 THEN 'A' ELSE 'B' END, 1, i % 10 + 1, i, 0
             FROM generate_series(0, $4 - 1) AS i",
        )
        .bind(sale.event)
        .bind(normal)
        .bind(balcony)
        .bind(SEATS)
        .execute(db)
        .await
        .expect("seats");
        Self {
            db: db.clone(),
            event: sale.event,
            normal,
            balcony,
        }
    }

    /// A second event like this one, cancelled.
    async fn cancelled(db: &PgPool) -> Self {
        let sale = Self::open(db).await;
        sqlx::query("UPDATE events SET cancelled_at = now(), status = 'cancelled' WHERE id = $1")
            .bind(sale.event)
            .execute(db)
            .await
            .expect("cancelled");
        sale
    }

    async fn fans(&self, n: usize) -> Vec<UserId> {
        testkit::users::mint_many(&self.db, &KeySet::generate(), Role::Fan, n)
            .await
            .0
    }

    /// Sells seats to another fan in Postgres only, as after a lost Redis.
    async fn sell_behind_redis(&self, idx: &[i32]) {
        let other = self.fans(1).await[0];
        super::sell_behind_redis(&self.db, self.event, other, idx).await;
    }
}

impl Worker {
    fn new(db: &PgPool, ticket_keys: &TokenKeys) -> Self {
        let config = testkit::config::redis();
        let redis = shared::cache::connect(&config).expect("redis");
        let keys = RedisKeys::new(config.key_prefix);
        Self {
            bookings: Bookings::standalone(
                db.clone(),
                redis.clone(),
                keys.clone(),
                ticket_keys.clone(),
            ),
            redis,
            keys,
        }
    }

    async fn catalog(&self, sale: &Sale) -> Arc<Catalog> {
        self.bookings
            .catalogs
            .get(&sale.db, sale.event)
            .await
            .expect("catalog")
            .expect("event")
    }

    /// `fan` holds `seats` for `ttl` in this worker's Redis.
    async fn hold_for(&self, sale: &Sale, fan: UserId, seats: &[u32], ttl: Duration) -> HoldId {
        let hold = HoldId::new();
        let held = self
            .bookings
            .inventory
            .hold_seats(&*self.catalog(sale).await, hold, fan, ttl, seats)
            .await
            .expect("hold");
        assert!(matches!(held, HoldOutcome::Held { .. }), "{held:?}");
        hold
    }

    /// The command the API publishes for `fan`'s `hold`, with its pending marker.
    async fn command(&self, sale: &Sale, fan: UserId, hold: HoldId) -> ProcessBookingCommand {
        let command = testkit::broker::booking_command(sale.event, fan, hold);
        self.mark(&command).await;
        command
    }

    async fn mark(&self, command: &ProcessBookingCommand) {
        let marker = PendingBooking {
            user_id: command.user_id,
            event_id: command.event_id,
            hold_id: command.hold_id,
            created_at: command.requested_at,
            published: true,
        };
        self.bookings
            .claims
            .mark(command.booking_id, &marker)
            .await
            .expect("marker");
    }

    /// `fan` holds `seats` (10 minutes) and registers them.
    async fn registered(&self, sale: &Sale, fan: UserId, seats: &[u32]) -> ProcessBookingCommand {
        let hold = self
            .hold_for(sale, fan, seats, Duration::from_secs(600))
            .await;
        self.command(sale, fan, hold).await
    }

    /// Makes seat `idx` look free to the next hold while the hold that has it lives on: Redis
    /// drifted from itself (the seat's entry lost), so two live holds name one seat.
    async fn forget_in_redis(&self, sale: &Sale, idx: u32) {
        let seats = format!("{}seats", self.keys.inventory(sale.event));
        let _: i64 = redis::cmd("HDEL")
            .arg(seats)
            .arg(idx)
            .query_async(&mut self.redis.conn())
            .await
            .expect("HDEL");
    }
}

/// What the tracing of this test's thread said (`sqlx::test` runs each test on a runtime of
/// its own thread; spawned tasks stay on it): the statements sqlx sent, and the batch
/// statement's reruns. One global subscriber for the whole binary, filtering by thread: a
/// scoped one per test (`set_default`) misses events whenever another test's thread touches a
/// callsite first.
struct Log(ThreadId);

/// One line a watched thread logged.
enum Line {
    /// sqlx sent a statement (its logged summary).
    Statement(String),
    /// The batch statement is run again.
    Rerun,
}

static WATCHED: LazyLock<Mutex<HashMap<ThreadId, Vec<Line>>>> = LazyLock::new(Mutex::default);

struct Recorder;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            summary: Option<String>,
            message: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "summary" => self.summary = Some(format!("{value:?}")),
                    "message" => self.message = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut watched = WATCHED.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(lines) = watched.get_mut(&std::thread::current().id()) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        if event.metadata().target() == "sqlx::query" {
            lines.push(Line::Statement(fields.summary.unwrap_or_default()));
        } else if fields.message.contains("running it again") {
            lines.push(Line::Rerun);
        }
    }
}

impl Log {
    /// Starts recording this thread's lines.
    fn watch() -> Self {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
                .expect("the only global subscriber");
        });
        let thread = std::thread::current().id();
        WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(thread, Vec::new());
        Self(thread)
    }

    fn take(&self) -> Vec<Line> {
        WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&self.0)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The statements sent since the last look.
    fn statements(&self) -> Vec<String> {
        self.take()
            .into_iter()
            .filter_map(|line| match line {
                Line::Statement(summary) => Some(summary),
                Line::Rerun => None,
            })
            .collect()
    }

    /// The batch statement's reruns since the last look.
    fn reruns(&self) -> usize {
        self.take()
            .iter()
            .filter(|line| matches!(line, Line::Rerun))
            .count()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        WATCHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// The `bookings` row of a command.
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Row {
    status: String,
    reason: Option<String>,
    total_minor: i64,
    currency: String,
    hold_id: Option<HoldId>,
    idempotency_key: Option<String>,
}

async fn row(db: &PgPool, booking: BookingId) -> Option<Row> {
    sqlx::query_as(
        "SELECT status, reason, total_minor, currency, hold_id, idempotency_key
         FROM bookings WHERE id = $1",
    )
    .bind(booking)
    .fetch_optional(db)
    .await
    .expect("row")
}

/// A booking's tickets, best seat first: (id, label, class name, class id, price, code).
async fn tickets(
    db: &PgPool,
    booking: BookingId,
) -> Vec<(TicketId, String, String, ClassId, i64, String)> {
    sqlx::query_as(
        "SELECT t.id, s.label, c.name, c.id, t.price_minor, t.code
         FROM tickets t
         JOIN seats s ON s.event_id = t.event_id AND s.id = t.seat_id
         JOIN ticket_classes c ON c.id = t.class_id
         WHERE t.booking_id = $1 ORDER BY s.idx",
    )
    .bind(booking)
    .fetch_all(db)
    .await
    .expect("tickets")
}

/// The outbox rows announcing `booking`: (routing key, payload).
async fn announced(db: &PgPool, booking: BookingId) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT routing_key, payload FROM outbox WHERE payload->>'booking_id' = $1::text
         ORDER BY id",
    )
    .bind(booking)
    .fetch_all(db)
    .await
    .expect("outbox")
}

/// A rejected row: reason, nothing charged, the first class's currency, hold and key recorded
/// or not; no ticket; one `booking.rejected` event, exactly as serde writes it.
async fn assert_rejected(
    db: &PgPool,
    command: &ProcessBookingCommand,
    why: Rejection,
    recorded: bool,
) {
    let expected = Row {
        status: "rejected".into(),
        reason: Some(why.code().into()),
        total_minor: 0,
        currency: "EUR".into(),
        hold_id: recorded.then_some(command.hold_id),
        idempotency_key: command.idempotency_key.clone().filter(|_| recorded),
    };
    assert_eq!(row(db, command.booking_id).await, Some(expected));
    assert!(tickets(db, command.booking_id).await.is_empty());
    let rejected = BookingRejected {
        booking_id: command.booking_id,
        event_id: command.event_id,
        user_id: command.user_id,
        reason: why.code().into(),
    };
    assert_eq!(
        announced(db, command.booking_id).await,
        vec![(
            routing::BOOKING_REJECTED.to_string(),
            serde_json::to_value(&rejected).expect("json")
        )]
    );
}

/// A confirmed row charging `total` EUR, its tickets (`seats`: label and class name, best
/// first) with codes signed for them, and one `booking.confirmed` event exactly as serde writes
/// it — and as the notifier parses it.
async fn assert_confirmed(
    db: &PgPool,
    ticket_keys: &TokenKeys,
    command: &ProcessBookingCommand,
    total: i64,
    seats: &[(&str, &str)],
) {
    let expected = Row {
        status: "confirmed".into(),
        reason: None,
        total_minor: total,
        currency: "EUR".into(),
        hold_id: Some(command.hold_id),
        idempotency_key: command.idempotency_key.clone(),
    };
    assert_eq!(row(db, command.booking_id).await, Some(expected));
    let tickets = tickets(db, command.booking_id).await;
    let labels: Vec<(&str, &str)> = tickets
        .iter()
        .map(|(_, label, class, ..)| (label.as_str(), class.as_str()))
        .collect();
    assert_eq!(labels, seats);
    assert_eq!(tickets.iter().map(|t| t.4).sum::<i64>(), total);
    for (id, _, _, _, _, code) in &tickets {
        let verified = ticket_keys
            .verify::<TicketClaims>(code)
            .expect("a valid ticket code");
        assert_eq!(
            (verified.claims.tid, verified.claims.evt),
            (*id, command.event_id)
        );
    }
    let confirmed = BookingConfirmed {
        booking_id: command.booking_id,
        event_id: command.event_id,
        user_id: command.user_id,
        total: Money {
            amount: total,
            currency: Currency::parse("EUR").expect("EUR"),
        },
        tickets: tickets
            .iter()
            .map(|(id, label, class, ..)| TicketSummary {
                ticket_id: *id,
                seat_label: label.clone(),
                class: class.clone(),
            })
            .collect(),
    };
    let outbox = announced(db, command.booking_id).await;
    assert_eq!(
        outbox,
        vec![(
            routing::BOOKING_CONFIRMED.to_string(),
            serde_json::to_value(&confirmed).expect("json")
        )]
    );
    let parsed: BookingConfirmed =
        serde_json::from_value(outbox[0].1.clone()).expect("the notifier's parse");
    assert_eq!(parsed, confirmed);
}

fn outcomes(results: &[Persisted]) -> Vec<Outcome> {
    results
        .iter()
        .map(|result| result.outcome.clone())
        .collect()
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_mixed_batch_ends_every_command_as_booking_by_booking_writes_would(db: PgPool) {
    let sale = Sale::open(&db).await;
    let cancelled = Sale::cancelled(&db).await;
    let ticket_keys = TokenKeys::generate(KeyPurpose::Ticket);
    let worker = Worker::new(&db, &ticket_keys);
    let fans = sale.fans(12).await;

    // Written by an earlier batch (and not settled: its hold lives on), so that this batch
    // meets a redelivery, a hold that is owned and a key that is owned.
    let earlier = worker.registered(&sale, fans[0], &[9]).await;
    let keyed = ProcessBookingCommand {
        idempotency_key: Some("key-owned".into()),
        ..worker.registered(&sale, fans[1], &[8]).await
    };
    let first = worker
        .bookings
        .persist(&[earlier.clone(), keyed.clone()])
        .await
        .expect("persisted");
    assert!(
        outcomes(&first)
            .iter()
            .all(|outcome| matches!(outcome, Outcome::Confirmed { .. })),
        "{first:?}"
    );

    // Two seats of two classes, only one class quoted: the quote for it, the price now for
    // the other.
    let confirmed = ProcessBookingCommand {
        idempotency_key: Some("key-0".into()),
        prices: vec![ClassPrice {
            class_id: sale.normal,
            price_minor: 4500,
        }],
        ..worker.registered(&sale, fans[2], &[0, 10]).await
    };
    sale.sell_behind_redis(&[1]).await;
    let seat_sold = ProcessBookingCommand {
        idempotency_key: Some("key-1".into()),
        ..worker.registered(&sale, fans[3], &[1]).await
    };
    // Two live holds on seat 2: the first booking takes it, the second is refused it.
    let takes_seat = worker.registered(&sale, fans[4], &[2, 11]).await;
    worker.forget_in_redis(&sale, 2).await;
    let seat_taken = ProcessBookingCommand {
        idempotency_key: Some("key-2".into()),
        ..worker.registered(&sale, fans[5], &[2]).await
    };
    // One hold, two booking ids: the first gets it.
    let owns_hold = worker.registered(&sale, fans[6], &[3]).await;
    let hold_taken = ProcessBookingCommand {
        booking_id: BookingId::new(),
        ..owns_hold.clone()
    };
    worker.mark(&hold_taken).await;
    // A hold the earlier batch's booking owns.
    let hold_owned = ProcessBookingCommand {
        booking_id: BookingId::new(),
        ..earlier.clone()
    };
    worker.mark(&hold_owned).await;
    // The fan's key, owned by their booking of the earlier batch; a new hold.
    let key_owned = ProcessBookingCommand {
        idempotency_key: Some("key-owned".into()),
        ..worker.registered(&sale, fans[1], &[4]).await
    };
    // The same key twice in this batch: the cancelled event's rejection may not record it.
    let key_first = ProcessBookingCommand {
        idempotency_key: Some("key-twice".into()),
        ..worker.registered(&sale, fans[7], &[5]).await
    };
    let cancelled_hold = worker.registered(&cancelled, fans[7], &[0]).await;
    let key_taken = ProcessBookingCommand {
        idempotency_key: Some("key-twice".into()),
        ..cancelled_hold
    };
    let event_cancelled = ProcessBookingCommand {
        idempotency_key: Some("key-c".into()),
        ..worker.registered(&cancelled, fans[8], &[1]).await
    };
    let expiring = worker
        .hold_for(&sale, fans[9], &[6], Duration::from_millis(100))
        .await;
    let expired = ProcessBookingCommand {
        idempotency_key: Some("key-e".into()),
        ..worker.command(&sale, fans[9], expiring).await
    };
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The API took it back (its 503): the marker is gone, the hold lives.
    let disowned_hold = worker
        .hold_for(&sale, fans[10], &[7], Duration::from_secs(600))
        .await;
    let disowned = testkit::broker::booking_command(sale.event, fans[10], disowned_hold);
    let gone = ProcessBookingCommand {
        event_id: EventId::new(),
        ..worker.registered(&sale, fans[11], &[12]).await
    };

    let batch = vec![
        confirmed.clone(),
        seat_sold.clone(),
        takes_seat.clone(),
        seat_taken.clone(),
        owns_hold.clone(),
        hold_taken.clone(),
        hold_owned.clone(),
        earlier.clone(),
        key_owned.clone(),
        key_first.clone(),
        key_taken.clone(),
        event_cancelled.clone(),
        expired.clone(),
        disowned.clone(),
        gone.clone(),
        confirmed.clone(),
    ];
    let results = worker.bookings.persist(&batch).await.expect("persisted");
    let ids: Vec<BookingId> = results.iter().map(|result| result.booking_id).collect();
    assert_eq!(
        ids,
        batch
            .iter()
            .map(|command| command.booking_id)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        outcomes(&results),
        vec![
            Outcome::Confirmed { seats: vec![0, 10] },
            Outcome::Rejected(Rejection::SeatsAlreadySold),
            Outcome::Confirmed { seats: vec![2, 11] },
            Outcome::Rejected(Rejection::SeatsAlreadySold),
            Outcome::Confirmed { seats: vec![3] },
            Outcome::Rejected(Rejection::Duplicate),
            Outcome::Rejected(Rejection::Duplicate),
            // A redelivery of a confirmed booking whose hold lives: its seats marked sold again.
            Outcome::AlreadyDone {
                seats: Some(vec![9])
            },
            Outcome::Rejected(Rejection::Duplicate),
            Outcome::Confirmed { seats: vec![5] },
            Outcome::Rejected(Rejection::EventCancelled),
            Outcome::Rejected(Rejection::EventCancelled),
            Outcome::Rejected(Rejection::HoldExpired),
            Outcome::Dropped,
            Outcome::Dropped,
            // The same command twice in one batch.
            Outcome::AlreadyDone { seats: None },
        ]
    );

    assert_confirmed(
        &db,
        &ticket_keys,
        &confirmed,
        4500 + 8000,
        &[("A-1-1", "Normal"), ("B-1-1", "Balcony")],
    )
    .await;
    assert_confirmed(
        &db,
        &ticket_keys,
        &takes_seat,
        5000 + 8000,
        &[("A-1-3", "Normal"), ("B-1-2", "Balcony")],
    )
    .await;
    assert_confirmed(&db, &ticket_keys, &owns_hold, 5000, &[("A-1-4", "Normal")]).await;
    assert_confirmed(&db, &ticket_keys, &key_first, 5000, &[("A-1-6", "Normal")]).await;
    // Rejections record the hold and key unless another booking owns either.
    assert_rejected(&db, &seat_sold, Rejection::SeatsAlreadySold, true).await;
    assert_rejected(&db, &seat_taken, Rejection::SeatsAlreadySold, true).await;
    assert_rejected(&db, &hold_taken, Rejection::Duplicate, false).await;
    assert_rejected(&db, &hold_owned, Rejection::Duplicate, false).await;
    assert_rejected(&db, &key_owned, Rejection::Duplicate, false).await;
    assert_rejected(&db, &key_taken, Rejection::EventCancelled, false).await;
    assert_rejected(&db, &event_cancelled, Rejection::EventCancelled, true).await;
    assert_rejected(&db, &expired, Rejection::HoldExpired, true).await;
    for dropped in [&disowned, &gone] {
        assert_eq!(row(&db, dropped.booking_id).await, None);
        assert!(announced(&db, dropped.booking_id).await.is_empty());
    }
    // The redelivered booking is as the earlier batch wrote it.
    assert_eq!(announced(&db, earlier.booking_id).await.len(), 1);
    assert_eq!(tickets(&db, earlier.booking_id).await.len(), 1);
    // The outbox in batch order, one row per written booking.
    let (bookings, outbox, tickets): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bookings), (SELECT count(*) FROM outbox),
                (SELECT count(*) FROM tickets)",
    )
    .fetch_one(&db)
    .await
    .expect("counts");
    // 2 earlier + 12 now + the one behind Redis' back (which has no outbox row).
    assert_eq!((bookings, outbox, tickets), (15, 14, 9));
    let order: Vec<(String,)> =
        sqlx::query_as("SELECT payload->>'booking_id' FROM outbox ORDER BY id OFFSET 2")
            .fetch_all(&db)
            .await
            .expect("outbox order");
    let written: Vec<String> = batch[..13]
        .iter()
        .filter(|command| command.booking_id != earlier.booking_id)
        .map(|command| command.booking_id.to_string())
        .collect();
    assert_eq!(
        order.into_iter().map(|(id,)| id).collect::<Vec<_>>(),
        written
    );

    // Persisting the batch again changes nothing.
    let again = worker.bookings.persist(&batch).await.expect("persisted");
    for (result, first) in again.iter().zip(&results) {
        match first.outcome {
            Outcome::Dropped => assert_eq!(result.outcome, Outcome::Dropped),
            _ => assert!(
                matches!(result.outcome, Outcome::AlreadyDone { .. }),
                "{result:?}"
            ),
        }
    }
    let outbox_again: (i64,) = sqlx::query_as("SELECT count(*) FROM outbox")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(outbox_again.0, 14);
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_batch_is_one_statement_however_many_bookings_it_writes(db: PgPool) {
    let sale = Sale::open(&db).await;
    let ticket_keys = TokenKeys::generate(KeyPurpose::Ticket);
    let worker = Worker::new(&db, &ticket_keys);
    let fans = sale.fans(SEATS as usize).await;
    let mut commands = Vec::new();
    for (idx, fan) in (0..).zip(&fans) {
        commands.push(worker.registered(&sale, *fan, &[idx]).await);
    }
    let log = Log::watch();

    // The first batch of an event in this process also reads when the event starts (for the
    // ticket codes' lifetime).
    let first = worker
        .bookings
        .persist(&commands[..2])
        .await
        .expect("persisted");
    let sent = log.statements();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let rest = worker
        .bookings
        .persist(&commands[2..])
        .await
        .expect("persisted");
    let sent = log.statements();
    assert_eq!(
        sent.len(),
        1,
        "18 bookings, 18 tickets, 18 outbox rows: {sent:#?}"
    );
    assert!(
        first
            .iter()
            .chain(&rest)
            .all(|result| matches!(result.outcome, Outcome::Confirmed { .. }))
    );
    let written: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bookings), (SELECT count(*) FROM tickets),
                (SELECT count(*) FROM outbox)",
    )
    .fetch_one(&db)
    .await
    .expect("counts");
    assert_eq!(written, (20, 20, 20));
}

/// Waits until some session of this test's database waits for a lock.
async fn until_blocked(db: &PgPool) {
    let blocked = testkit::eventually(Duration::from_secs(10), || async {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(db)
        .await
        .expect("activity");
        waiting > 0
    })
    .await;
    assert!(blocked, "the batch never waited for the other transaction");
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_seat_another_writer_commits_after_the_snapshot_rejects_just_that_booking(db: PgPool) {
    let sale = Sale::open(&db).await;
    let ticket_keys = TokenKeys::generate(KeyPurpose::Ticket);
    let worker = Worker::new(&db, &ticket_keys);
    let fans = sale.fans(3).await;
    let loses = worker.registered(&sale, fans[0], &[0, 1]).await;
    let wins = worker.registered(&sale, fans[1], &[2]).await;
    let log = Log::watch();

    // Another writer (a worker whose Redis disagrees) has seat 1 in an open transaction: the
    // batch's snapshot does not see it, its insert waits for it, and its commit aborts the
    // batch's statement with a unique violation.
    let mut other = db.begin().await.expect("begin");
    let other_booking = BookingId::new();
    sqlx::query(
        "INSERT INTO bookings (id, event_id, user_id, status, total_minor, currency)
         VALUES ($1, $2, $3, 'confirmed', 5000, 'EUR')",
    )
    .bind(other_booking)
    .bind(sale.event)
    .bind(fans[2])
    .execute(&mut *other)
    .await
    .expect("booking");
    sqlx::query(
        "INSERT INTO tickets (id, booking_id, event_id, seat_id, class_id, price_minor, code)
         SELECT gen_random_uuid(), $1, s.event_id, s.id, s.class_id, 5000, 'x'
         FROM seats s WHERE s.event_id = $2 AND s.idx = 1",
    )
    .bind(other_booking)
    .bind(sale.event)
    .execute(&mut *other)
    .await
    .expect("ticket");

    let bookings = worker.bookings.clone();
    let batch = vec![loses.clone(), wins.clone()];
    let persisting = tokio::spawn(async move { bookings.persist(&batch).await });
    until_blocked(&db).await;
    other.commit().await.expect("commit");
    let results = persisting.await.expect("joined").expect("persisted");

    assert_eq!(
        outcomes(&results),
        vec![
            Outcome::Rejected(Rejection::SeatsAlreadySold),
            Outcome::Confirmed { seats: vec![2] },
        ]
    );
    assert_eq!(log.reruns(), 1, "one statement aborted");
    assert_rejected(&db, &loses, Rejection::SeatsAlreadySold, true).await;
    assert_confirmed(&db, &ticket_keys, &wins, 5000, &[("A-1-3", "Normal")]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_cancellation_the_batch_waited_for_rejects_its_bookings(db: PgPool) {
    let sale = Sale::open(&db).await;
    let ticket_keys = TokenKeys::generate(KeyPurpose::Ticket);
    let worker = Worker::new(&db, &ticket_keys);
    let fans = sale.fans(1).await;
    let command = worker.registered(&sale, fans[0], &[0]).await;

    // As the API cancels: the event's row locked FOR UPDATE, then changed.
    let mut cancel = db.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM events WHERE id = $1 FOR UPDATE")
        .bind(sale.event)
        .execute(&mut *cancel)
        .await
        .expect("lock");
    sqlx::query("UPDATE events SET cancelled_at = now(), status = 'cancelled' WHERE id = $1")
        .bind(sale.event)
        .execute(&mut *cancel)
        .await
        .expect("cancel");
    let bookings = worker.bookings.clone();
    let batch = vec![command.clone()];
    let persisting = tokio::spawn(async move { bookings.persist(&batch).await });
    until_blocked(&db).await;
    cancel.commit().await.expect("commit");
    let results = persisting.await.expect("joined").expect("persisted");

    assert_eq!(
        outcomes(&results),
        vec![Outcome::Rejected(Rejection::EventCancelled)]
    );
    assert_rejected(&db, &command, Rejection::EventCancelled, true).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_price_change_the_batch_waited_for_is_what_an_unquoted_class_costs(db: PgPool) {
    let sale = Sale::open(&db).await;
    let ticket_keys = TokenKeys::generate(KeyPurpose::Ticket);
    let worker = Worker::new(&db, &ticket_keys);
    let fans = sale.fans(1).await;
    // Quoted for Normal only: the Balcony seat costs what the class costs when it is written.
    let command = ProcessBookingCommand {
        prices: vec![ClassPrice {
            class_id: sale.normal,
            price_minor: 5000,
        }],
        ..worker.registered(&sale, fans[0], &[0, 10]).await
    };

    // As the API changes prices: the event's row locked FOR UPDATE, the class and the event
    // changed. The batch's snapshot predates the commit; what it charges must not.
    let mut change = db.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM events WHERE id = $1 FOR UPDATE")
        .bind(sale.event)
        .execute(&mut *change)
        .await
        .expect("lock");
    sqlx::query("UPDATE ticket_classes SET price_minor = 9000 WHERE id = $1")
        .bind(sale.balcony)
        .execute(&mut *change)
        .await
        .expect("price");
    sqlx::query("UPDATE events SET updated_at = now() WHERE id = $1")
        .bind(sale.event)
        .execute(&mut *change)
        .await
        .expect("event");
    let bookings = worker.bookings.clone();
    let batch = vec![command.clone()];
    let persisting = tokio::spawn(async move { bookings.persist(&batch).await });
    until_blocked(&db).await;
    change.commit().await.expect("commit");
    let results = persisting.await.expect("joined").expect("persisted");

    assert_eq!(
        outcomes(&results),
        vec![Outcome::Confirmed { seats: vec![0, 10] }]
    );
    assert_confirmed(
        &db,
        &ticket_keys,
        &command,
        5000 + 9000,
        &[("A-1-1", "Normal"), ("B-1-1", "Balcony")],
    )
    .await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_moved_event_gets_ticket_codes_valid_until_a_day_after_its_new_start(db: PgPool) {
    let sale = Sale::open(&db).await;
    let ticket_keys = TokenKeys::generate(KeyPurpose::Ticket);
    let worker = Worker::new(&db, &ticket_keys);
    let fans = sale.fans(2).await;
    let before = worker.registered(&sale, fans[0], &[0]).await;
    worker.bookings.persist(&[before]).await.expect("persisted");
    // Moved after this worker read its start.
    let (starts_at,): (OffsetDateTime,) = sqlx::query_as(
        "UPDATE events SET starts_at = starts_at + interval '60 days' WHERE id = $1
         RETURNING starts_at",
    )
    .bind(sale.event)
    .fetch_one(&db)
    .await
    .expect("moved");
    let after = worker.registered(&sale, fans[1], &[1]).await;
    let results = worker
        .bookings
        .persist(std::slice::from_ref(&after))
        .await
        .expect("persisted");
    assert_eq!(
        outcomes(&results),
        vec![Outcome::Confirmed { seats: vec![1] }]
    );
    let tickets = tickets(&db, after.booking_id).await;
    let verified = ticket_keys
        .verify::<TicketClaims>(&tickets[0].5)
        .expect("a valid code");
    let valid_until = starts_at + time::Duration::days(1);
    assert!(
        (verified.expires_at - valid_until).abs() < time::Duration::minutes(1),
        "valid until {}, the show starts {starts_at}",
        verified.expires_at
    );
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn two_batches_racing_for_the_same_seats_sell_each_seat_once(db: PgPool) {
    const ROUNDS: u32 = 8;
    // Each round, 4 fans on each side hold two adjacent seats of 8, the sides shifted by one:
    // every hold of one side overlaps two of the other's.
    const PER_ROUND: u32 = 8;
    let sale = Sale::open(&db).await;
    sqlx::query(
        "INSERT INTO seats (id, event_id, class_id, label, section, row_no, seat_no, idx,
                            row_rank)
         SELECT gen_random_uuid(), $1, $2, 'C-' || i, 'C', 2, i, i, 1
         FROM generate_series($3, $3 + $4 - 1) AS i",
    )
    .bind(sale.event)
    .bind(sale.normal)
    .bind(SEATS)
    .bind(i32::try_from(ROUNDS * PER_ROUND).expect("seats"))
    .execute(&db)
    .await
    .expect("more seats");
    let ticket_keys = TokenKeys::generate(KeyPurpose::Ticket);
    // Two workers whose Redis disagree: each sees only its own side's holds.
    let (left, right) = (
        Worker::new(&db, &ticket_keys),
        Worker::new(&db, &ticket_keys),
    );
    let log = Log::watch();

    let mut all: Vec<(ProcessBookingCommand, Vec<u32>)> = Vec::new();
    for round in 0..ROUNDS {
        let base = SEATS.unsigned_abs() + round * PER_ROUND;
        let fans = sale.fans(8).await;
        let mut sides: Vec<Vec<ProcessBookingCommand>> = vec![Vec::new(), Vec::new()];
        for (i, fan) in (0..).zip(&fans) {
            let (worker, shift, side) = if i < 4 { (&left, 0, 0) } else { (&right, 1, 1) };
            let first = base + (2 * (i % 4) + shift) % PER_ROUND;
            let second = base + (2 * (i % 4) + shift + 1) % PER_ROUND;
            let seats = vec![first, second];
            let command = worker.registered(&sale, *fan, &seats).await;
            all.push((command.clone(), seats));
            sides[side].push(command);
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut racing = Vec::new();
        for (worker, batch) in [&left, &right].into_iter().zip(sides) {
            let (bookings, barrier) = (worker.bookings.clone(), barrier.clone());
            racing.push(tokio::spawn(async move {
                barrier.wait().await;
                bookings.persist(&batch).await
            }));
        }
        for race in racing {
            let results = race.await.expect("joined").expect("persisted");
            for result in results {
                assert!(
                    matches!(
                        result.outcome,
                        Outcome::Confirmed { .. } | Outcome::Rejected(Rejection::SeatsAlreadySold)
                    ),
                    "{result:?}"
                );
            }
        }
    }

    // Each seat sold once: the constraint says so; that every booking is whole is ours.
    let (tickets_sold, seats_sold): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT seat_id) FROM tickets")
            .fetch_one(&db)
            .await
            .expect("counts");
    assert_eq!(tickets_sold, seats_sold, "a seat was sold twice");
    let mut confirmed = 0;
    for (command, seats) in &all {
        let row = row(&db, command.booking_id)
            .await
            .expect("every booking written");
        let tickets = tickets(&db, command.booking_id).await;
        match row.status.as_str() {
            "confirmed" => {
                assert_eq!(
                    tickets.len(),
                    seats.len(),
                    "a confirmed booking lacks a ticket"
                );
                confirmed += 1;
            }
            "rejected" => assert!(tickets.is_empty(), "a rejected booking has tickets"),
            other => panic!("booking {} ended {other}", command.booking_id),
        }
        assert_eq!(
            announced(&db, command.booking_id).await.len(),
            1,
            "one outbox row per booking"
        );
    }
    let (outbox,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(usize::try_from(outbox).expect("count"), all.len());
    // Whichever side commits first sells all four of its holds, and every hold of the other
    // side overlaps one of them; and the race was real: some statement lost to the other's
    // commit and ran again.
    assert_eq!(confirmed, 4 * ROUNDS);
    assert!(
        log.reruns() > 0,
        "the batches never raced: every statement ran alone"
    );
}
