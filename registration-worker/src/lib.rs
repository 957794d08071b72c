//! The registration worker: consumes `ProcessBookingCommand`s, persists bookings and tickets in
//! batches, relays the outbox (issue 5). Today it is the process those live in: its
//! configuration, its Postgres, Redis and RabbitMQ connections (with the broker topology
//! declared), and the health/metrics endpoints operators scale it by.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::Arc,
};

use anyhow::Context;
use shared::{
    config::{AmqpConfig, HttpConfig, LogFormat, PostgresConfig, RedisConfig},
    http::{Readiness, Server, ops_only_router},
    messaging::{self, Names},
};

/// Everything the worker reads from its environment (see `shared::config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub amqp: AmqpConfig,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            http: HttpConfig::from_env(
                "WORKER_ADDR",
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8084)),
            )?,
            postgres: PostgresConfig::from_env()?,
            redis: RedisConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            log_format: LogFormat::from_env()?,
        })
    }
}

/// Connects its dependencies, declares the broker topology, binds the health address.
pub async fn build(config: &Config) -> anyhow::Result<Server> {
    let db = shared::db::connect(&config.postgres).await?;
    let redis = shared::cache::connect(&config.redis)?;
    let amqp = Arc::new(messaging::connect(&config.amqp, "registration-worker").await?);
    let channel = amqp.create_channel().await.context("opening a channel")?;
    messaging::declare_topology(&channel, &Names::new(config.amqp.prefix.clone())).await?;
    let readiness = Readiness::new().postgres(db).redis(redis).rabbitmq(amqp);
    Server::bind(
        config.http.addr,
        ops_only_router(readiness, "/worker", &config.http),
    )
    .await
}
