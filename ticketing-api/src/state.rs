//! The state every handler shares: cheap to clone (pools and `Arc`s inside).

use std::sync::Arc;

use shared::{
    bans::BanList,
    booking::Bookings,
    cache::RedisKeys,
    config::AuthConfig,
    inventory::{CatalogCache, Inventory},
    messaging::Publisher,
    tokens::KeySet,
};
use sqlx::PgPool;

use crate::{Config, holds::RulesCache, rate_limit::AuthLimiter};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: shared::cache::Redis,
    pub redis_keys: RedisKeys,
    /// Seats and holds in Redis.
    pub inventory: Inventory,
    /// Each event's seats, loaded once per process.
    pub catalogs: CatalogCache,
    /// Each event's sale rules, kept while the listener `Application::with_state` starts is up.
    pub rules: RulesCache,
    pub keys: Arc<KeySet>,
    pub auth: Arc<AuthConfig>,
    pub bans: BanList,
    pub auth_limiter: Arc<AuthLimiter>,
    pub trust_forwarded_for: bool,
    /// Booking commands to the registration workers (publisher confirms).
    pub publisher: Publisher,
    /// A booking's life: registration on both paths (with this state's inventory and catalogs).
    pub bookings: Bookings,
}

impl AppState {
    /// `publisher` is connected in `Application::build`; tests may pass a lazy one.
    pub fn new(
        config: Config,
        db: PgPool,
        redis: shared::cache::Redis,
        keys: KeySet,
        publisher: Publisher,
    ) -> Self {
        let redis_keys = RedisKeys::new(config.redis.key_prefix);
        let auth_limiter = Arc::new(AuthLimiter::new(
            config.auth.limits,
            config.auth.refresh_token_ttl,
            redis.clone(),
            redis_keys.clone(),
        ));
        let inventory = Inventory::new(db.clone(), redis.clone(), redis_keys.clone());
        let catalogs = CatalogCache::new();
        let bookings = Bookings::new(
            db.clone(),
            redis.clone(),
            redis_keys.clone(),
            inventory.clone(),
            catalogs.clone(),
            Arc::new(keys.ticket.clone()),
        );
        Self {
            inventory,
            catalogs,
            rules: RulesCache::new(),
            db,
            redis,
            redis_keys,
            keys: Arc::new(keys),
            auth_limiter,
            auth: Arc::new(config.auth),
            bans: BanList::new(),
            trust_forwarded_for: config.http.trust_forwarded_for,
            publisher,
            bookings,
        }
    }
}
