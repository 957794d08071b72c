//! The virtual waiting room (issue 4): queue join/status/push, the pre-queue shuffle, paced
//! admission and admission tokens. See `queue.lua` for the Redis model and the README section
//! "The waiting room" for the design and the figures.
//!
//! | module | what |
//! |---|---|
//! | [`queue`] | join, tick, shuffle: one `queue.lua` call each; a fan's standing |
//! | [`summary`] | what one tick tells of a queue, and positions computed from it |
//! | [`view`] | this instance's memory of each queue: summary, heartbeats, shuffle order |
//! | [`admission`] | the loop that ticks every queue and carries the heartbeats |
//! | [`routes`] | the HTTP surface: join, status, the push stream |

pub mod admission;
pub mod queue;
pub mod routes;
pub mod summary;
pub mod view;

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    time::Duration,
};

use shared::{
    bans::BanList,
    cache::RedisKeys,
    config::{HttpConfig, KeysConfig, LogFormat, PostgresConfig, QueueConfig, RedisConfig},
    http::{Readiness, Server, apply_common_layers, ops_router},
    tokens::{KeyPurpose, KeySet},
};

pub use crate::queue::Queues;

/// Everything the waiting room reads from its environment (see `shared::config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub keys: KeysConfig,
    pub queue: QueueConfig,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let config = Self {
            http: HttpConfig::from_env(
                "WAITING_ROOM_ADDR",
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081)),
            )?,
            postgres: PostgresConfig::from_env()?,
            redis: RedisConfig::from_env()?,
            keys: KeysConfig::from_env()?,
            queue: QueueConfig::from_env()?,
            log_format: LogFormat::from_env()?,
        };
        // APP_ENV=production: no development setting gets this far.
        shared::config::refuse_dev_settings(
            shared::config::AppEnv::from_env()?,
            &[&config.postgres, &config.keys],
        )?;
        Ok(config)
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub queues: Queues,
    pub keys: KeySet,
    pub bans: BanList,
}

/// Connects its dependencies, loads the keys (the admission private key) and binds.
pub async fn build(config: &Config) -> anyhow::Result<Server> {
    let keys = KeySet::load(&config.keys.dir, &[KeyPurpose::Admission])?;
    build_with_keys(config, keys).await
}

/// As [`build`], with the keys given (tests use `KeySet::generate()`).
pub async fn build_with_keys(config: &Config, keys: KeySet) -> anyhow::Result<Server> {
    let db = shared::db::connect(&config.postgres).await?;
    let redis = shared::cache::connect(&config.redis)?;
    let queues = Queues::new(
        db.clone(),
        redis.clone(),
        RedisKeys::new(config.redis.key_prefix.clone()),
        config.queue.clone(),
    );
    let bans = BanList::new();
    // Access tokens live at most 15 minutes: bans older than that are covered by expiry.
    bans.spawn_refresh(db.clone(), Duration::from_secs(960), Duration::from_secs(2));
    admission::spawn(queues.clone(), db.clone());
    let readiness = Readiness::new().postgres(db).redis(redis);
    let ops = ops_router(readiness);
    let router = routes::router(AppState { queues, keys, bans })
        .nest("/api/queue", ops.clone())
        .merge(ops);
    Server::bind(config.http.addr, apply_common_layers(router, &config.http)).await
}
