//! `loadtest flash-sale` and `loadtest simple`: set up an event and its fans, run the goose
//! attack, wait for every booking to settle, check the invariants, measure the machine's
//! limits, and write `report.json` and `report.md` (beside goose's own reports).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use goose::prelude::*;
use serde::Serialize;
use sqlx::{PgPool, postgres::PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    checker, costs, cpu, fairness, limits, report,
    scenario::{self, FanRecord, Run, fan_journey},
    setup,
};

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct SaleArgs {
    /// Fans (one goose user each).
    #[arg(long, default_value_t = 3000)]
    pub fans: usize,
    /// Seats of the event (rows of 50; the first section of 2,000 is VIP when there are more).
    #[arg(long, default_value_t = 300)]
    pub seats: u64,
    /// Seats each fan asks for (best available).
    #[arg(long, default_value_t = 1)]
    pub tickets_per_fan: u64,
    /// Fans arrive evenly over this many seconds from the start.
    #[arg(long, default_value_t = 20)]
    pub arrive_over: u64,
    /// The sale opens this many seconds after the start; fans arriving before join the
    /// pre-queue (flash-sale only).
    #[arg(long, default_value_t = 5)]
    pub open_after: u64,
    /// The waiting room's admission rate (flash-sale only).
    #[arg(long, default_value_t = 30_000)]
    pub admit_per_minute: u64,
    /// The waiting room's cap on active shoppers (flash-sale only).
    #[arg(long, default_value_t = 1000)]
    pub max_active: u64,
    /// Registration workers running (recorded in the report; `infra/dev loadtest --workers N`
    /// starts them).
    #[arg(long, env = "LOADTEST_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// The longest a fan waits in the queue or for a booking, and the cap on settling after
    /// the attack, in seconds.
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// The event's hold time, in seconds (30 to 3600).
    #[arg(long, default_value_t = 120)]
    pub hold_seconds: u64,
    /// Where goose's reports and report.json/report.md go.
    #[arg(long, env = "LOADTEST_REPORT_DIR", default_value = ".run/loadtest")]
    pub report_dir: PathBuf,
    /// The SMTP sink's mail directory (one .eml per message); without it, mail is checked
    /// against `email_deliveries` only.
    #[arg(long, env = "MAIL_DIR")]
    pub mail_dir: Option<PathBuf>,
    #[arg(long, env = "KEYS_DIR", default_value = ".run/keys")]
    pub keys_dir: PathBuf,
    #[arg(long, default_value = "organizer@example.test")]
    pub organizer_email: String,
    #[arg(long, default_value = "organizer-pass-123")]
    pub organizer_password: String,
    /// Waiting-room requests (join, status) the load generator keeps in flight at most (one
    /// connection each).
    #[arg(long, default_value_t = 1500)]
    pub max_in_flight: usize,
    /// Purchase requests (hold, registration, booking) in flight at most, apart from the
    /// waiting room's.
    #[arg(long, default_value_t = 500)]
    pub max_in_flight_purchase: usize,
    /// Push streams (the waiting room's server-sent events) open at once: fans asked to poll
    /// every second or two follow the stream instead while one is free (one connection each).
    #[arg(long, default_value_t = 1500)]
    pub max_push: usize,
    /// Skip measuring the machine's limits (redis-benchmark, Postgres inserts).
    #[arg(long)]
    pub no_limits: bool,
    /// Requests per redis-benchmark command when measuring the limits.
    #[arg(long, default_value_t = 100_000)]
    pub bench_requests: u64,
    /// Waiting-room instances behind the gateway (recorded in the report; `infra/dev loadtest
    /// --waiting-rooms N` starts them).
    #[arg(long, env = "LOADTEST_WAITING_ROOMS", default_value_t = 1)]
    pub waiting_rooms: usize,
    /// The gateway's access log: join order is when the gateway received each join (its
    /// `msec=` − `rt=`); without it, when the generator sent it.
    #[arg(long, env = "GATEWAY_ACCESS_LOG")]
    pub gateway_access_log: Option<PathBuf>,
    /// The broker's Prometheus counters (`rabbitmq_prometheus`): broker operations per ticket.
    #[arg(long, default_value = crate::costs::BROKER_METRICS)]
    pub broker_metrics_url: String,
    /// The command line to print in the report (infra/dev passes its own).
    #[arg(long, env = "LOADTEST_COMMAND")]
    pub command: Option<String>,
}

