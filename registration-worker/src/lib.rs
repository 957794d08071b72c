//! The registration worker: consumes `ProcessBookingCommand`s, persists bookings and tickets in
//! batches, and relays the outbox. What a booking becomes is `shared::booking`'s to say (its
//! `persist` step: a batch in one SQL statement, idempotent by booking id); this crate brings
//! the messages to it and acks them.
//!
//! | module | what |
//! |---|---|
//! | [`consumer`] | the competing consumers: prefetch, batches, acks after commit, poison, retries |
//! | [`relay`] | the outbox relay (`FOR UPDATE SKIP LOCKED`, publisher confirms) |
//! | [`dead_letters`] | the dead-letter queue recorded for admins; dead commands' bookings end `rejected` |
//!
//! Any number of worker processes compete on the one command queue; `WORKER_CONCURRENCY`
//! consumers run inside each.

pub mod consumer;
pub mod dead_letters;
pub mod relay;

use std::{
    future::Future,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use shared::{
    booking::Bookings,
    cache::RedisKeys,
    config::{
        AmqpConfig, HttpConfig, KeysConfig, LogFormat, PostgresConfig, RedisConfig, WorkerConfig,
    },
    http::{Readiness, Server, ops_only_router},
    messaging::{self, Names, Publisher},
    shutdown,
    tokens::{KeyPurpose, KeySet, TokenKeys},
};

/// Everything the worker reads from its environment (see `shared::config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub amqp: AmqpConfig,
    pub keys: KeysConfig,
    pub worker: WorkerConfig,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let config = Self {
            http: HttpConfig::from_env(
                "WORKER_ADDR",
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8084)),
            )?,
            postgres: PostgresConfig::from_env()?,
            redis: RedisConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            keys: KeysConfig::from_env()?,
            worker: WorkerConfig::from_env()?,
            log_format: LogFormat::from_env()?,
        };
        // APP_ENV=production: no development setting gets this far.
        shared::config::refuse_dev_settings(
            shared::config::AppEnv::from_env()?,
            &[&config.postgres, &config.amqp, &config.keys],
        )?;
        Ok(config)
    }
}

/// A connected, bound, not yet running worker.
pub struct Worker {
    server: Server,
    config: Config,
    amqp: Arc<lapin::Connection>,
    bookings: Bookings,
    publisher: Publisher,
}

/// Connects its dependencies, declares the broker topology, binds the health address. The
/// ticket-signing key is loaded from `KEYS_DIR`.
pub async fn build(config: &Config) -> anyhow::Result<Worker> {
    let keys = KeySet::load(&config.keys.dir, &[KeyPurpose::Ticket])?;
    build_with_keys(config, keys.ticket).await
}

/// [`build`] with the ticket-signing key given (tests).
pub async fn build_with_keys(config: &Config, ticket_keys: TokenKeys) -> anyhow::Result<Worker> {
    let db = shared::db::connect(&config.postgres).await?;
    let redis = shared::cache::connect(&config.redis)?;
    let amqp = Arc::new(messaging::connect(&config.amqp, "registration-worker").await?);
    let channel = amqp.create_channel().await.context("opening a channel")?;
    messaging::declare_topology(&channel, &Names::new(config.amqp.prefix.clone())).await?;
    let publisher = Publisher::connect(&config.amqp, "registration-worker-relay").await?;
    let bookings = Bookings::standalone(
        db.clone(),
        redis.clone(),
        RedisKeys::new(config.redis.key_prefix.clone()),
        ticket_keys,
    );
    let readiness = Readiness::new()
        .postgres(db)
        .redis(redis)
        .rabbitmq(amqp.clone());
    let server = Server::bind(
        config.http.addr,
        ops_only_router(readiness, "/worker", &config.http),
    )
    .await?;
    Ok(Worker {
        server,
        config: config.clone(),
        amqp,
        bookings,
        publisher,
    })
}

impl Worker {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn bookings(&self) -> &Bookings {
        &self.bookings
    }

    /// Consumes, relays and serves the ops endpoints until `shutdown` resolves; then stops
    /// consuming, finishes and acks the batches in hand, and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stopper, stopped) = shutdown::channel();
        let queue = Names::new(self.config.amqp.prefix.clone()).commands_queue();
        let mut tasks = Vec::new();
        for slot in 0..self.config.worker.concurrency {
            tasks.push(tokio::spawn(consumer::run(
                slot,
                self.amqp.clone(),
                queue.clone(),
                self.bookings.clone(),
                self.config.worker.clone(),
                stopped.clone(),
            )));
        }
        // One dead-letter consumer per process is plenty (dead letters are rare); a worker
        // without command consumers (concurrency 0, tests only) records none either.
        if self.config.worker.concurrency > 0 {
            tasks.push(tokio::spawn(dead_letters::run(
                self.amqp.clone(),
                Names::new(self.config.amqp.prefix.clone()).dead_letter_queue(),
                self.bookings.clone(),
                stopped.clone(),
            )));
        }
        if self.config.worker.relay {
            tasks.push(tokio::spawn(relay::run(
                self.bookings.db.clone(),
                self.publisher.clone(),
                self.config.worker.outbox_poll,
                stopped.clone(),
            )));
        }
        tracing::info!(
            concurrency = self.config.worker.concurrency,
            batch_size = self.config.worker.batch_size,
            relay = self.config.worker.relay,
            "registration worker consuming"
        );
        let mut stopped_server = stopped.clone();
        let server = tokio::spawn(self.server.run_until(async move {
            stopped_server.recv().await;
        }));
        shutdown.await;
        tracing::info!("shutting down: finishing the batches in hand");
        stopper.stop();
        let finish = futures_util::future::join_all(tasks);
        if tokio::time::timeout(Duration::from_secs(30), finish)
            .await
            .is_err()
        {
            tracing::warn!("some batches did not finish in time; the broker requeues them");
        }
        server.await.context("the ops server panicked")?
    }
}
