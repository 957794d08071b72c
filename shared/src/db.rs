//! Postgres: the system of record. One pool per process; the schema is the embedded migrations
//! in `shared/migrations`, applied in order and never edited once applied.

use anyhow::Context;
use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};

use crate::config::PostgresConfig;

/// Every migration of the product, compiled into each binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connects, and migrates when the config says so. Migrations take an advisory lock, so several
/// services starting at once apply them exactly once.
pub async fn connect(config: &PostgresConfig) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(config.url.expose())
        .await
        .context("connecting to Postgres")?;
    if config.auto_migrate {
        MIGRATOR.run(&pool).await.context("running migrations")?;
    }
    Ok(pool)
}

/// The SQLSTATE of a unique violation, which turns into a domain error where it happens.
pub const UNIQUE_VIOLATION: &str = "23505";

/// The constraint a unique violation tripped on, if that is what `err` is.
pub fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            db.constraint()
        }
        _ => None,
    }
}

/// Is Postgres answering? For `/readyz`.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
