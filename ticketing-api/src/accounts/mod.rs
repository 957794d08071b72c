//! Accounts: users, passwords, sessions (refresh-token rotation), organizer applications,
//! bans and the audit log. No axum types here; `crate::error` translates [`AccountError`]
//! into HTTP.

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

/// Creates the bootstrap admin from `ADMIN_EMAIL`/`ADMIN_PASSWORD` when no account has that
/// address. The variables only ever create:
///
/// - an existing admin is left exactly as it is: its password stays the one set last (the
///   variable seeds, it does not reset) and a ban written in the database stays;
/// - an existing account that is not an admin is never promoted. Anyone may sign up with any
///   address, so promoting it would hand the platform to whoever registered the operator's
///   address first — with their own password, and with every refresh token they already hold.
///
/// A squatted address does not stop the API. Refusing to start would let one sign-up block
/// every deploy (and every restart during an on-sale) until someone reads the logs; starting
/// costs nothing, because the admins that already exist keep working and no one gains a right.
/// So the API starts without a bootstrap admin and says so loudly: an ERROR at every start,
/// naming the account, until the operator picks another `ADMIN_EMAIL` or deals with the account.
pub async fn ensure_admin(db: &PgPool, admin: Option<&AdminBootstrap>) -> anyhow::Result<()> {
    let Some(admin) = admin else {
        return Ok(());
    };
    let email = shared::domain::Email::parse(&admin.email)
        .map_err(|err| anyhow::anyhow!("ADMIN_EMAIL: {err}"))?;
    let password = password::Password::parse(admin.password.expose())
        .map_err(|err| anyhow::anyhow!("ADMIN_PASSWORD: {err}"))?;
    let hash = password::hash(&password).await?;
    // `DO NOTHING`: two instances starting at once make one admin, and an existing row (the
    // only case that needs thought) is read below instead of being changed here.
    let created = sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, role, organizer_status)
         VALUES ($1, $2, 'Administrator', $3, 'admin', 'none')
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(shared::ids::UserId::new())
    .bind(email.as_str())
    .bind(hash)
    .execute(db)
    .await?
    .rows_affected();
    if created > 0 {
        tracing::info!(email = %email, "bootstrap admin created");
        return Ok(());
    }
    let existing: users::User = sqlx::query_as(concat!(
        "SELECT ",
        users::user_columns!(),
        " FROM users WHERE email = $1"
    ))
    .bind(email.as_str())
    .fetch_one(db)
    .await?;
    if existing.role == shared::domain::Role::Admin {
        tracing::info!(
            email = %email,
            "bootstrap admin already exists; ADMIN_PASSWORD is not applied to it"
        );
    } else {
        tracing::error!(
            email = %email,
            user.id = %existing.id,
            role = existing.role.as_str(),
            "ADMIN_EMAIL belongs to an existing account that is not an admin; it is NOT promoted \
             and there is no bootstrap admin. Set ADMIN_EMAIL to an address nobody has \
             registered, or remove that account."
        );
    }
    Ok(())
}
