//! Accounts: users, passwords, sessions (refresh-token rotation), organizer applications,
//! bans and the audit log. No axum types here; routes translate [`AccountError`] into HTTP.

pub mod audit;
pub mod organizers;
pub mod password;
pub mod sessions;
pub mod users;

use shared::config::AdminBootstrap;
use sqlx::PgPool;

pub use users::User;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    InvalidEmail(String),
    #[error("{0}")]
    WeakPassword(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("this account is banned")]
    Banned,
    #[error("the refresh token is missing or not valid")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; every session of this login is now closed")]
    RefreshTokenReused,
    #[error("no such user")]
    UserNotFound,
    #[error("this account is already an organizer")]
    AlreadyOrganizer,
    #[error("an application is already waiting for a decision")]
    ApplicationPending,
    #[error("this user has no application waiting for a decision")]
    NoPendingApplication,
    #[error("admins cannot be banned")]
    CannotBanAdmin,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Makes sure the bootstrap admin from `ADMIN_EMAIL`/`ADMIN_PASSWORD` exists and is an admin.
/// An existing account keeps its password: the variables seed, they do not reset.
pub async fn ensure_admin(db: &PgPool, admin: Option<&AdminBootstrap>) -> anyhow::Result<()> {
    let Some(admin) = admin else {
        return Ok(());
    };
    let email = shared::domain::Email::parse(&admin.email)
        .map_err(|err| anyhow::anyhow!("ADMIN_EMAIL: {err}"))?;
    let password = password::Password::parse(admin.password.expose())
        .map_err(|err| anyhow::anyhow!("ADMIN_PASSWORD: {err}"))?;
    let hash = password::hash(&password).await?;
    let promoted = sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, role, organizer_status)
         VALUES ($1, $2, 'Administrator', $3, 'admin', 'none')
         ON CONFLICT (email) DO UPDATE SET role = 'admin', banned_at = NULL
         WHERE users.role <> 'admin' OR users.banned_at IS NOT NULL",
    )
    .bind(shared::ids::UserId::new())
    .bind(email.as_str())
    .bind(hash)
    .execute(db)
    .await?
    .rows_affected();
    if promoted > 0 {
        tracing::info!(email = %email, "bootstrap admin ready");
    }
    Ok(())
}
