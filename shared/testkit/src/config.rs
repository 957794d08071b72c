//! Config sections for tests: the real services from the environment (or the dev defaults),
//! each test isolated by a fresh Redis key prefix, a fresh broker prefix and port 0.
//!
//! Every service's test config is built from these; a test that needs another value changes
//! that one field of the result.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    time::Duration,
};

use shared::config::{
    AmqpConfig, AuthLimits, HttpConfig, KeysConfig, PostgresConfig, RedisConfig, Secret,
};

/// Port 0 on loopback, a 1 MiB body limit and a 10 s request timeout.
pub fn http() -> HttpConfig {
    HttpConfig {
        addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
        body_limit_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(10),
        trust_forwarded_for: false,
    }
}

/// The database a `#[sqlx::test]` made for this test (trust auth, as on the dev and CI
/// machines: the URL carries no password).
pub fn postgres_for(pool: &sqlx::PgPool) -> PostgresConfig {
    let options = pool.connect_options();
    PostgresConfig {
        url: Secret::new(format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres"),
        )),
        max_connections: 5,
        auto_migrate: true,
    }
}

/// `REDIS_URL` (or the dev default) under a fresh `test:<uuid>:` key prefix.
pub fn redis() -> RedisConfig {
    RedisConfig {
        url: Secret::new(
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        connections: 2,
        key_prefix: format!("test:{}:", uuid::Uuid::new_v4()),
    }
}

/// `AMQP_URL` (or the dev default) under a fresh `test.<uuid>.` prefix for every exchange and
/// queue name; nothing is declared until a service or a test does.
pub fn amqp() -> AmqpConfig {
    AmqpConfig {
        url: Secret::new(
            std::env::var("AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        ),
        prefix: format!("test.{}.", uuid::Uuid::new_v4().simple()),
    }
}

/// The login and sign-up limits for tests that are not about them: the failure limits as
/// documented, but no per-address rate, since every test client shares 127.0.0.1.
pub fn auth_limits() -> AuthLimits {
    AuthLimits {
        login_per_minute: 1_000_000,
        login_burst: 1_000_000,
        register_per_minute: 1_000_000,
        register_burst: 1_000_000,
        ..AuthLimits::default()
    }
}

/// A `KEYS_DIR` that is never read: the tests hand the services the keys they sign with.
pub fn no_keys_dir() -> KeysConfig {
    KeysConfig {
        dir: "/nonexistent".into(),
    }
}