pub async fn run(base: &str, args: SaleArgs, queued: bool) -> anyhow::Result<bool> {
    let name = if queued { "flash-sale" } else { "simple" };
    let pg = shared::config::PostgresConfig::from_env()?;
    let db = PgPoolOptions::new()
        .max_connections(10)
        .connect(pg.url.expose())
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    let redis_config = shared::config::RedisConfig::from_env()?;
    let redis = shared::cache::connect(&redis_config)?;
    let redis_keys = shared::cache::RedisKeys::new(redis_config.key_prefix.clone());
    let amqp = shared::config::AmqpConfig::from_env()?;

    let run_id = Uuid::new_v4().simple().to_string()[..8].to_string();
    let started_wall = OffsetDateTime::now_utc();
    let loadavg_start = report::loadavg();
    println!(
        "==> {name} {run_id}: {} fans, {} seats",
        args.fans, args.seats
    );

    let limits = if args.no_limits {
        limits::Limits::default()
    } else {
        println!("==> measuring the machine's limits (redis-benchmark, Postgres inserts)");
        limits::measure(
            redis_config.url.expose(),
            &redis_config.key_prefix,
            &db,
            args.bench_requests,
        )
        .await
    };

    let setup_started = Instant::now();
    let fans = setup::fans(
        &db,
        &args.keys_dir,
        &run_id,
        args.fans,
        Duration::from_secs(900),
    )
    .await?;
    println!(
        "==> {} fans inserted and their tokens signed in {:.1} s",
        fans.len(),
        setup_started.elapsed().as_secs_f64()
    );
    let org = setup::organizer(base, &args.organizer_email, &args.organizer_password).await?;
    let open_after = if queued { args.open_after } else { 0 };
    let event = setup::event(
        base,
        &org,
        &format!("Load test {name} {run_id}"),
        args.seats,
        Duration::from_secs(open_after),
        args.hold_seconds,
    )
    .await?;
    if queued {
        setup::demand_mode(
            base,
            &org,
            &event.id,
            args.admit_per_minute,
            args.max_active,
        )
        .await?;
    }
    let event_id: Uuid = event.id.parse()?;
    println!(
        "==> event {} ({} seats, classes {}), sale opens {}",
        event.id,
        event.capacity,
        event.classes.join("/"),
        event.sale_opens_at
    );
    let dead_letter_baseline = checker::dead_letter_queue_depth(&amqp).await;

    let run = Arc::new(Run::new(
        base,
        event.clone(),
        fans,
        queued,
        args.tickets_per_fan,
        Duration::from_secs(args.duration),
        scenario::Slots {
            queue: args.max_in_flight,
            purchase: args.max_in_flight_purchase,
            push: args.max_push,
            sockets: usize::try_from(args.max_active).unwrap_or(usize::MAX),
        },
    )?);
    scenario::install(run.clone())?;
    let attack_started = OffsetDateTime::now_utc() - run.clock.elapsed();
    let counters_before = costs::read(&redis, &db, &args.broker_metrics_url).await;
    let costs_started = Instant::now();
    let cpu_before = cpu::snapshot();
    let access_log = args
        .gateway_access_log
        .as_deref()
        .map(fairness::AccessLogMark::take);
    let fans_scenario = scenario!("Fan").register_transaction(transaction!(fan_journey));
    let metrics = scenario::attack(
        base,
        name,
        args.fans,
        Duration::from_secs(args.arrive_over),
        &args.report_dir,
        fans_scenario,
    )
    .await?;
    let attack_secs = run.clock.elapsed().as_secs_f64();
    let cpu = cpu::shares(&cpu_before, &cpu::snapshot(), attack_secs);
    println!("==> attack done in {attack_secs:.1} s; settling");

    let records: Vec<FanRecord> = run
        .records
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let accepted: Vec<(String, Option<OffsetDateTime>, Option<OffsetDateTime>)> = records
        .iter()
        .filter_map(|r| {
            r.booking_id
                .clone()
                .map(|id| (id, r.registered_wall, r.hold_expires))
        })
        .collect();
    let settle = settle(
        &db,
        event_id,
        &accepted,
        args.mail_dir.is_some(),
        Duration::from_secs(args.duration),
    )
    .await?;

    // Settled and mailed: everything the tickets cost is in the counters now.
    let counters_after = costs::read(&redis, &db, &args.broker_metrics_url).await;
    let costs_secs = costs_started.elapsed().as_secs_f64();

    let sources = checker::Sources {
        db: &db,
        redis: &redis,
        redis_keys: &redis_keys,
        amqp: &amqp,
        mail_dir: args.mail_dir.clone(),
        // A minute of slack for the file system's clock and timestamps.
        mail_since: std::time::SystemTime::from(started_wall) - Duration::from_secs(60),
    };
    let snapshot = checker::gather(
        &sources,
        event_id,
        event.hold_seconds,
        &accepted,
        dead_letter_baseline,
    )
    .await?;
    let verdict = checker::evaluate(&snapshot);
    let fairness = if queued {
        // Settling took seconds: the gateway has flushed its log buffer (flush=1s) by now.
        let joins = fairness::read_joins(access_log.as_ref());
        Some(fairness::measure(&redis, &redis_keys, event_id, &records, &joins).await)
    } else {
        None
    };
    let db_times = db_times(&db, event_id).await?;
    let costs = costs::between(
        &counters_before,
        &counters_after,
        u64::try_from(db_times.tickets).unwrap_or(0),
        costs_secs,
    );
    let errors = run.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let slot_waits = std::mem::take(&mut *run.slot_waits.lock().unwrap_or_else(|e| e.into_inner()));

    let report = report::build(report::Inputs {
        scenario: name,
        run_id: &run_id,
        args: &args,
        started: started_wall,
        base,
        event: &event,
        attack_started,
        attack_secs,
        records: &records,
        metrics: &metrics,
        errors,
        settle,
        db_times,
        limits,
        verdict,
        fairness,
        loadavg_start,
        slot_waits,
        cpu,
        costs,
    });
    report::write(&args.report_dir, &report)?;
    print!("{}", report::markdown(&report));
    Ok(report.ok())
}

