//! The notifier: consumes booking events, renders PDF tickets with QR codes, sends them by
//! email ([`mail`]) and pushes confirmations over WebSocket ([`push`]: capped per user and per
//! instance, each socket closed at its access token's expiry and at its user's ban), next to the
//! ops endpoints.
//!
//! Its one public route, `GET /ws`, is described by [`openapi`], committed as
//! `shared/openapi/notifier.json` and merged from there into the gateway-wide document the
//! ticketing API serves (see `shared::openapi`).

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::Arc,
};

pub mod mail;
pub mod push;

use anyhow::Context;
use shared::{
    bans::BanList,
    config::{
        AmqpConfig, HttpConfig, KeysConfig, LogFormat, PostgresConfig, PushConfig, SmtpConfig,
    },
    http::{Readiness, Server, apply_common_layers, ops_router},
    messaging::{self, Names},
    tokens::{KeyPurpose, TokenKeys},
};

/// Everything the notifier reads from its environment (see `shared::config`).
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub postgres: PostgresConfig,
    pub amqp: AmqpConfig,
    pub smtp: SmtpConfig,
    /// The access tokens' public key (WebSocket logins).
    pub keys: KeysConfig,
    /// The WebSocket caps.
    pub push: PushConfig,
    pub log_format: LogFormat,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let config = Self {
            http: HttpConfig::from_env(
                "NOTIFIER_ADDR",
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8083)),
            )?,
            postgres: PostgresConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            smtp: SmtpConfig::from_env()?,
            keys: KeysConfig::from_env()?,
            push: PushConfig::from_env()?,
            log_format: LogFormat::from_env()?,
        };
        // APP_ENV=production: no development setting gets this far.
        shared::config::refuse_dev_settings(
            shared::config::AppEnv::from_env()?,
            &[&config.postgres, &config.amqp, &config.smtp, &config.keys],
        )?;
        Ok(config)
    }
}

/// The running parts: the HTTP server, and the mail and push consumers (which stop when the
/// server does, or at [`Stopper::stop`]).
pub struct Notifier {
    server: Server,
    stop: Stopper,
}

/// Stops a notifier's consumers (tests stop them before deleting their broker topology).
pub use shared::shutdown::Stopper;

impl Notifier {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Serves until `shutdown`, then stops the consumers.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let result = self.server.run_until(shutdown).await;
        self.stop.stop();
        result
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Notifier",
        description = "Booking outcomes pushed to the fan's browser over WebSocket. Errors are always `{\"error\": code, \"message\": text}`."
    ),
    paths(push::upgrade),
    tags((name = "push", description = "Live booking outcomes over WebSocket")),
)]
struct ApiDoc;

/// The notifier's OpenAPI document (`GET /ws`), with the answers of the shared plumbing.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut doc = ApiDoc::openapi();
    shared::openapi::CommonResponses.apply(&mut doc);
    doc
}

/// Connects its dependencies, declares the broker topology, starts the mail and push
/// consumers, binds the configured address.
pub async fn build(config: &Config) -> anyhow::Result<Notifier> {
    let access = TokenKeys::load(&config.keys.dir, KeyPurpose::Access, false)?;
    build_with(config, access).await
}

/// [`build`] with the access key given (tests sign their own tokens).
pub async fn build_with(config: &Config, access: TokenKeys) -> anyhow::Result<Notifier> {
    let (stop, stopped) = shared::shutdown::channel();
    let db = shared::db::connect(&config.postgres).await?;
    let amqp = Arc::new(messaging::connect(&config.amqp, "notifier").await?);
    let channel = amqp.create_channel().await.context("opening a channel")?;
    messaging::declare_topology(&channel, &Names::new(config.amqp.prefix.clone())).await?;
    let mailer = mail::Mailer::new(db.clone(), &config.smtp)?;
    tokio::spawn(mail::run(mailer, config.amqp.clone(), stopped.clone()));
    let hub = push::Hub::new(config.push);
    // Open sockets end at their user's ban (the upgrade checks the same list).
    let bans = BanList::new();
    tokio::spawn(push::enforce_bans(
        hub.clone(),
        bans.clone(),
        db.clone(),
        stopped.clone(),
    ));
    tokio::spawn(push::run(
        hub.clone(),
        config.amqp.clone(),
        uuid::Uuid::new_v4(),
        stopped,
    ));
    let consuming = hub.clone();
    let readiness = Readiness::new()
        .postgres(db)
        .rabbitmq(amqp)
        .check("push_queue", move || {
            let up = consuming.is_consuming();
            async move { up }
        });
    let ops = ops_router(readiness);
    let ws = axum::Router::new()
        .route("/ws", axum::routing::get(push::upgrade))
        .with_state(push::PushState {
            hub,
            access: Arc::new(access),
            bans,
        });
    // `/ws` upgrades; the ops endpoints at the root and under `/ws/` (through the gateway).
    let router = ws.nest("/ws", ops.clone()).merge(ops);
    let server = Server::bind(config.http.addr, apply_common_layers(router, &config.http)).await?;
    Ok(Notifier { server, stop })
}
