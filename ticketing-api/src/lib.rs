//! The ticketing API: accounts and organizer onboarding today; venues, events, holds,
//! registrations, tickets and check-in as they land.
//!
//! | module | what |
//! |---|---|
//! | [`accounts`] | users, passwords, refresh-token rotation, organizer applications, bans, audit — no axum types |
//! | [`venues`] | venue layouts (grid or checked SVG), their validation and expansion to seats — no axum types |
//! | [`events`] | events, ticket classes, seat inventory generation and order, search, changes — no axum types |
//! | [`holds`] | seat holds: sale rules here (in memory, forgotten on Postgres' notification of a change), the atomic claim in `shared::inventory` |
//! | [`bookings`] | turning a hold into tickets (the simple path), booking reads |
//! | [`reports`] | figures: an organizer's live sales dashboard, the platform's figures for admins |
//! | [`gate`] | high-demand mode: the organizer's setting, its Redis mirror, the admission-token check |
//! | [`routes`] | one file per resource, each a thin `router()` over domain code |
//! | [`extract`] | who is calling: the access-token extractor and role guards |
//! | [`error`] | `ApiError`, the one place where errors become HTTP |
//! | [`state`] | `AppState`, cloned into every handler |
//! | [`sql`] | SQL helpers: literal `ILIKE` patterns for search boxes, a page of a list with its total |
//! | [`rate_limit`] | login limits per account (failures, in Redis) and per address; sign-up limits per address |

pub mod accounts;
pub mod bookings;
pub mod error;
pub mod events;
pub mod extract;
pub mod gate;
pub mod holds;
pub mod rate_limit;
pub mod reports;
pub mod routes;
pub mod sql;
pub mod state;
pub mod venues;

use std::{
    future::Future,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context;
use shared::{
    config::{
        AmqpConfig, AuthConfig, HttpConfig, KeysConfig, LogFormat, PostgresConfig, RedisConfig,
    },
    http::Server,
    shutdown::Stopper,
    tokens::{KeyPurpose, KeySet},
};

pub use crate::state::AppState;

/// Everything the ticketing API reads from its environment (see `shared::config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    /// The broker of the queued registration path.
    pub amqp: AmqpConfig,
    pub keys: KeysConfig,
    pub auth: AuthConfig,
    pub web_root: PathBuf,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let config = Self {
            http: HttpConfig::from_env(
                "TICKETING_API_ADDR",
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8082)),
            )?,
            postgres: PostgresConfig::from_env()?,
            redis: RedisConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            keys: KeysConfig::from_env()?,
            auth: AuthConfig::from_env()?,
            web_root: shared::config::web_root()?,
            log_format: LogFormat::from_env()?,
        };
        // APP_ENV=production: no development setting gets this far.
        shared::config::refuse_dev_settings(
            shared::config::AppEnv::from_env()?,
            &[&config.postgres, &config.amqp, &config.keys, &config.auth],
        )?;
        Ok(config)
    }
}

/// A bound, not yet running, ticketing API.
pub struct Application {
    server: Server,
    /// Stops the sale rules' listener when the server is done (or this is dropped).
    stop: Stopper,
}

impl Application {
    /// Connects to Postgres, Redis and RabbitMQ, loads the keys, and binds the configured address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = shared::db::connect(&config.postgres).await?;
        let redis = shared::cache::connect(&config.redis)?;
        let keys = KeySet::load(&config.keys.dir, &[KeyPurpose::Access, KeyPurpose::Ticket])?;
        let publisher =
            shared::messaging::Publisher::connect(&config.amqp, "ticketing-api").await?;
        let state = AppState::new(config.clone(), db, redis, keys, publisher);
        Self::with_state(&config, state).await
    }

    /// Binds `config.http.addr` (port 0 in tests) and prepares the app around `state`.
    pub async fn with_state(config: &Config, state: AppState) -> anyhow::Result<Self> {
        accounts::ensure_admin(&state.db, config.auth.admin.as_ref())
            .await
            .context("creating the bootstrap admin")?;
        state.bans.spawn_refresh(
            state.db.clone(),
            config.auth.access_token_ttl + Duration::from_secs(60),
            Duration::from_secs(2),
        );
        state.auth_limiter.spawn_cleanup();
        // Expired holds free their seats at once for every check; the sweep also returns them
        // to best-available and the counts.
        state.inventory.spawn_sweeper(Duration::from_secs(1));
        let (stop, stopped) = shared::shutdown::channel();
        state.rules.spawn_listener(&state.db, stopped);
        let router = routes::router(state, config);
        Ok(Self {
            server: Server::bind(config.http.addr, router).await?,
            stop,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and stops the
    /// sale rules' listener.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let served = self.server.run_until(shutdown).await;
        self.stop.stop();
        served
    }
}