/// What settling took after the attack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settle {
    /// Seconds from the attack's end until every accepted booking was confirmed or rejected.
    pub bookings_secs: f64,
    pub bookings_settled: bool,
    /// Seconds from the attack's end until every confirmed booking had its mail recorded.
    pub mails_secs: f64,
    pub mails_settled: bool,
}

/// Waits (up to `cap`) for every accepted booking to settle in Postgres, then for the mails.
async fn settle(
    db: &PgPool,
    event: Uuid,
    accepted: &[(String, Option<OffsetDateTime>, Option<OffsetDateTime>)],
    with_mail: bool,
    cap: Duration,
) -> anyhow::Result<Settle> {
    let started = Instant::now();
    let ids: Vec<Uuid> = accepted
        .iter()
        .filter_map(|(id, _, _)| id.parse().ok())
        .collect();
    let mut out = Settle::default();
    loop {
        let unsettled: i64 = sqlx::query_scalar(
            "/* loadtest */ SELECT $2::bigint - count(*) FROM bookings
             WHERE id = ANY($1) AND status IN ('confirmed', 'rejected')",
        )
        .bind(&ids)
        .bind(ids.len() as i64)
        .fetch_one(db)
        .await?;
        if unsettled == 0 {
            out.bookings_settled = true;
            break;
        }
        if started.elapsed() > cap {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out.bookings_secs = started.elapsed().as_secs_f64();
    loop {
        let unmailed: i64 = sqlx::query_scalar(
            "/* loadtest */ SELECT count(*) FROM bookings b
             WHERE b.event_id = $1 AND b.status = 'confirmed'
               AND NOT EXISTS (SELECT 1 FROM email_deliveries d WHERE d.booking_id = b.id)",
        )
        .bind(event)
        .fetch_one(db)
        .await?;
        if unmailed == 0 {
            out.mails_settled = true;
            break;
        }
        if started.elapsed() > cap {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out.mails_secs = started.elapsed().as_secs_f64();
    // The sink writes each file after accepting the mail: a moment for the last ones, and
    // one sweep of expired holds.
    tokio::time::sleep(Duration::from_secs(if with_mail { 6 } else { 5 })).await;
    Ok(out)
}

/// Times from Postgres: sale opening, tickets' first and last insert, bookings' last
/// confirmation, counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbTimes {
    pub sale_opens_at: Option<OffsetDateTime>,
    pub capacity: i64,
    pub tickets: i64,
    pub first_ticket: Option<OffsetDateTime>,
    pub last_ticket: Option<OffsetDateTime>,
    pub confirmed: i64,
    pub rejected: i64,
    pub last_confirmed: Option<OffsetDateTime>,
    pub first_booking: Option<OffsetDateTime>,
}

async fn db_times(db: &PgPool, event: Uuid) -> anyhow::Result<DbTimes> {
    let (sale_opens_at, capacity): (OffsetDateTime, i32) =
        sqlx::query_as("SELECT sale_opens_at, capacity FROM events WHERE id = $1")
            .bind(event)
            .fetch_one(db)
            .await?;
    let (tickets, first_ticket, last_ticket): (
        i64,
        Option<OffsetDateTime>,
        Option<OffsetDateTime>,
    ) = sqlx::query_as(
        "SELECT count(*), min(created_at), max(created_at) FROM tickets WHERE event_id = $1",
    )
    .bind(event)
    .fetch_one(db)
    .await?;
    let (confirmed, rejected, last_confirmed, first_booking): (
        i64,
        i64,
        Option<OffsetDateTime>,
        Option<OffsetDateTime>,
    ) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'confirmed'),
                count(*) FILTER (WHERE status = 'rejected'),
                max(updated_at) FILTER (WHERE status = 'confirmed'),
                min(created_at)
         FROM bookings WHERE event_id = $1",
    )
    .bind(event)
    .fetch_one(db)
    .await?;
    Ok(DbTimes {
        sale_opens_at: Some(sale_opens_at),
        capacity: i64::from(capacity),
        tickets,
        first_ticket,
        last_ticket,
        confirmed,
        rejected,
        last_confirmed,
        first_booking,
    })
}
