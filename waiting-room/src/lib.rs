//! The virtual waiting room: queue join/status/push, the pre-queue shuffle, paced admission and
//! admission tokens (issue 4). Today it is the process those live in: its configuration, its
//! Postgres and Redis connections, and the ops endpoints (`/healthz`, `/readyz`, `/metrics`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use shared::{
    config::{HttpConfig, LogFormat, PostgresConfig, RedisConfig},
    http::{Readiness, Server, ops_only_router},
};

/// Everything the waiting room reads from its environment (see `shared::config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            http: HttpConfig::from_env(
                "WAITING_ROOM_ADDR",
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081)),
            )?,
            postgres: PostgresConfig::from_env()?,
            redis: RedisConfig::from_env()?,
            log_format: LogFormat::from_env()?,
        })
    }
}

/// Connects its dependencies and binds the configured address.
pub async fn build(config: &Config) -> anyhow::Result<Server> {
    let db = shared::db::connect(&config.postgres).await?;
    let redis = shared::cache::connect(&config.redis)?;
    let readiness = Readiness::new().postgres(db).redis(redis);
    Server::bind(
        config.http.addr,
        ops_only_router(readiness, "/api/queue", &config.http),
    )
    .await
}
