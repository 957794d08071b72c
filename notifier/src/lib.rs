//! The notifier: consumes booking events, renders PDF tickets with QR codes, sends them by
//! email and pushes confirmations over WebSocket (issue 6). Today it is the process those live
//! in: its configuration, its Postgres and RabbitMQ connections (with the broker topology
//! declared), and the ops endpoints.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::Arc,
};

use anyhow::Context;
use shared::{
    config::{AmqpConfig, HttpConfig, LogFormat, PostgresConfig, SmtpConfig},
    http::{Readiness, Server, ops_only_router},
    messaging::{self, Names},
};

/// Everything the notifier reads from its environment (see `shared::config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub postgres: PostgresConfig,
    pub amqp: AmqpConfig,
    pub smtp: SmtpConfig,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            http: HttpConfig::from_env(
                "NOTIFIER_ADDR",
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8083)),
            )?,
            postgres: PostgresConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            smtp: SmtpConfig::from_env()?,
            log_format: LogFormat::from_env()?,
        })
    }
}

/// Connects its dependencies, declares the broker topology, binds the configured address.
pub async fn build(config: &Config) -> anyhow::Result<Server> {
    let db = shared::db::connect(&config.postgres).await?;
    let amqp = Arc::new(messaging::connect(&config.amqp, "notifier").await?);
    let channel = amqp.create_channel().await.context("opening a channel")?;
    messaging::declare_topology(&channel, &Names::new(config.amqp.prefix.clone())).await?;
    let readiness = Readiness::new().postgres(db).rabbitmq(amqp);
    Server::bind(
        config.http.addr,
        ops_only_router(readiness, "/ws", &config.http),
    )
    .await
}
